"""A real ``posdiag run`` with its state on a small tmpfs and a real Mosquitto (issue 15, items
1-3): it keeps delivering, a filled file system stops it only while it is full, every seq the
backend misses is counted, and a status change made while storing failed still arrives."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import Agent, sysfs_copy, write_config
from broker import Broker, Subscriber
from test_daemon import docs, request, wait_for_log
from test_outbox_disk import fill

from posdiag import schemas

PREFIX = "posdiag/v1/T-0001"


@contextlib.contextmanager
def state_on_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(state)], check=True)
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=True)


def seqs(messages) -> set[int]:
    return {json.loads(m.payload)["seq"] for m in messages
            if m.topic in (f"{PREFIX}/report", f"{PREFIX}/heartbeat", f"{PREFIX}/event")}


def counted(outbox: dict) -> int:
    return (sum(outbox["dropped"].values()) + outbox["denied"]
            + sum(outbox["store_failed"].values()))


def reconciled(messages) -> bool:
    """Some heartbeat's counters explain every seq below it that never arrived."""
    got = seqs(messages)
    for hb in docs(messages, "heartbeat"):
        missing = set(range(1, hb["seq"])) - got
        if hb["seq"] > 40 and len(missing) == counted(hb["outbox"]):
            return True
    return False


@pytest.mark.parametrize("size", ["512k", "1m"])
def test_agent_with_default_max_bytes_on_a_small_tmpfs_keeps_delivering(tmp_path: Path,
                                                                        size: str) -> None:
    """As found: the default 8 MiB cap on a state file system with less free, broker up. The
    WAL used to fill it within a minute and the agent went quiet for good. Then a filler
    takes the last byte and is removed: the agent goes on by itself and the counters in its
    heartbeats account for every seq the backend did not get."""
    with state_on_tmpfs(tmp_path, size) as state, Broker(tmp_path) as broker, \
            Subscriber(broker, f"{PREFIX}/#") as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port, heartbeat_s=1, report_s=1))
        try:
            agent.notify.wait_for("READY=1")
            for _ in range(60):  # each one a full report through the outbox
                assert request(sub, "report")["ok"]
            sub.wait_until(lambda ms: len(docs(ms, "report")) >= 60, timeout_s=30)
            filler = fill(state)
            for _ in range(10):
                request(sub, "report")
            filler.unlink()
            before = len(docs(sub.received(), "heartbeat"))
            msgs = sub.wait_until(lambda ms: len(docs(ms, "heartbeat")) >= before + 5
                                  and reconciled(ms), timeout_s=60)
            log = agent.log_text()
            rc, _ = agent.terminate()
        except BaseException:
            print(agent.log_text())
            raise
    assert rc == 0
    for kind in ("report", "heartbeat"):
        for d in docs(msgs, kind)[-5:]:
            schemas.validate(kind, d)
    ids = {d["outbox"]["id"] for d in docs(msgs, "heartbeat")}
    assert len(ids) == 1
    online = [d for d in docs(msgs, "status") if d["state"] == "online"]
    assert online and online[0]["agent"]["outbox_id"] in ids
    # Said once per episode of failing stores, and once when it cleared.
    assert log.count("cannot store messages") == log.count("storing works again")
    assert log.count("cannot store messages") <= 3


def test_status_change_while_stores_fail_is_stored_later_and_arrives(tmp_path: Path) -> None:
    """As found: ok -> warn happened while the outbox could not store; the agent marked the
    new status as published anyway and the backend never heard of it."""
    sysfs = sysfs_copy(tmp_path)
    with state_on_tmpfs(tmp_path, "512k") as state, \
            Broker(tmp_path, persistence=True) as broker, \
            Subscriber(broker, f"{PREFIX}/#", client_id="backend", persistent=True) as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port, heartbeat_s=1, report_s=1))
        try:
            agent.notify.wait_for("READY=1")
            sub.wait_until(lambda ms: len(docs(ms, "heartbeat")) >= 2, timeout_s=20)
            broker.stop()  # the backlog has to stay on the full disk
            filler = fill(state)
            wait_for_log(agent, "cannot store messages", timeout_s=60)
            (sysfs / "class/power_supply/AC/online").write_text("0\n")
            (sysfs / "class/power_supply/BAT0/status").write_text("Discharging\n")
            time.sleep(3)  # a few check cycles see on_battery while nothing can be stored
            assert "power: ok -> warn" not in agent.log_text()
            filler.unlink()
            broker.start()
            ev = sub.wait_for(lambda m: m.topic == f"{PREFIX}/event"
                              and json.loads(m.payload).get("type") == "status_changed",
                              timeout_s=60)
            msgs = sub.wait_until(lambda ms: reconciled(ms), timeout_s=60)
            agent.terminate()
        except BaseException:
            print(agent.log_text())
            raise
    doc = json.loads(ev.payload)
    schemas.validate("event", doc)
    assert (doc["check"], doc["from"], doc["to"]) == ("power", "ok", "warn")
    last = docs(msgs, "heartbeat")[-1]["outbox"]
    assert sum(last["store_failed"].values()) > 0  # what could not be stored was counted
