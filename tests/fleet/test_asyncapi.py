"""docs/asyncapi.yaml matches the code: topics, inlined schemas, QoS/retain, references, verbs.

PyYAML is not a dependency, so the document is read with a small reader for the block-style
subset it is written in (mappings, lists, quoted and plain scalars, ``|`` blocks); the reader
refuses anything else, so the document stays in that subset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from posdiag import schemas
from posdiag.fleet.command import VERBS
from posdiag.service import payloads

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOC = DOCS / "asyncapi.yaml"
_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- )?(?P<key>[A-Za-z0-9_$][\w$.-]*):"
                  r"(?: (?P<value>.*))?$")
_ITEM = re.compile(r"^(?P<indent> *)- (?P<value>.+)$")


def _scalar(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if raw.startswith(("{", "[", "&", "*", "!")):
        raise ValueError(f"flow or tag syntax is outside the supported subset: {raw!r}")
    return raw


def read(text: str) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """Mapping paths (``a/b/c``) with their scalar values (None for a mapping or block), and
    the scalar items of each list. List elements that are mappings get an index in the path."""
    values: dict[str, str | None] = {}
    lists: dict[str, list[str]] = {}
    stack: list[tuple[int, str]] = []  # (indent of the key, path segment)
    counters: dict[str, int] = {}
    block_indent: int | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if "\t" in line:
            raise ValueError(f"line {number}: tab")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if indent > block_indent:
                continue  # text of a | block
            block_indent = None
        m = _KEY.match(line)
        if m is None:
            item = _ITEM.match(line)
            if item is None:
                raise ValueError(f"line {number}: not in the supported subset: {line!r}")
            while stack and stack[-1][0] >= indent:
                stack.pop()
            lists.setdefault("/".join(s for _, s in stack), []).append(_scalar(item["value"]))
            continue
        key_indent = indent + (2 if m["dash"] else 0)
        while stack and stack[-1][0] >= (indent if m["dash"] else key_indent):
            stack.pop()
        if m["dash"]:  # a mapping inside a list: give the element an index
            parent = "/".join(s for _, s in stack)
            counters[parent] = counters.get(parent, -1) + 1
            stack.append((indent, str(counters[parent])))
        path = "/".join([*(s for _, s in stack), m["key"]])
        if path in values:
            raise ValueError(f"line {number}: duplicate key {path}")
        value = m["value"]
        if value in (None, ""):
            values[path] = None
        elif value.strip() in ("|", ">"):
            values[path] = None
            block_indent = key_indent
        else:
            values[path] = _scalar(value)
        stack.append((key_indent, m["key"]))
    return values, lists


@pytest.fixture(scope="module")
def doc() -> tuple[dict[str, str | None], dict[str, list[str]]]:
    return read(DOC.read_text(encoding="utf-8"))


def test_reader_rejects_what_it_does_not_understand():
    with pytest.raises(ValueError, match="flow"):
        read("a: {b: 1}\n")
    with pytest.raises(ValueError, match="duplicate"):
        read("a:\n  b: 1\n  b: 2\n")
    values, lists = read("a:\n  - x: 1\n    y: |\n      text: not a key\n  - x: 2\nb:\n  - p\n")
    assert values == {"a": None, "a/0/x": "1", "a/0/y": None, "a/1/x": "2", "b": None}
    assert lists == {"b": ["p"]}


def test_it_is_an_asyncapi_3_document(doc):
    values, _ = doc
    assert values["asyncapi"] == "3.0.0"
    assert values["servers/production/protocolVersion"] == "5"
    assert values["defaultContentType"] == "application/json"


def test_every_topic_of_the_agent_is_a_channel(doc):
    values, _ = doc
    addresses = {v for k, v in values.items() if re.fullmatch(r"channels/\w+/address", k)}
    t = payloads.Topics("posdiag/v1", "{terminalId}")
    expected = {t.status, t.report, t.heartbeat, t.event, t.commands.replace("+", "{verb}")}
    assert expected <= addresses
    assert values["channels/reply/address"] == "null"  # dynamic: the Response Topic


def test_every_payload_schema_is_inlined_and_nothing_refers_outside(doc):
    values, _ = doc
    refs = {v for k, v in values.items() if k.endswith("$ref")}
    assert all(ref.startswith("#/") for ref in refs), sorted(refs)  # stock tools resolve these
    # Every MQTT payload, and the diagnosis a 'diagnose' reply carries, from agent/schema/.
    wanted = {*schemas.NAMES, "diagnosis"}
    inlined = {k.split("/")[2] for k in values if re.fullmatch(r"components/schemas/\w+", k)}
    assert inlined == wanted
    assert not any(k.endswith(("$id", "$schema")) for k in values)
    for name in wanted:
        assert values[f"components/schemas/{name}/title"] == schemas.load(name)["title"]
    payloads_of = {values[k] for k in values
                   if re.fullmatch(r"components/messages/\w+/payload/\$ref", k)}
    assert {f"#/components/schemas/{n}" for n in wanted - {"command", "diagnosis"}} \
        <= payloads_of
    assert {f"#/components/schemas/command/$defs/{verb}" for verb in VERBS} <= payloads_of


def test_every_internal_reference_resolves(doc):
    values, _ = doc
    refs = {v for k, v in values.items() if k.endswith("$ref") and v and v.startswith("#/")}
    assert refs
    for ref in refs:
        assert ref[2:] in values, f"{ref} points nowhere"


def test_qos_and_retain_follow_the_contract(doc):
    values, _ = doc
    ops = {k.split("/")[1] for k in values if k.startswith("operations/")}
    assert ops == {"sendStatus", "sendReport", "sendHeartbeat", "sendEvent", "receiveCommand"}
    for op in ops:
        assert values[f"operations/{op}/bindings/mqtt/qos"] == "1"
        retain = values[f"operations/{op}/bindings/mqtt/retain"]
        assert retain == ("true" if op == "sendStatus" else "false"), op
    assert values["servers/production/bindings/mqtt/lastWill/retain"] == "true"
    assert values["operations/receiveCommand/reply/address/location"] == \
        "$message.header#/responseTopic"
    channels = {k.split("/")[1] for k in values if re.fullmatch(r"channels/\w+", k)}
    used = {values[k] for k in values if re.fullmatch(r"operations/\w+(/reply)?/channel/\$ref", k)}
    assert used == {f"#/channels/{c}" for c in channels}


def test_the_verbs_are_the_ones_the_agent_answers(doc):
    _, lists = doc
    assert lists["components/parameters/verb/enum"] == list(VERBS)
