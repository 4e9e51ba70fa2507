"""The technician's view: live progress lines, then a summary table, in colour when it helps."""

from __future__ import annotations

import os
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from typing import TextIO

from posdiag.i18n import Texts
from posdiag.results import CheckResult, Status
from posdiag.summary import in_language, localized

_COLOUR = {Status.OK: "32", Status.WARN: "33", Status.FAIL: "31;1", Status.UNKNOWN: "35",
           Status.SKIPPED: "2"}
_MARK = {Status.OK: "✔", Status.WARN: "▲", Status.FAIL: "✖", Status.UNKNOWN: "?",
         Status.SKIPPED: "–"}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR", "") != "":
        return False
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"


def width(text: str) -> int:
    """Columns on a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, cols: int) -> str:
    return text + " " * max(0, cols - width(text))


def clip(text: str, cols: int) -> str:
    if width(text) <= cols:
        return text
    out = ""
    for c in text:
        if width(out + c) > cols - 1:
            break
        out += c
    return out + "…"


class Renderer:
    def __init__(self, texts: Texts, stream: TextIO | None = None,
                 colour: bool | None = None, name_width: int = 14) -> None:
        self.t = texts
        self.out = stream or sys.stdout
        self.colour = use_colour(self.out) if colour is None else colour
        self.name_width = name_width
        self.live = hasattr(self.out, "isatty") and self.out.isatty()
        # On a terminal the table fits the window; in a log nothing is cut off.
        self.cols = max(60, shutil.get_terminal_size((100, 24)).columns) if self.live else 0

    def _paint(self, status: Status, text: str) -> str:
        return f"\033[{_COLOUR[status]}m{text}\033[0m" if self.colour else text

    def _status(self, status: Status) -> str:
        label = pad(self.t.status(str(status)), 8)
        return self._paint(status, label)

    def header(self, terminal_id: str) -> None:
        print(f"{self.t.ui('selftest_title')} — {self.t.ui('terminal')} {terminal_id}",
              file=self.out)

    def progress(self, r: CheckResult) -> None:
        """One line as each check completes (terminals only; logs get the table alone)."""
        if not self.live:
            return
        mark = self._paint(r.status, _MARK[r.status])
        room = max(20, self.cols - self.name_width - 24)
        line = (f" {mark} {pad(r.name, self.name_width)} {self._status(r.status)} "
                f"{clip(self.details(r), room)}  ({r.duration_ms:.0f} ms)")
        print(line, file=self.out, flush=True)

    def details(self, r: CheckResult) -> str:
        """The summary carries the measured values (English); other languages lead with the
        localised title of the reason so the technician reads the problem in their language."""
        if r.status is Status.OK:
            return localized(r.summary, self.t)
        return in_language(r.summary, r.reason, self.t)

    def table(self, results: Sequence[CheckResult], overall: Status) -> None:
        t = self.t
        cols = (self.name_width, 8, 20)
        rule = "─" * (self.cols or 78)
        room = self.cols - sum(cols) - 3 if self.cols else 0
        print(file=self.out)
        print(f"{pad(t.ui('check'), cols[0])} {pad(t.ui('status'), cols[1])} "
              f"{pad(t.ui('reason'), cols[2])} {t.ui('details')}", file=self.out)
        print(rule, file=self.out)
        for r in results:
            details = clip(self.details(r), room) if room > 0 else self.details(r)
            print(f"{pad(r.name, cols[0])} {self._status(r.status)} {pad(r.reason, cols[2])} "
                  f"{details}", file=self.out)
        hints = [(r, h) for r in results if r.status in (Status.WARN, Status.FAIL, Status.UNKNOWN)
                 for h in r.hints]
        print(rule, file=self.out)
        if hints:
            print(f"{t.ui('what_to_do')}:", file=self.out)
            seen: set[str] = set()
            n = 0
            for r, h in hints:
                if h in seen:
                    continue
                seen.add(h)
                n += 1
                print(f" {n}. [{r.name}] {t.hint(h)}", file=self.out)
        elif overall is Status.OK:
            print(t.ui("no_problems"), file=self.out)
        print(f"{t.ui('overall')}: {self._paint(overall, t.status(str(overall)))}", file=self.out)
