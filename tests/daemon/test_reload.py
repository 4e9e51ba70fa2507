"""SIGHUP on a real daemon: what can change live changes at once; what cannot is named, with the
value still in use, and the reload is not called a success.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from agent_process import Agent, write_config
from broker import Broker, Subscriber
from test_daemon import wait_for_log

PREFIX = "posdiag/v1/T-0001"


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def docs(sub: Subscriber, kind: str) -> list[dict]:
    return [json.loads(m.payload) for m in sub.received(f"{PREFIX}/{kind}")]


def eventually(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def reload(agent: Agent, dropin, text: str, logged: str, n: int) -> None:
    """Write the drop-in, SIGHUP, wait for the ``n``-th READY=1 and the log line."""
    dropin.write_text(text)
    agent.signal(signal.SIGHUP)
    agent.notify.wait_for("READY=1", count=n)
    wait_for_log(agent, logged)


def test_reload_applies_cadence_and_checks_live_and_names_what_needs_a_restart(tmp_path, broker):
    # Hour-long cadences: nothing periodic would arrive during the test without the reload.
    cfg = write_config(tmp_path, broker.port, heartbeat_s=3600, report_s=3600)
    dropin = cfg.parent / "conf.d" / "50-site.toml"
    dropin.parent.mkdir()
    with Subscriber(broker, f"{PREFIX}/#") as sub:
        agent = Agent(tmp_path, cfg)
        try:
            agent.notify.wait_for("READY=1")
            sub.wait_until(lambda ms: docs(sub, "report"), timeout_s=20)  # the one at start
            assert docs(sub, "status")[-1]["heartbeat_s"] == 3600
            assert not docs(sub, "heartbeat")

            reload(agent, dropin, "[daemon]\nheartbeat_s = 1\nreport_s = 1\n"
                                  "[checks.system]\nenabled = false\n",
                   "configuration reloaded: applied checks.system.enabled, applied "
                   "daemon.heartbeat_s, applied daemon.report_s", n=2)
            sub.wait_until(lambda ms: len(docs(sub, "heartbeat")) >= 2
                           and len(docs(sub, "report")) >= 3, timeout_s=20)
            # Presence is announced again: the backend learns the cadence to expect.
            sub.wait_until(lambda ms: docs(sub, "status")[-1].get("heartbeat_s") == 1,
                           timeout_s=10)
            latest = docs(sub, "report")[-1]
            assert "system" not in {c["name"] for c in latest["checks"]}
            assert "power" in {c["name"] for c in latest["checks"]}

            moved = tmp_path / "elsewhere.sqlite"
            reload(agent, dropin, "[daemon]\nheartbeat_s = 1\nreport_s = 1\n"
                                  f'[outbox]\npath = "{moved}"\nmax_bytes = 1048576\n',
                   "configuration partly reloaded", n=3)
            (line,) = [x for x in agent.log_text().splitlines() if "partly reloaded" in x]
            assert "applied checks.system.enabled; not applied until a restart" in line
            assert f"outbox.max_bytes, outbox.path (still outbox.max_bytes = 8388608, " \
                   f"outbox.path = '{tmp_path}/state/outbox.sqlite')" in line
            eventually(lambda: any("restart to apply outbox.max_bytes, outbox.path" in m
                                   for m in agent.notify.messages if m.startswith("STATUS=")))
            # Still delivering from the outbox it opened at start; nothing was created there.
            n = len(docs(sub, "heartbeat"))
            sub.wait_until(lambda ms: len(docs(sub, "heartbeat")) >= n + 2, timeout_s=20)
            assert not moved.exists()

            # Back to the values in use: nothing needs a restart any more.
            before = agent.log_text().count("configuration reloaded")
            reload(agent, dropin, "[daemon]\nheartbeat_s = 1\nreport_s = 1\n", "", n=4)
            eventually(lambda: agent.log_text().count("configuration reloaded") > before)
            assert ("configuration reloaded: outbox.max_bytes back to the value in use, "
                    "outbox.path back to the value in use") in agent.log_text()
            eventually(lambda: "restart to apply" not in [
                m for m in agent.notify.messages if m.startswith("STATUS=")][-1])
            rc, _ = agent.terminate()
        except BaseException:
            print(agent.log_text()[-5000:])
            raise
    assert rc == 0
    assert agent.log_text().count("partly reloaded") == 1
