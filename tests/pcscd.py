"""A real pcscd with the vsmartcard-vpcd virtual reader, for the chip reader tests.

One pcscd per machine: the session fixture reuses one that already answers on its socket (with
vpcd listening), or starts ``pcscd -f`` and stops it by its pid at the end. A test that cannot
get pcscd fails loudly (never skips): the packages come with ``make test`` (TEST_DEBS).
The card fixture inserts a recorded card into reader ``Virtual PCD 00 00``, waits until pcscd
sees it, and removes it afterwards. vpcd has one card slot per machine, so a lock file keeps
two test runs (other worktrees) from inserting cards at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simulators.vpcd_card import VPCD_HOST, VPCD_PORT, Personality, VpcdCard

SOCKET = "/run/pcscd/pcscd.comm"
READER = "Virtual PCD 00 00"
LOCK = Path("/tmp/posdiag-vpcd.lock")


def _answers(timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((VPCD_HOST, VPCD_PORT), timeout=0.2) as probe:
                probe.close()
            s = socket.socket(socket.AF_UNIX)
            with contextlib.closing(s):
                s.connect(SOCKET)
            return True
        except OSError:
            time.sleep(0.05)
    return False


class PcscdUnavailable(RuntimeError):
    """pcscd or vpcd is not installed, or did not come up."""


@contextlib.contextmanager
def running_pcscd() -> Iterator[str]:
    """Reuse the pcscd that answers (with vpcd listening), or run ``pcscd -f`` meanwhile."""
    started: subprocess.Popen[bytes] | None = None
    if not _answers(0.3):
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not os.path.exists(binary) or not os.path.exists("/etc/reader.conf.d/vpcd"):
            raise PcscdUnavailable("pcscd and vsmartcard-vpcd are not installed: run `make debs`"
                                   " (TEST_DEBS lists them)")
        # A socket left by a pcscd that died would make the new one refuse to start.
        if os.path.exists(SOCKET) and not _answers(0.1):
            os.unlink(SOCKET)
        started = subprocess.Popen([binary, "-f"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if not _answers(10):
            started.kill()
            started.wait()
            raise PcscdUnavailable("pcscd -f did not come up with its socket and vpcd's port "
                                   "35963")
    try:
        yield SOCKET
    finally:
        if started is not None:
            started.terminate()
            try:
                started.wait(5)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait()


@pytest.fixture(scope="session")
def pcscd() -> Iterator[str]:
    """pcscd's socket path, with vpcd's reader listed; fails loudly without them."""
    try:
        with running_pcscd() as path:
            yield path
    except PcscdUnavailable as e:
        pytest.fail(str(e))


def reader_state(present: bool, timeout_s: float = 10.0) -> None:
    from posdiag.drivers.pcsc import PcscContext

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with PcscContext() as pc:
            st = pc.states((READER,)).get(READER)
        if st is not None and st.present == present:
            return
        time.sleep(0.05)
    raise PcscdUnavailable(f"pcscd did not see the card {'inserted' if present else 'removed'} "
                           f"in {timeout_s:g} s")


def _seen(present: bool) -> None:
    try:
        reader_state(present)
    except PcscdUnavailable as e:
        pytest.fail(str(e))


@pytest.fixture
def vpcd(pcscd: str) -> Iterator[Callable[[str], VpcdCard]]:
    """``vpcd("unionpay-debit")`` inserts that recorded card; it is removed after the test."""
    cards: list[VpcdCard] = []
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _seen(present=False)

        def insert(name: str) -> VpcdCard:
            card = VpcdCard(Personality.load(name))
            card.insert()
            cards.append(card)
            _seen(present=True)
            return card

        try:
            yield insert
        finally:
            for card in cards:
                card.remove()
            if cards:
                _seen(present=False)
