"""A real Mosquitto for tests, on an ephemeral loopback port, with the config each test needs.

``Broker`` writes a ``mosquitto.conf`` into a directory of the test's, starts
``/usr/sbin/mosquitto -c`` on it and waits until the port accepts. Modes: plain (anonymous);
TLS with a server certificate from a ``tlsfixtures.CertificateAuthority``; TLS with client
certificates required and the certificate's CN used as the user name; an ACL file (see
``terminal_acl``); a password file; persistence that survives SIGKILL. ``stop``/``start`` restart
it on the same port, ``kill`` is SIGKILL. The system's own broker on 1883 is never touched.

``Subscriber`` is a paho MQTT 5 client that records every message with its properties and the
retain flag, and can publish requests (Response Topic, Correlation Data) the way a backend does.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from tlsfixtures import LOOPBACK, CertificateAuthority, free_port

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
PREFIX = "posdiag/v1"


def terminal_acl(prefix: str = PREFIX, backend: str = "backend",
                 also_write: Iterable[str] = ()) -> str:
    """Each terminal (its user name, or certificate CN) may only use ``<prefix>/<name>/#``;
    the ``backend`` user may read and write everything under the prefix. ``also_write`` adds
    topic filters every user may publish to (e.g. a shared reply tree, ``<prefix>/_replies/#``).
    """
    lines = [f"user {backend}", f"topic readwrite {prefix}/#", "",
             f"pattern readwrite {prefix}/%u/#"]
    lines += [f"pattern write {topic}" for topic in also_write]
    return "\n".join(lines) + "\n"


class ClientCA(CertificateAuthority):
    """A test CA that also issues TLS *client* certificates (extended key usage clientAuth),
    which Mosquitto's ``require_certificate`` needs: a server-only certificate is refused."""

    def issue_client(self, common_name: str, directory: Path,
                     valid_until: timedelta = timedelta(days=30)) -> tuple[Path, Path]:
        """Write ``<cn>.crt`` and ``<cn>.key`` (mode 0600) into ``directory``; return both."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + valid_until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(self._key, hashes.SHA256())  # the CA's own key: this class is a CA
        )
        directory.mkdir(parents=True, exist_ok=True)
        crt, keyfile = directory / f"{common_name}.crt", directory / f"{common_name}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        keyfile.chmod(0o600)
        return crt, keyfile


class BrokerError(RuntimeError):
    pass


_instances = itertools.count()


class Broker:
    """One Mosquitto process; use as a context manager (it is stopped on exit)."""

    def __init__(self, directory: Path, *, tls: CertificateAuthority | None = None,
                 require_certificate: bool = False, acl: str | None = None,
                 passwords: Mapping[str, str] | None = None, allow_anonymous: bool = True,
                 persistence: bool = False, max_packet_size: int | None = None,
                 server_names: tuple[str, ...] = (LOOPBACK, "localhost"),
                 start_timeout_s: float = 5.0) -> None:
        if require_certificate and tls is None:
            raise ValueError("client certificates need TLS")
        self.dir = directory / f"mosquitto-{next(_instances)}"
        self.dir.mkdir(parents=True)
        self.host = LOOPBACK
        self.tls = tls
        self.require_certificate = require_certificate
        self.acl = acl
        self.passwords = dict(passwords or {})
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self.max_packet_size = max_packet_size
        self.server_names = server_names
        self.start_timeout_s = start_timeout_s
        self.ca_file: Path | None = tls.write(self.dir) if tls is not None else None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # -- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.dir / "mosquitto.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> Broker:
        """Start (the first time on a free port, later on the same port again)."""
        if self.running:
            return self
        if self.port:
            self._launch(deadline=time.monotonic() + self.start_timeout_s)
            return self
        for _ in range(5):  # another process may take the port between probe and bind
            self.port = free_port(self.host)
            try:
                self._launch(deadline=time.monotonic() + self.start_timeout_s)
                return self
            except BrokerError:
                if "Address already in use" not in self.log_text():
                    raise
        raise BrokerError("no free port for mosquitto after 5 tries")

    def stop(self) -> None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(3.0)

    def freeze(self) -> None:
        """SIGSTOP: the broker hangs; connections stay open, nothing is read or answered."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL (frozen or not): the broker dies without a word to its clients."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(3.0)

    def _launch(self, deadline: float) -> None:
        conf = self._write_config()
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise BrokerError(f"mosquitto exited at start:\n{self.log_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not accept on port {self.port}:\n"
                          f"{self.log_text()[-2000:]}")

    # -- configuration ----------------------------------------------------------------------------
    def _write_config(self) -> Path:
        lines = [
            "user root" if os.geteuid() == 0 else "",  # as root it would switch to 'mosquitto'
            "log_dest stdout",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
        ]
        if self.tls is not None:
            crt, key = self.tls.issue(*self.server_names).write(self.dir, "server")
            lines += [f"cafile {self.ca_file}", f"certfile {crt}", f"keyfile {key}"]
            if self.require_certificate:
                lines += ["require_certificate true", "use_identity_as_username true"]
        if self.acl is not None:
            acl = self.dir / "acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines.append(f"acl_file {acl}")
        if self.passwords:
            pw = self.dir / "passwd"
            pw.write_text("")
            pw.chmod(0o600)
            for user, password in self.passwords.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), user, password], check=True,
                               capture_output=True, timeout=10)
            lines.append(f"password_file {pw}")
        if self.max_packet_size is not None:
            lines.append(f"max_packet_size {self.max_packet_size}")
        if self.persistence:
            # Save after every change, so that even SIGKILL keeps sessions and queued messages.
            lines += ["persistence true", f"persistence_location {self.dir}/",
                      "autosave_on_changes true", "autosave_interval 1"]
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(line for line in lines if line) + "\n")
        return conf


# --------------------------------------------------------------------------------------------
# A backend-side client
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    response_topic: str | None
    correlation: bytes | None


class Subscriber:
    """A paho MQTT 5 client on its own thread that records what it receives.

    The retain flag is the publisher's (Retain As Published) unless ``retain_as_published`` is
    off, in which case only copies replayed at subscription time carry it.
    ``persistent=True`` keeps its session on the broker (Clean Start off, a session expiry), so
    messages published while it is away — e.g. while the broker restarts — wait for it.
    """

    def __init__(self, broker: Broker, *topics: str, client_id: str | None = None,
                 username: str | None = None, password: str | None = None,
                 cert: tuple[Path, Path] | None = None, persistent: bool = False,
                 retain_as_published: bool = True, timeout_s: float = 5.0) -> None:
        self.broker = broker
        self.topics = topics
        self.retain_as_published = retain_as_published
        self.messages: list[Received] = []
        self.publish_results: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"sub-{next(_instances)}",
                                  protocol=paho.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if broker.tls is not None:
            self.client.tls_set(ca_certs=str(broker.ca_file),
                                certfile=str(cert[0]) if cert else None,
                                keyfile=str(cert[1]) if cert else None)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
        self.client.connect(broker.host, broker.port, keepalive=10,
                            clean_start=not persistent, properties=props)
        self.client.loop_start()
        if topics and not self._subscribed.wait(timeout_s):
            self.close()
            raise TimeoutError(f"no SUBACK for {topics} within {timeout_s} s")

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: object, flags: object,
                    rc: ReasonCode, props: object) -> None:
        if not rc.is_failure and self.topics:
            opts = SubscribeOptions(qos=1, retainAsPublished=self.retain_as_published)
            client.subscribe([(t, opts) for t in self.topics])

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int,
                      rcs: list[ReasonCode], props: object) -> None:
        if all(not rc.is_failure for rc in rcs):
            self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: object,
                    msg: paho.MQTTMessage) -> None:
        props = msg.properties
        corr = getattr(props, "CorrelationData", None)
        rec = Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos,
                       getattr(props, "ResponseTopic", None),
                       None if corr is None else bytes(corr))
        with self._cond:
            self.messages.append(rec)
            self._cond.notify_all()

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, rc: ReasonCode,
                    props: object) -> None:
        with self._cond:
            self.publish_results[mid] = rc
            self._cond.notify_all()

    # -- queries ----------------------------------------------------------------------------------
    def received(self, topic: str | None = None) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_for(self, match: Callable[[Received], bool], timeout_s: float = 5.0) -> Received:
        """The first recorded message ``match`` accepts (waiting for it if need be)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for m in self.messages:
                    if match(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
                    raise TimeoutError(f"no matching message within {timeout_s} s; "
                                       f"last ones: {seen}")
                self._cond.wait(left)

    def wait_until(self, condition: Callable[[list[Received]], bool],
                   timeout_s: float = 5.0) -> list[Received]:
        """Wait until ``condition(all messages so far)`` holds; returns the messages."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not condition(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout_s} s "
                                       f"({len(self.messages)} messages received)")
                self._cond.wait(left)
            return list(self.messages)

    def publish(self, topic: str, payload: bytes, *, response_topic: str | None = None,
                correlation: bytes | None = None, retain: bool = False,
                timeout_s: float = 5.0) -> ReasonCode:
        """Publish QoS 1 and return the PUBACK's reason code."""
        props = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while info.mid not in self.publish_results:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no PUBACK for {topic} within {timeout_s} s")
                self._cond.wait(left)
            return self.publish_results[info.mid]


def seqs_of(messages: Iterable[Received]) -> list[int]:
    """The ``seq`` of every JSON payload that has one, in arrival order."""
    import json

    out = []
    for m in messages:
        doc = json.loads(m.payload)
        if "seq" in doc:
            out.append(int(doc["seq"]))
    return out
