"""Shared test set-up: make the hardware fixtures importable and expose fixture paths."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "hardware-fixtures"
sys.path.insert(0, str(FIXTURES))


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
