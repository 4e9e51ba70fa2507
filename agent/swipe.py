"""The technician's swipe test (``posdiag swipe-test``): wait for one swipe on the card reader
and say, per track, whether it was read correctly.

Only verdicts come out of the driver (``SwipeResult``): present, structure, LRC, Luhn, expiry,
length and the masked card number (BIN + last four). Nothing here ever sees the raw tracks or the
full card number, so nothing here can print, log or store them (DESIGN §6).

Outcomes and exit codes: ``ok`` 0 (every track read is sound), ``problems`` 1 (a swipe came but
a track is malformed, fails its LRC or Luhn check, the card is expired, or tracks 1 and 2
disagree), ``no_swipe`` and ``reader_error`` 2.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from posdiag.checks.base import CheckContext
from posdiag.checks.card_reader import HINT_CONNECTION, WHAT, CardReaderConfig
from posdiag.checks.device import POLL_S, Located, add_driver_error, locate
from posdiag.config import Config
from posdiag.drivers.errors import DriverError
from posdiag.drivers.msr import (
    ExpiryState,
    IdTechMsr,
    SwipeResult,
    TrackProblem,
    TrackVerdict,
)
from posdiag.drivers.msr.idtech import WRITE_TIMEOUT_S
from posdiag.i18n import Texts
from posdiag.paths import Roots
from posdiag.render import pad, width
from posdiag.results import CheckResult, Verdict
from posdiag.summary import in_language

SCHEMA_ID = "posdiag.swipe_test/1"
Outcome = Literal["ok", "problems", "no_swipe", "reader_error"]
EXIT_CODES: dict[Outcome, int] = {"ok": 0, "problems": 1, "no_swipe": 2, "reader_error": 2}
_BAD_EXPIRY = {ExpiryState.EXPIRED: "expired", ExpiryState.INVALID: "expiry_invalid"}
# Every [ui] text this module shows (some keys are composed at run time).
UI_KEYS: tuple[str, ...] = (
    "swipe_title", "swipe_reader", "swipe_reader_unknown", "swipe_firmware", "swipe_prompt",
    "swipe_none",
    "swipe_reader_error", "swipe_track", "swipe_present", "swipe_structure", "swipe_lrc",
    "swipe_luhn", "swipe_expiry", "swipe_length", "swipe_yes", "swipe_no", "swipe_ok",
    "swipe_bad", *(f"swipe_expiry_{e}" for e in ExpiryState),
    *(f"swipe_problem_{p}" for p in TrackProblem), "swipe_lrc_not_sent",
    "swipe_card_number", "swipe_read_at", "swipe_after", "swipe_noise", "swipe_result",
    "swipe_all_ok", "swipe_with_problems", "swipe_no_track", "swipe_tracks_disagree",
)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwipeOutcome:
    """What one swipe test found. ``failure`` explains ``reader_error`` (reason, summary, hints)."""

    outcome: Outcome
    timeout_s: float
    port: str | None = None
    firmware: str | None = None
    swipe: SwipeResult | None = None
    wait_s: float | None = None
    failure: CheckResult | None = None
    transport: Literal["serial", "hid"] = "serial"
    keyboard_layout: str | None = None  # HID readers: the layout the key presses were typed in

    def __post_init__(self) -> None:
        if (self.swipe is not None) != (self.outcome in ("ok", "problems")):
            raise ValueError("a swipe result goes with the ok and problems outcomes only")
        if (self.failure is not None) != (self.outcome == "reader_error"):
            raise ValueError("a failure goes with the reader_error outcome only")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def problems(self) -> tuple[str, ...]:
        return swipe_problems(self.swipe) if self.swipe is not None else ()


def track_problems(t: TrackVerdict) -> tuple[str, ...]:
    """``structure``, ``lrc``, ``luhn``, ``expired``, ``expiry_invalid`` for one present track."""
    if not t.present:
        return ()
    found = []
    if not t.structure_ok:
        found.append("structure")
    if t.lrc_ok is False:
        found.append("lrc")
    if t.luhn_ok is False:
        found.append("luhn")
    if t.expiry in _BAD_EXPIRY:
        found.append(_BAD_EXPIRY[t.expiry])
    return tuple(found)


def swipe_problems(swipe: SwipeResult) -> tuple[str, ...]:
    """Stable codes: ``track2_lrc``, ``track1_structure``, …, ``no_track``, ``tracks_disagree``."""
    if not any(t.present for t in swipe.tracks):
        return ("no_track",)
    found = [f"track{t.track}_{p}" for t in swipe.tracks for p in track_problems(t)]
    if swipe.tracks_agree is False:
        found.append("tracks_disagree")
    return tuple(found)


# -- the session ------------------------------------------------------------------------------

def read_swipe(config: Config, roots: Roots, *, timeout_s: float, port: str | None = None,
               on_ready: Callable[[str], None] = lambda port: None) -> SwipeOutcome:
    """Find and probe the reader, call ``on_ready(port)``, then wait up to ``timeout_s``.

    A serial reader is used when one is pinned or found; else a keyboard-mode (HID) reader.
    An input node given as ``port`` (``/dev/input/…``) means the HID reader there.
    """
    from posdiag import swipe_hid

    cfg: CardReaderConfig = config.check("card_reader")  # type: ignore[assignment]
    # A technician asking for a swipe test wants a reader: not finding one is a failure.
    cfg = replace(cfg, required=True, port=port or cfg.port)
    if swipe_hid.is_input_node(cfg.port):
        return swipe_hid.read_swipe(config, timeout_s=timeout_s, port=cfg.port,
                                    on_ready=on_ready)
    ctx = CheckContext("card_reader", roots, config)
    where = locate(ctx, cfg, "card_reader", WHAT, HINT_CONNECTION)
    if isinstance(where, CheckResult):
        if not cfg.port and swipe_hid.reader_configured_or_present(config):
            return swipe_hid.read_swipe(config, timeout_s=timeout_s, on_ready=on_ready)
        return SwipeOutcome("reader_error", timeout_s, failure=where)
    return _read_serial(cfg, roots, where.port, timeout_s, on_ready)


def _read_serial(cfg: CardReaderConfig, roots: Roots, port: str, timeout_s: float,
                 on_ready: Callable[[str], None]) -> SwipeOutcome:
    from posdiag.drivers.transport import open_port

    where = Located(port)
    firmware: str | None = None
    v = Verdict("card_reader")
    try:
        serial_port = open_port(where.port, baudrate=cfg.baudrate, timeout_s=POLL_S,
                                write_timeout_s=WRITE_TIMEOUT_S, proc_root=str(roots.procfs))
        with serial_port, serial_port.redact():
            reader = IdTechMsr(serial_port, device=where.port,
                               reply_timeout_s=cfg.reply_timeout_s)
            probe = reader.probe()
            firmware = _firmware_label(probe.firmware.version if probe.firmware else None)
            log.debug("card reader on %s: reading enabled %s, output format %s, firmware %s",
                      where.port, probe.reading_enabled, probe.settings.output_format, firmware)
            if probe.reading_enabled is False:
                v.fail("msr_disabled", f"card reading is switched off in the reader's settings "
                       f"on {where.port}: no swipe can be read", "card_reader.enable_reading")
                return SwipeOutcome("reader_error", timeout_s, where.port, firmware,
                                    failure=v.result(""))
            on_ready(where.port)
            started = time.monotonic()
            swipe = reader.wait_for_swipe(timeout_s)
            waited = time.monotonic() - started
    except DriverError as err:
        add_driver_error(v, err, WHAT, HINT_CONNECTION)
        log.debug("card reader failed: %s", err)
        return SwipeOutcome("reader_error", timeout_s, where.port, firmware, failure=v.result(""))
    if swipe is None:
        return SwipeOutcome("no_swipe", timeout_s, where.port, firmware, wait_s=waited)
    outcome: Outcome = "problems" if swipe_problems(swipe) else "ok"
    # Verdicts only: never the swipe's bytes or fields.
    log.debug("swipe after %.2f s: tracks present %s, problems %s", waited,
              [t.track for t in swipe.tracks if t.present], list(swipe_problems(swipe)))
    return SwipeOutcome(outcome, timeout_s, where.port, firmware, swipe, waited)


def _firmware_label(version: tuple[int, ...] | None) -> str | None:
    # Only the parsed number: the version text comes from a reply frame (see card_reader.py).
    return ".".join(map(str, version)) if version else None


# -- JSON -------------------------------------------------------------------------------------

def _track_doc(t: TrackVerdict) -> dict[str, Any]:
    return {"track": t.track, "present": t.present, "structure_ok": t.structure_ok,
            "lrc_ok": t.lrc_ok, "luhn_ok": t.luhn_ok, "expiry": str(t.expiry),
            "length": t.length, "problem": str(t.problem) if t.problem else None,
            "ok": not track_problems(t) if t.present else None}


def document(result: SwipeOutcome, terminal_id: str) -> dict[str, Any]:
    """The ``--json`` document (schema ``posdiag.swipe_test/1``): verdicts only, no card data."""
    s = result.swipe
    f = result.failure
    return {
        "schema": SCHEMA_ID,
        "terminal_id": terminal_id,
        "outcome": result.outcome,
        "port": result.port,
        "reader_firmware": result.firmware,
        "timeout_s": result.timeout_s,
        "wait_s": round(result.wait_s, 3) if result.wait_s is not None else None,
        "read_at": s.read_at.strftime("%Y-%m-%dT%H:%M:%SZ") if s else None,
        "masked_pan": s.masked_pan if s else None,
        "luhn_ok": s.luhn_ok if s else None,
        "expiry": str(s.expiry) if s else None,
        "tracks_agree": s.tracks_agree if s else None,
        "noise_bytes": s.noise_bytes if s else None,
        "tracks": [_track_doc(t) for t in s.tracks] if s else [],
        "problems": list(result.problems),
        "reason": f.reason if f else None,
        "summary": f.summary if f else None,
        "hints": list(f.hints) if f else [],
        "transport": result.transport,
        "keyboard_layout": result.keyboard_layout,
    }


# -- text -------------------------------------------------------------------------------------

def prompt(t: Texts, timeout_s: float) -> str:
    return t.ui("swipe_prompt").format(seconds=f"{timeout_s:g}")


def render_text(result: SwipeOutcome, t: Texts) -> str:
    """The technician's view, in the catalog's language. Verdicts only, no card data."""
    reader = result.port or t.ui("swipe_reader_unknown")
    if result.firmware:
        reader += f" ({t.ui('swipe_firmware')} {result.firmware})"
    lines = [f"{t.ui('swipe_title')} — {t.ui('swipe_reader')} {reader}"]
    if result.outcome == "reader_error" and result.failure is not None:
        f = result.failure
        detail = in_language(f.summary, f.reason, t)
        lines.append(f"{t.ui('swipe_reader_error')}: {detail}")
        # Every reader failure says what to do; the check's hints when it has some.
        hints = f.hints or ("card_reader.check_connection",)
        lines.append(f"{t.ui('what_to_do')}:")
        lines += [f" {n}. {t.hint(h)}" for n, h in enumerate(hints, 1)]
        return "\n".join(lines)
    if result.outcome == "no_swipe" or result.swipe is None:
        lines.append(t.ui("swipe_none").format(seconds=f"{result.timeout_s:g}"))
        return "\n".join(lines)
    lines += _track_table(result.swipe, t)
    lines += _card_lines(result, result.swipe, t)
    return "\n".join(lines)


def _mark(t: Texts, value: bool | None) -> str:
    return "–" if value is None else t.ui("swipe_ok") if value else t.ui("swipe_bad")


def _track_table(s: SwipeResult, t: Texts) -> list[str]:
    heads = [t.ui(k) for k in ("swipe_track", "swipe_present", "swipe_structure", "swipe_lrc",
                               "swipe_luhn", "swipe_expiry", "swipe_length")]
    rows = []
    for tr in s.tracks:
        if not tr.present:
            rows.append([str(tr.track), t.ui("swipe_no"), "", "", "", "", ""])
            continue
        structure = _mark(t, tr.structure_ok)
        if tr.problem is not None:
            structure += f" ({t.ui(f'swipe_problem_{tr.problem}')})"
        rows.append([str(tr.track), t.ui("swipe_yes"), structure, _mark(t, tr.lrc_ok),
                     _mark(t, tr.luhn_ok), t.ui(f"swipe_expiry_{tr.expiry}"), str(tr.length)])
    cols = [max(width(r[i]) for r in [heads, *rows]) + 2 for i in range(len(heads))]
    table = ["".join(pad(cell, cols[i]) for i, cell in enumerate(row)).rstrip()
             for row in [heads, *rows]]
    if any(tr.present and tr.lrc_ok is None for tr in s.tracks):
        table.append(t.ui("swipe_lrc_not_sent"))
    return table


def _card_lines(result: SwipeOutcome, s: SwipeResult, t: Texts) -> list[str]:
    labels = {k: t.ui(k) for k in ("swipe_card_number", "swipe_read_at", "swipe_result")}
    w = max(map(width, labels.values())) + 2
    after = t.ui("swipe_after").format(seconds=f"{result.wait_s or 0:.1f}")
    lines = [
        f"{pad(labels['swipe_card_number'], w)}{s.masked_pan or '–'}",
        f"{pad(labels['swipe_read_at'], w)}{s.read_at:%Y-%m-%d %H:%M:%S} UTC ({after})",
    ]
    if s.noise_bytes:
        lines.append(t.ui("swipe_noise").format(count=s.noise_bytes))
    if result.outcome == "ok":
        lines.append(f"{pad(labels['swipe_result'], w)}{t.ui('swipe_all_ok')}")
        return lines
    described = [_describe_problem(p, t) for p in result.problems]
    lines.append(f"{pad(labels['swipe_result'], w)}{t.ui('swipe_with_problems')}: "
                 f"{'; '.join(described)}")
    return lines


def _describe_problem(code: str, t: Texts) -> str:
    if code in ("no_track", "tracks_disagree"):
        return t.ui(f"swipe_{code}")
    track, _, what = code.partition("_")
    if what in ("structure", "lrc", "luhn"):
        verdict = f"{t.ui(f'swipe_{what}')} {t.ui('swipe_bad')}"
    elif what == "expiry_invalid":
        verdict = f"{t.ui('swipe_expiry')} {t.ui('swipe_expiry_invalid')}"
    else:
        verdict = t.ui("swipe_expiry_expired")
    return f"{t.ui('swipe_track')} {track.removeprefix('track')}: {verdict}"
