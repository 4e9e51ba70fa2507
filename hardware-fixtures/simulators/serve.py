"""Serve one recorded device on a pty until interrupted, for trying posdiag by hand:

  python -m simulators.serve pn532 --personality nxp-pn532-v1.6/tag-present
  python -m simulators.serve modem --personality quectel-ec25-EC25EFAR06A06M4G/urc-during-creg
  python -m simulators.serve msr --personality magtek-mt211-rs232-revB/track2-error --swipe-every 5

It prints the pty path (point ``port =`` of the check at it). ``--list`` names the recordings.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from simulators import idtech_msr, modem, pn532
from simulators.pty_device import PtyDevice

KINDS: dict[str, tuple[Callable[[], list[str]], Callable[[str], PtyDevice]]] = {
    "modem": (modem.personality_names, modem.RecordedModem),
    "msr": (idtech_msr.personality_names,
            lambda name: idtech_msr.IdTechMsrSimulator(personality=name)),
    "pn532": (pn532.personality_names, lambda name: pn532.Pn532Simulator(personality=name)),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.serve")
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--personality", metavar="NAME", help="<product>-<firmware>/<scenario>")
    ap.add_argument("--list", action="store_true", help="name the recordings of this kind")
    ap.add_argument("--swipe-every", type=float, default=0.0, metavar="S",
                    help="msr: send the recorded swipe every S seconds")
    ns = ap.parse_args(argv)
    names, make = KINDS[ns.kind]
    if ns.list or not ns.personality:
        print("\n".join(names()))
        return 0 if ns.list else 2
    if ns.personality not in names():
        print(f"no recorded {ns.kind} {ns.personality!r}; --list names them", file=sys.stderr)
        return 2
    with make(ns.personality) as sim:
        sim.release_slave()  # the driver runs in another process
        print(sim.port, flush=True)
        try:
            while True:
                time.sleep(ns.swipe_every or 3600)
                if ns.swipe_every and isinstance(sim, idtech_msr.IdTechMsrSimulator):
                    sim.swipe_recorded()
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
