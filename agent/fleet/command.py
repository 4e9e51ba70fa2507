"""Send a command to a terminal and wait for its reply (``posdiag fleet command``).

MQTT 5 request/response (spec §4.10): the command goes to ``<prefix>/<terminal_id>/cmd/<verb>``
with a Response Topic and random Correlation Data; the agent publishes its ``posdiag.reply/1``
to that Response Topic with the Correlation Data copied.

The Response Topic lies in the terminal's own tree, ``<prefix>/<terminal_id>/reply/<token>``,
with a random token per ``Commander`` (one subscription, ``<prefix>/+/reply/<token>``, made
before the first command, covers every terminal). So the per-terminal ACL that lets a terminal
use only ``<prefix>/<its id>/#`` also lets it answer, and the broker itself guarantees that a
reply on ``<prefix>/T-0001/reply/…`` was published by T-0001: a terminal cannot answer for
another. The Correlation Data (16 random bytes) tells concurrent commands apart.

The command carries a Message Expiry Interval equal to the wait: a terminal that comes back
later must not run a command nobody is waiting for any more. A PUBACK reason code tells at once
when the broker refused the command (0x87 not authorized) or nobody is subscribed to it (0x10,
the terminal is offline without a kept session), instead of a silent wait for the timeout.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from posdiag import schemas
from posdiag.fleet import connection
from posdiag.fleet.connection import BrokerSettings
from posdiag.fleet.consumer import DEFAULT_PREFIX, check_prefix, require_validator
from posdiag.fleet.errors import (
    BadReply,
    BrokerUnavailable,
    CommandTimeout,
    CommandUndelivered,
)
from posdiag.service import payloads

log = logging.getLogger(__name__)

VERBS = ("ping", "selftest", "report", "diagnose", "history")  # what the agent answers today
_VERB = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(frozen=True)
class Command:
    terminal_id: str
    verb: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TERMINAL_ID.match(self.terminal_id):
            raise ValueError(f"{self.terminal_id!r} is not a valid terminal id")
        if not _VERB.match(self.verb):
            raise ValueError(f"{self.verb!r} is not a valid command verb")
        require_validator()
        import jsonschema

        validator = schemas.validator("command")
        if self.verb in schemas.load("command")["$defs"]:  # a verb the agent knows: its own args
            validator = validator.evolve(
                schema={"$ref": f"{schemas.load('command')['$id']}#/$defs/{self.verb}"})
        try:
            validator.validate(dict(self.payload))
        except jsonschema.ValidationError as e:
            where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
            raise ValueError(f"command payload: {where}: {e.message}") from e
        object.__setattr__(self, "payload", MappingProxyType(dict(self.payload)))

    def topic(self, prefix: str) -> str:
        return f"{prefix}/{self.terminal_id}/cmd/{self.verb}"


class _Pending:
    def __init__(self, command: Command) -> None:
        self.command = command
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.error: Exception | None = None
        self.mid: int | None = None

    def finish(self, reply: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        if not self.done.is_set():
            self.reply, self.error = reply, error
            self.done.set()


def check_reply(command: Command, payload: bytes) -> dict[str, Any]:
    """The reply document, if it is a valid ``posdiag.reply/1`` answering ``command``."""
    import json

    import jsonschema

    try:
        doc = json.loads(payload.decode("utf-8"))
        schemas.validate("reply", doc)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadReply(f"not JSON: {e}", payload) from e
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise BadReply(f"{schemas.IDS['reply']}: {where}: {e.message}", payload) from e
    if doc["terminal_id"] != command.terminal_id:
        raise BadReply(f"from terminal {doc['terminal_id']!r}, not {command.terminal_id!r}",
                       payload)
    if doc["verb"] != command.verb:
        raise BadReply(f"answers verb {doc['verb']!r}, not {command.verb!r}", payload)
    return doc  # type: ignore[no-any-return]


class Commander:
    """One broker connection with a private reply topic; ``send`` may be called from several
    threads at once."""

    def __init__(self, settings: BrokerSettings, *, prefix: str = DEFAULT_PREFIX,
                 client_id: str | None = None) -> None:
        require_validator()
        self.settings = settings
        self.prefix = check_prefix(prefix)
        self.token = secrets.token_hex(8)
        self.reply_filter = f"{self.prefix}/+/reply/{self.token}"
        self.client_id = client_id or connection.client_id("command")
        self._pending: dict[bytes, _Pending] = {}
        self._by_mid: dict[int, _Pending] = {}
        self._early: dict[int, Any] = {}  # PUBACKs that beat send() to registering the mid
        # Never held while calling into paho: paho holds its own locks when it calls back.
        self._lock = threading.Lock()
        self._client: Any = None
        self._connack = connection.ConnAck()
        self._subscribed = threading.Event()
        self._sub_mid: int | None = None
        self._sub_error: str | None = None

    def open(self, timeout_s: float = connection.CONNECT_TIMEOUT_S) -> None:
        client = connection.new_client(self.settings, self.client_id)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client
        connection.start(client, self.settings)
        try:
            connection.await_subscribed(client, self.settings, self._connack, self._subscribed,
                                        lambda: self._sub_error, timeout_s)
        except BrokerUnavailable:
            self._client = None
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        connection.stop(client)

    def __enter__(self) -> Commander:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reply_topic(self, terminal_id: str) -> str:
        return f"{self.prefix}/{terminal_id}/reply/{self.token}"

    def send(self, command: Command, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Publish ``command`` and return the terminal's reply document (``ok`` true or false).

        Raises ``CommandTimeout``, ``CommandUndelivered`` or ``BadReply``.
        """
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        if self._client is None:
            raise BrokerUnavailable("the commander is not connected (call open())")
        if not (math.isfinite(timeout_s) and 0 < timeout_s <= 3600):
            raise ValueError(f"timeout must be more than 0 and at most 3600 s, not {timeout_s}")
        correlation = secrets.token_bytes(16)
        pending = _Pending(command)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic(command.terminal_id)
        props.CorrelationData = correlation
        props.MessageExpiryInterval = math.ceil(timeout_s)
        props.PayloadFormatIndicator = 1
        props.ContentType = "application/json"
        topic = command.topic(self.prefix)
        with self._lock:
            self._pending[correlation] = pending
        info = self._client.publish(topic, payloads.dumps(dict(command.payload)), qos=1,
                                    properties=props)
        with self._lock:
            pending.mid = info.mid
            early = self._early.pop(info.mid, None)
            if early is None:
                self._by_mid[info.mid] = pending
        if early is not None:
            self._judge(pending, early)
        log.debug("sent %s (mid %d), waiting up to %g s", topic, info.mid, timeout_s)
        try:
            if not pending.done.wait(timeout_s):
                raise CommandTimeout(command.terminal_id, command.verb, timeout_s)
        finally:
            with self._lock:
                self._pending.pop(correlation, None)
                if pending.mid is not None:
                    self._by_mid.pop(pending.mid, None)
        if pending.error is not None:
            raise pending.error
        assert pending.reply is not None
        return pending.reply

    # paho callbacks (network thread) ---------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self._connack.set(reason_code)
        if not reason_code.is_failure:
            _, self._sub_mid = client.subscribe(self.reply_filter,
                                                options=SubscribeOptions(qos=1))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: list[Any],
                      properties: Any) -> None:
        if mid == self._sub_mid and reason_codes and reason_codes[0].is_failure:
            self._sub_error = (f"{self.settings.describe()} refused the reply topic "
                               f"{self.reply_filter}: {reason_codes[0]}")
        self._subscribed.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        with self._lock:
            pending = self._by_mid.pop(mid, None)
            if pending is None:
                self._early[mid] = reason_code
                return
        self._judge(pending, reason_code)

    def _judge(self, pending: _Pending, reason_code: Any) -> None:
        if reason_code.is_failure:
            pending.finish(error=CommandUndelivered(pending.command.topic(self.prefix),
                                                    f"the broker refused it: {reason_code}"))
        elif reason_code.value == NO_MATCHING_SUBSCRIBERS:
            pending.finish(error=CommandUndelivered(
                pending.command.topic(self.prefix),
                "no terminal is subscribed to it (offline, or a wrong terminal id or prefix)"))

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        correlation = getattr(msg.properties, "CorrelationData", None)
        with self._lock:
            pending = self._pending.get(bytes(correlation)) if correlation else None
        if pending is None:
            log.debug("reply with unknown correlation data on %s ignored", msg.topic)
            return
        if msg.topic != self.reply_topic(pending.command.terminal_id):
            log.warning("reply for %s arrived on %s: ignored", pending.command.terminal_id,
                        msg.topic)
            return
        try:
            pending.finish(reply=check_reply(pending.command, msg.payload))
        except BadReply as e:
            pending.finish(error=e)


def send_command(settings: BrokerSettings, terminal_id: str, verb: str,
                 payload: Mapping[str, Any] | None = None, *, prefix: str = DEFAULT_PREFIX,
                 timeout_s: float = 30.0) -> dict[str, Any]:
    """Connect, send one command, wait for its reply, disconnect."""
    command = Command(terminal_id, verb, payload or {})
    with Commander(settings, prefix=prefix) as commander:
        return commander.send(command, timeout_s=timeout_s)
