"""docs/asyncapi.yaml is what tools/asyncapi.py makes from the schemas: it cannot drift."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from posdiag import schemas
from posdiag.config import MqttConfig
from posdiag.service.commands import VERBS

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "asyncapi.py"


def _tool():
    spec = importlib.util.spec_from_file_location("asyncapi_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_document_is_up_to_date():
    out = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_the_check_fails_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]):
    tool = _tool()
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(tool.generate().replace("keepAlive: 540", "keepAlive: 300"), "utf-8")
    monkeypatch.setattr(tool, "DOC", stale)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--check"]) == 1
    assert "make asyncapi" in capsys.readouterr().err


def test_references_become_local_and_others_are_refused():
    tool = _tool()
    assert tool.local("urn:posdiag:schema:report:1#/$defs/code", "event") == \
        "#/components/schemas/report/$defs/code"
    assert tool.local("#/$defs/step", "diagnosis") == "#/components/schemas/diagnosis/$defs/step"
    with pytest.raises(SystemExit, match="cannot resolve"):
        tool.local("https://example.com/x.json", "report")
    with pytest.raises(SystemExit, match="draft-07"):
        tool.inline({"$ref": "#/$defs/code", "minLength": 1}, "report")


def test_the_documented_keepalive_is_the_agents_default():
    text = (ROOT / "docs" / "asyncapi.yaml").read_text("utf-8")
    assert text.count(f"keepAlive: {MqttConfig().keepalive_s}\n") == 2  # TLS and plain server
    assert "keepAlive" not in text.replace(f"keepAlive: {MqttConfig().keepalive_s}\n", "")


def test_command_json_has_each_verbs_arguments():
    defs = schemas.load("command")["$defs"]
    assert set(defs) == set(VERBS)
    for verb, allowed in VERBS.items():
        assert set(defs[verb].get("properties", {})) == allowed, verb
        assert defs[verb]["additionalProperties"] is False
    assert defs["diagnose"]["required"] == ["symptom"]


@pytest.mark.parametrize("symptom", ["打印机", "刷卡失败", "card-read-failure", "Receipt"])
def test_a_symptom_name_in_any_language_passes_the_schema(symptom: str):
    schemas.validate("command", {"symptom": symptom, "lang": "zh_CN"})


def test_the_documented_limits_and_restart_keys_are_the_agents():
    from posdiag.service.commands import MAX_PAYLOAD
    from posdiag.service.daemon import RESTART_KEYS
    from posdiag.service.mqtt import COMMAND_WINDOW

    text = " ".join((ROOT / "docs" / "asyncapi.yaml").read_text("utf-8").split())
    assert f"Receive Maximum {COMMAND_WINDOW}:" in text
    assert f"at most {MAX_PAYLOAD} bytes" in text
    keys = ", ".join(f"`{k}`" for k in RESTART_KEYS[:-1]) + f" and `{RESTART_KEYS[-1]}`"
    assert f"{keys} are read at start only" in text
