"""Wi-Fi link quality from ``/proc/net/wireless`` (Wireless Extensions statistics).

A line looks like ``  wlan0: 0000   54.  -56.  -256  0 0 0 0 12  0``: status, link quality,
signal level, noise, discard counters, missed beacons. The kernel appends a ``.`` to a value that
was updated since the last read. Drivers that report dBm print a negative level; old drivers print
the raw unsigned byte (0..255), where anything above 63 is a negative dBm value plus 256.
Only associated interfaces appear.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WirelessStats:
    iface: str
    status: int
    link_quality: int
    level_dbm: int | None  # None: the driver reports no level
    noise_dbm: int | None
    missed_beacons: int | None

    def __post_init__(self) -> None:
        if not self.iface:
            raise ValueError("wireless statistics without an interface")
        for v in (self.level_dbm, self.noise_dbm):
            if v is not None and not -256 <= v <= 0:
                raise ValueError(f"signal level out of range: {v}")


def _number(field: str) -> int:
    """The kernel prints integers, with a ``.`` appended to a value updated since the last read."""
    return int(field.removesuffix("."))


def _dbm(field: str) -> int | None:
    v = _number(field)
    if v > 63:  # unsigned byte of an old driver
        v -= 256
    if v <= -256 or v >= 0:  # -256 is "0 with the dBm flag": the driver has no value
        return None
    return v


def parse_wireless(text: str) -> tuple[WirelessStats, ...]:
    """Parse ``/proc/net/wireless``; the two header lines and malformed lines are skipped."""
    out: list[WirelessStats] = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not name or "|" in name or " " in name:
            continue
        f = rest.split()
        if len(f) < 4:
            continue
        try:
            out.append(WirelessStats(
                iface=name,
                status=int(f[0], 16),
                link_quality=_number(f[1]),
                level_dbm=_dbm(f[2]),
                noise_dbm=_dbm(f[3]),
                missed_beacons=int(f[9]) if len(f) >= 10 else None,
            ))
        except ValueError:
            continue
    return tuple(out)


def read_wireless(procfs: Path) -> tuple[WirelessStats, ...]:
    try:
        text = (procfs / "net" / "wireless").read_bytes().decode("ascii", "replace")
    except OSError:
        return ()
    return parse_wireless(text)
