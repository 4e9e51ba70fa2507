"""The remote ``history`` command through a real Mosquitto and a real ``posdiag run``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from broker import Broker, Subscriber

from posdiag import schemas
from posdiag.flightlog import FlightLog, Sample, minute_of
from posdiag.service.commands import CommandRejected, parse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))
from agent_process import Agent, write_config

PREFIX = "posdiag/v1/T-0001"


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def request(sub, payload: bytes, timeout_s: float = 20.0) -> dict:
    corr = f"c-{time.monotonic_ns()}".encode()
    reply_topic = f"{PREFIX}/reply/test"
    sub.publish(f"{PREFIX}/cmd/history", payload, response_topic=reply_topic, correlation=corr)
    m = sub.wait_for(lambda m: m.topic == reply_topic and m.correlation == corr,
                     timeout_s=timeout_s)
    doc = json.loads(m.payload)
    schemas.validate("reply", doc)
    return doc


def test_history_window_over_mqtt(tmp_path: Path, broker: Broker) -> None:
    now_minute = minute_of(time.time())
    state = tmp_path / "state"
    state.mkdir()
    with FlightLog.create(state / "flightlog.bin") as fl:  # what an earlier run recorded
        for m in range(now_minute - 300, now_minute - 1):
            if m % 7:
                fl.write(Sample(minute=m, link_up=True, iface="ethernet", rtt="ok",
                                rtt_ms=m % 90, dns_ms=9, power="mains"))
    with Subscriber(broker, f"{PREFIX}/reply/#") as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port))
        try:
            agent.notify.wait_for("READY=1")
            r = request(sub, b'{"since": "2h", "minutes": 30}')
            assert r["ok"], r
            doc = r["result"]
            assert doc["minutes"] == 30
            rows = [dict(zip(doc["fields"], row, strict=True)) for row in doc["rows"]]
            assert all(row["iface"] == "ethernet" and row["rtt_ms"] == row["minute"] % 90
                       for row in rows)
            assert doc["missing"] == 30 - len(rows) and 3 <= doc["missing"] <= 5
            r = request(sub, b"")  # the last hour: the file kept the old samples on restart,
            rows = r["result"]["rows"]  # and the recorder itself wrote this minute
            minutes = {row[0] for row in rows}
            assert now_minute - 2 in minutes or now_minute - 3 in minutes
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not minutes & {now_minute, now_minute + 1}:
                time.sleep(0.3)
                minutes = {row[0] for row in request(sub, b"")["result"]["rows"]}
            assert minutes & {now_minute, now_minute + 1}
            r = request(sub, b'{"minutes": 500}')
            assert (r["ok"], r["error"]["code"]) == (False, "bad_payload")
            assert "1-180" in r["error"]["message"]
            assert len(json.dumps(request(sub, b'{"minutes": 180}')).encode()) < 20_000
            fleet = subprocess.run(
                [sys.executable, "-m", "posdiag", "fleet", "command", "T-0001", "history",
                 "--since", "3h", "--minutes", "10", "--host", "127.0.0.1", "--port",
                 str(broker.port), "--no-tls", "--timeout", "20"],
                capture_output=True, text=True, timeout=60)
            assert fleet.returncode == 0, fleet.stderr
            reply = json.loads(fleet.stdout)
            assert reply["verb"] == "history" and reply["result"]["minutes"] == 10
        finally:
            rc, _ = agent.terminate()
    assert rc == 0
    assert "Traceback" not in agent.log_text()


def test_full_disk_at_start_turns_the_recorder_off_and_the_agent_goes_on(tmp_path: Path,
                                                                         broker: Broker) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "posdiag-rec-test", str(tiny)],
                   check=True)
    try:
        extra = f'[recorder]\npath = "{tiny}/flightlog.bin"\n'
        with Subscriber(broker, f"{PREFIX}/reply/#") as sub:
            agent = Agent(tmp_path, write_config(tmp_path, broker.port, extra=extra))
            try:
                agent.notify.wait_for("READY=1")
                r = request(sub, b"")
                assert (r["ok"], r["error"]["code"]) == (False, "failed")
                assert "no flight log" in r["error"]["message"]
            finally:
                rc, _ = agent.terminate()
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    assert rc == 0
    text = agent.log_text()
    assert "flight recorder off: cannot create" in text and "No space left" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(("payload", "problem"), [
    (b'{"since": "2h", "at": "10:00"}', "not both"),
    (b'{"minutes": 0}', "1-180"),
    (b'{"minutes": true}', "1-180"),
    (b'{"since": "soon"}', "since"),
    (b'{"at": "25:61"}', "at"),
    (b'{"at": 12}', "short text"),
])
def test_bad_history_arguments(payload: bytes, problem: str) -> None:
    with pytest.raises(CommandRejected) as e:
        parse("history", payload)
    assert e.value.code == "bad_payload" and problem in e.value.message


def test_good_history_arguments() -> None:
    assert parse("history", b'{"at": "2026-12-04T14:05", "minutes": 10}').args["minutes"] == 10
    assert parse("history", b'{"since": "2026-12-04T14:05"}').verb == "history"
    assert parse("history", b'{"at": "14:05"}').args == {"at": "14:05"}


def test_remote_window_shapes() -> None:
    from posdiag.history import remote_window

    now = 1_764_000_000.0
    assert remote_window(now, {}) == (now - 59 * 60, now)
    assert remote_window(now, {"since": "2h", "minutes": 30}) == (now - 7200, now - 7200 + 1740)
    assert remote_window(now, {"since": "10m"}) == (now - 600, now)  # never past now
    t0, t1 = remote_window(now, {"at": "2025-11-24T16:00:00+00:00", "minutes": 20})
    assert (t0, t1) == (1_764_000_000.0 - 600, 1_764_000_000.0 + 540)
