"""Debian version numbers and their ordering (Debian Policy §5.6.12).

``[epoch:]upstream_version[-debian_revision]``: the epoch is compared as a number, then the
upstream version and the revision, each by the same algorithm. A part is split into alternating
runs of non-digits and digits: non-digit runs compare character by character, where ``~`` sorts
before everything (even the end of the part), then the end of the part, then letters, then all
other characters; digit runs compare as numbers. A missing revision equals a revision of ``0``.

Parsing follows the current Policy strictly (dpkg itself only warns about some of these), so a
typo in a configured baseline is caught instead of silently ordering somewhere odd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

# dpkg stores the epoch in an int and rejects larger ones.
MAX_EPOCH = 2**31 - 1

_UPSTREAM_CHARS = re.compile(r"[A-Za-z0-9.+~-]*")
_REVISION_CHARS = re.compile(r"[A-Za-z0-9.+~]*")
_RUN = re.compile(r"([^0-9]*)([0-9]*)")


def _weight(c: str) -> int:
    if c == "~":
        return -1
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256  # every other character sorts after all letters


def _runs(part: str) -> list[tuple[str, int]]:
    """``"1.0~rc1"`` → ``[("", 1), (".", 0), ("~rc", 1)]``, without trailing ``("", 0)`` runs."""
    runs = [(m.group(1), int(m.group(2) or 0)) for m in _RUN.finditer(part)
            if m.group(0)]
    while runs and runs[-1] == ("", 0):
        runs.pop()
    return runs


def _compare_text(a: str, b: str) -> int:
    for i in range(max(len(a), len(b))):
        # The end of a run weighs 0: above "~", below letters and everything else.
        wa = _weight(a[i]) if i < len(a) else 0
        wb = _weight(b[i]) if i < len(b) else 0
        if wa != wb:
            return -1 if wa < wb else 1
    return 0


def compare_part(a: str, b: str) -> int:
    """Order two upstream versions or two revisions by the Policy algorithm: -1, 0 or 1.

    Also orders strings that are no Debian version at all but follow the same conventions,
    such as a kernel release (``6.1.0-18-amd64``) taken as a whole.
    """
    ra, rb = _runs(a), _runs(b)
    for i in range(max(len(ra), len(rb))):
        text_a, num_a = ra[i] if i < len(ra) else ("", 0)
        text_b, num_b = rb[i] if i < len(rb) else ("", 0)
        c = _compare_text(text_a, text_b)
        if c:
            return c
        if num_a != num_b:
            return -1 if num_a < num_b else 1
    return 0


def _problem(epoch: int, upstream: str, revision: str | None) -> str | None:
    """What makes these parts invalid, or None. ``revision`` None: the text had no hyphen."""
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        return f"epoch must be an integer, not {type(epoch).__name__}"
    if epoch < 0:
        return "epoch must not be negative"
    if epoch > MAX_EPOCH:
        return f"epoch is larger than {MAX_EPOCH}"
    if not upstream:
        return "upstream version is empty"
    if not upstream[0].isascii() or not upstream[0].isdigit():
        return "upstream version must start with a digit"
    if not _UPSTREAM_CHARS.fullmatch(upstream):
        bad = next(c for c in upstream if not _UPSTREAM_CHARS.fullmatch(c))
        return f"upstream version contains {bad!r} (allowed: letters, digits and . + ~ -)"
    if revision is None:
        if "-" in upstream:
            return "upstream version may contain '-' only when there is a revision"
        return None
    if not revision:
        return "revision after the last '-' is empty"
    if not _REVISION_CHARS.fullmatch(revision):
        bad = next(c for c in revision if not _REVISION_CHARS.fullmatch(c))
        return f"revision contains {bad!r} (allowed: letters, digits and . + ~)"
    return None


@total_ordering
@dataclass(frozen=True, eq=False)
class DebianVersion:
    """A parsed Debian version. Equal versions compare equal and hash alike (``1.0 == 0:1.0-0``)."""

    epoch: int
    upstream: str
    revision: str = ""

    def __post_init__(self) -> None:
        problem = _problem(self.epoch, self.upstream, self.revision or None)
        if problem:
            raise ValueError(f"{str(self)!r} is not a valid Debian version: {problem}")

    @classmethod
    def parse(cls, text: str) -> DebianVersion:
        """Parse ``[epoch:]upstream[-revision]``; ValueError says what is wrong with ``text``."""
        if not isinstance(text, str):
            raise ValueError(f"a Debian version must be a string, not {type(text).__name__}")
        s = text.strip()
        problem: str | None = None
        epoch = 0
        if not s:
            problem = "it is empty"
        elif any(c.isspace() for c in s):
            problem = "it contains white space"
        else:
            epoch_text, colon, rest = s.partition(":")
            if not colon:
                epoch_text, rest = "", s
            elif not epoch_text:
                problem = "epoch before ':' is empty"
            elif not (epoch_text.isascii() and epoch_text.isdigit()):
                problem = f"epoch {epoch_text!r} is not a number"
            elif ":" in rest:
                problem = "upstream version contains ':'"
            if problem is None:
                if epoch_text:
                    epoch = int(epoch_text)
                upstream, hyphen, revision = rest.rpartition("-")
                if not hyphen:
                    upstream, revision = rest, ""
                problem = _problem(epoch, upstream, revision if hyphen else None)
        if problem:
            raise ValueError(f"{text!r} is not a valid Debian version: {problem}")
        return cls(epoch, upstream, revision)

    def __str__(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        revision = f"-{self.revision}" if self.revision else ""
        return f"{epoch}{self.upstream}{revision}"

    def compare(self, other: DebianVersion) -> int:
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return compare_part(self.upstream, other.upstream) or compare_part(
            self.revision, other.revision)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DebianVersion):
            return NotImplemented
        return self.compare(other) == 0

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, DebianVersion):
            return NotImplemented
        return self.compare(other) < 0

    def __hash__(self) -> int:
        # Runs without trailing ("", 0) are the same for every spelling of an equal version.
        return hash((self.epoch, tuple(_runs(self.upstream)), tuple(_runs(self.revision))))


def compare(a: str | DebianVersion, b: str | DebianVersion) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``; strings are parsed first."""
    va = a if isinstance(a, DebianVersion) else DebianVersion.parse(a)
    vb = b if isinstance(b, DebianVersion) else DebianVersion.parse(b)
    return va.compare(vb)
