"""How the backend reaches the broker: settings, and a connected paho client (MQTT v5, VERSION2).

The backend uses its own credentials, not a terminal's: it subscribes to every terminal's topics
and publishes commands, which a terminal's ACL must never allow.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from posdiag.fleet.errors import BrokerUnavailable

if TYPE_CHECKING:
    from posdiag.config import MqttConfig

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "localhost"
    port: int | None = None  # None: 8883 with TLS, 1883 without
    tls: bool = True
    ca_file: str = ""  # empty: the system's trust store
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    keepalive_s: int = 60

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("broker host must not be empty")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"broker port must be 1-65535, not {self.port}")
        if not 5 <= self.keepalive_s <= 3600:
            raise ValueError(f"keep-alive must be 5-3600 s, not {self.keepalive_s}")
        if self.key_file and not self.cert_file:
            raise ValueError("a client key file needs a client certificate file")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ValueError("CA or client certificate given, but TLS is off")
        if self.password_file and not self.username:
            raise ValueError("a password file needs a user name")

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls else 1883)

    @classmethod
    def from_mqtt_config(cls, mqtt: MqttConfig) -> BrokerSettings:
        """The agent's ``[mqtt]`` section, for a backend that shares a config file with it."""
        return cls(host=mqtt.host, port=mqtt.port, tls=mqtt.tls, ca_file=mqtt.ca_file,
                   cert_file=mqtt.cert_file, key_file=mqtt.key_file, username=mqtt.username,
                   password_file=mqtt.password_file, keepalive_s=mqtt.keepalive_s)

    def describe(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.effective_port}"


def secret_file_warnings(settings: BrokerSettings) -> list[str]:
    """A private key or password file readable by every user is worth a warning (DESIGN §6)."""
    out = []
    for name in ("key_file", "password_file"):
        path = getattr(settings, name)
        if not path:
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # reading it fails later, with a clearer message
        if mode & stat.S_IROTH:
            out.append(f"{path} is readable by every user (mode {stat.S_IMODE(mode):04o}); "
                       f"run: chmod o-rwx {path}")
    return out


def _password(settings: BrokerSettings) -> str | None:
    if not settings.password_file:
        return None
    try:
        with open(settings.password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise BrokerUnavailable(f"cannot read password file {settings.password_file}: {e}") \
            from e


def client_id(role: str) -> str:
    """A fresh client id: two consumers must never share one, or the broker kicks the other."""
    return f"posdiag-fleet-{role}-{uuid.uuid4().hex[:12]}"


def new_client(settings: BrokerSettings, cid: str, *, manual_ack: bool = False) -> Any:
    """A paho client for MQTT v5 with TLS and credentials applied, not yet connected."""
    import ssl

    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if settings.tls:
        try:
            # Verification stays on (DESIGN §6): CERT_REQUIRED and host name checking.
            client.tls_set(ca_certs=settings.ca_file or None,
                           certfile=settings.cert_file or None,
                           keyfile=settings.key_file or None,
                           cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise BrokerUnavailable(f"TLS set-up failed: {e}") from e
    if settings.username:
        client.username_pw_set(settings.username, _password(settings))
    client.reconnect_delay_set(1, 60)
    return client


class ConnAck:
    """Waits for the first CONNACK; later reconnects are paho's business."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.reason: str | None = None
        self.failed = False

    def set(self, reason_code: Any) -> None:
        if not self._done.is_set():
            self.failed = bool(reason_code.is_failure)
            self.reason = str(reason_code)
            self._done.set()

    def wait(self, settings: BrokerSettings, timeout_s: float) -> None:
        if not self._done.wait(timeout_s):
            raise BrokerUnavailable(f"{settings.describe()}: no CONNACK within {timeout_s:g} s")
        if self.failed:
            raise BrokerUnavailable(f"{settings.describe()} refused the connection: {self.reason}")


def start(client: Any, settings: BrokerSettings, *, clean_start: bool = True,
          session_expiry_s: int = 0) -> None:
    """Open the TCP/TLS connection and start paho's network thread (the CONNACK comes later)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    if session_expiry_s:
        props.SessionExpiryInterval = session_expiry_s
    try:
        client.connect(settings.host, settings.effective_port, keepalive=settings.keepalive_s,
                       clean_start=clean_start, properties=props)
    except (OSError, ValueError) as e:  # refused, unreachable, DNS, TLS handshake (ssl.SSLError)
        raise BrokerUnavailable(f"{settings.describe()}: {e}") from e
    client.loop_start()


def await_subscribed(client: Any, settings: BrokerSettings, connack: ConnAck,
                     subscribed: threading.Event, sub_error: Callable[[], str | None],
                     timeout_s: float) -> None:
    """Wait for the CONNACK and the SUBACK; on failure stop ``client`` and raise
    ``BrokerUnavailable`` (the consumer and the command sender both start this way)."""
    try:
        connack.wait(settings, timeout_s)
        if not subscribed.wait(timeout_s):
            raise BrokerUnavailable(f"{settings.describe()}: no SUBACK within {timeout_s:g} s")
        error = sub_error()
        if error:
            raise BrokerUnavailable(error)
    except BrokerUnavailable:
        stop(client)
        raise


def stop(client: Any) -> None:
    """Disconnect and end paho's network thread; ``None`` (never started) is fine."""
    if client is not None:
        client.disconnect()
        client.loop_stop()
