"""The backend consumer behind ``posdiag fleet listen``: subscribe, validate, store.

Subscriptions (QoS 1, MQTT v5):

- ``<prefix>/+/status`` is always an ordinary subscription, in every consumer: presence is a
  retained message, and MQTT 5 sends retained messages only when a *non-shared* subscription is
  made (§3.3.1.3; §4.8.2 shared subscriptions). Storing presence is idempotent, so every consumer
  of a group can store it.
- ``<prefix>/+/report``, ``…/heartbeat``, ``…/event`` are shared (``$share/<group>/…``) when a
  group is given, so the consumers of that group split the load: the broker hands each message to
  one of them. Consumers of one group should share one database file (the store is safe for
  that), or each would see the others' messages as seq gaps.

Every payload is checked against its JSON Schema and the terminal id in the topic; a rejected
one goes to the ``invalid`` table with the reason. A message is acknowledged (PUBACK) only after
it is stored: if the database fails, the consumer stops without acknowledging, and a persistent
session (``client_id`` + ``session_expiry_s``) gets the message redelivered after a restart.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
import time
from typing import Any

from posdiag import schemas
from posdiag.fleet import connection
from posdiag.fleet.connection import BrokerSettings
from posdiag.fleet.errors import BrokerUnavailable, FleetError, StorageError
from posdiag.fleet.store import Outcome, Recorded, Store

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "posdiag/v1"
KINDS = ("status", "report", "heartbeat", "event")
SHARED_KINDS = ("report", "heartbeat", "event")
MAX_PAYLOAD_BYTES = 1 << 20  # a full report is a few KiB; anything near this is hostile
_SHARE_NAME = re.compile(r"^[^/+#]{1,64}$")  # spec §4.8.2: no '/', '+' or '#'


class InvalidPayload(Exception):
    """Why one message was rejected (it ends up in the ``invalid`` table, not as an error)."""


def check_prefix(prefix: str) -> str:
    if not prefix or set(prefix) & {"+", "#"} or prefix.startswith(("/", "$")) \
            or prefix.endswith("/"):
        raise ValueError(f"{prefix!r} is not a valid topic prefix")
    return prefix


def check_share(group: str) -> str:
    if not _SHARE_NAME.match(group):
        raise ValueError(f"{group!r} is not a valid share group name (1-64 characters, none of "
                         "'/', '+', '#')")
    return group


def topic_filters(prefix: str, share: str | None = None) -> list[str]:
    out = [f"{prefix}/+/status"]
    for kind in SHARED_KINDS:
        plain = f"{prefix}/+/{kind}"
        out.append(f"$share/{share}/{plain}" if share else plain)
    return out


def parse_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``<prefix>/<terminal_id>/<kind>`` → (terminal_id, kind), or None for any other topic."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 2 or not parts[0] or parts[1] not in KINDS:
        return None
    return parts[0], parts[1]


def require_validator() -> None:
    try:
        import jsonschema  # noqa: F401
    except ImportError as e:
        raise FleetError("the fleet consumer validates payloads with jsonschema, which is not "
                         "installed: pip install 'posdiag[fleet]'") from e


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json.loads accepts NaN/Infinity; JSON does not


def decode(kind: str, terminal: str, payload: bytes) -> dict[str, Any]:
    """The payload as a valid document of ``kind`` for ``terminal``, or ``InvalidPayload``."""
    from jsonschema.exceptions import best_match

    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload(f"payload of {len(payload)} bytes is larger than the "
                             f"{MAX_PAYLOAD_BYTES} allowed")
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as e:
        raise InvalidPayload(f"not UTF-8: {e.reason} at byte {e.start}") from e
    except (ValueError, RecursionError) as e:
        raise InvalidPayload(f"not JSON: {e}") from e
    error = best_match(schemas.validator(kind).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message if len(error.message) <= 300 else error.message[:299] + "…"
        raise InvalidPayload(f"{schemas.IDS[kind]}: {where}: {message}")
    if doc["terminal_id"] != terminal:
        raise InvalidPayload(f"terminal_id {doc['terminal_id']!r} does not match the topic's "
                             f"{terminal!r}")
    return doc  # type: ignore[no-any-return]


class Consumer:
    """One MQTT connection feeding one ``Store``. ``handle`` is the whole per-message logic and
    needs no broker; ``start``/``stop`` run it on paho's network thread."""

    def __init__(self, store: Store, settings: BrokerSettings, *,
                 prefix: str = DEFAULT_PREFIX, share: str | None = None,
                 client_id: str | None = None, session_expiry_s: int = 0,
                 name: str | None = None) -> None:
        require_validator()
        self.store = store
        self.settings = settings
        self.prefix = check_prefix(prefix)
        self.share = check_share(share) if share is not None else None
        if not 0 <= session_expiry_s <= 0xFFFFFFFF:
            raise ValueError(f"session expiry must be 0-4294967295 s, not {session_expiry_s}")
        if session_expiry_s and not client_id:
            raise ValueError("a persistent session needs a fixed client id")
        self.client_id = client_id or connection.client_id("consumer")
        self.session_expiry_s = session_expiry_s
        self.name = name or self.client_id
        self.filters = topic_filters(self.prefix, self.share)
        self.failure: FleetError | None = None
        self.failed = threading.Event()
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._client: Any = None
        self._connack = connection.ConnAck()
        self._subscribed = threading.Event()
        self._sub_mid: int | None = None
        self._sub_error: str | None = None

    # ---------------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, *, retained: bool = False,
               received_at: float | None = None) -> Recorded:
        """Validate and store one message; raises only ``StorageError``."""
        t = time.time() if received_at is None else received_at
        parsed = parse_topic(self.prefix, topic)
        if parsed is None:
            return self._reject(topic, None, payload, "topic is not <prefix>/<terminal_id>/"
                                "<status|report|heartbeat|event>", t)
        terminal, kind = parsed
        if kind == "status" and not payload:
            # A zero-length retained publish deletes the retained presence (spec §3.3.1.3): an
            # operator retiring a terminal, not a broken terminal.
            log.info("%s: retained presence cleared", terminal)
            return self._count(Recorded(Outcome.IGNORED))
        try:
            doc = decode(kind, terminal, payload)
        except InvalidPayload as e:
            return self._reject(topic, terminal, payload, str(e), t)
        recorded = self.store.record(kind, terminal, doc, received_at=t, consumer=self.name,
                                     retained=retained)
        if recorded.gap is not None:
            lo, hi = recorded.gap
            log.warning("%s: seq %d..%d missing (%d message(s)) before seq %d", terminal, lo, hi,
                        hi - lo + 1, doc["seq"])
        if recorded.outcome is Outcome.RESTARTED:
            log.warning("%s: seq started again at %d (outbox reset on the terminal?)", terminal,
                        doc["seq"])
        log.debug("%s %s: %s", terminal, kind, recorded.outcome)
        return self._count(recorded)

    def _reject(self, topic: str, terminal: str | None, payload: bytes, error: str,
                t: float) -> Recorded:
        log.warning("%s: rejected: %s", topic, error)
        self.store.record_invalid(topic, terminal, payload, error, received_at=t)
        return self._count(Recorded(Outcome.INVALID))

    def _count(self, recorded: Recorded) -> Recorded:
        with self._lock:
            self._counts[str(recorded.outcome)] += 1
            if recorded.gap is not None:
                self._counts["gaps"] += 1
        return recorded

    def counts(self) -> dict[str, int]:
        """How many messages this consumer handled, by outcome (plus ``gaps`` seen)."""
        with self._lock:
            return dict(self._counts)

    # ---------------------------------------------------------------------------------------
    def start(self, timeout_s: float = connection.CONNECT_TIMEOUT_S) -> None:
        """Connect and subscribe; returns when the broker has granted every subscription."""
        client = connection.new_client(self.settings, self.client_id, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self._client = client
        connection.start(client, self.settings, clean_start=not self.session_expiry_s,
                         session_expiry_s=self.session_expiry_s)
        try:
            connection.await_subscribed(client, self.settings, self._connack, self._subscribed,
                                        lambda: self._sub_error, timeout_s)
        except BrokerUnavailable:
            self._client = None
            raise
        log.info("listening on %s as %s: %s", self.settings.describe(), self.client_id,
                 ", ".join(self.filters))

    def stop(self) -> None:
        client, self._client = self._client, None
        connection.stop(client)

    def __enter__(self) -> Consumer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _fail(self, error: FleetError) -> None:
        if self.failure is None:
            log.error("%s", error)
            self.failure = error
        self.failed.set()

    # paho callbacks (network thread) ---------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self._connack.set(reason_code)
        if reason_code.is_failure:
            log.warning("%s refused the connection: %s", self.settings.describe(), reason_code)
            return
        if self.share and getattr(properties, "SharedSubscriptionAvailable", 1) == 0:
            self._sub_error = f"{self.settings.describe()} does not support shared subscriptions"
            self._subscribed.set()
            self._fail(BrokerUnavailable(self._sub_error))
            return
        # Subscribe on every connect: after a reconnect without a kept session the broker has
        # forgotten the subscriptions. The retained presence comes again; the store ignores it.
        _, self._sub_mid = client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: list[Any],
                      properties: Any) -> None:
        if mid != self._sub_mid:
            return
        refused = [f"{f}: {rc}" for f, rc in zip(self.filters, reason_codes, strict=False)
                   if rc.is_failure]
        for f, rc in zip(self.filters, reason_codes, strict=False):
            if not rc.is_failure and rc.value == 0:
                log.warning("%s: broker granted QoS 0 only; messages may be lost", f)
        if refused:
            self._sub_error = f"{self.settings.describe()} refused: " + "; ".join(refused)
            if self._subscribed.is_set():  # after a reconnect: nobody is waiting in start()
                self._fail(BrokerUnavailable(self._sub_error))
        self._subscribed.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if self.failure is not None:
            return  # stopping: leave it unacknowledged for redelivery
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = repr(msg._topic)  # brokers check topics are UTF-8; this one did not
        try:
            try:
                self.handle(topic, msg.payload, retained=bool(msg.retain))
            except StorageError:
                raise
            except Exception as e:  # a bug here must not drop the message unrecorded
                log.exception("%s: cannot handle this message", topic)
                self._reject(topic, None, msg.payload,
                             f"consumer error: {type(e).__name__}: {e}", time.time())
        except StorageError as e:
            self._fail(e)
            return
        if msg.qos:
            client.ack(msg.mid, msg.qos)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self._client is not None and reason_code.value != 0:
            log.warning("disconnected from %s (%s); reconnecting", self.settings.describe(),
                        reason_code)
