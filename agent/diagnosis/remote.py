"""The MQTT ``diagnose`` command: the same document as ``posdiag diagnose --json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from posdiag.checks.base import AnySpec
from posdiag.config import Config
from posdiag.diagnosis.document import document
from posdiag.diagnosis.engine import UnknownSymptom, diagnose
from posdiag.i18n import Texts, resolve_lang
from posdiag.paths import Roots


class Agent(Protocol):
    """What the daemon offers a command: its registry, config and kernel roots."""

    specs: tuple[AnySpec, ...]
    config: Config
    roots: Roots


def diagnose_remote(daemon: Agent, args: Mapping[str, Any]) -> dict[str, Any]:
    """Run the diagnosis ``args`` ask for (``symptom``; ``lang`` optional, else the config's,
    else English — a service has no user locale). Raises ``CommandRejected`` with
    ``unknown_symptom`` for a symptom the catalogue does not know."""
    from posdiag.errors import CommandRejected

    symptom = str(args.get("symptom", ""))
    lang = resolve_lang(args.get("lang"), daemon.config.terminal.lang, env={})
    try:
        d = diagnose(symptom, daemon.specs, daemon.config, daemon.roots)
    except UnknownSymptom as e:
        raise CommandRejected("unknown_symptom", str(e)) from None
    return document(d, Texts(lang), terminal_id=daemon.config.terminal_id,
                    boot_id=getattr(daemon, "boot_id", None))
