"""A cellular modem on an open AT port: one command at a time, and a diagnostic ``probe``.

The port is anything pyserial-like (``serial.serial_for_url`` result). The driver sets the port's
read timeout to a short poll interval and keeps its own per-command deadline, so no call can
block longer than the command's timeout whatever the port was opened with.

Outcomes a technician cares about (no SIM, PIN lock, not registered, weak signal) come back as
values in ``ModemProbe``. Essential answers (SIM, signal, registration) decide the diagnosis;
optional ones (identity, character set, operator, Quectel +QCSQ) never fail the probe: their
errors leave a field None. A field no parser could read is named in ``ModemProbe.unreadable``.
Exceptions mean the probe itself could not be done: ``DeviceTimeout`` (no answer in time),
``ProtocolError`` (line noise; ``AtCommandError`` for an essential command the modem refused),
``DeviceNotFound`` (the port died mid-command, e.g. the USB modem was pulled).

A command is answered by its final result code, or, for modules that never send one after some
answers (``+CPIN: READY`` alone), by its expected information followed by ``grace_s`` of
silence.
"""

from __future__ import annotations

import collections
import contextlib
import re
import time
from dataclasses import dataclass

from posdiag.drivers.errors import DeviceTimeout, ProtocolError
from posdiag.drivers.modem.at import (
    AtCommandError,
    AtResponse,
    LineSplitter,
    ResponseCollector,
    is_registration_urc,
    line_prefix,
    payload_of,
    unquote,
)
from posdiag.drivers.modem.charset import normalize_charset
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
# Silence after the expected information that counts as "answered" on modules that send no
# final code: real modules send the final within milliseconds of the information.
GRACE_S = 0.5

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


# Model names of 5G (NR) modules: Quectel RG/RM5xx, SIMCom SIM82xx/83xx, Sierra EM919x/EM7690,
# Fibocom FM150/FM160/FG1xx, Telit FN980/FN990, Huawei MH50xx.
_5G_MODEL = re.compile(r"^(RG5|RM5|RM2|SIM8[23]|EM919|EM76|FM1[56]0|FG1|FN9[89]|MH50)", re.I)


def is_5g_model(model: str | None) -> bool:
    """The module reports a model name known to be 5G, so it answers +C5GREG."""
    return bool(model and _5G_MODEL.match(model.strip()))


@dataclass(frozen=True)
class Registrations:
    """Registration per domain: circuit switched (+CREG), GPRS (+CGREG), EPS/LTE (+CEREG),
    5GS (+C5GREG, asked of 5G modules only).

    A field is None when the modem does not support that command (e.g. no +CEREG on a 2G module).
    """

    creg: Registration | None = None
    cgreg: Registration | None = None
    cereg: Registration | None = None
    c5greg: Registration | None = None

    def __post_init__(self) -> None:
        for name, expected in (("creg", "+CREG"), ("cgreg", "+CGREG"), ("cereg", "+CEREG"),
                               ("c5greg", "+C5GREG")):
            value: Registration | None = getattr(self, name)
            if value is not None and value.command != expected:
                raise ValueError(f"{name} holds a {value.command} answer")

    def _known(self) -> list[Registration]:
        # Newest first: on a 5G or LTE module that is the domain that carries data.
        return [r for r in (self.c5greg, self.cereg, self.cgreg, self.creg) if r is not None]

    @property
    def registered(self) -> bool:
        return any(r.registered for r in self._known())

    @property
    def data_registered(self) -> bool:
        """Registered in a packet domain (GPRS or EPS), i.e. mobile data can work."""
        return any(r.registered for r in (self.c5greg, self.cereg, self.cgreg)
                   if r is not None)

    @property
    def roaming(self) -> bool:
        return any(r.registered and r.roaming for r in self._known())

    @property
    def best(self) -> Registration | None:
        """The registered domain (LTE first), else the first one with a readable state."""
        known = self._known()
        readable = [r for r in known if r.stat is not None]
        return next((r for r in known if r.registered),
                    readable[0] if readable else (known[0] if known else None))

    @property
    def stat(self) -> RegistrationStat | None:
        best = self.best
        return best.stat if best else None


@dataclass(frozen=True)
class ModemProbe:
    identity: Identity
    sim: SimState | None  # None: the +CPIN? answer could not be read (see ``unreadable``)
    signal: Signal
    registration: Registrations
    operator: Operator | None
    urcs: tuple[str, ...] = ()  # unsolicited result codes seen during the probe
    charset: str | None = None  # +CSCS, the set operator names came in
    unreadable: tuple[str, ...] = ()  # every field the probe could not read, named


class Modem:
    """An AT modem on an open port. Not thread-safe: one command at a time."""

    def __init__(self, port: SerialPort, *, device: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 sim_timeout_s: float = DEFAULT_SIM_TIMEOUT_S,
                 echo_off: bool = True, sync_attempts: int = 2, poll_s: float = POLL_S,
                 grace_s: float = GRACE_S) -> None:
        if (timeout_s <= 0 or sim_timeout_s <= 0 or poll_s <= 0 or grace_s <= 0
                or sync_attempts < 1):
            raise ValueError("timeouts and poll interval must be positive, sync_attempts >= 1")
        self._port = port
        self.device = port_device(port, device)
        self.timeout_s = timeout_s
        self.sim_timeout_s = sim_timeout_s
        self.echo_off = echo_off
        self.sync_attempts = sync_attempts
        self.grace_s = grace_s
        self._poll_s = min(poll_s, timeout_s)
        self._urcs: collections.deque[str] = collections.deque(maxlen=MAX_KEPT_URCS)
        self._unreadable: list[str] = []
        self._optional_timed_out = False
        self._io = PortIO(port, device=self.device, what="modem", timeout_s=timeout_s)
        self._io.configure(self._poll_s)

    @property
    def urcs(self) -> tuple[str, ...]:
        """Unsolicited result codes set aside so far (newest last, at most 64)."""
        return tuple(self._urcs)

    # -- commands -------------------------------------------------------------------------------
    def command(self, command: str, *, timeout_s: float | None = None) -> AtResponse:
        """Send one command line (``AT...``) and collect its answer up to the final result code
        (or its information and ``grace_s`` of silence, see the module docstring)."""
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
        last_data = time.monotonic()
        noise: ProtocolError | None = None  # a garbled line, raised once the answer is over
        try:
            while True:
                now = time.monotonic()
                if noise is None and collector.has_information and (
                        now - last_data >= self.grace_s or now >= deadline):
                    return collector.unterminated()
                if now >= deadline:
                    seen = splitter.pending
                    raise DeviceTimeout(
                        f"no final result code for {text} within {limit:g} s"
                        + (f" (partial line {seen[:40]!r})" if seen else ""),
                        device=self.device, timeout_s=limit)
                chunk = self._io.read_available()
                if chunk:
                    last_data = time.monotonic()
                lines, error = splitter.feed_tolerant(chunk)
                noise = noise or error
                for line in lines:
                    response = collector.feed(line)
                    if response is not None:
                        if noise is not None:
                            raise noise  # after the final code: the port stays in step
                        return response
        except ProtocolError as exc:
            self._tag(exc)
            raise
        finally:
            self._urcs.extend(collector.urcs)

    def sync(self) -> None:
        """``AT`` until the modem answers; the first AT after idle is often lost (autobaud),
        and a module powering up may put noise before its answer. Any final code is an answer.
        """
        for attempt in range(1, self.sync_attempts + 1):
            try:
                self.command("AT")
                return
            except AtCommandError:
                return  # it answered, if oddly: the modem is there
            except (DeviceTimeout, ProtocolError):
                if attempt == self.sync_attempts:
                    raise

    def _optional(self, command: str) -> AtResponse | None:
        """A nice-to-have command: None when refused, garbled or (once) not answered in time;
        after one timeout the remaining optional commands are skipped, so a half-dead modem
        costs one timeout here, not one per command."""
        if self._optional_timed_out:
            return None
        try:
            return self.command(command)
        except DeviceTimeout:
            self._optional_timed_out = True
            self._unreadable.append(f"{command}: no answer")
            return None
        except AtCommandError:
            return None
        except ProtocolError as exc:
            self._unreadable.append(f"{command}: {exc.message}")
            return None

    def _optional_text(self, command: str) -> str | None:
        response = self._optional(command)
        if response is None:
            return None
        try:
            return response.text()
        except ProtocolError:
            self._unreadable.append(f"{command}: no text in {list(response.lines)!r}"[:120])
            return None

    def identity(self) -> Identity:
        """+CGMI/+CGMM/+CGMR/+CGSN, with V.250 ATI filling what they do not give. Optional:
        whatever cannot be had is None."""
        manufacturer = self._optional_text("AT+CGMI")
        model = self._optional_text("AT+CGMM")
        revision = self._optional_text("AT+CGMR")
        unreadable: list[str] = []
        if manufacturer is None or model is None:
            # Some modules only implement V.250's ATI.
            response = self._optional("ATI")
            if response is not None:
                try:
                    ati = parse_ati(response.lines)
                except ProtocolError as exc:
                    unreadable.append(f"ATI: {exc.message}"[:120])
                else:
                    manufacturer = manufacturer or ati.manufacturer
                    model = model or ati.model
                    revision = revision or ati.revision
                    unreadable += ati.unreadable
        imei: str | None = None
        imei_text = self._optional_text("AT+CGSN")
        if imei_text is not None:
            try:
                imei = parse_imei(imei_text)
            except ProtocolError:
                unreadable.append(f"+CGSN <imei> {imei_text[:24]!r}")
        self._unreadable.extend(unreadable)
        return Identity(manufacturer, model, revision, imei, tuple(unreadable))

    def charset(self) -> str | None:
        """The TE character set (+CSCS?), which operator names are sent in; None if refused."""
        response = self._optional("AT+CSCS?")
        if response is None:
            return None
        try:
            return normalize_charset(unquote(payload_of(response.one("+CSCS"), "+CSCS")))
        except ProtocolError:
            self._unreadable.append(f"+CSCS {list(response.lines)!r}"[:120])
            return None

    def sim_state(self) -> SimState | None:
        """+CPIN?; None when its answer could not be read (named in ``unreadable``)."""
        try:
            response = self.command("AT+CPIN?", timeout_s=self.sim_timeout_s)
        except AtCommandError as exc:
            # With no SIM (10), a dead SIM (13) or one still starting (14) +CPIN? has no state line.
            if exc.kind == "cme_error" and exc.code in SIM_STATE_BY_CME:
                return SIM_STATE_BY_CME[exc.code]
            raise
        try:
            return parse_cpin(response.one("+CPIN"))
        except ProtocolError as exc:
            self._unreadable.append(f"+CPIN: {exc.message}"[:120])
            return None

    def signal(self, *, quectel: bool = False) -> Signal:
        """+CSQ (and Quectel +QCSQ, optional). An unreadable +CSQ gives rssi/ber None."""
        try:
            csq = parse_csq(self.command("AT+CSQ").one("+CSQ"))
        except AtCommandError:
            raise
        except ProtocolError as exc:
            what = f"AT+CSQ: {exc.message}"[:120]
            csq = SignalQuality(None, None, (what,))
        self._unreadable.extend(csq.unreadable)
        qcsq: QuectelSignal | None = None
        if quectel:
            response = self._optional("AT+QCSQ")  # older firmware has no +QCSQ
            if response is not None:
                try:
                    qcsq = parse_qcsq(response.one("+QCSQ"))
                except ProtocolError as exc:
                    self._unreadable.append(f"+QCSQ: {exc.message}"[:120])
                else:
                    self._unreadable.extend(qcsq.unreadable)
        return Signal(csq, qcsq)

    def _registration(self, prefix: str) -> Registration | None:
        try:
            response = self.command(f"AT{prefix}?")
        except AtCommandError:
            return None  # domain not supported by this module, or refused without a SIM
        except ProtocolError as exc:
            self._unreadable.append(f"AT{prefix}?: {exc.message}"[:120])
            return None
        lines = [line for line in response.lines if line_prefix(line) == prefix]
        if not lines:
            # No read answer, only the URC form (<n> missing): the only state the modem gave.
            urc_forms = [u for u in response.urcs
                         if line_prefix(u) == prefix and is_registration_urc(u, prefix)]
            if len(urc_forms) != 1:
                self._unreadable.append(f"AT{prefix}?: no {prefix} read answer")
                return None
            lines = urc_forms
            self._unreadable.append(f"{prefix} <n> missing (answer in URC form)")
        try:
            reg = parse_registration(lines[0])
        except ProtocolError as exc:
            self._unreadable.append(f"{prefix}: {exc.message}"[:120])
            return None
        self._unreadable.extend(reg.unreadable)
        return reg

    def registration(self, *, five_g: bool = False) -> Registrations:
        """``five_g``: also ask +C5GREG? (27.007 §10.1.51); older modules would only spend a
        command on an ERROR there."""
        return Registrations(creg=self._registration("+CREG"),
                             cgreg=self._registration("+CGREG"),
                             cereg=self._registration("+CEREG"),
                             c5greg=self._registration("+C5GREG") if five_g else None)

    def operator(self, charset: str | None = None) -> Operator | None:
        """+COPS?, the name decoded from ``charset`` (+CSCS); optional."""
        response = self._optional("AT+COPS?")
        if response is None:
            return None
        try:
            operator = parse_cops(response.one("+COPS"), charset)
        except ProtocolError as exc:
            self._unreadable.append(f"+COPS: {exc.message}"[:120])
            return None
        self._unreadable.extend(operator.unreadable)
        return operator

    def probe(self) -> ModemProbe:
        """Everything a diagnosis needs, in one pass; see the module docstring for errors."""
        self._unreadable.clear()
        self._optional_timed_out = False
        try:
            self.sync()
            if self.echo_off:
                with contextlib.suppress(AtCommandError):
                    self.command("ATE0")
            # Numeric +CME errors, as ModemManager sets up: "no SIM" is then code 10. A modem
            # that refuses keeps its mode; verbose texts are mapped back to codes anyway.
            with contextlib.suppress(AtCommandError):
                self.command("AT+CMEE=1")
            identity = self.identity()
            sim = self.sim_state()
            manufacturer = (identity.manufacturer or "").lower()
            signal = self.signal(quectel="quectel" in manufacturer)
            registration = self.registration(five_g=is_5g_model(identity.model))
            charset = self.charset()
            operator = self.operator(charset)
        except ProtocolError as exc:
            # Parse errors are raised by pure code that does not know the port.
            self._tag(exc)
            raise
        return ModemProbe(identity, sim, signal, registration, operator, self.urcs, charset,
                          tuple(dict.fromkeys(self._unreadable)))

    def _tag(self, exc: ProtocolError) -> None:
        exc.device = exc.device or self.device
