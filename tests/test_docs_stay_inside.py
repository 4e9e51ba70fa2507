"""The project's documents stand alone: every link and path they name is inside the repository.

As found: the README sent readers to ../shared/DESIGN.md, which a clone does not have.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATTERNS = ("README.md", "docs/*", "systemd/README.md", "hardware-fixtures/**/README*.md",
            "hardware-fixtures/README*.md")
# Names of documents that live only outside the repository (the design notes and references
# the project was written from): naming one sends the reader somewhere a clone does not have.
OUTSIDE_NAMES = re.compile(r"\bDESIGN(\.md| §)|\b(protocols|troubleshooting|pcsc|transactions)"
                           r"\.md\b|shared/reference|/work/")
LINK = re.compile(r"\]\(([^)\s]+)\)")
RELATIVE = re.compile(r"(?<![\w.:/])((?:\.\./)+[\w./-]*)")
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def tracked_docs() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--", *PATTERNS], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return sorted({REPO / p for p in out})


def problems(doc: Path, text: str) -> list[str]:
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in OUTSIDE_NAMES.finditer(line):
            found.append(f"{n}: names {m.group(0)!r}, which is outside the repository")
        targets = [t for t in LINK.findall(line) if not URL.match(t) and not t.startswith("#")]
        for target in targets + RELATIVE.findall(line):
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.is_relative_to(REPO):
                found.append(f"{n}: {target} is outside the repository")
            elif target in targets and not path.exists():
                found.append(f"{n}: {target} does not exist")
    return found


def test_the_documents_are_found():
    names = {p.relative_to(REPO).as_posix() for p in tracked_docs()}
    assert {"README.md", "docs/architecture.md", "docs/cli.md", "systemd/README.md"} <= names
    assert any(n.startswith("hardware-fixtures/simulators/README") for n in names)


@pytest.mark.parametrize("doc", tracked_docs(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_and_path_stays_inside(doc):
    assert problems(doc, doc.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("line, says", [
    ("Design and contracts: `../shared/DESIGN.md`.", "outside the repository"),
    ("see [the notes](../../notes/x.md)", "outside the repository"),
    ("see [cli](cli.md#exit-codes)", None),
    ("see [gone](no-such-file.md)", "does not exist"),
    ("facts from `shared/reference/protocols.md` §4", "outside the repository"),
    ("as DESIGN §7 says", "outside the repository"),
    ("[up](https://example.org/../x)", None),
])
def test_the_check_itself(line, says):
    found = problems(REPO / "docs" / "x.md", line)
    assert (found == []) if says is None else any(says in f for f in found), found
