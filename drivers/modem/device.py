"""A cellular modem on an open AT port: one command at a time, and a diagnostic ``probe``.

The port is anything pyserial-like (``serial.serial_for_url`` result). The driver sets the port's
read timeout to a short poll interval and keeps its own per-command deadline, so no call can
block longer than the command's timeout whatever the port was opened with.

Outcomes a technician cares about (no SIM, PIN lock, not registered, weak signal) come back as
values in ``ModemProbe``. Exceptions mean the probe itself could not be done:
``DeviceTimeout`` (no final result code in time), ``ProtocolError`` (line noise, answers that break
27.007; ``AtCommandError`` for an unexpected ERROR/+CME ERROR), ``DeviceNotFound`` (the port died
mid-command, e.g. the USB modem was pulled).
"""

from __future__ import annotations

import collections
import contextlib
import time
from dataclasses import dataclass

from posdiag.drivers.errors import DeviceTimeout, ProtocolError
from posdiag.drivers.modem.at import (
    AtCommandError,
    AtResponse,
    LineSplitter,
    ResponseCollector,
)
from posdiag.drivers.modem.parse import (
    SIM_STATE_BY_CME,
    Identity,
    Operator,
    QuectelSignal,
    Registration,
    RegistrationStat,
    SignalQuality,
    SimState,
    parse_ati,
    parse_cops,
    parse_cpin,
    parse_csq,
    parse_imei,
    parse_qcsq,
    parse_registration,
)
from posdiag.drivers.serial_port import PortIO, SerialPort, port_device

# ModemManager's timeouts: +CSQ 3 s, +CPIN? 10 s (SIM cards answer slowly while initialising).
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_SIM_TIMEOUT_S = 10.0
POLL_S = 0.05
MAX_KEPT_URCS = 64

@dataclass(frozen=True)
class Signal:
    """Signal as +CSQ reports it, with Quectel's LTE figures when the modem has +QCSQ."""

    csq: SignalQuality
    quectel: QuectelSignal | None = None

    @property
    def rssi_dbm(self) -> int | None:
        return self.csq.dbm

    @property
    def ber(self) -> int | None:
        return self.csq.ber_class

    @property
    def rsrp_dbm(self) -> int | None:
        return self.quectel.rsrp_dbm if self.quectel else None

    @property
    def rsrq_db(self) -> int | None:
        return self.quectel.rsrq_db if self.quectel else None

    @property
    def sinr_db(self) -> float | None:
        return self.quectel.sinr_db if self.quectel else None


@dataclass(frozen=True)
class Registrations:
    """Registration per domain: circuit switched (+CREG), GPRS (+CGREG), EPS/LTE (+CEREG).

    A field is None when the modem does not support that command (e.g. no +CEREG on a 2G module).
    """

    creg: Registration | None = None
    cgreg: Registration | None = None
    cereg: Registration | None = None

    def __post_init__(self) -> None:
        for name, expected in (("creg", "+CREG"), ("cgreg", "+CGREG"), ("cereg", "+CEREG")):
            value: Registration | None = getattr(self, name)
            if value is not None and value.command != expected:
                raise ValueError(f"{name} holds a {value.command} answer")

    def _known(self) -> list[Registration]:
        # LTE first: on an LTE module it is the domain that carries data.
        return [r for r in (self.cereg, self.cgreg, self.creg) if r is not None]

    @property
    def registered(self) -> bool:
        return any(r.registered for r in self._known())

    @property
    def data_registered(self) -> bool:
        """Registered in a packet domain (GPRS or EPS), i.e. mobile data can work."""
        return any(r.registered for r in (self.cereg, self.cgreg) if r is not None)

    @property
    def roaming(self) -> bool:
        return any(r.registered and r.roaming for r in self._known())

    @property
    def best(self) -> Registration | None:
        """The registered domain (LTE first), else the first one the modem reported."""
        known = self._known()
        return next((r for r in known if r.registered), known[0] if known else None)

    @property
    def stat(self) -> RegistrationStat | None:
        best = self.best
        return best.stat if best else None


@dataclass(frozen=True)
class ModemProbe:
    identity: Identity
    sim: SimState
    signal: Signal
    registration: Registrations
    operator: Operator | None
    urcs: tuple[str, ...] = ()  # unsolicited result codes seen during the probe


class Modem:
    """An AT modem on an open port. Not thread-safe: one command at a time."""

    def __init__(self, port: SerialPort, *, device: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 sim_timeout_s: float = DEFAULT_SIM_TIMEOUT_S,
                 echo_off: bool = True, sync_attempts: int = 2, poll_s: float = POLL_S) -> None:
        if timeout_s <= 0 or sim_timeout_s <= 0 or poll_s <= 0 or sync_attempts < 1:
            raise ValueError("timeouts and poll interval must be positive, sync_attempts >= 1")
        self._port = port
        self.device = port_device(port, device)
        self.timeout_s = timeout_s
        self.sim_timeout_s = sim_timeout_s
        self.echo_off = echo_off
        self.sync_attempts = sync_attempts
        self._poll_s = min(poll_s, timeout_s)
        self._urcs: collections.deque[str] = collections.deque(maxlen=MAX_KEPT_URCS)
        self._io = PortIO(port, device=self.device, what="modem", timeout_s=timeout_s)
        self._io.configure(self._poll_s)

    @property
    def urcs(self) -> tuple[str, ...]:
        """Unsolicited result codes set aside so far (newest last, at most 64)."""
        return tuple(self._urcs)

    # -- commands -------------------------------------------------------------------------------
    def command(self, command: str, *, timeout_s: float | None = None) -> AtResponse:
        """Send one command line (``AT...``) and collect its answer up to the final result code."""
        text = command.strip()
        if not text.upper().startswith("AT") or not text.isascii() or not text.isprintable():
            raise ValueError(f"not a single AT command line: {command!r}")
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        splitter = LineSplitter()
        collector = ResponseCollector(text)
        # Anything still buffered (a late answer to a timed-out command, URCs) would be
        # mistaken for this command's answer.
        self._io.call(self._port.reset_input_buffer)
        self._io.write((text + "\r").encode("ascii"))
        try:
            while True:
                if time.monotonic() >= deadline:
                    seen = splitter.pending
                    raise DeviceTimeout(
                        f"no final result code for {text} within {limit:g} s"
                        + (f" (partial line {seen[:40]!r})" if seen else ""),
                        device=self.device, timeout_s=limit)
                chunk = self._io.read_available()
                for line in splitter.feed(chunk):
                    response = collector.feed(line)
                    if response is not None:
                        return response
        except ProtocolError as exc:
            self._tag(exc)
            raise
        finally:
            self._urcs.extend(collector.urcs)

    def sync(self) -> None:
        """``AT`` until the modem answers OK; the first AT after idle is often lost (autobaud)."""
        for attempt in range(1, self.sync_attempts + 1):
            try:
                self.command("AT")
                return
            except DeviceTimeout:
                if attempt == self.sync_attempts:
                    raise

    def identity(self) -> Identity:
        try:
            manufacturer = self.command("AT+CGMI").text()
            model = self.command("AT+CGMM").text()
            revision = self.command("AT+CGMR").text()
            identity = Identity(manufacturer, model, revision)
        except AtCommandError:
            # Some modules only implement V.250's ATI.
            identity = parse_ati(self.command("ATI").lines)
        try:
            imei: str | None = parse_imei(self.command("AT+CGSN").text())
        except AtCommandError:
            imei = None
        return Identity(identity.manufacturer, identity.model, identity.revision, imei)

    def sim_state(self) -> SimState:
        try:
            return parse_cpin(self.command("AT+CPIN?", timeout_s=self.sim_timeout_s).one("+CPIN"))
        except AtCommandError as exc:
            # With no SIM (10), a dead SIM (13) or one still starting (14) +CPIN? has no state line.
            if exc.kind == "cme_error" and exc.code in SIM_STATE_BY_CME:
                return SIM_STATE_BY_CME[exc.code]
            raise

    def signal(self, *, quectel: bool = False) -> Signal:
        csq = parse_csq(self.command("AT+CSQ").one("+CSQ"))
        qcsq: QuectelSignal | None = None
        if quectel:
            try:
                qcsq = parse_qcsq(self.command("AT+QCSQ").one("+QCSQ"))
            except AtCommandError:
                qcsq = None  # older firmware without +QCSQ
        return Signal(csq, qcsq)

    def registration(self) -> Registrations:
        found: dict[str, Registration | None] = {}
        for name, prefix in (("creg", "+CREG"), ("cgreg", "+CGREG"), ("cereg", "+CEREG")):
            try:
                reg = parse_registration(self.command(f"AT{prefix}?").one(prefix))
            except AtCommandError:
                reg = None  # domain not supported by this module, or refused without a SIM
            if reg is not None and reg.unsolicited:
                raise ProtocolError(f"AT{prefix}? answered with a URC form: {reg}",
                                    device=self.device, kind="garbled")
            found[name] = reg
        return Registrations(**found)

    def operator(self) -> Operator | None:
        try:
            return parse_cops(self.command("AT+COPS?").one("+COPS"))
        except AtCommandError:
            return None  # refused without a SIM on some firmware

    def probe(self) -> ModemProbe:
        """Everything a diagnosis needs, in one pass; see the module docstring for errors."""
        try:
            self.sync()
            if self.echo_off:
                self.command("ATE0")
            # Numeric +CME errors, as ModemManager sets up: "no SIM" is then code 10. A modem
            # that refuses keeps its mode; verbose texts are mapped back to codes anyway.
            with contextlib.suppress(AtCommandError):
                self.command("AT+CMEE=1")
            identity = self.identity()
            sim = self.sim_state()
            signal = self.signal(quectel="quectel" in identity.manufacturer.lower())
            registration = self.registration()
            operator = self.operator()
        except ProtocolError as exc:
            # Parse errors are raised by pure code that does not know the port.
            self._tag(exc)
            raise
        return ModemProbe(identity, sim, signal, registration, operator, self.urcs)

    def _tag(self, exc: ProtocolError) -> None:
        exc.device = exc.device or self.device
