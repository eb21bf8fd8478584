"""A static file server on a loopback port, with Range support and fault injection.

``StaticServer(root, faults)`` serves ``root`` like nginx or a bucket would (GET, HEAD,
single ``Range: bytes=N-`` requests answered 206). ``faults`` can be changed while it
runs: fail every Nth request with 503, cut each transfer after N body bytes, ignore
Range headers. ``log`` records (path, range header, status, body bytes sent) per request.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass
class Faults:
    fail_every: int = 0  # every Nth request gets 503 (0: never)
    cut_after: int = 0  # close the connection after this many body bytes (0: never)
    ignore_range: bool = False
    offline: bool = False  # every request gets 503


@dataclass
class Hit:
    path: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class StaticServer:
    root: Path
    faults: Faults = field(default_factory=Faults)
    log: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def body_bytes(self, suffix: str = "") -> int:
        return sum(h.body_bytes for h in self.log if h.path.endswith(suffix))

    def _record(self, h: Hit) -> None:
        with self._lock:
            self.log.append(h)

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._count += 1
            n = self._count
        path = unquote(urlparse(req.path).path)
        rng = req.headers.get("Range")
        f = self.faults
        if f.offline or (f.fail_every and n % f.fail_every == 0):
            self._record(Hit(path, rng, 503, 0))
            self._send_status(req, 503)
            return
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.root.resolve()) or not file.is_file():
            self._record(Hit(path, rng, 404, 0))
            self._send_status(req, 404)
            return
        data = file.read_bytes()
        start, status = 0, 200
        m = re.match(r"^bytes=(\d+)-$", rng or "")
        if m and not f.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self._record(Hit(path, rng, 416, 0))
                self._send_status(req, 416)
                return
            status = 206
        body = data[start:]
        req.send_response(status)
        req.send_header("Content-Length", str(len(body)))
        req.send_header("Accept-Ranges", "bytes")
        if status == 206:
            req.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        req.end_headers()
        sent = body
        if f.cut_after and len(body) > f.cut_after:
            sent = body[: f.cut_after]
            req.close_connection = True
        # Recorded before writing: the client may finish (and the test read the log)
        # before this thread gets past the write. A failed write counts as sent.
        self._record(Hit(path, rng, status, len(sent)))
        try:
            req.wfile.write(sent)
            req.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _send_status(req: BaseHTTPRequestHandler, code: int) -> None:
        req.send_response(code)
        req.send_header("Content-Length", "0")
        req.end_headers()
