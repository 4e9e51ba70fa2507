"""docs/asyncapi.yaml as stock tools read it: the AsyncAPI parser, ajv and Modelina (a code
generator), run for real by Node (``make node`` installs the versions pinned in
tests/contract/node/package-lock.json).

Found this way (issue 15/8): the parser could not open the ``urn:posdiag:schema:…`` references,
and a client validating with the document's command schema still got ``bad_payload``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from posdiag import report
from posdiag.errors import CommandRejected
from posdiag.results import CheckResult, Status
from posdiag.service import payloads
from posdiag.service.commands import parse

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "contract" / "node"
DOC = ROOT / "docs" / "asyncapi.yaml"
NODE = "/usr/bin/node"
OUTBOX_ID = "0123456789abcdef"


def node(script: str, cases: Any = None) -> dict[str, Any]:
    if not (NODE_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the Node tools are not installed: run make node")
    out = subprocess.run([NODE, script, str(DOC)], cwd=NODE_DIR, capture_output=True,
                         text=True, input=json.dumps(cases) if cases is not None else "",
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


MESSAGES = {"status", "report", "heartbeat", "event", "reply", "commandPing",
            "commandSelftest", "commandReport", "commandDiagnose", "commandHistory"}


def test_the_stock_parser_reads_the_document_with_no_errors():
    assert "urn:" not in DOC.read_text(encoding="utf-8")
    parsed = node("parse.mjs")
    assert parsed["errors"] == []
    assert set(parsed["messages"]) == MESSAGES
    assert parsed["messages"]["commandDiagnose"]["required"] == ["symptom"]


def _results() -> list[CheckResult]:
    return [CheckResult("power", Status.OK, "ok", "on mains", {"battery_percent": 80}),
            CheckResult("network", Status.FAIL, "link_down", "no carrier on eth0",
                        {"link_up": False}, ("network.check_cable",))]


def _real_payloads() -> list[tuple[str, dict[str, Any]]]:
    """What the agent's own code builds, for every message."""
    tid = "T-0001"
    health = payloads.OutboxHealth(depth=3, bytes=2048, oldest_age_s=12.5, dropped_report=1,
                                   denied=2, store_failed_event=1, outbox_id=OUTBOX_ID)
    rep = report.build(_results(), terminal_id=tid, seq=7, valid_for_s=900,
                       boot_id="b1").to_dict()
    rep["outbox"] = health.to_dict()
    device = {"kind": "card_reader", "vendor": "IDTech", "model": None, "vid": "0acd",
              "pid": "3810", "devnode": "/dev/ttyACM0"}
    return [
        ("status", payloads.status(tid, "online", "b1", capabilities=["ping", "selftest"],
                                   checks=["power"], heartbeat_s=3600, outbox_id=OUTBOX_ID)),
        ("status", payloads.status(tid, "lost", None)),
        ("report", rep),
        ("heartbeat", payloads.heartbeat(tid, 8, _results(), valid_for_s=900, outbox=health,
                                         uptime_s=61.25)),
        ("event", payloads.status_changed(tid, 9, Status.OK, _results()[1])),
        ("event", payloads.device_event(tid, 10, True, device)),
        ("event", payloads.agent_started(tid, 11)),
        ("reply", payloads.reply(tid, "ping", result={"pong": True, "version": "1.0.0",
                                                      "uptime_s": 3.5})),
        ("reply", payloads.reply(tid, "selftest", result=rep)),
        ("reply", payloads.reply(tid, "diagnose", error=("unknown_symptom", "no such"))),
    ]


def _wrong_payloads() -> list[tuple[str, dict[str, Any]]]:
    good = dict(_real_payloads())
    hb = json.loads(json.dumps(good["heartbeat"]))
    hb["outbox"]["id"] = "not-hex"
    no_outbox = {k: v for k, v in good["heartbeat"].items() if k != "outbox"}
    rep = dict(good["report"], seq=-1)
    ping = payloads.reply("T-0001", "ping", result={"pong": True, "version": "1.0.0",
                                                   "uptime_s": -1})
    failed = payloads.reply("T-0001", "ping", error=("oops", "not a code"))
    return [("heartbeat", hb), ("heartbeat", no_outbox), ("report", rep), ("reply", ping),
            ("reply", failed), ("status", dict(good["status"], state="asleep")),
            ("event", {k: v for k, v in payloads.status_changed(
                "T-0001", 1, Status.OK, _results()[1]).items() if k != "reason"})]


def test_ajv_compiles_every_payload_and_takes_what_the_agent_sends():
    cases = [{"message": m, "payload": p} for m, p in _real_payloads()]
    out = node("ajv.mjs", cases)
    assert set(out["compiled"]) == MESSAGES
    bad = [(r["message"], r["errors"]) for r in out["results"] if not r["valid"]]
    assert bad == []


def test_ajv_rejects_what_breaks_the_contract():
    cases = [{"message": m, "payload": p} for m, p in _wrong_payloads()]
    out = node("ajv.mjs", cases)
    assert [r["valid"] for r in out["results"]] == [False] * len(cases)


# (verb, payload, accepted by the agent): every verb's required and allowed arguments.
COMMANDS = [
    ("ping", {}, True), ("ping", {"checks": ["power"]}, False),
    ("report", {}, True), ("report", {"symptom": "printer"}, False),
    ("selftest", {}, True), ("selftest", {"checks": ["power", "network"]}, True),
    ("selftest", {"checks": "power"}, False), ("selftest", {"checks": ["power", "power"]}, False),
    ("selftest", {"checks": ["Power"]}, False), ("selftest", {"lang": "en"}, False),
    ("diagnose", {}, False), ("diagnose", {"symptom": "card-read-failure"}, True),
    ("diagnose", {"symptom": "刷卡失败", "lang": "zh_CN"}, True),
    ("diagnose", {"symptom": "打印机"}, True), ("diagnose", {"symptom": ""}, False),
    ("diagnose", {"symptom": "卡" * 64}, True), ("diagnose", {"symptom": "卡" * 65}, False),
    ("diagnose", {"symptom": 5}, False), ("diagnose", {"symptom": "printer", "lang": "fr"}, False),
    ("diagnose", {"symptom": "printer", "checks": ["power"]}, False),
    ("history", {}, True), ("history", {"since": "2h", "minutes": 180}, True),
    ("history", {"at": "14:05", "minutes": 30}, True), ("history", {"minutes": 181}, False),
    ("history", {"minutes": 0}, False), ("history", {"symptom": "printer"}, False),
]
MESSAGE_OF = {"ping": "commandPing", "report": "commandReport", "selftest": "commandSelftest",
              "diagnose": "commandDiagnose", "history": "commandHistory"}


def _agent_accepts(verb: str, payload: dict[str, Any]) -> bool:
    try:
        parse(verb, payloads.dumps(payload), response_topic="posdiag/v1/T-0001/reply/x")
    except CommandRejected as e:
        assert e.code == "bad_payload", e
        return False
    return True


def test_the_per_verb_command_schemas_agree_with_the_agent():
    assert [_agent_accepts(v, p) for v, p, _ in COMMANDS] == [ok for _, _, ok in COMMANDS]
    out = node("ajv.mjs", [{"message": MESSAGE_OF[v], "payload": p} for v, p, _ in COMMANDS])
    got = [(v, p, r["valid"]) for (v, p, _), r in zip(COMMANDS, out["results"], strict=True)]
    assert got == COMMANDS


def test_a_code_generator_makes_models_of_every_payload():
    out = node("generate.mjs")
    code = out["code"]
    assert "PosdiagReport" in out["models"] and len(out["models"]) > 10
    # One field from each payload, as Modelina names them.
    for field in ("state: ", "generatedAt: ", "storeFailed?: ", "uptimeS?: ", "symptom: ",
                  "checks?: ", "ok: "):
        assert field in code, field
