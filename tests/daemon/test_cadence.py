"""The main loop keeps its beat while a check waits: heartbeats, pings and presence do not wait
for a payment host that black-holes the TLS handshake.

Structural, not timed: the test's payment host knows when the check is inside its handshake
(connection open) and when it gave up (connection closed); heartbeats and a ping reply must
arrive between the two.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest
from agent_process import Agent, write_config
from broker import Broker, Subscriber
from test_daemon import request

PREFIX = "posdiag/v1/T-0001"
HANDSHAKE_S = 8  # how long each cycle's payment host check waits for the silent host


class SilentHost:
    """Accepts TCP connections and never sends a byte; records when each one opens and closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.opened = 0
        self.closed = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._cond:
                self.opened += 1
                self._cond.notify_all()
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        with conn:
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
        with self._cond:
            self.closed += 1
            self._cond.notify_all()

    def wait(self, what: str, count: int, timeout_s: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: getattr(self, what) >= count, timeout_s):
                raise TimeoutError(f"payment host: not {count} connections {what}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def heartbeat_seqs(sub: Subscriber) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in sub.received(f"{PREFIX}/heartbeat")]


def test_heartbeats_and_commands_keep_their_cadence_while_a_check_hangs(tmp_path, broker):
    host = SilentHost()
    extra = f"""
[checks.payment_host]
tls_timeout_s = {HANDSHAKE_S}
[[checks.payment_host.targets]]
name = "acquirer"
host = "127.0.0.1"
port = {host.port}
"""
    cfg = write_config(tmp_path, broker.port, heartbeat_s=1, report_s=3600, extra=extra)
    with Subscriber(broker, f"{PREFIX}/heartbeat", f"{PREFIX}/reply/#") as sub:
        agent = Agent(tmp_path, cfg)
        try:
            agent.notify.wait_for("READY=1", timeout_s=60)  # after the first (slow) cycle
            sub.wait_until(lambda ms: heartbeat_seqs(sub), timeout_s=20)
            # A cycle after READY: the check is inside the handshake from open to close.
            first = host.opened + 1
            host.wait("opened", first)
            before = heartbeat_seqs(sub)
            pong = request(sub, "ping", timeout_s=HANDSHAKE_S)
            with host._cond:
                still_waiting = host.closed < first
            sub.wait_until(lambda ms: len(heartbeat_seqs(sub)) >= len(before) + 2,
                           timeout_s=HANDSHAKE_S)
            with host._cond:
                still_waiting = still_waiting and host.closed < first
            during = heartbeat_seqs(sub)[len(before):]
            host.wait("closed", first)
            rc, _ = agent.terminate()
        except BaseException:
            print(agent.log_text()[-5000:])
            raise
        finally:
            host.close()
    assert rc == 0
    assert pong["ok"]
    # Two beats and a ping answer while the check was known to be waiting on the host.
    assert still_waiting, "the check ended before the beats arrived; make HANDSHAKE_S longer"
    assert len(during) >= 2 and during == sorted(during) and during[0] > max(before)

