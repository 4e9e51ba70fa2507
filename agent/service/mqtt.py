"""The agent's MQTT session: presence, delivery from the on-disk outbox, commands and replies.

One thread (``posdiag-mqtt``) owns everything network: it connects, drives paho through its
external-loop API (``loop_read``/``loop_write``/``loop_misc`` around our own ``select``), takes
messages from the outbox and hands PUBACKs back to it. Other threads only talk to it through
``wake``, ``reply`` and ``stop``, which queue work and poke a socketpair.

Decisions (DESIGN §3.3, §7; protocols.md §8):

- **A fresh paho ``Client`` per connection, Clean Start, Session Expiry 0.** The outbox on disk is
  the only queue. paho's in-memory queue would re-send its in-flight messages after a reconnect
  on its own (even with a clean session) and duplicate ours, and a broker-side persistent session
  would queue commands for hours and replay them late. With a new client per connection, nothing
  survives a disconnect except the outbox, and the subscription is simply made again.
- **At least once.** A message leaves the outbox only on a PUBACK with a success code. Messages in
  flight when the connection drops stay in the outbox and are sent again after the reconnect, so
  the backend can see one ``seq`` twice and must de-duplicate by ``(terminal_id, seq)``.
- **A PUBACK reason code ≥ 0x80** (0x87 not authorized, 0x97 quota exceeded, …) is final: the
  message is rejected in the outbox (counted there), counted here by code and logged once per
  (topic, code). A message too large for the broker's Maximum Packet Size is rejected the same way
  (0x95) before it is sent, since sending it would only get us disconnected, again and again.
- **Presence:** Last Will = retained QoS 1 ``lost``; birth = retained ``online`` right after a
  successful CONNACK; clean stop = retained ``offline``, wait (bounded) for its PUBACK, then
  DISCONNECT with reason 0x00, which makes the broker discard the Will.
- **Reconnect** with exponential backoff and full jitter — sleep ``uniform(0, min(cap, base·2ⁿ))``
  — so a fleet does not reconnect in lock-step after a broker restart. ``n`` goes back to 0 only
  after a connection has stayed up for a while, so a broker that accepts and then drops us at once
  still gets the backoff.
- **Delivery:** oldest ``seq`` first, at most ``window`` messages awaiting PUBACK (never more than
  the broker's Receive Maximum allows) and at most ``rate_per_s`` messages per second.
- **Commands** arrive on ``<prefix>/<id>/cmd/+`` (QoS 1, retained copies never delivered: an old
  retained command must not run again at every reconnect) and go to ``on_command`` unparsed,
  with a ticket. ``on_command`` runs on this thread and must return quickly. Replies are not
  queued in the outbox: they answer a live request.
- **Flow control for commands:** our CONNECT carries Receive Maximum ``receive_max``, and a
  command's PUBACK is sent only once its reply has been handed over (``reply(ticket=…)``) or it
  was settled without one (``settle``). A broker that keeps to MQTT 5 §4.9 then holds a flood
  itself. Not every broker does (Mosquitto 2.0.11 refills a whole window per PUBACK), so
  replies are never dropped for room either: the queue is a large safety net (``MAX_REPLIES``),
  and the daemon keeps each reply cheap (``busy``) when it is overloaded.
- Network trouble never raises into the caller: it is one log line and another attempt.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import select
import socket
import ssl
import stat
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from posdiag.config import MqttConfig
from posdiag.service.payloads import Topics
from posdiag.service.tally import Tally

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 10
DEFAULT_RATE_PER_S = 5.0
POLL_S = 5.0  # look at the outbox this often even without a wake(): a missed wake costs no more
TICK_S = 1.0  # paho's keep-alive bookkeeping (loop_misc) wants calling about once a second
STABLE_S = 30.0  # a connection that lasted this long resets the backoff
COMMAND_WINDOW = 16  # Receive Maximum we announce: commands the broker may have unacked to us
# Replies drain as fast as the broker acknowledges them; the cap only guards memory (~1 MB of
# busy replies) against a broker that floods us and then stops reading.
MAX_REPLIES = 4096
REPLY_TTL_S = 60.0  # a reply that could not go out within this is no longer awaited
PACKET_TOO_LARGE = 0x95


class OutboxMessage(Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


class OutboxLike(Protocol):
    """What the link needs from ``service.outbox.Outbox`` (called from the link's thread)."""

    def pending(self, limit: int, *, after_seq: int = 0) -> Sequence[OutboxMessage]: ...

    def ack(self, seq: int) -> object: ...

    def reject(self, seq: int, reason_code: int) -> object: ...


# verb, payload, response topic, correlation data, ticket (see Link.reply and Link.settle)
CommandHandler = Callable[[str, bytes, "str | None", "bytes | None", "int | None"], None]
_tickets = itertools.count(1)  # unique across links, so a ticket never names another's delivery


# --------------------------------------------------------------------------------------------
# Backoff and rate limit
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` sleeps ``uniform(0, ceiling(n))``."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.base_s > 0:
            raise ValueError(f"backoff base must be > 0 s, not {self.base_s!r}")
        if not self.cap_s >= self.base_s:
            raise ValueError(f"backoff cap {self.cap_s!r} s is below the base {self.base_s!r} s")

    def ceiling(self, attempt: int) -> float:
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {attempt}")
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt, 64))  # 2**64: already capped

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(attempt))


class RateLimit:
    """A token bucket: ``rate_per_s`` on average, bursts of up to ``burst`` messages."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float]) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate must be > 0 messages/s, not {rate_per_s!r}")
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._at = clock()

    def available(self) -> int:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        return int(self._tokens)

    def take(self, n: int = 1) -> None:
        self._tokens -= n

    def wait_s(self) -> float:
        """Seconds until the next whole token."""
        return max(0.0, (1.0 - self._tokens) / self.rate) if self.available() < 1 else 0.0


# --------------------------------------------------------------------------------------------
# Counters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkCounters:
    """Totals since the link was created (for heartbeats and the systemd status line)."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    rejected: int = 0
    replies: int = 0
    commands: int = 0
    replies_dropped: int = 0
    denied: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        return {"connects": self.connects, "connect_failures": self.connect_failures,
                "disconnects": self.disconnects, "published": self.published,
                "acked": self.acked, "rejected": self.rejected, "replies": self.replies,
                "commands": self.commands, "replies_dropped": self.replies_dropped,
                "denied": {f"0x{code:02x}": n for code, n in sorted(self.denied.items())}}


# --------------------------------------------------------------------------------------------
# One connection
# --------------------------------------------------------------------------------------------
@dataclass
class _Session:
    """State of one network connection (and its own paho client)."""

    client: paho.Client
    connack_deadline: float
    connected: bool = False
    connected_at: float = 0.0
    ended: bool = False
    refused: str = ""  # CONNACK failure, for the log line
    lost: str = ""  # why the connection ended, for the log line
    socket_error: str = ""  # paho's last error log line (e.g. the TLS alert)
    window: int = DEFAULT_WINDOW
    receive_max: int = 65535
    max_packet: int | None = None
    cursor: int = 0  # highest seq handed to paho on this connection
    more: bool = True  # the outbox may hold something after the cursor
    polled_at: float = 0.0
    inflight: dict[int, tuple[int, str]] = field(default_factory=dict)  # mid -> (seq, topic)
    others: dict[int, str] = field(default_factory=dict)  # mid -> topic (presence, replies)
    offline_mid: int | None = None
    offline_acked: bool = False
    drain_until: float | None = None
    disconnect_sent: bool = False


@dataclass
class _Reply:
    topic: str
    correlation: bytes | None
    payload: bytes
    at: float
    ticket: int | None = None


class Link:
    """The agent's one MQTT session; see the module docstring for what it guarantees."""

    def __init__(self, config: MqttConfig, topics: Topics, outbox: OutboxLike, *,
                 client_id: str, will: bytes, birth: Callable[[], bytes],
                 on_command: CommandHandler | None = None,
                 rate_per_s: float = DEFAULT_RATE_PER_S, window: int = DEFAULT_WINDOW,
                 backoff: Backoff | None = None, connect_timeout_s: float = 10.0,
                 receive_max: int = COMMAND_WINDOW, rng: random.Random | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window}")
        if not 1 <= receive_max <= 65535:
            raise ValueError(f"receive maximum must be 1-65535, not {receive_max}")
        if not connect_timeout_s > 0:
            raise ValueError(f"connect timeout must be > 0 s, not {connect_timeout_s!r}")
        self.config = config
        self.topics = topics
        self.outbox = outbox
        self.client_id = client_id
        self.will = will
        self.birth = birth
        self.on_command = on_command
        self.window = window
        self.receive_max = receive_max
        self.backoff = backoff or Backoff()
        self.connect_timeout_s = connect_timeout_s
        self._rng = rng or random.Random()
        self._rate = RateLimit(rate_per_s, min(window, max(1, int(rate_per_s))), time.monotonic)
        self._lock = threading.Lock()
        self._replies: deque[_Reply] = deque()
        self._deliveries: dict[int, tuple[_Session, int]] = {}  # ticket -> (session, mid)
        self._settled: list[int] = []  # tickets settled by other threads, to acknowledge
        self._announce = False
        self._dropped_replies = Tally(log, "replies dropped")
        self._stop = threading.Event()
        self._stop_deadline = 0.0
        self._offline: bytes | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wakened = True
        self._connected = False
        self._subscribed = False
        self._attempt = 0
        self._warned_files: set[str] = set()
        self._denied_seen: set[tuple[str, int]] = set()
        self._n: Counter[str] = Counter()
        self._denied: Counter[int] = Counter()

    # -- public API (any thread) -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the end of that connection."""
        return self._connected

    @property
    def subscribed(self) -> bool:
        """True once the broker granted the command subscription on this connection."""
        return self._subscribed

    @property
    def endpoint(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def start(self) -> Link:
        if self._thread is not None:
            raise RuntimeError("the link was already started; make a new Link")
        self._thread = threading.Thread(target=self._run, name="posdiag-mqtt", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Something was put in the outbox: look now rather than at the next poll."""
        self._wakened = True
        self._poke()

    def reply(self, topic: str, correlation: bytes | None, payload: bytes, *,
              ticket: int | None = None) -> None:
        """Publish a command reply (QoS 1, Correlation Data copied) as soon as connected; the
        command's delivery (``ticket``) is acknowledged once the reply is handed to the broker.

        A reply waits at most ``REPLY_TTL_S`` for a connection; beyond ``MAX_REPLIES`` waiting
        the oldest is dropped and counted (a net: the flow control keeps the queue short)."""
        dropped: _Reply | None = None
        with self._lock:
            if len(self._replies) >= MAX_REPLIES:
                dropped = self._replies.popleft()
                self._n["replies_dropped"] += 1
            self._replies.append(_Reply(topic, correlation, payload, time.monotonic(), ticket))
        if dropped is not None:
            self._dropped_replies.add("overflow", f"mqtt: {MAX_REPLIES} replies waiting; "
                                      f"dropped the oldest, to {dropped.topic[:120]}")
            self.settle(dropped.ticket)
        self._poke()

    def settle(self, ticket: int | None) -> None:
        """The command delivered with ``ticket`` needs no reply: acknowledge it now."""
        if ticket is None:
            return
        with self._lock:
            self._settled.append(ticket)
        self._poke()

    def announce(self) -> None:
        """Publish the birth message again (its contents changed, e.g. after a reload)."""
        self._announce = True
        self._poke()

    def set_rate(self, rate_per_s: float) -> None:
        """A new publish rate (after a reload); takes effect at once."""
        self._rate = RateLimit(rate_per_s, min(self.window, max(1, int(rate_per_s))),
                               time.monotonic)

    def stop(self, offline: bytes | None = None, timeout_s: float = 3.0) -> bool:
        """Deliver what is in flight, publish ``offline`` (retained), DISCONNECT normally.

        Bounded by ``timeout_s`` (half of it at most for in-flight PUBACKs, the rest for the
        offline PUBACK); returns True when the link thread finished in time. What is still in
        the outbox stays there for the next start. A link cannot be started again."""
        self._offline = offline
        self._stop_deadline = time.monotonic() + max(0.1, timeout_s)
        self._stop.set()
        self._poke()
        clean = True
        if self._thread is not None:
            self._thread.join(max(0.1, timeout_s))
            clean = not self._thread.is_alive()
        if clean:
            for s in (self._wake_r, self._wake_w):
                s.close()
        return clean

    def counters(self) -> LinkCounters:
        with self._lock:
            n = dict(self._n)
            denied = MappingProxyType(dict(self._denied))
        return LinkCounters(connects=n.get("connects", 0),
                            connect_failures=n.get("connect_failures", 0),
                            disconnects=n.get("disconnects", 0),
                            published=n.get("published", 0), acked=n.get("acked", 0),
                            rejected=n.get("rejected", 0), replies=n.get("replies", 0),
                            commands=n.get("commands", 0),
                            replies_dropped=n.get("replies_dropped", 0), denied=denied)

    # -- the link thread -------------------------------------------------------------------------
    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full (already poked) or closed (stopped)
            self._wake_w.send(b"\0")

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._n[what] += n

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                problem = self._attempt_once()
            except Exception:  # a bug here must not end delivery for good: log it, start over
                log.exception("mqtt: link failure; starting a new connection")
                problem = "link failure"
            finally:
                self._connected = False
            if self._stop.is_set():
                break
            delay = self.backoff.delay(self._attempt, self._rng)
            self._attempt += 1
            log.warning("mqtt: %s; next attempt in %.1f s", problem, delay)
            if self._stop.wait(delay):
                break

    def _attempt_once(self) -> str:
        """One connection from CONNECT to its end; returns what went wrong, for the log."""
        session, problem = self._connect()
        if session is None:
            self._count("connect_failures")
            return problem
        try:
            self._serve(session)
        finally:
            problem = self._finish(session)
        return problem

    def _connect(self) -> tuple[_Session | None, str]:
        """Open the network connection and send CONNECT."""
        cfg = self.config
        # manual_ack: a command is acknowledged when it has been answered (flow control).
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv5, reconnect_on_failure=False, manual_ack=True)
        session = _Session(client, time.monotonic() + self.connect_timeout_s,
                           window=self.window)
        client.user_data_set(session)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_log = self._on_log
        client.connect_timeout = self.connect_timeout_s
        client.max_inflight_messages_set(0)  # unlimited: our window governs, see _on_connect
        client.will_set(self.topics.status, self.will, qos=1, retain=True)
        try:
            password = self._password()
        except OSError as e:
            return None, f"cannot read the password file: {_one_line(e)}"
        try:
            if cfg.username or password is not None:
                client.username_pw_set(cfg.username or None, password)
            if cfg.tls:
                client.tls_set_context(self._tls_context())
            props = Properties(PacketTypes.CONNECT)
            props.ReceiveMaximum = self.receive_max
            client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=True,
                           properties=props)
        except (OSError, ValueError) as e:  # ssl.SSLError and socket.gaierror are OSErrors
            if client.socket() is not None:
                with contextlib.suppress(Exception):
                    client.disconnect()
            return None, f"cannot connect to {self.endpoint}: {_one_line(e)}"
        return session, ""

    def _password(self) -> str | None:
        path = self.config.password_file
        if not path:
            return None
        self._warn_if_world_readable(path)
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")

    def _tls_context(self) -> ssl.SSLContext:
        cfg = self.config
        # Server verification and the host name check are always on (DESIGN §6).
        ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
        if cfg.cert_file:
            if cfg.key_file:
                self._warn_if_world_readable(cfg.key_file)
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        return ctx

    def _warn_if_world_readable(self, path: str) -> None:
        if path in self._warned_files:
            return
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & stat.S_IROTH:
                self._warned_files.add(path)
                log.warning("mqtt: %s is readable by every user; chmod o-r it", path)

    def _serve(self, s: _Session) -> None:
        """Run one connection until it ends, or until a clean stop has been carried out."""
        client = s.client
        while True:
            sock = client.socket()
            if sock is None or s.ended:
                break
            now = time.monotonic()
            if not s.connected and now >= s.connack_deadline:
                s.lost = f"no CONNACK within {self.connect_timeout_s:g} s"
                break
            if self._stop.is_set() and self._stopping(s, now):
                break
            if s.connected:
                self._acknowledge_settled(s)
                self._send_replies(s)
                if self._announce:
                    self._announce = False
                    info = client.publish(self.topics.status, self.birth(), qos=1, retain=True)
                    s.others[info.mid] = self.topics.status
                self._pump(s, now)
            timeout = self._timeout(s, now)
            pending = getattr(sock, "pending", None)
            if callable(pending) and pending() > 0:  # TLS bytes already decrypted
                timeout = 0.0
            rlist = [sock, self._wake_r]
            wlist = [sock] if client.want_write() else []
            try:
                readable, writable, _ = select.select(rlist, wlist, [], timeout)
            except (OSError, ValueError):  # the socket was closed under us
                break
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            if sock in readable or (callable(pending) and pending() > 0):
                client.loop_read()
            if client.socket() is not None and (sock in writable or client.want_write()):
                client.loop_write()
            if client.socket() is not None:
                client.loop_misc()

    def _timeout(self, s: _Session, now: float) -> float:
        timeout = TICK_S
        if not s.connected:
            timeout = min(timeout, max(0.0, s.connack_deadline - now))
        elif self._stop.is_set():
            timeout = 0.05
        elif s.more and len(s.inflight) < s.window:
            timeout = min(timeout, self._rate.wait_s())
        return timeout

    def _finish(self, s: _Session) -> str:
        """Close what is left of a session, count it; returns the problem for the log."""
        was_connected = s.connected
        s.connected = False
        self._connected = False
        self._subscribed = False
        with self._lock:  # deliveries die with their session: the broker forgets them too
            self._deliveries = {t: d for t, d in self._deliveries.items() if d[0] is not s}
        if s.client.socket() is not None:
            with contextlib.suppress(Exception):
                s.client.disconnect()
        if was_connected:
            self._count("disconnects")
            if time.monotonic() - s.connected_at >= STABLE_S:
                self._attempt = 0
            return (f"connection to {self.endpoint} lost ({s.lost or 'closed'}); "
                    f"{len(s.inflight)} message(s) in flight stay in the outbox")
        self._count("connect_failures")
        if s.refused:
            return f"{self.endpoint} refused the connection: {s.refused}"
        return f"cannot connect to {self.endpoint}: {s.lost or 'closed before CONNACK'}"

    # -- clean stop --------------------------------------------------------------------------------
    def _stopping(self, s: _Session, now: float) -> bool:
        """One step of the clean stop; True when the session is over."""
        client = s.client
        if s.disconnect_sent:
            return now >= self._stop_deadline
        if not s.connected:
            s.disconnect_sent = True
            client.disconnect()
            return True
        if s.drain_until is None:  # let what is in flight be acknowledged before going offline
            s.drain_until = now + (self._stop_deadline - now) / 2
        with self._lock:
            replies_waiting = bool(self._replies)
        # Replies count as in flight: a broker that reads our DISCONNECT before it could send a
        # PUBACK may drop the last PUBLISH with the connection (Mosquitto 2.0 does).
        if (s.inflight or s.others or replies_waiting) and now < s.drain_until:
            return False
        if self._offline is not None and s.offline_mid is None:
            info = client.publish(self.topics.status, self._offline, qos=1, retain=True)
            s.offline_mid = info.mid
            s.others[info.mid] = self.topics.status
            return False
        waiting = bool(s.others)  # the offline status and any reply sent after it
        if waiting and now < self._stop_deadline - 0.2:
            return False
        if waiting:
            log.warning("mqtt: no PUBACK for %s; disconnecting anyway",
                        "the offline status" if s.offline_mid in s.others
                        else f"{len(s.others)} repl{'y' if len(s.others) == 1 else 'ies'}")
        s.disconnect_sent = True
        client.disconnect(ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection"))
        log.info("mqtt: disconnected from %s", self.endpoint)
        return client.socket() is None

    # -- outbox ------------------------------------------------------------------------------------
    def _pump(self, s: _Session, now: float) -> None:
        if self._stop.is_set():
            return
        if self._wakened or now - s.polled_at >= POLL_S:
            self._wakened = False
            s.more = True
        free = s.window - len(s.inflight)
        if not s.more or free <= 0:
            return
        n = min(free, self._rate.available())
        if n <= 0:
            return
        s.polled_at = now
        try:
            batch = list(self.outbox.pending(n, after_seq=s.cursor))
        except Exception as e:  # the outbox says why in its own log; retry at the next poll
            log.error("mqtt: cannot read the outbox: %s", _one_line(e))
            s.more = False
            return
        s.more = len(batch) >= n
        for msg in batch:
            s.cursor = max(s.cursor, msg.seq)
            if not self._publish_one(s, msg):
                break

    def _publish_one(self, s: _Session, msg: OutboxMessage) -> bool:
        """Hand one outbox message to paho; False when the connection is gone."""
        size = _publish_size(msg.topic, msg.payload)
        if s.max_packet is not None and size > s.max_packet:
            self._final(msg.seq, msg.topic, PACKET_TOO_LARGE,
                        f"{size} bytes; the broker takes at most {s.max_packet}")
            return True
        try:
            info = s.client.publish(msg.topic, msg.payload, qos=1)
        except ValueError as e:  # invalid topic or payload: sending it again would not help
            self._final(msg.seq, msg.topic, 0x90, _one_line(e))
            return True
        self._rate.take()
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            return False  # it stays in the outbox; the next connection sends it
        s.inflight[info.mid] = (msg.seq, msg.topic)
        self._count("published")
        return True

    def _final(self, seq: int, topic: str, code: int, why: str) -> None:
        """A message the broker will never take: reject it in the outbox, count, log once."""
        with self._lock:
            self._denied[code] += 1
            self._n["rejected"] += 1
            first = (topic, code) not in self._denied_seen
            self._denied_seen.add((topic, code))
        if first:
            log.error("mqtt: %s refused with reason 0x%02x (%s); seq %d and later ones like it "
                      "are dropped, not retried", topic, code, why, seq)
        try:
            self.outbox.reject(seq, code)
        except Exception as e:
            log.error("mqtt: cannot mark seq %d as rejected: %s", seq, _one_line(e))

    def _send_replies(self, s: _Session) -> None:
        now = time.monotonic()
        while len(s.inflight) + len(s.others) < s.receive_max:
            with self._lock:
                if not self._replies:
                    return
                r = self._replies.popleft()
            if now - r.at > REPLY_TTL_S:
                self._count("replies_dropped")
                self._dropped_replies.add("expired", f"mqtt: reply to {r.topic[:120]} dropped "
                                          f"after {now - r.at:.0f} s without a connection")
                self._acknowledge(s, r.ticket)
                continue
            props = Properties(PacketTypes.PUBLISH)
            if r.correlation is not None:
                props.CorrelationData = r.correlation
            try:
                info = s.client.publish(r.topic, r.payload, qos=1, properties=props)
            except ValueError as e:  # commands.parse refuses such topics; this is a net
                self._count("replies_dropped")
                self._dropped_replies.add("bad_topic", f"mqtt: cannot reply to "
                                          f"{r.topic[:120]!r}: {_one_line(e)}")
                self._acknowledge(s, r.ticket)
                continue
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                with self._lock:
                    self._replies.appendleft(r)
                return
            s.others[info.mid] = r.topic
            self._count("replies")
            self._acknowledge(s, r.ticket)

    def _acknowledge_settled(self, s: _Session) -> None:
        with self._lock:
            settled, self._settled = self._settled, []
        for ticket in settled:
            self._acknowledge(s, ticket)

    def _acknowledge(self, s: _Session, ticket: int | None) -> None:
        """PUBACK the command behind ``ticket`` if it came on this connection."""
        if ticket is None:
            return
        with self._lock:
            delivery = self._deliveries.pop(ticket, None)
        if delivery is not None and delivery[0] is s and s.client.socket() is not None:
            s.client.ack(delivery[1], 1)

    # -- paho callbacks (on the link thread, inside loop_read/loop_write/loop_misc) --------------
    def _on_connect(self, client: paho.Client, s: _Session, flags: Any, rc: ReasonCode,
                    props: Properties | None) -> None:
        if rc.is_failure:
            s.refused = f"{rc} (0x{rc.value:02x})"
            return
        s.connected = True
        s.connected_at = time.monotonic()
        self._connected = True
        self._count("connects")
        # The broker's Receive Maximum is a quota shared by outbox messages, presence and
        # replies (paho does not enforce it): keep room for two of the latter.
        s.receive_max = getattr(props, "ReceiveMaximum", 65535)
        s.window = max(1, min(self.window, s.receive_max - 2))
        s.max_packet = getattr(props, "MaximumPacketSize", None)
        if self.config.tls:
            log.info("mqtt: connected to %s (TLS)", self.endpoint)
        else:  # allowed for a closed network; the AsyncAPI document promises this warning
            log.warning("mqtt: connected to %s without TLS ([mqtt] tls = false): reports and "
                        "commands travel unencrypted and the broker is not verified",
                        self.endpoint)
        self._announce = False  # the birth below is the announcement
        info = client.publish(self.topics.status, self.birth(), qos=1, retain=True)
        s.others[info.mid] = self.topics.status
        client.subscribe(self.topics.commands, options=SubscribeOptions(
            qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))

    def _on_disconnect(self, client: paho.Client, s: _Session, flags: Any, rc: ReasonCode,
                       props: Properties | None) -> None:
        s.ended = True
        if getattr(flags, "is_disconnect_packet_from_server", False):
            s.lost = s.lost or f"the broker sent DISCONNECT: {rc} (0x{rc.value:02x})"
        elif rc == "Keep alive timeout":
            s.lost = s.lost or "no answer from the broker within the keep-alive"
        else:  # paho says "Unspecified error"; its error log line, if any, says more
            s.lost = s.lost or s.socket_error or "the connection was closed"

    def _on_log(self, client: paho.Client, s: _Session, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            s.socket_error = " ".join(text.split())

    def _on_publish(self, client: paho.Client, s: _Session, mid: int, rc: ReasonCode,
                    props: Properties | None) -> None:
        code = rc.value
        entry = s.inflight.pop(mid, None)
        if entry is not None:
            seq, topic = entry
            if rc.is_failure:
                self._final(seq, topic, code, str(rc))
                return
            try:
                self.outbox.ack(seq)
            except Exception as e:  # it stays in the outbox and goes out again: a duplicate
                log.error("mqtt: cannot remove seq %d from the outbox: %s", seq, _one_line(e))
                return
            self._count("acked")
            return
        topic = s.others.pop(mid, "")
        if mid == s.offline_mid:
            s.offline_acked = True
        if rc.is_failure and topic:
            with self._lock:
                self._denied[code] += 1
                first = (topic, code) not in self._denied_seen
                self._denied_seen.add((topic, code))
            if first:
                log.error("mqtt: %s refused with reason 0x%02x (%s)", topic, code, rc)

    def _on_subscribe(self, client: paho.Client, s: _Session, mid: int,
                      rcs: list[ReasonCode], props: Properties | None) -> None:
        for rc in rcs:
            if rc.is_failure:
                log.error("mqtt: subscription to %s refused: %s (0x%02x); no remote commands",
                          self.topics.commands, rc, rc.value)
        self._subscribed = not any(rc.is_failure for rc in rcs)

    def _on_message(self, client: paho.Client, s: _Session, msg: paho.MQTTMessage) -> None:
        verb = self.topics.verb_of(msg.topic)
        if msg.qos == 0:  # nothing to acknowledge, nothing to hold back
            ticket = None
        else:
            ticket = next(_tickets)
            with self._lock:
                self._deliveries[ticket] = (s, msg.mid)
                self._n["commands"] += 1
        if verb is None or self.on_command is None:
            self._acknowledge(s, ticket)
            return
        props = msg.properties
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        try:
            self.on_command(verb, bytes(msg.payload), response_topic,
                            None if correlation is None else bytes(correlation), ticket)
        except Exception:  # a broken handler must not take the connection down
            log.exception("mqtt: command handler failed for %r", verb[:40])
            self._acknowledge(s, ticket)


def _publish_size(topic: str, payload: bytes) -> int:
    """Bytes of a QoS 1 PUBLISH without properties (MQTT 5 §3.3)."""
    remaining = 2 + len(topic.encode("utf-8")) + 2 + 1 + len(payload)
    length_bytes = 1
    while remaining >= 128 ** length_bytes and length_bytes < 4:
        length_bytes += 1
    return 1 + length_bytes + remaining


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, OSError) and text else f"{type(e).__name__}: {text}"
