"""The annotated sample config parses, and documents every key the agent accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from posdiag import config as c
from posdiag.checks import REGISTRY

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "posdiag.sample.toml"
TYPES = {s.name: s.config_type for s in REGISTRY}


def uncommented(text: str) -> str:
    """Turn '# key = value' and '# [table]' lines into live TOML; prose comments stay comments."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^# (\[\[?[a-z_.]+\]\]?(?:\s+#.*)?|[a-z_]+ = .*)$", line)
        out.append(m.group(1) if m else line)
    return "\n".join(out)


def key_paths(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v and k not in ("minimum", "recommended"):
            yield from key_paths(v, (*prefix, k))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                yield from key_paths(item, (*prefix, k))
        else:
            yield (*prefix, k)


def test_sample_as_shipped_parses(tmp_path):
    f = tmp_path / "posdiag.toml"
    f.write_text(SAMPLE.read_text())
    cfg = c.load(f, TYPES)
    assert cfg.paths.sysfs == "/sys"


def test_sample_with_every_example_enabled_parses(tmp_path):
    f = tmp_path / "posdiag.toml"
    f.write_text(uncommented(SAMPLE.read_text()))
    cfg = c.load(f, TYPES)
    assert cfg.terminal_id == "T-0001"
    assert cfg.check("payment_host").targets[0].name == "acquirer"
    assert cfg.check("software").minimum["openssl"] == "3.0.11-1~deb12u2"


def test_sample_documents_every_key():
    documented = tomllib.loads(uncommented(SAMPLE.read_text()))
    have = set(key_paths(documented))
    defaults = c.as_dict(c.build({}, TYPES))
    # a target's keys are documented through the example target
    target_keys = {("checks", "payment_host", "targets", k) for k in
                   c.as_dict(c.build(documented, TYPES))["checks"]["payment_host"]["targets"][0]}
    missing = [".".join(p) for p in key_paths(defaults) if p not in have
               and p != ("checks", "payment_host", "targets")]
    missing += [".".join(p) for p in target_keys if p not in have]
    assert not missing, f"not in docs/posdiag.sample.toml: {missing}"
