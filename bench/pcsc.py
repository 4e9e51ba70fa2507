"""Chip reader benchmark: how long the chip_reader check takes through the runner with a real
pcscd and the vpcd virtual reader — healthy card, no card, pcscd down, mute card, and a card that
stops answering after its ATR — beside the bound each case may cost (DESIGN §5: a benchmark that
prints a table, not a timed assertion). Exit 1 when a median exceeds its bound.

Needs root, pcscd and vsmartcard-vpcd (``make bench`` installs the test packages). Starts
``pcscd -f`` if none answers, and stops it again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hardware-fixtures"))

from posdiag.checks import chip_reader  # noqa: E402
from posdiag.config import build  # noqa: E402
from posdiag.drivers.pcsc import PcscContext  # noqa: E402
from posdiag.paths import Roots  # noqa: E402
from posdiag.results import CheckResult  # noqa: E402
from posdiag.runner import run_checks  # noqa: E402
from simulators.vpcd_card import Personality, VpcdCard  # noqa: E402

READER = "Virtual PCD 00 00"
SOCKET = "/run/pcscd/pcscd.comm"
SLACK_S = 0.3  # thread start, scheduling on a loaded 2-core machine


def answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 35963), timeout=0.2):
            pass
        s = socket.socket(socket.AF_UNIX)
        s.connect(SOCKET)
        s.close()
        return True
    except OSError:
        return False


def wait_present(present: bool) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with PcscContext() as pc:
            st = pc.states((READER,)).get(READER)
        if st is not None and st.present == present:
            return
        time.sleep(0.05)
    raise SystemExit(f"pcscd did not see the card {'in' if present else 'out'}")


def once(table: dict[str, object]) -> tuple[float, CheckResult]:
    cfg = build({"checks": {"chip_reader": table}}, {"chip_reader": chip_reader.ChipReaderConfig})
    started = time.monotonic()
    (r,) = run_checks([chip_reader.SPEC], cfg, Roots(Path("/sys"), Path("/proc"), Path("/")),
                      only=["chip_reader"])
    return time.monotonic() - started, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    started = None
    if not answers():
        if shutil.which("pcscd") is None:
            print("pcscd is not installed: run `make debs`", file=sys.stderr)
            return 1
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)
        started = subprocess.Popen(["pcscd", "-f"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        for _ in range(200):
            if answers():
                break
            time.sleep(0.05)
    base = {"readers": [READER], "required": True}
    apdu = chip_reader.ChipReaderConfig().apdu_timeout_s
    spec_timeout = chip_reader.SPEC.timeout_s
    tmp = tempfile.mkdtemp()
    cases = [
        ("healthy reader, UnionPay card", "unionpay-debit", {}, spec_timeout,
         f"check timeout {spec_timeout:g} s"),
        ("healthy reader, no card", None, {}, 1.0, "1 PC/SC call bound (1 s)"),
        ("pcscd socket gone", None, {"socket": f"{tmp}/gone.comm"}, 0.5,
         "socket probe 0.5 s"),
        ("mute card", "mute-card", {}, 1.0, "1 PC/SC call bound (1 s); no APDU"),
        ("card silent after ATR", "silent-after-atr", {}, apdu + 1.0,
         f"APDU timeout {apdu:g} s + connect"),
    ]
    rows = [("case", "reason", "median ms", "max ms", "bound")]
    missed = False
    try:
        for label, card_name, extra, bound, bound_text in cases:
            times = []
            reason = ""
            for _ in range(args.runs):
                card = None
                if card_name:
                    card = VpcdCard(Personality.load(card_name))
                    card.insert()
                    wait_present(True)
                try:
                    took, r = once(base | extra)
                finally:
                    if card is not None:
                        card.remove()
                        wait_present(False)
                times.append(took)
                reason = r.reason
            med = statistics.median(times)
            missed |= med > bound + SLACK_S
            rows.append((label, reason, f"{med * 1000:.0f}", f"{max(times) * 1000:.0f}",
                         f"{bound_text}{'  MISSED' if med > bound + SLACK_S else ''}"))
    finally:
        if started is not None:
            started.terminate()
            started.wait(5)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    print(f"({args.runs} runs each through the runner, real pcscd + vpcd)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
