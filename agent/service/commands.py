"""Remote commands: an allowlist of verbs, payloads checked before anything runs.

Anything can arrive on ``cmd/#``: oversized, binary, deeply nested, unknown verbs. Each gets an
error reply (``posdiag.reply/1``) and the agent carries on. The checks here implement
``posdiag/schema/command.json`` plus which keys each verb takes (tests hold the two together).
A Response Topic that is not a topic name (empty, a wildcard, NUL) cannot be answered at all:
such a command is refused first, with ``answerable`` false, so the daemon counts it instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from posdiag.errors import CommandRejected

__all__ = ["Command", "CommandRejected", "parse", "shown", "topic_name_problem"]

MAX_PAYLOAD = 4096
VERBS: Mapping[str, frozenset[str]] = {
    "ping": frozenset(),
    "selftest": frozenset({"checks"}),
    "report": frozenset(),
    "diagnose": frozenset({"symptom", "lang"}),
    "history": frozenset({"since", "at", "minutes"}),
}
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_SYMPTOM_CHARS = 64  # an id, or a name or alias in any language (刷卡失败): resolved later
MAX_TOPIC_BYTES = 65535  # MQTT's two-byte length prefix
SHOWN_CHARS = 40


@dataclass(frozen=True)
class Command:
    verb: str
    args: Mapping[str, Any] = field(default_factory=dict)
    response_topic: str | None = None
    correlation: bytes | None = None
    ticket: int | None = None  # the MQTT link's handle for acknowledging this delivery


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` for a message or a log line: printable characters as they are (a Chinese verb
    stays readable), others and backslashes escaped, long text cut with an ellipsis."""
    out = "".join(c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode()
                  for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


def topic_name_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to (MQTT 5 §4.7), or None."""
    if not topic:
        return "it is empty"
    if "+" in topic or "#" in topic:
        return "it contains a wildcard (+ or #)"
    if "\0" in topic:
        return "it contains a NUL character"
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return f"it is longer than {MAX_TOPIC_BYTES} bytes"
    return None


def parse(verb: str, payload: bytes, *, response_topic: str | None = None,
          correlation: bytes | None = None, known_checks: frozenset[str] = frozenset(),
          verbs: Mapping[str, frozenset[str]] = VERBS, ticket: int | None = None) -> Command:
    """Validate one incoming command; raise ``CommandRejected`` with a reply code otherwise."""
    if response_topic is not None:
        problem = topic_name_problem(response_topic)
        if problem:
            raise CommandRejected("bad_response_topic", f"response topic "
                                  f"'{shown(response_topic, 120)}' cannot be answered: {problem}",
                                  answerable=False)
    if verb not in verbs:
        raise CommandRejected("unknown_verb", f"unknown command '{shown(verb)}'; allowed: "
                                              f"{', '.join(sorted(verbs))}")
    if len(payload) > MAX_PAYLOAD:
        raise CommandRejected("too_large", f"payload of {len(payload)} bytes; at most "
                                           f"{MAX_PAYLOAD} bytes are accepted")
    args = _decode(payload)
    allowed = verbs[verb]
    extra = sorted(set(args) - allowed)
    if extra:
        raise CommandRejected("bad_payload", f"{verb} takes "
                              f"{', '.join(sorted(allowed)) or 'no arguments'}; "
                              f"unexpected: {', '.join(map(str, extra))[:200]}")
    if "checks" in args:
        checks = args["checks"]
        if (not isinstance(checks, list) or len(checks) > 32
                or not all(isinstance(c, str) and _CODE.match(c) for c in checks)
                or len(set(checks)) != len(checks)):
            raise CommandRejected("bad_payload", "checks must be a list of up to 32 distinct "
                                                 "check names")
        unknown = [c for c in checks if known_checks and c not in known_checks]
        if unknown:
            raise CommandRejected("unknown_check", f"unknown check {', '.join(unknown)}; known: "
                                                   f"{', '.join(sorted(known_checks))}")
    if "symptom" in args and not (isinstance(args["symptom"], str)
                                  and 1 <= len(args["symptom"]) <= MAX_SYMPTOM_CHARS):
        raise CommandRejected("bad_payload", "symptom must be a symptom id or name of 1-"
                                             f"{MAX_SYMPTOM_CHARS} characters, like "
                                             "'card-read-failure' or '刷卡失败'")
    if "lang" in args and args["lang"] not in ("en", "zh_CN"):
        raise CommandRejected("bad_payload", "lang must be 'en' or 'zh_CN'")
    if verb == "history":
        _check_history(args)
    if verb == "diagnose" and "symptom" not in args:
        raise CommandRejected("bad_payload", "diagnose needs a symptom")
    return Command(verb, args, response_topic, correlation, ticket)


def _check_history(args: Mapping[str, Any]) -> None:
    """``since`` (a duration like "2h" or an ISO time), ``at`` (HH:MM or ISO, the terminal's
    local time) and ``minutes`` (1-180: one reply stays small on a metered link)."""
    import time

    from posdiag.errors import UsageError
    from posdiag.history import MAX_REMOTE_MINUTES, parse_at, parse_duration

    if "since" in args and "at" in args:
        raise CommandRejected("bad_payload", "history takes since or at, not both")
    minutes = args.get("minutes", 60)
    if isinstance(minutes, bool) or not isinstance(minutes, int) \
            or not 1 <= minutes <= MAX_REMOTE_MINUTES:
        raise CommandRejected("bad_payload", f"minutes must be a whole number 1-"
                                             f"{MAX_REMOTE_MINUTES}")
    for key in ("since", "at"):
        value = args.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) > 40:
            raise CommandRejected("bad_payload", f"{key} must be a short text like "
                                                 f"{'2h' if key == 'since' else '14:05'} or an "
                                                 "ISO time")
        try:
            if key == "at":
                parse_at(value, time.time())
            else:
                try:
                    parse_duration(value)
                except UsageError:
                    parse_at(value, time.time())
        except UsageError as e:
            raise CommandRejected("bad_payload", f"{key}: {e}".replace("--since ", "")
                                  .replace("--at ", "")) from None


def _decode(payload: bytes) -> dict[str, Any]:
    if not payload.strip():
        return {}
    try:
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise CommandRejected("bad_payload", "payload is not UTF-8 text") from None
    except RecursionError:
        raise CommandRejected("bad_payload", "payload is nested too deeply") from None
    except ValueError as e:
        raise CommandRejected("bad_payload", f"payload is not JSON: {e}"[:200]) from None
    if not isinstance(doc, dict):
        raise CommandRejected("bad_payload", "payload must be a JSON object")
    return doc
