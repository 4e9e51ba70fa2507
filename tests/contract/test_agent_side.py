"""What docs/asyncapi.yaml promises about the agent, checked on the agent itself.

Found this way: a remote ``diagnose`` with a Chinese symptom name (打印机, 刷卡失败) was refused
``bad_payload`` (issue 16/2), and the document's plain server said nothing of a warning.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from broker import Broker
from test_stock_tools import node

from posdiag import schemas
from posdiag.config import MqttConfig
from posdiag.service import payloads
from posdiag.service.commands import parse
from posdiag.service.daemon import Daemon
from posdiag.service.mqtt import Backoff, Link
from posdiag.service.outbox import Outbox

FIX = Path(__file__).resolve().parents[2] / "hardware-fixtures"
TREES = {"sysfs": str(FIX / "sysfs/battery-discharging-low"),
         "procfs": str(FIX / "procfs/healthy-terminal"),
         "rootfs": str(FIX / "rootfs/healthy-terminal")}


@pytest.mark.parametrize(("name", "symptom_id"), [("打印机", "printer"),
                                                  ("刷卡失败", "card-read-failure")])
def test_a_remote_diagnose_by_chinese_name_is_answered(tmp_path: Path, name: str,
                                                       symptom_id: str) -> None:
    cfg = tmp_path / "posdiag.toml"
    cfg.write_text(f'[terminal]\nid = "T-0001"\n[outbox]\npath = "{tmp_path / "o.sqlite"}"\n')
    daemon = Daemon(cfg, dict(TREES))
    wire = json.dumps({"symptom": name, "lang": "zh_CN"}, ensure_ascii=False).encode()
    cmd = parse("diagnose", wire, response_topic="posdiag/v1/T-0001/reply/t",
                known_checks=frozenset(s.name for s in daemon.specs))
    reply = payloads.reply("T-0001", "diagnose", result=daemon._diagnose(cmd))
    schemas.validate("reply", reply)
    assert reply["result"]["symptom"]["id"] == symptom_id
    checked = node("ajv.mjs", [{"message": "commandDiagnose", "payload": json.loads(wire)},
                               {"message": "reply", "payload": reply}])
    assert [r["valid"] for r in checked["results"]] == [True, True]


def test_the_agent_warns_when_it_connects_without_tls(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="posdiag.service.mqtt")
    outbox = Outbox(tmp_path / "outbox.sqlite", 1 << 20)
    with Broker(tmp_path) as broker:
        link = Link(MqttConfig(host="127.0.0.1", port=broker.port, tls=False, keepalive_s=10),
                    payloads.Topics("posdiag/v1", "T-0001"), outbox, client_id="posdiag-T-0001",
                    will=b"{}", birth=lambda: b"{}", backoff=Backoff(base_s=0.05, cap_s=0.4))
        link.start()
        try:
            deadline = time.monotonic() + 10
            while not link.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert link.connected
        finally:
            link.stop(None, timeout_s=1.0)
            outbox.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "without TLS" in r.getMessage()]
    assert len(warnings) == 1 and "tls = false" in warnings[0].getMessage()
