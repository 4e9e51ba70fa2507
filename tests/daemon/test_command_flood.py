"""Commands as a backend under stress sends them: floods, unanswerable Response Topics, odd verbs.

A real ``posdiag run`` process and a real Mosquitto. The promise under test (AsyncAPI): every
command with a usable Response Topic gets exactly one reply — ``ok`` or an error such as
``busy`` — never silence, at any rate; and the agent's own log stays a few lines long.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from agent_process import Agent, write_config
from broker import Broker, Subscriber
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from test_daemon import request

from posdiag import schemas

PREFIX = "posdiag/v1/T-0001"
REPLIES = f"{PREFIX}/reply/flood"


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def send(sub: Subscriber, verb: str, payload: bytes, correlation: bytes | None,
         response_topic: str | None = REPLIES) -> None:
    """Publish without waiting for each PUBACK, as a backend flooding the terminal would."""
    props = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation is not None:
        props.CorrelationData = correlation
    sub.client.publish(f"{PREFIX}/cmd/{verb}", payload, qos=1, properties=props)


def replies_by_correlation(sub: Subscriber) -> dict[bytes, list[dict]]:
    out: dict[bytes, list[dict]] = {}
    for m in sub.received(REPLIES):
        out.setdefault(m.correlation or b"", []).append(json.loads(m.payload))
    return out


def refusal_lines(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "refused" in line or "busy" in line or "not answered or refused" in line]


def test_a_flood_of_pings_and_selftests_gets_exactly_one_reply_each(tmp_path, broker):
    pings, selftests = 500, 100
    wanted = {f"p{i}".encode() for i in range(pings)} | {f"s{i}".encode()
                                                         for i in range(selftests)}
    with Subscriber(broker, f"{PREFIX}/reply/#") as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port))
        try:
            agent.notify.wait_for("READY=1")
            assert request(sub, "ping")["ok"]  # subscribed and answering
            for i in range(max(pings, selftests)):
                if i < pings:
                    send(sub, "ping", b"", f"p{i}".encode())
                if i < selftests:
                    send(sub, "selftest", b"", f"s{i}".encode())
            sub.wait_until(lambda ms: wanted <= set(replies_by_correlation(sub)),
                           timeout_s=180)
            assert request(sub, "ping")["ok"]  # still answering after the flood
            rc, _ = agent.terminate()
        except BaseException:
            print(agent.log_text()[-5000:])
            raise
    assert rc == 0
    got = replies_by_correlation(sub)
    assert {c: len(r) for c, r in got.items() if c in wanted and len(r) != 1} == {}
    outcome: Counter[str] = Counter()
    for corr in wanted:
        (doc,) = got[corr]
        schemas.validate("reply", doc)
        code = "ok" if doc["ok"] else doc["error"]["code"]
        assert code in ("ok", "busy"), doc
        outcome[f"{corr[:1].decode()} {code}"] += 1
    # Pings cost nothing: they are answered; selftests beyond the queue are refused cheaply.
    assert outcome["p ok"] + outcome["p busy"] == pings and outcome["p ok"] > 0
    assert outcome["s ok"] >= 1 and outcome["s busy"] >= 1
    # A few lines, not one per refusal; and the summary lines account for every busy reply.
    log = agent.log_text()
    lines = refusal_lines(log)
    assert len(lines) <= 6, lines
    said = len([line for line in lines if "answered busy" in line])
    said += sum(int(n) for n in re.findall(r"\bbusy (\d+)", log))
    assert said == outcome["p busy"] + outcome["s busy"]
    assert "Traceback" not in log and "dropped" not in log


def test_unanswerable_response_topics_are_counted_not_errors(tmp_path, broker):
    with Subscriber(broker, f"{PREFIX}/reply/#") as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port))
        try:
            agent.notify.wait_for("READY=1")
            assert request(sub, "ping")["ok"]
            for i in range(20):
                send(sub, "ping", b"", f"w{i}".encode(), response_topic=f"{PREFIX}/reply/+")
                send(sub, "selftest", b"", f"h{i}".encode(), response_topic=f"{PREFIX}/#")
            # Commands are taken in order, so once this is answered the wild ones were seen.
            assert request(sub, "ping")["ok"]
            rc, _ = agent.terminate()
        except BaseException:
            print(agent.log_text()[-5000:])
            raise
    assert rc == 0
    assert not [m for m in sub.messages if m.correlation and m.correlation[:1] in b"wh"]
    log = agent.log_text()
    assert "ERROR" not in log and "Traceback" not in log and "cannot reply" not in log
    first = [line for line in log.splitlines() if "bad_response_topic" in line]
    assert "contains a wildcard" in first[0]
    # Said once in full, the rest counted in one summary line (flushed at the stop).
    assert len(first) == 2 and re.search(r"bad_response_topic 39\b", first[1]), first


def test_unknown_verbs_are_named_readably(tmp_path, broker):
    with Subscriber(broker, f"{PREFIX}/reply/#") as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port))
        try:
            agent.notify.wait_for("READY=1")
            zh = request(sub, "重启")
            long = request(sub, "x" * 60)
        finally:
            agent.terminate()
    assert zh["error"]["code"] == "unknown_verb"
    assert zh["error"]["message"].startswith("unknown command '重启'; allowed: diagnose, ")
    assert f"'{'x' * 40}…'" in long["error"]["message"]


def test_commands_waiting_at_a_stop_still_get_their_one_reply(tmp_path, broker):
    """SIGTERM while selftests wait behind one another: each gets an answer (busy: the agent is
    stopping), none is left to time out at the backend."""
    with Subscriber(broker, f"{PREFIX}/reply/#") as sub:
        agent = Agent(tmp_path, write_config(tmp_path, broker.port))
        try:
            agent.notify.wait_for("READY=1")
            assert request(sub, "ping")["ok"]
            for i in range(5):
                send(sub, "selftest", b"", f"s{i}".encode())
            sub.wait_until(lambda ms: len(sub.received(REPLIES)) >= 1, timeout_s=30)
            rc, _ = agent.terminate()
            sub.wait_until(lambda ms: len(sub.received(REPLIES)) >= 5, timeout_s=10)
        except BaseException:
            print(agent.log_text()[-5000:])
            raise
    assert rc == 0
    got = replies_by_correlation(sub)
    assert sorted(got) == [f"s{i}".encode() for i in range(5)]
    assert all(len(r) == 1 for r in got.values())
    codes = {r[0]["ok"] or r[0]["error"]["code"] for r in got.values()}
    assert codes <= {True, "busy"}
