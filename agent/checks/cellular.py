"""Cellular: can the modem carry payment traffic? SIM, signal, network registration, roaming.

One AT probe (3GPP TS 27.007, protocols.md §4): identity, ``+CPIN?``, ``+CSQ`` (and Quectel's
``+QCSQ`` for LTE RSRP/SINR), ``+CREG?``/``+CGREG?``/``+CEREG?``, ``+COPS?``. Findings in
root-cause order: the SIM (nothing registers without it), then the radio signal, then the
registration, then roaming.

Signal thresholds (§4.4, dBm = −113 + 2·rssi): −95 dBm is CSQ 9, the top of the band usually
called "marginal" (ModemManager shows it as 29 %); −105 dBm is CSQ 4 (12 %), where a data
session rarely holds. On LTE, CSQ is coarse (§4.4): when the modem reports RSRP (+QCSQ) and
``rsrp_warn_dbm``/``rsrp_fail_dbm`` are set, RSRP decides instead.

The IMEI is read but not reported unless ``report_imei = true``: it is a permanent, globally
unique identifier of the terminal's radio (it outlives SIM swaps, is what carriers block
and what cloned devices copy), while the report travels to the fleet backend, its broker and
its logs on every run. The fleet already knows the terminal by ``terminal.id``; a fleet that
tracks assets by IMEI can opt in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from posdiag.checks.base import CheckContext, CheckSpec
from posdiag.checks.device import POLL_S, DeviceConfig, add_driver_error, describe, locate
from posdiag.config import between, rule
from posdiag.drivers.errors import DriverError
from posdiag.results import CheckResult, Verdict

if TYPE_CHECKING:
    from posdiag.drivers.modem import AtCommandError, ModemProbe, Registration, SimState

WHAT = "cellular modem"
CONNECTION_HINT = "cellular.check_modem"

# By RegistrationStat member name: the modem driver is only imported once a modem is found.
_STAT_TEXT = {
    "NOT_REGISTERED": "not registered and not searching",
    "SEARCHING": "not registered, searching for a network",
    "DENIED": "registration denied",
    "UNKNOWN": "registration state unknown (out of coverage?)",
    "EMERGENCY_ONLY": "emergency services only",
    "RLOS": "attached for restricted local operator services only",
}


@dataclass(frozen=True)
class CellularConfig(DeviceConfig):
    driver: Literal["auto", "at_modem"] = "auto"
    # USB modems ignore the rate (the tty is virtual); 115200 is the UART default of LTE modules.
    baudrate: int = rule(between(300, 4_000_000), 115200)
    signal_warn_dbm: int = rule(between(-113, -51), -95)  # +CSQ RSSI at or below: warn
    signal_fail_dbm: int = rule(between(-113, -51), -105)  # at or below: fail
    rsrp_warn_dbm: int | None = rule(between(-140, -44), None)  # LTE RSRP; unset: use RSSI
    rsrp_fail_dbm: int | None = rule(between(-140, -44), None)
    roaming_allowed: bool = True  # false: roaming is a warning (home-network SIMs)
    report_imei: bool = False  # see the module docstring
    command_timeout_s: float = rule(between(0.1, 30.0), 3.0)  # ModemManager's +CSQ timeout
    sim_timeout_s: float = rule(between(0.1, 30.0), 10.0)  # +CPIN? (SIM start-up is slow)

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.signal_fail_dbm >= self.signal_warn_dbm:
            yield ("signal_fail_dbm", f"must be below signal_warn_dbm ({self.signal_warn_dbm}),"
                                      f" not {self.signal_fail_dbm}")
        if (self.rsrp_warn_dbm is not None and self.rsrp_fail_dbm is not None
                and self.rsrp_fail_dbm >= self.rsrp_warn_dbm):
            yield ("rsrp_fail_dbm", f"must be below rsrp_warn_dbm ({self.rsrp_warn_dbm}),"
                                    f" not {self.rsrp_fail_dbm}")


# -- metrics -----------------------------------------------------------------------------------

def _technology(p: ModemProbe) -> str | None:
    """From the registration answer (with +CxREG n >= 2), else from +COPS."""
    best = p.registration.best
    return (best.technology if best is not None else None) or (
        p.operator.technology if p.operator is not None else None)


def _metrics(v: Verdict, p: ModemProbe, cfg: CellularConfig) -> None:
    v.metric("modem_manufacturer", p.identity.manufacturer)
    v.metric("modem_model", p.identity.model)
    v.metric("modem_revision", p.identity.revision)
    if cfg.report_imei:
        v.metric("modem_imei", p.identity.imei)
    v.metric("sim_state", str(p.sim) if p.sim is not None else None)
    s = p.signal
    v.metric("signal_dbm", s.rssi_dbm)
    v.metric("signal_percent", s.csq.percent)
    v.metric("ber", s.ber)
    v.metric("service_mode", s.quectel.sysmode if s.quectel else None)
    v.metric("rsrp_dbm", s.rsrp_dbm)
    v.metric("rsrq_db", s.rsrq_db)
    v.metric("sinr_db", s.sinr_db)
    r = p.registration
    # Per domain: circuit switched (+CREG), GPRS (+CGREG), EPS/LTE (+CEREG); None = unsupported
    # or unreadable (then named in unreadable_fields).
    for key, reg in (("creg_stat", r.creg), ("cgreg_stat", r.cgreg), ("cereg_stat", r.cereg)):
        v.metric(key, int(reg.stat) if reg is not None and reg.stat is not None else None)
    if r.c5greg is not None:  # asked of 5G modules only
        v.metric("c5greg_stat", int(r.c5greg.stat) if r.c5greg.stat is not None else None)
    best = r.best
    v.metric("registration",
             best.stat.name.lower() if best is not None and best.stat is not None else None)
    v.metric("access_technology", _technology(p))
    v.metric("operator", p.operator.name if p.operator is not None else None)
    v.metric("roaming", r.roaming)
    # Everything the modem said that could not be read, so a technician sees it was the parser,
    # not the modem; IMEI text is left out unless it may be reported.
    fields = [u for u in p.unreadable if cfg.report_imei or "<imei>" not in u]
    v.metric("unreadable_fields", "; ".join(fields) if fields else None)


# -- findings ----------------------------------------------------------------------------------

def _sim_finding(v: Verdict, sim: SimState) -> bool:
    """The SIM finding, if any; True when the SIM keeps the modem off the network."""
    from posdiag.drivers.modem import SimState

    if sim.usable:
        return False
    if sim is SimState.NOT_INSERTED:
        v.fail("sim_missing", "no SIM card detected (+CME ERROR: 10)", "cellular.insert_sim")
    elif sim.locked:
        *facility, kind = sim.value.upper().split("_")  # ph_net_puk -> PH-NET PUK
        code = f"{'-'.join(facility)} {kind}"
        v.fail("sim_locked", f"SIM card is locked: {code} required", "cellular.unlock_sim")
    elif sim is SimState.BUSY:
        v.warn("sim_error", "SIM card is still starting up (SIM busy)",
               "cellular.wait_for_network")
    else:
        v.fail("sim_error", f"SIM card does not work (SIM {sim.value})", "cellular.replace_sim")
    return True


def _unreadable(v: Verdict, p: ModemProbe, what: str, prefixes: tuple[str, ...],
                status: str = "unknown") -> None:
    """A field the diagnosis needs could not be read: say which, never guess."""
    named = [u for u in p.unreadable if any(x in u for x in prefixes)]
    detail = f": {'; '.join(named)}" if named else ""
    summary = f"could not read the modem's {what}{detail}"
    if status == "warn":
        v.warn("modem_field_unreadable", summary, "cellular.report_modem_answer")
    else:
        v.unknown("modem_field_unreadable", summary, "cellular.report_modem_answer")


def _no_signal(v: Verdict, p: ModemProbe) -> bool:
    """no_signal when the radio measurements say so: +CSQ 99 ("not detectable") and no LTE
    RSRP. A vendor service report (+QCSQ "NOSERVICE") is not a measurement."""
    s = p.signal
    if not (s.csq.undetectable and s.rsrp_dbm is None):
        return False
    ber = s.csq.ber if s.csq.ber is not None else "?"
    v.fail("no_signal", f"no mobile signal (+CSQ: 99,{ber})", "cellular.improve_signal")
    return True


def _signal_thresholds(v: Verdict, p: ModemProbe, cfg: CellularConfig) -> None:
    """weak_signal by RSRP (when its thresholds are set and the modem gives it) or RSSI."""
    s = p.signal
    rsrp_rules = cfg.rsrp_warn_dbm is not None or cfg.rsrp_fail_dbm is not None
    if s.rsrp_dbm is not None and rsrp_rules:
        value, warn, fail, name = s.rsrp_dbm, cfg.rsrp_warn_dbm, cfg.rsrp_fail_dbm, "LTE RSRP"
    elif s.rssi_dbm is not None:
        value, warn, fail, name = s.rssi_dbm, cfg.signal_warn_dbm, cfg.signal_fail_dbm, "signal"
    else:
        return  # the modem gives no figure (99 on some LTE modules): nothing to judge
    if fail is not None and value <= fail:
        v.fail("weak_signal", f"mobile {name} {value} dBm (fail at {fail} dBm)",
               "cellular.improve_signal")
    elif warn is not None and value <= warn:
        v.warn("weak_signal", f"mobile {name} {value} dBm (warn at {warn} dBm)",
               "cellular.improve_signal")


def _not_registered(v: Verdict, regs: list[Registration]) -> None:
    from posdiag.drivers.modem import RegistrationStat

    # Searching is the most hopeful state to report; otherwise the data domain's own state.
    order = (RegistrationStat.SEARCHING, RegistrationStat.UNKNOWN,
             RegistrationStat.EMERGENCY_ONLY, RegistrationStat.RLOS,
             RegistrationStat.NOT_REGISTERED)
    stat = next((s for s in order if any(r.stat is s for r in regs)), regs[0].stat)
    assert stat is not None  # callers pass readable states only
    detail = ", ".join(f"{r.command}: {int(r.stat)}" for r in regs if r.stat is not None)
    v.fail("not_registered", f"modem {_STAT_TEXT.get(stat.name, stat.name.lower())} ({detail})",
           "cellular.wait_for_network")


_REG_PREFIXES = ("+CREG", "+CGREG", "+CEREG", "+C5GREG")


def _registration_finding(v: Verdict, p: ModemProbe, cfg: CellularConfig) -> None:
    """Registration first (it is what decides whether payments can go out), then the radio.

    Precedence of evidence: a readable <stat> 3 is registration_denied and 0/2/4 not_registered,
    whatever +CSQ or a vendor report says; no_signal only when the radio measures none.
    """
    from posdiag.drivers.modem import RegistrationStat

    r = p.registration
    packet = [x for x in (r.c5greg, r.cereg, r.cgreg) if x is not None]
    # A payment terminal needs data: judge the packet domains when the modem has them.
    judged = packet or [x for x in (r.creg,) if x is not None]
    unreadable_reg = any(u.startswith(("AT+C", *_REG_PREFIXES)) and ("REG" in u.split()[0])
                         for u in p.unreadable)
    if not judged:
        if unreadable_reg:
            _unreadable(v, p, "registration state", _REG_PREFIXES)
            _signal_thresholds(v, p, cfg)
        else:
            v.fail("modem_error", "modem answers none of +CREG?, +CGREG?, +CEREG?",
                   "cellular.restart_modem")
        return
    readable = [x for x in judged if x.stat is not None]
    if any(x.registered for x in readable):
        if p.signal.csq.rssi is None and p.signal.rsrp_dbm is None:
            _unreadable(v, p, "signal", ("+CSQ",), status="warn")
        _signal_thresholds(v, p, cfg)
        if r.roaming and not cfg.roaming_allowed:
            name = p.operator.name if p.operator is not None and p.operator.name else "unknown"
            v.warn("roaming", f"modem is roaming on operator {name}; roaming_allowed = false",
                   "cellular.check_roaming")
        return
    denied = [x for x in readable if x.stat is RegistrationStat.DENIED]
    if denied:
        what = ", ".join(f"{x.command}: 3" for x in denied)
        v.fail("registration_denied", f"mobile network denied registration ({what})",
               "cellular.contact_operator")
        return
    if len(readable) < len(judged) or (not readable):
        # A domain we could not read may be the registered one: do not guess.
        _unreadable(v, p, "registration state", _REG_PREFIXES)
        _signal_thresholds(v, p, cfg)
        return
    if _no_signal(v, p):
        return  # no signal is the root cause of not being registered
    _signal_thresholds(v, p, cfg)
    if r.creg is not None and r.creg.registered and packet:
        v.fail("not_registered", "modem is registered for calls (+CREG) but not for data "
               f"({', '.join(f'{x.command}: {int(x.stat)}' for x in readable)})",
               "cellular.wait_for_network")
    else:
        _not_registered(v, readable)


def _findings(v: Verdict, p: ModemProbe, cfg: CellularConfig) -> None:
    if p.sim is not None and _sim_finding(v, p.sim):
        return  # no registration without a working SIM: one root cause
    if p.sim is None and not p.registration.registered:
        _unreadable(v, p, "SIM state", ("+CPIN",))
    _registration_finding(v, p, cfg)


def _ok_summary(p: ModemProbe) -> str:
    parts = []
    if p.operator is not None and p.operator.name:
        parts.append(f"registered on {p.operator.name}")
    else:
        parts.append("registered")
    technology = _technology(p)
    if technology:
        parts.append(technology)
    if p.signal.rssi_dbm is not None:
        parts.append(f"signal {p.signal.rssi_dbm} dBm")
    if p.signal.rsrp_dbm is not None:
        parts.append(f"RSRP {p.signal.rsrp_dbm} dBm")
    if p.registration.roaming:
        parts.append("roaming")
    return ", ".join(parts)


def _command_error(v: Verdict, err: AtCommandError) -> None:
    from posdiag.drivers.modem.parse import SIM_STATE_BY_CME

    v.metric("modem_error_command", err.command)
    v.metric("modem_error_code", err.code)
    if (err.kind == "cme_error" and err.code in SIM_STATE_BY_CME
            and _sim_finding(v, SIM_STATE_BY_CME[err.code])):
        return
    what = f"+CME ERROR: {err.text}" if err.kind == "cme_error" else (err.text or err.kind)
    v.fail("modem_error", f"modem refused {err.command}: {what}", "cellular.restart_modem")


def run(ctx: CheckContext, cfg: CellularConfig) -> CheckResult:
    where = locate(ctx, cfg, "cellular", WHAT, CONNECTION_HINT)
    if isinstance(where, CheckResult):
        return where
    v = Verdict(ctx.name)
    for key, value in describe(where).items():
        v.metric(key, value)
    # The driver is imported only here: a terminal without a modem never loads it.
    from posdiag.drivers.modem import AtCommandError, Modem
    from posdiag.drivers.transport import open_port

    try:
        with open_port(where.port, baudrate=cfg.baudrate, timeout_s=POLL_S,
                       write_timeout_s=cfg.command_timeout_s,
                       proc_root=str(ctx.roots.procfs)) as port:
            probe = Modem(port, device=where.port, timeout_s=cfg.command_timeout_s,
                          sim_timeout_s=cfg.sim_timeout_s).probe()
    except AtCommandError as err:
        _command_error(v, err)
        return v.result("")
    except DriverError as err:
        add_driver_error(v, err, WHAT, CONNECTION_HINT)
        return v.result("")
    _metrics(v, probe, cfg)
    _findings(v, probe, cfg)
    return v.result(_ok_summary(probe))


# A silent modem costs 2 × command_timeout_s (the first AT after idle may be lost); a healthy
# one with a slow SIM up to sim_timeout_s (10 s) plus a dozen quick commands.
SPEC = CheckSpec("cellular", run, CellularConfig, timeout_s=20.0)
