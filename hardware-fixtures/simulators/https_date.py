"""An HTTPS server on 127.0.0.1 whose ``Date`` header can be wrong: the clock check's time source.

It answers every ``HEAD`` and ``GET`` with ``200`` and a ``Date`` of its own clock plus
``offset_s``. Fault modes:

- ``offset_s``: a server (or, seen from the terminal, a local clock) off by that many seconds;
- ``send_date=False``: no ``Date`` header at all; ``date_value``: a literal header value (garbage);
- ``silent=True``: accept TCP connections and never answer (the TLS handshake times out);
- a certificate that is expired or not yet valid comes from the test's CA, not from here.

The certificate chain and key are PEM files (``tests/tlsfixtures.CertificateAuthority`` makes
them). Use as a context manager; ``url`` is ``https://127.0.0.1:<port>/``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    offset_s: float = 0.0
    send_date: bool = True
    date_value: str | None = None
    requests: int = 0
    aborted: int = 0  # connections that failed before a request (e.g. certificate rejected)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that rejects our certificate aborts the handshake: expected in tests, so it
        # is counted rather than printed as a traceback.
        self.aborted += 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 2.0  # a client that stalls cannot hold a handler thread for long

    def setup(self) -> None:
        # The handshake runs here, in the handler's thread, not in accept(): a client that
        # connects and says nothing must not block the server loop.
        self.request.settimeout(self.timeout)
        self.request.do_handshake()
        super().setup()

    def _answer(self, body: bytes) -> None:
        srv = self.server
        srv.requests += 1
        self.send_response_only(200)
        if srv.date_value is not None:
            self.send_header("Date", srv.date_value)
        elif srv.send_date:
            self.send_header("Date", formatdate(time.time() + srv.offset_s, usegmt=True))
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer(b"posdiag test time source\n")

    def do_GET(self) -> None:
        body = b"posdiag test time source\n"
        self._answer(body)
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpsDateServer:
    def __init__(self, cert_file: Path, key_file: Path, *, offset_s: float = 0.0,
                 send_date: bool = True, date_value: str | None = None,
                 silent: bool = False) -> None:
        self.silent = silent
        self._thread: threading.Thread | None = None
        if silent:
            self._listener: socket.socket | None = socket.create_server(("127.0.0.1", 0))
            self._httpd: _Server | None = None
            self.port = int(self._listener.getsockname()[1])
            return
        self._listener = None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        httpd = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=True)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                       do_handshake_on_connect=False)
        httpd.offset_s = offset_s
        httpd.send_date = send_date
        httpd.date_value = date_value
        self._httpd = httpd
        self.port = int(httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    @property
    def requests(self) -> int:
        return self._httpd.requests if self._httpd is not None else 0

    def start(self) -> HttpsDateServer:
        if self._httpd is not None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name="https-date", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(2.0)
            self._httpd.server_close()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()

    def __enter__(self) -> HttpsDateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
