"""Config loading: drop-in merge, strict validation, messages that name file and key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from posdiag import config as c
from posdiag.errors import ConfigError


@dataclass(frozen=True)
class DemoTarget:
    name: str
    host: str
    port: int = c.rule(c.port_number, 443)


@dataclass(frozen=True)
class DemoConfig(c.CheckConfig):
    threshold: float = c.rule(c.between(0, 100), 20.0)
    mode: Literal["a", "b"] = "a"
    targets: tuple[DemoTarget, ...] = ()
    minimum: Mapping[str, str] = field(default_factory=dict)

    def validate(self):
        if self.threshold == 13:
            yield "threshold", "13 is unlucky"


TYPES = {"demo": DemoConfig}


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_defaults_without_any_file(tmp_path):
    cfg = c.load(None, TYPES) if not c.DEFAULT_CONFIG.exists() else c.build({}, TYPES)
    assert cfg.paths.sysfs == "/sys"
    assert cfg.mqtt.topic_prefix == "posdiag/v1"
    assert isinstance(cfg.check("demo"), DemoConfig)
    assert cfg.terminal_id.startswith("T-")


def test_full_example_parses(tmp_path):
    f = write(tmp_path / "posdiag.toml", """
[terminal]
id = "T-0001"
lang = "zh_CN"
[paths]
sysfs = "/srv/sys"
[mqtt]
host = "broker.example"
port = 8883
keepalive_s = 60
[checks.demo]
enabled = false
threshold = 5
mode = "b"
[[checks.demo.targets]]
name = "acq"
host = "acq.example"
[checks.demo.minimum]
openssl = "3.0.11"
""")
    cfg = c.load(f, TYPES)
    d = cfg.check("demo")
    assert cfg.terminal_id == "T-0001" and cfg.terminal.lang == "zh_CN"
    assert cfg.paths.sysfs == "/srv/sys" and cfg.paths.procfs == "/proc"
    assert d.enabled is False and d.threshold == 5.0 and isinstance(d.threshold, float)
    assert d.targets == (DemoTarget("acq", "acq.example", 443),)
    assert d.minimum == {"openssl": "3.0.11"}
    assert cfg.files == (str(f),)


def test_dropins_merge_in_order_and_arrays_replace(tmp_path):
    main = write(tmp_path / "posdiag.toml", """
[terminal]
id = "T-0001"
[checks.demo]
threshold = 10
[[checks.demo.targets]]
name = "one"
host = "one.example"
""")
    write(tmp_path / "conf.d/20-b.toml", "[checks.demo]\nthreshold = 30\n")
    write(tmp_path / "conf.d/10-a.toml", """
[checks.demo]
threshold = 20
mode = "b"
[[checks.demo.targets]]
name = "two"
host = "two.example"
""")
    write(tmp_path / "conf.d/ignored.txt", "not toml at all [[[")
    cfg = c.load(main, TYPES)
    d = cfg.check("demo")
    assert d.threshold == 30.0  # 20-b.toml comes last
    assert d.mode == "b"
    assert [t.name for t in d.targets] == ["two"]
    assert cfg.terminal_id == "T-0001"
    assert len(cfg.files) == 3


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[terminal]\nidd = 'x'\n", "terminal.idd", "unknown key"),
    ("[nonsense]\nx = 1\n", "nonsense", "unknown key"),
    ("[checks.nosuch]\nenabled = true\n", "checks.nosuch", "unknown check"),
    ("[checks.demo]\nthreshold = 'high'\n", "checks.demo.threshold", "must be a number"),
    ("[checks.demo]\nthreshold = true\n", "checks.demo.threshold", "must be a number"),
    ("[checks.demo]\nthreshold = 101\n", "checks.demo.threshold", "between 0 and 100"),
    ("[checks.demo]\nthreshold = 13\n", "checks.demo.threshold", "unlucky"),
    ("[checks.demo]\nmode = 'c'\n", "checks.demo.mode", "must be one of"),
    ("[checks.demo]\nenabled = 'yes'\n", "checks.demo.enabled", "true or false"),
    ("[mqtt]\nport = 70000\n", "mqtt.port", "1-65535"),
    ("[mqtt]\nport = 1.5\n", "mqtt.port", "must be an integer"),
    ("[mqtt]\ntopic_prefix = 'a/#'\n", "mqtt.topic_prefix", "not a valid topic prefix"),
    ("[paths]\nsysfs = 'relative/sys'\n", "paths.sysfs", "absolute path"),
    ("[terminal]\nid = 'T/1'\n", "terminal.id", "not a valid terminal id"),
    ("terminal = 5\n", "terminal", "must be a table"),
    ("[[checks.demo.targets]]\nname = 'x'\nhost = 'h'\nport = 0\n",
     "checks.demo.targets[0].port", "1-65535"),
    ("[[checks.demo.targets]]\nname = 'x'\n", "checks.demo.targets[0]", "missing"),
    ("[checks.demo]\ntargets = 'x'\n", "checks.demo.targets", "must be an array"),
    ("[checks.demo.minimum]\nopenssl = 3\n", "checks.demo.minimum.openssl", "must be a string"),
])
def test_bad_values_name_file_key_and_problem(tmp_path, text, key, problem):
    f = write(tmp_path / "posdiag.toml", text)
    with pytest.raises(ConfigError) as e:
        c.load(f, TYPES)
    assert e.value.file == str(f)
    assert e.value.key == key
    assert problem in e.value.problem
    assert str(e.value).startswith(f"{f}: {key}: ")


def test_error_names_the_dropin_that_set_the_key(tmp_path):
    main = write(tmp_path / "posdiag.toml", "[checks.demo]\nthreshold = 10\n")
    bad = write(tmp_path / "conf.d/50-site.toml", "[checks.demo]\nthreshold = 500\n")
    with pytest.raises(ConfigError) as e:
        c.load(main, TYPES)
    assert e.value.file == str(bad)


@pytest.mark.parametrize(("content", "problem"), [
    (b"[terminal\nid=1", "not valid TOML"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"key = = 1", "not valid TOML"),
])
def test_garbage_files(tmp_path, content, problem):
    f = tmp_path / "posdiag.toml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        c.load(f, TYPES)
    assert problem in str(e.value) and str(f) in str(e.value)


def test_missing_named_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        c.load(tmp_path / "nope.toml", TYPES)


def test_directory_as_config(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        c.load(tmp_path, TYPES)


def test_effective_config_round_trips_through_toml(tmp_path):
    import tomllib

    f = write(tmp_path / "posdiag.toml", """
[terminal]
id = "T-9"
[[checks.demo.targets]]
name = "acq \\"main\\""
host = "acq.example"
[checks.demo.minimum]
"lib.so" = "1:2.0~rc1"
""")
    cfg = c.load(f, TYPES)
    text = c.to_toml(c.as_dict(cfg))
    again = c.build(tomllib.loads(text), TYPES)
    assert again.check("demo") == cfg.check("demo")
    assert again.terminal == cfg.terminal and again.mqtt == cfg.mqtt


def test_secret_file_warning(tmp_path):
    key = tmp_path / "client.key"
    key.write_text("k")
    key.chmod(0o644)
    cfg = c.build({"mqtt": {"key_file": str(key), "cert_file": str(key)}}, TYPES)
    (w,) = c.secret_file_warnings(cfg)
    assert "readable by every user" in w and str(key) in w
    key.chmod(0o600)
    assert c.secret_file_warnings(cfg) == []
