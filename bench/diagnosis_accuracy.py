"""Diagnosis accuracy on the scenario suite: top-1 accuracy and false alarms, per symptom.

Runs every case of ``tests/scenarios`` (a scenario folder × a symptom it lists) on its own
simulated terminal, exactly as the test suite does, and prints a table. Target (issue #6):
100 % top-1 accuracy, 0 false alarms.

- top-1: the most likely cause is the expected one (or "no fault found" when that is expected);
- false alarm: a cause reported where "no fault found" is expected (the healthy terminals, and
  faults that do not explain the complaint);
- missed: "no fault found" where a cause is expected; wrong: another cause ranked first.

Scenarios that need root (nftables black hole, private network namespace) are left out without
root, and the table says so. Exit code 0 when the target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO / "tests", REPO / "tests" / "scenarios", REPO / "hardware-fixtures"):
    sys.path.insert(0, str(extra))

from scenario_terminal import NO_FAULT, Outcome, load_all, make_pki, run_cases  # noqa: E402

from posdiag.diagnosis import load_catalogue  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8, help="cases run at once (default 8)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every case")
    args = ap.parse_args()

    scenarios = load_all()
    root = os.geteuid() == 0
    left_out = [s.name for s in scenarios if s.root and not root]
    cases = [(s, sym) for s in scenarios if root or not s.root for sym in s.expect]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="posdiag-accuracy-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        futures = run_cases(cases, pki, Path(tmp) / "cases", workers=args.workers)
        outcomes: list[Outcome] = []
        errors: list[str] = []
        for (name, symptom), future in futures.items():
            try:
                outcomes.append(future.result())
            except Exception as e:  # a broken case is reported, not a crash of the bench
                errors.append(f"{name}:{symptom}: {type(e).__name__}: {e}")
    wall = time.monotonic() - started

    rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for o in outcomes:
        row = rows[o.symptom]
        row["cases"] += 1
        row["top1"] += o.top == o.expected
        if o.expected == NO_FAULT:
            row["no_fault_cases"] += 1
            row["false_alarms"] += o.top != NO_FAULT
        elif o.top == NO_FAULT:
            row["missed"] += 1
        elif o.top != o.expected:
            row["wrong"] += 1

    header = (f"{'symptom':<26}{'cases':>6}{'top-1':>7}{'accuracy':>10}{'no-fault':>10}"
              f"{'false alarms':>14}{'missed':>8}{'wrong':>7}")
    print(f"posdiag diagnosis accuracy — {len(outcomes)} cases from "
          f"{len(scenarios) - len(left_out)} scenarios, {args.workers} at a time, {wall:.1f} s")
    print()
    print(header)
    print("─" * len(header))
    total: dict[str, int] = defaultdict(int)
    for symptom in load_catalogue().symptoms:
        row = rows.get(symptom, defaultdict(int))
        for key, value in row.items():
            total[key] += value
        print(_line(symptom, row))
    print("─" * len(header))
    print(_line("all", total))
    if left_out:
        print(f"\nnot measured (need root): {', '.join(left_out)}")
    if errors:
        print("\ncases that could not run:")
        for e in errors:
            print(f"  {e}")
    wrong = [o for o in outcomes if o.top != o.expected]
    if wrong or args.verbose:
        print()
        for o in sorted(outcomes if args.verbose else wrong,
                        key=lambda o: (o.scenario.name, o.symptom)):
            mark = "ok " if o.top == o.expected else "BAD"
            score = o.diagnosis.most_likely.score if o.diagnosis.most_likely else 0.0
            print(f"  {mark} {o.scenario.name}:{o.symptom}: expected {o.expected}, "
                  f"got {o.top} ({score:.2f}) in {o.seconds:.2f} s")
    met = not errors and not wrong
    print(f"\ntarget 100 % top-1 and 0 false alarms: {'met' if met else 'NOT met'}")
    return 0 if met else 1


def _line(label: str, row: dict[str, int]) -> str:
    cases = row["cases"]
    accuracy = f"{100 * row['top1'] / cases:.1f} %" if cases else "—"
    return (f"{label:<26}{cases:>6}{row['top1']:>7}{accuracy:>10}{row['no_fault_cases']:>10}"
            f"{row['false_alarms']:>14}{row['missed']:>8}{row['wrong']:>7}")


if __name__ == "__main__":
    sys.exit(main())
