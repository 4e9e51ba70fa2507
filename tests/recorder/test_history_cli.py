"""``posdiag history`` as a real subprocess over a flight log written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from posdiag.errors import UsageError
from posdiag.flightlog import FlightLog, Sample, minute_of
from posdiag.history import parse_at, parse_duration, spark, window


def posdiag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posdiag", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    path = tmp_path / "posdiag.toml"
    path.write_text(f'[paths]\nstate_dir = "{state}"\n')
    return path


def fill(state: Path, now_minute: int) -> None:
    with FlightLog.create(state / "flightlog.bin") as fl:
        for i in range(60):
            if i in (20, 21, 22):  # the agent was restarted here
                continue
            m = now_minute - i
            fl.write(Sample(minute=m, link_up=i != 30, link_changes=2 if i == 30 else 0,
                            iface="cellular", rssi_dbm=-80 - i % 10, rsrp_dbm=-100 - i % 20,
                            cell_stat=1 if i != 30 else 2,
                            rtt="ok" if i != 30 else "timeout",
                            rtt_ms=40 + i if i != 30 else None, dns_ms=15, power="battery",
                            battery_pct=70))


def test_table_sparklines_and_missing_minutes(conf: Path, tmp_path: Path) -> None:
    now_minute = minute_of(time.time())
    fill(tmp_path / "state", now_minute)
    r = posdiag("history", "--config", str(conf), "--since", "45m")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "link", "via"]
    assert sum("(not recorded)" in ln for ln in lines) == 3
    assert any("down (2×)" in ln and "timeout" in ln for ln in lines)
    assert any("cellular" in ln and "-100 dBm" in ln and "battery 70%" in ln for ln in lines)
    rtt_line = next(ln for ln in lines if ln.startswith("RTT:"))
    assert set(rtt_line.removeprefix("RTT:").strip()) <= set("▁▂▃▄▅▆▇█ ")
    assert "46 minutes, " in r.stdout


def test_chinese_and_json(conf: Path, tmp_path: Path) -> None:
    now_minute = minute_of(time.time())
    fill(tmp_path / "state", now_minute)
    r = posdiag("history", "--config", str(conf), "--since", "30m", "--lang", "zh_CN")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("时间") and "（未记录）" in r.stdout and "电池 70%" in r.stdout
    at = datetime.fromtimestamp((now_minute - 30) * 60).strftime("%Y-%m-%dT%H:%M")
    r = posdiag("history", "--config", str(conf), "--at", at, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["minutes"] == 31
    assert doc["missing"] == 3  # minutes 20-22 back are inside ±15 of 30 back
    assert {s["minute"] for s in doc["samples"]} >= {now_minute - 30}


def test_no_log_and_bad_options(conf: Path) -> None:
    r = posdiag("history", "--config", str(conf))
    assert r.returncode == 66 and "no flight log" in r.stderr and "Traceback" not in r.stderr
    r = posdiag("history", "--config", str(conf), "--since", "yesterday")
    assert r.returncode == 64 and "90m, 2h or 1d" in r.stderr
    r = posdiag("history", "--config", str(conf), "--since", "1h", "--at", "12:00")
    assert r.returncode == 64
    conf.write_text(conf.read_text() + "[recorder]\nhours = 0\n")
    r = posdiag("history", "--config", str(conf))
    assert r.returncode == 78 and "recorder.hours" in r.stderr


def test_time_parsing_and_spark() -> None:
    assert parse_duration("90m") == 5400 and parse_duration("2h") == 7200
    now = datetime(2026, 12, 4, 10, 0).timestamp()
    assert parse_at("09:30", now) == datetime(2026, 12, 4, 9, 30).timestamp()
    assert parse_at("11:30", now) == datetime(2026, 12, 3, 11, 30).timestamp()  # yesterday's
    with pytest.raises(UsageError):
        parse_at("25:00", now)
    assert window(now, at="09:30") == (now - 45 * 60, now - 15 * 60)
    assert spark([0, None, 7]) == "▁ █"
