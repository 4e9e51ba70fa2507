"""The JSON Schemas shipped in the package: the single source of truth for every payload.

``load(name)`` reads one; ``validator(name)`` builds a jsonschema validator with every shipped
schema registered, so cross-file references (``urn:posdiag:schema:report:1#/$defs/…``) resolve.
jsonschema is needed only by whoever validates (tests, the fleet consumer), not by the agent.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

NAMES = ("report", "status", "heartbeat", "event", "command", "reply", "diagnosis")
IDS = {name: f"posdiag.{name}/1" for name in NAMES}


@functools.cache
def load(name: str) -> dict[str, Any]:
    text = resources.files("posdiag.schema").joinpath(f"{name}.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def available() -> tuple[str, ...]:
    return tuple(sorted(p.name.removesuffix(".json")
                        for p in resources.files("posdiag.schema").iterdir()
                        if p.name.endswith(".json")))


@functools.cache
def validator(name: str) -> Any:
    """A Draft 2020-12 validator for ``name`` with all shipped schemas resolvable."""
    import jsonschema
    from referencing import Registry, Resource

    registry: Registry = Registry()
    for other in available():
        doc = load(other)
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
    return jsonschema.Draft202012Validator(load(name), registry=registry,
                                           format_checker=jsonschema.FormatChecker())


def validate(name: str, document: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` breaks schema ``name``."""
    validator(name).validate(document)
