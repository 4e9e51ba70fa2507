"""``posdiag history``: the flight log as a table per minute with text sparklines.

Also the one place that turns "since 2h", "at 14:05" or an ISO time into a window, so the CLI and
the remote ``history`` command agree on what a window is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from posdiag.errors import UsageError
from posdiag.flightlog import FlightLog, Sample

BARS = "▁▂▃▄▅▆▇█"
AROUND_MIN = 15  # --at shows this many minutes either side
MAX_REMOTE_MINUTES = 180  # one reply stays ~15 kB
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise UsageError(f"--since {text!r}: give a duration like 90m, 2h or 1d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_at(text: str, now: float) -> float:
    """``HH:MM`` (today, or yesterday if that is still to come) or an ISO 8601 time; a time
    without a zone is local time, as the merchant said it."""
    text = text.strip()
    hm = re.match(r"^(\d{1,2}):(\d{2})$", text)
    if hm and int(hm.group(1)) < 24 and int(hm.group(2)) < 60:
        today = datetime.fromtimestamp(now).replace(hour=int(hm.group(1)),
                                                    minute=int(hm.group(2)), second=0,
                                                    microsecond=0)
        if today.timestamp() > now:
            today -= timedelta(days=1)
        return today.timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"--at {text!r}: give HH:MM or an ISO time like "
                         "2026-12-04T14:05") from None


def window(now: float, *, since: str | None = None, at: str | None = None
           ) -> tuple[float, float]:
    """Epoch seconds (t0, t1) for the CLI's options; the default is the last hour."""
    if since is not None and at is not None:
        raise UsageError("give --since or --at, not both")
    if at is not None:
        t = parse_at(at, now)
        return t - AROUND_MIN * 60, t + AROUND_MIN * 60
    return now - (parse_duration(since) if since is not None else 3600), now


def remote_window(now: float, args: Mapping[str, Any]) -> tuple[float, float]:
    """The window of a remote ``history`` command (arguments already checked): ``minutes``
    (default 60) centred on ``at``, starting at ``since``, or ending now."""
    span = int(args.get("minutes", 60)) * 60
    if args.get("at") is not None:
        t = parse_at(str(args["at"]), now)
        return t - span / 2, t + span / 2 - 60
    if args.get("since") is not None:
        text = str(args["since"])
        try:
            t0 = now - parse_duration(text)
        except UsageError:
            t0 = parse_at(text, now)
        return t0, min(now, t0 + span - 60)
    return now - span + 60, now


def to_rows(minutes: Iterable[tuple[int, Sample | None]], t0: float, t1: float
            ) -> dict[str, Any]:
    """The compact form for a reply: one list per recorded minute, in ``fields`` order (about
    70 bytes a minute in JSON instead of 300)."""
    got = list(minutes)
    fields = list(Sample.__dataclass_fields__)
    return {"schema": "posdiag.history/1", "from": _iso(t0), "to": _iso(t1),
            "minutes": len(got), "missing": sum(1 for _m, s in got if s is None),
            "fields": fields,
            "rows": [[getattr(s, f) for f in fields] for _m, s in got if s is not None]}


def spark(values: Sequence[float | None], lo: float | None = None,
          hi: float | None = None) -> str:
    """One character per value; a space where there is none."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo = min(known) if lo is None else lo
    hi = max(known) if hi is None else hi
    span = hi - lo or 1.0
    return "".join(" " if v is None else
                   BARS[max(0, min(len(BARS) - 1, int((v - lo) / span * (len(BARS) - 1) + 0.5)))]
                   for v in values)


def signal_of(s: Sample) -> int | None:
    """The signal of the link in use: Wi-Fi dBm on Wi-Fi, else RSRP, else cellular RSSI."""
    if s.iface == "wifi" and s.wifi_dbm is not None:
        return s.wifi_dbm
    for v in (s.rsrp_dbm, s.rssi_dbm, s.wifi_dbm):
        if v is not None:
            return v
    return None


def rows(fl: FlightLog, t0: float, t1: float) -> list[tuple[int, Sample | None]]:
    return list(fl.minutes(t0, t1))


def to_json(minutes: Iterable[tuple[int, Sample | None]], t0: float, t1: float
            ) -> dict[str, Any]:
    got = list(minutes)
    samples = [s.to_dict() for _m, s in got if s is not None]
    return {"schema": "posdiag.history/1", "from": _iso(t0), "to": _iso(t1),
            "minutes": len(got), "missing": sum(1 for _m, s in got if s is None),
            "samples": samples}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def render(minutes: Sequence[tuple[int, Sample | None]], texts: Any) -> str:
    def tr(key: str) -> str:
        return texts.get("history", key)

    def val(v: object, unit: str = "") -> str:
        return "-" if v is None else f"{v}{unit}"

    head = (tr("time"), tr("link"), tr("iface"), tr("signal"), tr("cell"), tr("rtt"),
            tr("dns"), tr("power"))
    lines: list[tuple[str, ...]] = [head]
    for m, s in minutes:
        when = datetime.fromtimestamp(m * 60).strftime("%m-%d %H:%M")
        if s is None:
            lines.append((when, tr("missing"), "", "", "", "", "", ""))
            continue
        link = "-" if s.link_up is None else tr("up") if s.link_up else tr("down")
        if s.link_changes:
            link += f" ({s.link_changes}×)"
        rtt = (f"{s.rtt_ms} ms" if s.rtt == "ok" else tr("rtt_" + s.rtt) if s.rtt else "-")
        dns = tr("failed") if s.dns_failed else val(s.dns_ms, " ms")
        power = "-" if s.power is None else tr(s.power)
        if s.battery_pct is not None:
            power += f" {s.battery_pct}%"
        lines.append((when, link, tr("iface_" + s.iface) if s.iface else "-",
                      val(signal_of(s), " dBm"), val(s.cell_stat), rtt, dns, power))
    widths = [max(_width(r[i]) for r in lines) for i in range(len(head))]
    out = ["  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
           for r in lines]
    samples = [s for _m, s in minutes]
    rtt_values = [s.rtt_ms if s is not None and s.rtt == "ok" else None for s in samples]
    sig_values = [signal_of(s) if s is not None else None for s in samples]
    out.append("")
    pad = max(_width(tr("rtt")), _width(tr("signal")))
    for label, line in ((tr("rtt"), spark(rtt_values)),
                        (tr("signal"), spark(sig_values, -110, -50))):  # dBm: bad → good
        out.append(f"{label}:{' ' * (pad - _width(label))} {line}")
    missing = sum(1 for s in samples if s is None)
    out.append(tr("summary").format(minutes=len(samples), missing=missing))
    return "\n".join(out) + "\n"


def _width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
