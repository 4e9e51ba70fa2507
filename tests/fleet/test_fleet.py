"""The fleet consumer and ``posdiag fleet`` against a real Mosquitto and fake terminals."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from broker import Broker, terminal_acl
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from posdiag import report
from posdiag.cli import main
from posdiag.fleet import (
    BrokerSettings,
    Command,
    Commander,
    Consumer,
    Store,
    topic_filters,
)
from posdiag.results import CheckResult, Status
from posdiag.service import payloads

REPO = Path(__file__).resolve().parents[2]
_ids = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("fleet-broker")) as b:
        yield b


@pytest.fixture
def prefix() -> str:
    """A prefix of its own per test: retained presence from other tests stays out of sight."""
    return f"fleet{next(_ids)}-{os.getpid()}/v1"


@pytest.fixture
def settings(broker) -> BrokerSettings:
    return BrokerSettings(host=broker.host, port=broker.port, tls=False)


def broker_flags(broker: Broker, prefix: str) -> list[str]:
    return ["--host", broker.host, "--port", str(broker.port), "--no-tls", "--prefix", prefix]


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def handled(consumer: Consumer) -> int:
    """Seq-carrying messages this consumer stored (new, late or early)."""
    counts = consumer.counts()
    return sum(counts.get(k, 0) for k in ("stored", "filled", "earlier"))


def done(consumer: Consumer, n: int) -> Callable[[], bool]:
    """True once the consumer has handled ``n`` messages, whatever became of them."""
    return lambda: sum(v for k, v in consumer.counts().items() if k != "gaps") >= n


# --------------------------------------------------------------------------------------------
# A fake terminal: publishes what the agent publishes, built with the agent's own builders
# --------------------------------------------------------------------------------------------
OK = CheckResult("power", Status.OK, "ok", "on mains")
PAPER_OUT = CheckResult("printer", Status.FAIL, "paper_out", "no paper")


class FakeTerminal:
    def __init__(self, broker: Broker, prefix: str, terminal_id: str, *,
                 password: str | None = None) -> None:
        self.id = terminal_id
        self.topics = payloads.Topics(prefix, terminal_id)
        self._acked: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-{terminal_id}",
                                  protocol=paho.MQTTv5)
        lost = payloads.status(terminal_id, "lost", "boot-1")
        self.client.will_set(self.topics.status, payloads.dumps(lost), qos=1, retain=True)
        if password is not None:
            self.client.username_pw_set(terminal_id, password)
        self.client.on_connect = lambda *a: self._connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(5)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: ReasonCode,
                    props: Any) -> None:
        with self._cond:
            self._acked[mid] = rc
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes | dict, *, retain: bool = False,
                properties: Properties | None = None) -> ReasonCode:
        """Publish QoS 1; returns the PUBACK's reason code."""
        data = payload if isinstance(payload, bytes) else payloads.dumps(payload)
        info = self.client.publish(topic, data, qos=1, retain=retain, properties=properties)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self._acked, 5)
            return self._acked[info.mid]

    def presence(self, state: str) -> None:
        self.publish(self.topics.status, payloads.status(self.id, state, "boot-1",
                                                         capabilities=("ping",)), retain=True)

    def heartbeat(self, seq: int, *, at: datetime | None = None, valid_for_s: float = 900,
                  failing: tuple[CheckResult, ...] = ()) -> dict:
        doc = payloads.heartbeat(self.id, seq, [OK, *failing], valid_for_s=valid_for_s,
                                 outbox=payloads.OutboxHealth(), at=at)
        self.publish(self.topics.heartbeat, doc)
        return doc

    def report(self, seq: int, *results: CheckResult) -> dict:
        doc = report.build(list(results) or [OK], terminal_id=self.id, seq=seq, valid_for_s=900,
                           boot_id="boot-1").to_dict()
        self.publish(self.topics.report, doc)
        return doc

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Go away so that the broker sends the Last Will (MQTT 5 reason 0x04)."""
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT,
                                                     "Disconnect with will message"))
        self.client.loop_stop()


@pytest.fixture
def terminals(broker, prefix) -> Iterator[Callable[[str], FakeTerminal]]:
    made: list[FakeTerminal] = []

    def make(terminal_id: str) -> FakeTerminal:
        made.append(FakeTerminal(broker, prefix, terminal_id))
        return made[-1]

    yield make
    for t in made:
        t.close()


@pytest.fixture
def consumer(tmp_path, settings, prefix) -> Iterator[Consumer]:
    with Store(tmp_path / "fleet.sqlite") as store, \
            Consumer(store, settings, prefix=prefix) as c:
        yield c


# --------------------------------------------------------------------------------------------
def test_subscriptions_keep_presence_unshared_and_share_the_rest():
    assert topic_filters("p/v1") == ["p/v1/+/status", "p/v1/+/report", "p/v1/+/heartbeat",
                                     "p/v1/+/event"]
    assert topic_filters("p/v1", "g") == ["p/v1/+/status", "$share/g/p/v1/+/report",
                                          "$share/g/p/v1/+/heartbeat", "$share/g/p/v1/+/event"]
    with pytest.raises(ValueError, match="share group"):
        Consumer(Store(":memory:"), BrokerSettings(tls=False), share="a/b")


def test_valid_payloads_from_a_terminal_are_stored(consumer, terminals):
    t = terminals("T-0001")
    t.presence("online")
    hb = t.heartbeat(1, failing=(PAPER_OUT,))
    rep = t.report(2, OK, PAPER_OUT)
    ev = payloads.status_changed("T-0001", 3, Status.FAIL, CheckResult(
        "printer", Status.OK, "ok", "paper loaded"))
    t.publish(t.topics.event, ev)
    wait_until(done(consumer, 4))
    assert consumer.counts() == {"presence": 1, "stored": 3}
    store = consumer.store
    (v,) = store.terminals()
    assert (v.terminal_id, v.presence, v.health, v.failing, v.last_seq) == \
        ("T-0001", "online", "ok", (), 3)
    assert v.last_seen is not None and v.stale is False
    assert store.latest("T-0001", "heartbeat") == hb
    assert store.latest("T-0001", "report") == rep
    assert [(h["kind"], h["seq"], h["status"]) for h in store.history("T-0001")] == [
        ("status", None, "online"), ("heartbeat", 1, "fail"), ("report", 2, "fail"),
        ("event", 3, "ok")]
    assert store.invalid() == []


def test_invalid_payloads_are_rejected_with_the_reason(consumer, terminals, prefix):
    t = terminals("T-0001")
    good = payloads.heartbeat("T-0001", 1, [OK], valid_for_s=60, outbox=payloads.OutboxHealth())
    no_outbox = {k: v for k, v in good.items() if k != "outbox"}
    t.publish(t.topics.heartbeat, b"{not json")
    t.publish(t.topics.heartbeat, no_outbox)
    t.publish(t.topics.heartbeat, dict(good, terminal_id="T-0002"))
    t.publish(t.topics.heartbeat, payloads.dumps(good).replace(b'"seq":1', b'"seq":NaN'))
    t.publish(t.topics.report, b"\xff\xfe")
    t.publish(t.topics.event, b"[" * 100_000 + b"]" * 100_000)
    t.publish(t.topics.report, b" " * (1 << 20) + b"{}")
    t.publish(t.topics.heartbeat, good)
    wait_until(done(consumer, 8))
    assert consumer.counts() == {"invalid": 7, "stored": 1}
    errors = [r["error"] for r in consumer.store.invalid()]
    assert errors[0].startswith("not JSON")
    assert errors[1] == "posdiag.heartbeat/1: (top level): 'outbox' is a required property"
    assert "'T-0002' does not match the topic's 'T-0001'" in errors[2]
    assert errors[3].startswith("not JSON") and "NaN" in errors[3]
    assert errors[4].startswith("not UTF-8")
    assert errors[5].startswith("not JSON")
    assert "larger than" in errors[6]
    assert {r["terminal"] for r in consumer.store.invalid()} == {"T-0001"}
    assert [h["seq"] for h in consumer.store.history("T-0001")] == [1]


def test_seq_gaps_are_detected_and_reported(consumer, terminals, tmp_path, capsys):
    t = terminals("T-0001")
    for seq in (1, 2, 5, 6):
        t.heartbeat(seq)
    wait_until(done(consumer, 4))
    assert consumer.counts() == {"stored": 4, "gaps": 1}
    assert [(g.from_seq, g.to_seq) for g in consumer.store.gaps()] == [(3, 4)]
    db = str(tmp_path / "fleet.sqlite")

    assert main(["fleet", "status", "--db", db, "--json"]) == 0
    (v,) = json.loads(capsys.readouterr().out)["terminals"]
    assert (v["gaps"], v["pending_gaps"]) == (0, 1)  # may still arrive out of order
    assert main(["fleet", "status", "--db", db, "--json", "--reorder-window", "0"]) == 0
    (v,) = json.loads(capsys.readouterr().out)["terminals"]
    assert (v["gaps"], v["missing"], v["pending_gaps"]) == (1, 2, 0)
    assert main(["fleet", "status", "--db", db, "--reorder-window", "0"]) == 0
    assert "1 (2 lost)" in capsys.readouterr().out

    t.heartbeat(4)  # late, not lost: the gap shrinks
    wait_until(done(consumer, 5))
    assert consumer.counts()["filled"] == 1
    assert [(g.from_seq, g.to_seq) for g in consumer.store.gaps()] == [(3, 3)]


def test_duplicates_from_at_least_once_delivery_are_ignored(consumer, terminals):
    t = terminals("T-0001")
    first = t.heartbeat(1)
    t.publish(t.topics.heartbeat, first)  # a redelivery is the same bytes again
    t.heartbeat(2)
    t.publish(t.topics.heartbeat, first)
    wait_until(done(consumer, 4))
    assert consumer.counts() == {"stored": 2, "duplicate": 2}
    (v,) = consumer.store.terminals()
    assert (v.duplicates, v.gaps, v.pending_gaps, v.last_seq) == (2, 0, 0, 2)
    assert [h["seq"] for h in consumer.store.history("T-0001")] == [1, 2]


def test_a_terminal_is_stale_once_valid_until_passes_without_news(consumer, terminals, tmp_path,
                                                                    capsys):
    quiet, chatty = terminals("T-0001"), terminals("T-0002")
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)
    quiet.heartbeat(1, at=old, valid_for_s=60)
    chatty.heartbeat(1, valid_for_s=60)
    wait_until(done(consumer, 2))
    assert main(["fleet", "status", "--db", str(tmp_path / "fleet.sqlite"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {v["terminal_id"]: v["stale"] for v in doc["terminals"]} == {"T-0001": True,
                                                                         "T-0002": False}
    quiet.heartbeat(2, valid_for_s=60)  # news: fresh again
    wait_until(done(consumer, 3))
    assert [v.stale for v in consumer.store.terminals()] == [False, False]


def test_presence_online_offline_lost_from_retained_status(broker, prefix, settings, terminals,
                                                           tmp_path):
    alive, stopped, died = terminals("T-A"), terminals("T-B"), terminals("T-C")
    for t in (alive, stopped, died):
        t.presence("online")
    stopped.presence("offline")
    stopped.close()
    died.drop()
    # Started after all that, and in a share group: presence comes from the retained messages.
    with Store(tmp_path / "f.sqlite") as store, \
            Consumer(store, settings, prefix=prefix, share="backend") as c:
        wait_until(done(c, 3))
        views = {v.terminal_id: v for v in store.terminals()}
        assert {k: v.presence for k, v in views.items()} == {"T-A": "online", "T-B": "offline",
                                                              "T-C": "lost"}
        assert all(v.last_seen is None for v in views.values())  # retained: not a sign of life
        alive.drop()  # live now: the Will arrives as it happens
        wait_until(lambda: store.terminals()[0].presence == "lost")
        assert c.counts() == {"presence": 4}


def test_shared_subscription_splits_messages_between_consumers(broker, prefix, settings,
                                                               terminals, tmp_path):
    path = tmp_path / "shared.sqlite"
    with Store(path) as s1, Store(path) as s2, \
            Consumer(s1, settings, prefix=prefix, share="g", name="one") as one, \
            Consumer(s2, settings, prefix=prefix, share="g", name="two") as two:
        t = terminals("T-0001")
        t.presence("online")
        n = 30
        for seq in range(1, n + 1):
            t.heartbeat(seq)
        wait_until(lambda: sum(handled(c) for c in (one, two)) == n)
        received = {c.name: handled(c) for c in (one, two)}
        assert received["one"] > 0 and received["two"] > 0
        assert received["one"] + received["two"] == n
        rows = [h for h in s1.history("T-0001") if h["kind"] == "heartbeat"]
        assert sorted(h["seq"] for h in rows) == list(range(1, n + 1))
        assert {h["consumer"] for h in rows} == {"one", "two"}
        assert s1.gaps() == []  # out-of-order between the two filled every gap
        assert [c.counts().get("duplicate", 0) for c in (one, two)] == [0, 0]  # none twice
        # Presence is not shared: both consumers got it; the second found it already stored.
        wait_until(lambda: sum(c.counts().get("unchanged", 0) for c in (one, two)) == 1)
        assert sum(c.counts().get("presence", 0) for c in (one, two)) == 1


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
class Responder:
    """A fake agent's command handler: answers on the Response Topic with payloads.reply."""

    def __init__(self, broker: Broker, prefix: str, terminal_id: str,
                 answer: Callable[[str, dict], bytes | None], *,
                 password: str | None = None) -> None:
        self.topics = payloads.Topics(prefix, terminal_id)
        self.answer = answer
        self.requests: list[tuple[str, dict, Any]] = []
        ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{terminal_id}",
                                  protocol=paho.MQTTv5)
        if password is not None:
            self.client.username_pw_set(terminal_id, password)
        self.client.on_connect = lambda c, *a: c.subscribe(self.topics.commands, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(5)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        verb = self.topics.verb_of(msg.topic)
        cmd = json.loads(msg.payload or b"{}")
        self.requests.append((verb, cmd, msg.properties))
        out = self.answer(verb, cmd)
        if out is None:
            return
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = msg.properties.CorrelationData
        client.publish(msg.properties.ResponseTopic, out, qos=1, properties=props)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def agent_answers(terminal_id: str) -> Callable[[str, dict], bytes | None]:
    def answer(verb: str, cmd: dict) -> bytes | None:
        if verb == "ping":
            return payloads.dumps(payloads.reply(terminal_id, verb,
                                                 result={"pong": True, "version": "0.1.0"}))
        if verb == "selftest":
            if "nonsense" in cmd.get("checks", []):
                return payloads.dumps(payloads.reply(terminal_id, verb, error=(
                    "unknown_check", "no check named nonsense")))
            rep = report.build([OK], terminal_id=terminal_id, seq=0, valid_for_s=60,
                               boot_id=None).to_dict()
            return payloads.dumps(payloads.reply(terminal_id, verb, result=rep))
        if verb == "report":  # a confused agent: someone else's id
            return payloads.dumps(payloads.reply("T-9999", verb, result={}))
        return None  # diagnose: never answers

    return answer


@pytest.fixture
def agent(broker, prefix) -> Iterator[Responder]:
    r = Responder(broker, prefix, "T-0001", agent_answers("T-0001"))
    yield r
    r.close()


def test_command_round_trip_prints_the_reply(agent, broker, prefix, capsys):
    start = time.monotonic()
    assert main(["fleet", "command", "T-0001", "ping", *broker_flags(broker, prefix)]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["ok"] is True and reply["result"]["pong"] is True
    assert time.monotonic() - start < 25  # well within the default 30 s wait: the reply came

    assert main(["fleet", "command", "T-0001", "selftest", "--check", "power",
                 *broker_flags(broker, prefix), "--timeout", "7"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["result"]["schema"] == "posdiag.report/1"
    verb, cmd, props = agent.requests[-1]
    assert (verb, cmd) == ("selftest", {"checks": ["power"]})
    assert props.MessageExpiryInterval == 7  # nobody waits longer: the command expires too
    assert props.ResponseTopic.startswith(f"{prefix}/T-0001/reply/")
    assert len(props.CorrelationData) == 16


def test_command_error_reply_exits_2(agent, broker, prefix, capsys):
    assert main(["fleet", "command", "T-0001", "selftest", "--check", "nonsense",
                 *broker_flags(broker, prefix)]) == 2
    out = capsys.readouterr()
    assert json.loads(out.out)["error"]["code"] == "unknown_check"
    assert "unknown_check: no check named nonsense" in out.err


def test_command_without_reply_exits_3(agent, broker, prefix, capsys):
    start = time.monotonic()
    assert main(["fleet", "command", "T-0001", "diagnose", "no-card-read", "--lang", "zh_CN",
                 "--timeout", "0.5", *broker_flags(broker, prefix)]) == 3
    assert 0.5 <= time.monotonic() - start < 10  # waited its 0.5 s, no more than a hang check
    assert "no reply to 'diagnose' within 0.5 s" in capsys.readouterr().err
    assert agent.requests[-1][:2] == ("diagnose", {"symptom": "no-card-read", "lang": "zh_CN"})


def test_reply_from_the_wrong_terminal_is_not_accepted(agent, broker, prefix, capsys):
    assert main(["fleet", "command", "T-0001", "report", *broker_flags(broker, prefix)]) == 3
    assert "from terminal 'T-9999', not 'T-0001'" in capsys.readouterr().err


def test_command_to_a_terminal_nobody_serves_fails_fast(broker, prefix, capsys):
    start = time.monotonic()
    assert main(["fleet", "command", "T-0404", "ping", "--timeout", "20",
                 *broker_flags(broker, prefix)]) == 3
    assert time.monotonic() - start < 15  # the PUBACK said so (0x10), no 20 s wait
    assert "no terminal is subscribed" in capsys.readouterr().err


def test_bad_command_usage_and_unreachable_broker(broker, prefix, capsys):
    assert main(["fleet", "command", "not a terminal", "ping",
                 *broker_flags(broker, prefix)]) == 64
    assert "not a valid terminal id" in capsys.readouterr().err
    with pytest.raises(ValueError, match="symptom"):
        Command("T-0001", "diagnose", {"symptom": "x" * 65})
    with pytest.raises(ValueError, match="symptom"):
        Command("T-0001", "diagnose", {"lang": "en"})
    with pytest.raises(ValueError, match="checks"):
        Command("T-0001", "ping", {"checks": ["power"]})
    Command("T-0001", "diagnose", {"symptom": "打印机"})  # a Chinese name passes (issue 16/2)
    assert main(["fleet", "command", "T-0001", "ping", "--host", "127.0.0.1", "--port", "1",
                 "--no-tls"]) == 69
    assert "mqtt://127.0.0.1:1" in capsys.readouterr().err


def test_commander_keeps_concurrent_commands_apart(agent, settings, prefix):
    with Commander(settings, prefix=prefix) as commander:
        replies: list[dict] = []
        threads = [threading.Thread(daemon=True, target=lambda v=v: replies.append(
            commander.send(Command("T-0001", v, {}), timeout_s=5))) for v in
            ("ping", "selftest", "ping", "selftest")]
        for th in threads:
            th.start()
        for th in threads:
            th.join(10)
    assert sorted(r["verb"] for r in replies) == ["ping", "ping", "selftest", "selftest"]


# --------------------------------------------------------------------------------------------
# posdiag fleet listen, as a process
# --------------------------------------------------------------------------------------------
def test_listen_runs_until_sigterm_and_stores(broker, prefix, terminals, tmp_path):
    db = tmp_path / "listen.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "posdiag", "fleet", "listen", "--db", str(db),
                             "--share", "backend", *broker_flags(broker, prefix)],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert "listening on" in proc.stderr.readline()
        t = terminals("T-0001")
        t.presence("online")
        t.heartbeat(1)
        t.heartbeat(3)
        t.publish(t.topics.report, b"garbage")

        def stored() -> bool:
            with Store(db, create=False) as s:
                return len(s.history("T-0001")) == 3 and len(s.invalid()) == 1

        wait_until(stored)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        err = proc.stderr.read()
        assert "stopped; gaps 1, invalid 1, presence 1, stored 2" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_status_without_a_database(tmp_path, capsys):
    assert main(["fleet", "status", "--db", str(tmp_path / "none.sqlite")]) == 66
    assert "no fleet database" in capsys.readouterr().err


def test_status_table_shows_every_column(consumer, terminals, tmp_path, capsys):
    t = terminals("T-0001")
    t.presence("online")
    t.heartbeat(1, failing=(PAPER_OUT,))
    wait_until(done(consumer, 2))
    assert main(["fleet", "status", "--db", str(tmp_path / "fleet.sqlite")]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["TERMINAL", "PRESENCE", "HEALTH", "FAILING", "LAST", "SEEN",
                              "STALE", "GAPS"]
    assert row.split()[:4] == ["T-0001", "online", "fail", "printer:paper_out"]
    assert row.split()[4:] == ["0s", "ago", "0"]  # not stale, no gaps
    assert header.index("GAPS") == row.rindex("0")  # columns line up


# --------------------------------------------------------------------------------------------
# With authentication and a per-terminal ACL, as in production
# --------------------------------------------------------------------------------------------
def test_backend_and_terminals_under_a_per_terminal_acl(tmp_path, prefix, capsys):
    users = {"backend": "backend-pw", "T-0001": "pw-1", "T-0002": "pw-2"}
    secret = tmp_path / "backend.pw"
    secret.write_text("backend-pw\n")
    secret.chmod(0o600)
    with Broker(tmp_path, passwords=users, allow_anonymous=False,
                acl=terminal_acl(prefix)) as b:
        backend = BrokerSettings(host=b.host, port=b.port, tls=False, username="backend",
                                 password_file=str(secret))
        with Store(tmp_path / "fleet.sqlite") as store, \
                Consumer(store, backend, prefix=prefix) as c:
            one = FakeTerminal(b, prefix, "T-0001", password="pw-1")
            two = FakeTerminal(b, prefix, "T-0002", password="pw-2")
            try:
                assert one.publish(one.topics.heartbeat, payloads.heartbeat(
                    "T-0001", 1, [OK], valid_for_s=60, outbox=payloads.OutboxHealth())) == 0
                # A terminal cannot speak for another: the broker refuses (0x87).
                forged = payloads.heartbeat("T-0002", 1, [OK], valid_for_s=60,
                                            outbox=payloads.OutboxHealth())
                assert one.publish(two.topics.heartbeat, forged) == "Not authorized"
                wait_until(done(c, 1))
                assert [v.terminal_id for v in store.terminals()] == ["T-0001"]
            finally:
                one.close()
                two.close()

        # Commands: the reply goes to <prefix>/T-0001/reply/<token>, inside T-0001's own tree.
        agent = Responder(b, prefix, "T-0001", agent_answers("T-0001"), password="pw-1")
        try:
            secret.chmod(0o644)
            flags = ["--host", b.host, "--port", str(b.port), "--no-tls", "--prefix", prefix,
                     "--username", "backend", "--password-file", str(secret)]
            assert main(["fleet", "command", "T-0001", "ping", *flags]) == 0
            out = capsys.readouterr()
            assert json.loads(out.out)["result"]["pong"] is True
            assert f"{secret} is readable by every user" in out.err
            # Another terminal cannot answer in T-0001's name.
            intruder = FakeTerminal(b, prefix, "T-0002", password="pw-2")
            try:
                topic = Commander(backend, prefix=prefix).reply_topic("T-0001")
                assert intruder.publish(topic, b"{}") == "Not authorized"
            finally:
                intruder.close()
        finally:
            agent.close()


def test_a_message_the_store_could_not_keep_is_not_acknowledged(settings, prefix, terminals,
                                                                tmp_path):
    path = tmp_path / "fleet.sqlite"
    session = {"client_id": f"fleet-{prefix.split('/')[0]}", "session_expiry_s": 60}
    broken = Store(path)
    with Consumer(broken, settings, prefix=prefix, **session) as first:
        broken.close()  # the database goes away under the running consumer
        t = terminals("T-0001")
        t.heartbeat(1)
        assert first.failed.wait(5)
        assert "closed database" in str(first.failure)
    # Same session again: the broker still owes the unacknowledged message and redelivers it.
    with Store(path) as store, Consumer(store, settings, prefix=prefix, **session) as second:
        wait_until(done(second, 1))
        assert [h["seq"] for h in store.history("T-0001")] == [1]


def test_listen_exits_69_when_the_broker_is_unreachable(tmp_path, capsys):
    assert main(["fleet", "listen", "--db", str(tmp_path / "f.sqlite"), "--host", "127.0.0.1",
                 "--port", "1", "--no-tls"]) == 69
    assert "mqtt://127.0.0.1:1" in capsys.readouterr().err
    assert main(["fleet", "listen", "--db", str(tmp_path / "f.sqlite"), "--share", "a+b",
                 "--no-tls"]) == 64


def test_config_file_mqtt_section_gives_the_broker_defaults(agent, broker, prefix, tmp_path,
                                                            capsys):
    conf = tmp_path / "posdiag.toml"
    conf.write_text(f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntls = false\n'
                    f'topic_prefix = "{prefix}"\n')
    assert main(["fleet", "command", "T-0001", "ping", "--config", str(conf)]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    # Flags win over the file.
    assert main(["fleet", "command", "T-0001", "ping", "--config", str(conf),
                 "--port", "1"]) == 69
    conf.write_text("[mqtt]\nport = 0\n")
    assert main(["fleet", "command", "T-0001", "ping", "--config", str(conf)]) == 78
