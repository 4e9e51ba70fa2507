"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's notify socket."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from posdiag.service.sdnotify import STATUS_MAX_BYTES, Notifier, sanitize_status, socket_address


class NotifySocket:
    """What systemd does on its side: a bound SOCK_DGRAM socket that wants the sender's creds."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)

    def receive(self, timeout: float = 2.0) -> bytes:
        return self.receive_with_pid(timeout)[0]

    def receive_with_pid(self, timeout: float = 2.0) -> tuple[bytes, int | None]:
        self.sock.settimeout(timeout)
        data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("iII", payload[:12])
        return data, pid

    def assert_silent(self, timeout: float = 0.1) -> None:
        self.sock.settimeout(timeout)
        with pytest.raises(TimeoutError):
            self.sock.recv(4096)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer than that.
    with tempfile.TemporaryDirectory(prefix="sdn-") as d:
        yield Path(d)


@pytest.fixture
def path_socket(short_dir: Path) -> Iterator[NotifySocket]:
    server = NotifySocket(str(short_dir / "notify"))
    yield server
    server.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    server = NotifySocket("\0posdiag-test-" + uuid.uuid4().hex)
    yield server
    server.close()


def env_for(server: NotifySocket, **extra: str) -> dict[str, str]:
    name = "@" + server.address[1:] if server.address.startswith("\0") else server.address
    return {"NOTIFY_SOCKET": name, **extra}


# -- datagrams ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_status_stopping_arrive_as_exact_datagrams(kind: str, request) -> None:
    server = request.getfixturevalue(f"{kind}_socket")
    notifier = Notifier.from_environment(env_for(server))
    assert notifier.enabled
    assert notifier.ready()
    assert server.receive() == b"READY=1"
    assert notifier.ready("3 checks ok")
    assert server.receive() == b"READY=1\nSTATUS=3 checks ok"
    assert notifier.status("printer: paper_out")
    assert server.receive() == b"STATUS=printer: paper_out"
    assert notifier.stopping()
    assert server.receive() == b"STOPPING=1"
    assert notifier.stopping("publishing offline")
    assert server.receive() == b"STOPPING=1\nSTATUS=publishing offline"
    notifier.close()


def test_datagram_carries_this_process_as_sender(path_socket: NotifySocket) -> None:
    # systemd attributes a message by the sender's pid (NotifyAccess=main): the kernel must be
    # able to fill in our credentials without libsystemd's explicit SCM_CREDENTIALS.
    notifier = Notifier.from_environment(env_for(path_socket))
    notifier.ready()
    data, pid = path_socket.receive_with_pid()
    assert data == b"READY=1"
    assert pid == os.getpid()


def test_reloading_sends_monotonic_usec(abstract_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(abstract_socket))
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = abstract_socket.receive().decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2
    notifier.ready("config reloaded")
    assert abstract_socket.receive() == b"READY=1\nSTATUS=config reloaded"


def test_status_is_one_sanitised_bounded_line(path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(path_socket))
    notifier.status("reader:\r\n  timeout\x00\tprinter:\u2028ok\x1b[31m")
    assert path_socket.receive() == b"STATUS=reader: timeout printer: ok [31m"
    notifier.status("读卡器超时 " * 100)
    data = path_socket.receive()
    assert data.startswith("STATUS=读卡器超时".encode())
    text = data.decode("utf-8")  # cut on a character boundary, never inside one
    assert len(text.removeprefix("STATUS=").encode()) <= STATUS_MAX_BYTES
    assert text.endswith("…")
    assert b"\n" not in data


def test_sanitize_status_keeps_short_lines_and_marks_cuts() -> None:
    assert sanitize_status("all 12 checks ok") == "all 12 checks ok"
    assert sanitize_status("  a \n\n b  ") == "a b"
    cut = sanitize_status("x" * 500, max_bytes=20)
    assert cut == "x" * 17 + "…"
    assert len(cut.encode()) == 20
    with pytest.raises(ValueError):
        sanitize_status("x", max_bytes=2)


def test_notify_passes_other_assignments_and_rejects_injection(
        path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(path_socket))
    assert notifier.notify({"EXTEND_TIMEOUT_USEC": "5000000", "X_POSDIAG_SEQ": "41"})
    assert path_socket.receive() == b"EXTEND_TIMEOUT_USEC=5000000\nX_POSDIAG_SEQ=41"
    with pytest.raises(ValueError, match="one line"):
        notifier.notify({"STATUS": "ok\nREADY=1"})
    with pytest.raises(ValueError, match="key"):
        notifier.notify({"ready": "1"})
    path_socket.assert_silent()


def test_socket_is_close_on_exec(path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(path_socket))
    notifier.ready()
    sock = notifier._sock
    assert sock is not None
    assert fcntl.fcntl(sock.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    notifier.close()
    assert notifier._sock is None


def test_concurrent_senders_each_get_a_whole_datagram(path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(path_socket))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(path_socket.receive() for _ in range(20)))
    reader.start()
    threads = [threading.Thread(target=notifier.status, args=(f"worker {i}",)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    reader.join(timeout=5)
    assert sorted(got) == sorted(f"STATUS=worker {i}".encode() for i in range(20))


def test_full_receiver_queue_does_not_block(
        path_socket: NotifySocket, caplog: pytest.LogCaptureFixture) -> None:
    # systemd not reading (PID 1 busy): the kernel queue fills up. A send must give up after the
    # send timeout instead of stalling the daemon's main loop, and say so once.
    notifier = Notifier(path_socket.address, send_timeout_s=0.1)
    limit = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text()) + 1
    sent = 0
    with caplog.at_level(logging.WARNING, logger="posdiag.service.sdnotify"):
        start = time.monotonic()
        while notifier.status(f"n{sent}"):
            sent += 1
            assert sent <= limit + 64  # the queue is bounded; sending cannot succeed forever
        took = time.monotonic() - start
        assert notifier.watchdog() is False  # no watchdog configured: nothing even tried
        assert notifier.status("again") is False
    assert sent >= 1
    # The full queue's send timeout was waited for (kernel jiffies: a tick may fall short);
    # the ceiling only catches a stall.
    assert 0.1 - 0.01 <= took < 0.1 + 3.0
    assert len(caplog.records) == 1
    assert path_socket.receive() == b"STATUS=n0"  # what was queued is intact and in order
    assert notifier.status("drained") is True


def test_send_timeout_is_validated() -> None:
    with pytest.raises(ValueError):
        Notifier("/run/systemd/notify", send_timeout_s=0)


# -- watchdog ----------------------------------------------------------------------------------

def test_watchdog_pings_and_interval_is_half_the_timeout(abstract_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(abstract_socket, WATCHDOG_USEC="60000000"))
    assert notifier.watchdog_usec == 60_000_000
    assert notifier.watchdog_interval_s == 30.0
    assert notifier.watchdog()
    assert abstract_socket.receive() == b"WATCHDOG=1"


@pytest.mark.parametrize(("usec", "interval"), [("1000000", 0.5), ("3", 1.5e-6),
                                                 ("90000000", 45.0)])
def test_watchdog_interval_math(path_socket: NotifySocket, usec: str, interval: float) -> None:
    notifier = Notifier.from_environment(env_for(path_socket, WATCHDOG_USEC=usec))
    assert notifier.watchdog_interval_s == pytest.approx(interval)


def test_watchdog_for_this_pid_is_honoured(path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(
        env_for(path_socket, WATCHDOG_USEC="20000000", WATCHDOG_PID=str(os.getpid())))
    assert notifier.watchdog_interval_s == 10.0
    assert notifier.watchdog()
    assert path_socket.receive() == b"WATCHDOG=1"


def test_watchdog_of_another_pid_is_not_ours(path_socket: NotifySocket) -> None:
    other = os.getpid() + 1
    notifier = Notifier.from_environment(
        env_for(path_socket, WATCHDOG_USEC="20000000", WATCHDOG_PID=str(other)))
    assert notifier.watchdog_interval_s is None
    assert notifier.watchdog() is False
    path_socket.assert_silent()
    assert notifier.ready()  # notifications other than the watchdog still go out
    assert path_socket.receive() == b"READY=1"


@pytest.mark.parametrize("usec", ["0", "abc", "-5", "²", "1.5"])
def test_bad_watchdog_usec_turns_the_watchdog_off(path_socket: NotifySocket, usec: str) -> None:
    notifier = Notifier.from_environment(env_for(path_socket, WATCHDOG_USEC=usec))
    assert notifier.watchdog_interval_s is None
    assert notifier.watchdog() is False
    path_socket.assert_silent()


def test_bad_watchdog_pid_turns_the_watchdog_off(path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(
        env_for(path_socket, WATCHDOG_USEC="20000000", WATCHDOG_PID="self"))
    assert notifier.watchdog_interval_s is None


def test_watchdog_without_watchdog_usec_sends_nothing(path_socket: NotifySocket) -> None:
    notifier = Notifier.from_environment(env_for(path_socket))
    assert notifier.watchdog_interval_s is None
    assert notifier.watchdog() is False
    path_socket.assert_silent()


# -- outside systemd, broken sockets -----------------------------------------------------------

def test_unset_socket_is_a_no_op() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "60000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert notifier.ready("x") is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier._sock is None  # not even a socket was opened


def test_empty_socket_variable_is_a_no_op() -> None:
    assert not Notifier.from_environment({"NOTIFY_SOCKET": ""}).enabled


@pytest.mark.parametrize("value", ["vsock:2:1234", "relative/path", "@"])
def test_unsupported_socket_forms_disable_with_a_warning(
        value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="posdiag.service.sdnotify"):
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert "NOTIFY_SOCKET" in caplog.text


def test_socket_address_forms() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify") == \
        "\0/org/freedesktop/systemd1/notify"
    assert socket_address("vsock:2:1234") is None


def test_missing_socket_never_raises_and_logs_once(
        short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = short_dir / "gone"
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
    with caplog.at_level(logging.DEBUG, logger="posdiag.service.sdnotify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.status("still here") is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()

    # systemd comes back (e.g. after daemon-reexec): the next message reaches it, and a later
    # failure is worth one warning again.
    server = NotifySocket(str(path))
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="posdiag.service.sdnotify"):
            assert notifier.watchdog()
        assert server.receive() == b"WATCHDOG=1"
        assert "reachable again" in caplog.text
    finally:
        server.close()
    path.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="posdiag.service.sdnotify"):
        assert notifier.watchdog() is False
    assert len(caplog.records) == 1


def test_recreated_socket_at_the_same_path_is_found(short_dir: Path) -> None:
    path = short_dir / "notify"
    first = NotifySocket(str(path))
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(path)})
    notifier.ready()
    assert first.receive() == b"READY=1"
    first.close()
    path.unlink()
    second = NotifySocket(str(path))
    try:
        assert notifier.status("after reexec")
        assert second.receive() == b"STATUS=after reexec"
    finally:
        second.close()


def test_refused_peer_is_not_raised(short_dir: Path) -> None:
    # A socket file whose listener is gone: sendto fails with ECONNREFUSED.
    path = short_dir / "stale"
    stale = NotifySocket(str(path))
    stale.close()
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(path)})
    assert notifier.ready() is False


def test_constructor_rejects_nonpositive_watchdog() -> None:
    with pytest.raises(ValueError):
        Notifier("/run/systemd/notify", watchdog_usec=0)
