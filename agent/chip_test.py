"""The technician's chip test (``posdiag chip-test``): insert or tap a card, get a verdict per
step — card detected, answer to reset (ATR), protocol, application selection, brand.

Only SELECT goes to the card (PSE, PPSE, AIDs); no READ RECORD, so the PAN and the track-2
equivalent are never read, let alone shown. What comes out: the ATR, the protocol, AIDs, labels
and the brand. The same judgements as the chip_reader check (one place for each reason code).

Outcomes and exit codes: ``ok`` 0, ``problems`` 1 (the card is at fault: mute, bad ATR, blocked,
no answer to SELECT, no known application), ``no_card`` and ``reader_error`` 2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from posdiag.checks import chip_reader as cr
from posdiag.checks.base import CheckContext
from posdiag.checks.device import add_driver_error
from posdiag.config import Config
from posdiag.drivers.errors import DeviceBusy, DeviceTimeout, DriverError, NotSupported
from posdiag.i18n import Texts
from posdiag.paths import Roots
from posdiag.render import pad, width
from posdiag.results import CheckResult, Status, Verdict

SCHEMA_ID = "posdiag.chip_test/1"
Outcome = Literal["ok", "problems", "no_card", "reader_error"]
EXIT_CODES: dict[Outcome, int] = {"ok": 0, "problems": 1, "no_card": 2, "reader_error": 2}
STEPS = ("card", "atr", "protocol", "selection", "brand")
POLL_S = 0.1
UI_KEYS: tuple[str, ...] = (
    "chip_title", "chip_reader", "chip_prompt", "chip_none", "chip_reader_error", "chip_result",
    "chip_all_ok", "chip_with_problems", "chip_ok", "chip_bad", "chip_not_run",
    *(f"chip_step_{s}" for s in STEPS),
)


@dataclass(frozen=True)
class Step:
    name: str
    status: Status  # ok, warn, fail, skipped (not reached)
    detail: str
    reason: str = "ok"
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChipOutcome:
    outcome: Outcome
    timeout_s: float
    reader: str | None = None
    steps: tuple[Step, ...] = ()
    atr: str | None = None
    protocol: str | None = None
    applications: tuple[dict[str, Any], ...] = ()
    brand: str | None = None
    wait_s: float | None = None
    failure: CheckResult | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def read_chip(config: Config, roots: Roots, *, timeout_s: float, reader: str | None = None,
              on_ready: Callable[[str], None] = lambda reader: None) -> ChipOutcome:
    cfg: cr.ChipReaderConfig = config.check("chip_reader")  # type: ignore[assignment]
    cfg = replace(cfg, required=True, readers=(reader,) if reader else cfg.readers)
    ctx = CheckContext("chip_reader", roots, config, deadline=time.monotonic() + timeout_s + 10)
    try:
        from posdiag.drivers.pcsc import PcscContext, service_state
        from posdiag.drivers.pcsc.session import _lib, use_socket
        _lib()
    except (ImportError, NotSupported) as e:
        v = Verdict("chip_reader")
        v.unknown("not_supported", f"PC/SC support is not installed in posdiag ({e})")
        return ChipOutcome("reader_error", timeout_s, failure=v.result(""))
    state = service_state(rootfs=roots.rootfs, procfs=roots.procfs, socket_path=cfg.socket)
    if state.problem is not None:
        failure = cr._service_down(ctx, cfg, Verdict("chip_reader"), state, ())
        return ChipOutcome("reader_error", timeout_s, failure=failure)
    if cfg.socket != "/run/pcscd/pcscd.comm":
        use_socket(cfg.socket)
    v = Verdict("chip_reader")
    try:
        with PcscContext(timeout_s=2.0) as pc:
            names = [n for n in pc.readers() if not cfg.readers
                     or any(cr.fnmatch.fnmatch(n, p) for p in cfg.readers)]
            if not names:
                v.fail("no_device", "no chip reader found" + (
                    f" matching {', '.join(cfg.readers)}" if cfg.readers else ""),
                    cr.HINT_CONNECTION)
                return ChipOutcome("reader_error", timeout_s, failure=v.result(""))
            on_ready(names[0] if len(names) == 1 else "; ".join(names))
            started = time.monotonic()
            st = None
            while time.monotonic() - started < timeout_s:
                states = pc.states(tuple(names[:cfg.max_readers]))
                st = next((s for s in states.values() if s.present), None)
                if st is not None:
                    break
                time.sleep(POLL_S)
            waited = time.monotonic() - started
            if st is None:
                return ChipOutcome("no_card", timeout_s, names[0], wait_s=waited)
            if st.exclusive or st.in_use:
                v.warn("reader_in_use", f"reader {st.name} is in use by {cr._holder()}; "
                       "the test does not interrupt it", "chip_reader.wait_for_app")
                return ChipOutcome("reader_error", timeout_s, st.name, wait_s=waited,
                                   failure=v.result(""))
            # A card has only just arrived: give pcscd a moment to power it and read its ATR.
            time.sleep(0.3)
            st = pc.states((st.name,))[st.name]
            return _card(pc, cfg, st, timeout_s, waited)
    except DriverError as err:
        add_driver_error(v, err, cr.WHAT, cr.HINT_CONNECTION)
        return ChipOutcome("reader_error", timeout_s, failure=v.result(""))


def _step(name: str, v: Verdict, ok_detail: str) -> Step:
    r = v.result(ok_detail)
    return Step(name, r.status, r.summary, r.reason, r.hints)


def _card(pc: Any, cfg: cr.ChipReaderConfig, st: Any, timeout_s: float,
          waited: float) -> ChipOutcome:
    steps = [Step("card", Status.OK, f"card detected in {st.name}")]
    seen = cr._Seen(st.name, card_present=True)

    def done(outcome: Outcome, **kw: Any) -> ChipOutcome:
        reached = {s.name for s in steps}
        rest = [Step(n, Status.SKIPPED, "") for n in STEPS if n not in reached]
        sel = seen.selection
        apps = tuple({"aid": a.aid, "label": a.label, "priority": a.priority,
                      "brand": a.brand.name if a.brand else None, "source": a.source,
                      "blocked": a.blocked} for a in (sel.applications if sel else ()))
        return ChipOutcome(outcome, timeout_s, st.name, (*steps, *rest),
                           seen.atr.hex if seen.atr else None, seen.protocol, apps,
                           sel.brand.name if sel and sel.brand else None, waited, **kw)

    v = Verdict("chip_reader")
    if st.mute or not st.atr or st.atr[0] not in (0x3B, 0x3F):
        v.fail("card_mute", "the card gives no answer to reset (no ATR)",
               "chip_reader.card_faulty", "chip_reader.clean_contacts")
        steps.append(_step("atr", v, ""))
        return done("problems")
    cr._judge_atr(v, st.name, st.atr, seen)
    atr = seen.atr
    detail = (f"{atr.hex} ({atr.convention} convention, "
              f"{', '.join(f'T={t}' for t in atr.protocols)}, "
              f"TCK {'ok' if atr.tck_ok else 'not needed' if atr.tck_ok is None else 'wrong'})"
              if atr else "")
    steps.append(_step("atr", v, detail))
    if v.findings:
        return done("problems")
    v = Verdict("chip_reader")
    try:
        with pc.connect(st.name, apdu_timeout_s=cfg.apdu_timeout_s) as card:
            seen.protocol = card.protocol
            steps.append(Step("protocol", Status.OK, card.protocol))
            card.begin()
            from posdiag.drivers.pcsc import select_applications

            seen.selection = sel = select_applications(card)
    except DeviceBusy:
        v.warn("reader_in_use", f"reader {st.name} is in use by {cr._holder()}",
               "chip_reader.wait_for_app")
        return done("reader_error", failure=v.result(""))
    except (DeviceTimeout, NotSupported) as e:
        v.fail("card_not_answering", f"the card answered the reset but not the application "
               f"selection ({e.message})", "chip_reader.card_faulty")
        steps.append(_step("selection", v, ""))
        return done("problems")
    except DriverError as e:
        add_driver_error(v, e, cr.WHAT, cr.HINT_CONNECTION)
        name = "protocol" if seen.protocol is None else "selection"
        steps.append(_step(name, v, ""))
        return done("problems" if name == "selection" else "reader_error")
    cr._judge_selection(v, st.name, sel)
    listed = ", ".join(f"{a.aid}{' ' + a.label if a.label else ''}" for a in sel.applications)
    steps.append(_step("selection", v, f"PSE {sel.pse}, PPSE {sel.ppse}; {listed}"))
    if v.findings:
        return done("problems")
    b = Verdict("chip_reader")
    if sel.brand is None:
        b.warn("card_no_application", "the application's brand is not in the brand table",
               "chip_reader.card_faulty")
    steps.append(_step("brand", b, sel.brand.name if sel.brand else ""))
    return done("problems" if b.findings else "ok")


# -- JSON -------------------------------------------------------------------------------------

def document(result: ChipOutcome, terminal_id: str) -> dict[str, Any]:
    f = result.failure
    return {
        "schema": SCHEMA_ID,
        "terminal_id": terminal_id,
        "outcome": result.outcome,
        "reader": result.reader,
        "timeout_s": result.timeout_s,
        "wait_s": round(result.wait_s, 3) if result.wait_s is not None else None,
        "steps": [{"step": s.name, "status": str(s.status), "reason": s.reason,
                   "detail": s.detail, "hints": list(s.hints)} for s in result.steps],
        "atr": result.atr,
        "protocol": result.protocol,
        "applications": list(result.applications),
        "brand": result.brand,
        "reason": f.reason if f else None,
        "summary": f.summary if f else None,
        "hints": list(f.hints) if f else [],
    }


# -- text -------------------------------------------------------------------------------------

def prompt(t: Texts, timeout_s: float) -> str:
    return t.ui("chip_prompt").format(seconds=f"{timeout_s:g}")


def render_text(result: ChipOutcome, t: Texts) -> str:
    lines = [f"{t.ui('chip_title')} — {t.ui('chip_reader')} {result.reader or '?'}"]
    if result.failure is not None:
        f = result.failure
        detail = f.summary if t.lang == "en" else f"{t.reason(f.reason)}：{f.summary}"
        lines.append(f"{t.ui('chip_reader_error')}: {detail}")
        lines += _hints(t, f.hints)
        return "\n".join(lines)
    if result.outcome == "no_card":
        lines.append(t.ui("chip_none").format(seconds=f"{result.timeout_s:g}"))
        return "\n".join(lines)
    labels = [t.ui(f"chip_step_{s.name}") for s in result.steps]
    w = max(map(width, labels)) + 2
    hints: list[str] = []
    for label, s in zip(labels, result.steps, strict=True):
        if s.status is Status.SKIPPED:
            lines.append(f"{pad(label, w)}{t.ui('chip_not_run')}")
            continue
        mark = t.ui("chip_ok") if s.status is Status.OK else t.ui("chip_bad")
        text = s.detail if s.status is Status.OK or t.lang == "en" else (
            f"{t.reason(s.reason)}：{s.detail}")
        lines.append(f"{pad(label, w)}{mark}  {text}".rstrip())
        hints += s.hints
    verdict = t.ui("chip_all_ok") if result.outcome == "ok" else t.ui("chip_with_problems")
    lines.append(f"{t.ui('chip_result')}: {verdict}")
    lines += _hints(t, tuple(dict.fromkeys(hints)))
    return "\n".join(lines)


def _hints(t: Texts, hints: tuple[str, ...]) -> list[str]:
    if not hints:
        return []
    return [f"{t.ui('what_to_do')}:", *(f" {n}. {t.hint(h)}" for n, h in enumerate(hints, 1))]
