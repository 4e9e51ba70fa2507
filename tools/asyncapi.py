"""Generate docs/asyncapi.yaml: tools/asyncapi.template.yaml with agent/schema/*.json inlined.

The JSON Schemas stay the source of truth (the agent validates with them). Stock tools (the
AsyncAPI parser, ajv, code generators) cannot open their ``urn:posdiag:schema:…`` references,
so each schema goes under ``components/schemas/<name>`` with every reference rewritten to a
local ``#/components/schemas/…`` pointer and no ``$id``. ``--check`` exits 1 when the document
differs from what would be generated (``make asyncapi`` rewrites it).

Usage: python tools/asyncapi.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "agent" / "schema"
TEMPLATE = ROOT / "tools" / "asyncapi.template.yaml"
DOC = ROOT / "docs" / "asyncapi.yaml"
# Every MQTT payload, and the diagnosis a 'diagnose' reply carries.
NAMES = ("status", "report", "heartbeat", "event", "command", "reply", "diagnosis")
MARK = "  # @schemas@\n"
URN = "urn:posdiag:schema:"
# Beside a $ref, draft-07 readers (AsyncAPI schema) ignore everything: only annotations may be.
ANNOTATIONS = {"$ref", "description", "title", "examples"}


def local(ref: str, name: str) -> str:
    """A schema reference as a pointer inside the AsyncAPI document."""
    if ref.startswith("#"):
        target, pointer = name, ref[1:]
    elif ref.startswith(URN):
        urn, _, pointer = ref.partition("#")
        target = urn[len(URN):].rsplit(":", 1)[0]
        if target not in NAMES:
            raise SystemExit(f"{name}: reference to a schema that is not inlined: {ref}")
    else:
        raise SystemExit(f"{name}: reference a stock tool cannot resolve: {ref}")
    return f"#/components/schemas/{target}{pointer}"


def inline(node: Any, name: str) -> Any:
    if isinstance(node, dict):
        if "$ref" in node and set(node) - ANNOTATIONS:
            raise SystemExit(f"{name}: $ref beside {sorted(set(node) - ANNOTATIONS)} "
                             "means something else to draft-07 readers")
        return {k: local(v, name) if k == "$ref" else inline(v, name)
                for k, v in node.items() if k not in ("$id", "$schema")}
    if isinstance(node, list):
        return [inline(v, name) for v in node]
    return node


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def block(node: Any, indent: int) -> list[str]:
    """Block-style YAML (no flow collections: the repository's reader refuses them)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                if not value:
                    raise SystemExit(f"empty {type(value).__name__} at {key!r}")
                lines.append(f"{pad}{key}:")
                lines += block(value, indent + 2)
            else:
                lines.append(f"{pad}{key}: {scalar(value)}")
    else:
        for item in node:
            if isinstance(item, dict):
                inner = block(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            elif isinstance(item, list):
                raise SystemExit("a list inside a list")
            else:
                lines.append(f"{pad}- {scalar(item)}")
    return lines


def generate() -> str:
    template = TEMPLATE.read_text(encoding="utf-8")
    if template.count(MARK) != 1:
        raise SystemExit(f"{TEMPLATE}: needs exactly one line {MARK.strip()!r}")
    schemas = {name: inline(json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8")), name)
               for name in NAMES}
    body = "\n".join(block({"schemas": schemas}, 2)) + "\n"
    return template.replace(MARK, body).replace("@RESTART_KEYS@", restart_keys())


def restart_keys() -> str:
    """The daemon's own list, so the document cannot name fewer keys than a reload refuses."""
    from posdiag.service.daemon import RESTART_KEYS

    keys = [f"`{k}`" for k in RESTART_KEYS]
    return ", ".join(keys[:-1]) + f" and {keys[-1]}" if len(keys) > 1 else keys[0]


def main(argv: list[str]) -> int:
    text = generate()
    if argv == ["--check"]:
        if DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is out of date with agent/schema/ or the template; "
                  "run: make asyncapi", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
