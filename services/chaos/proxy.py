"""A loopback HTTP proxy in front of the S3-protocol server that misbehaves on purpose, as object stores do.

Each request is forwarded to the upstream server unless a seeded draw picks a fault: an answer of
`503 SlowDown` (S3's throttling reply, which clients must retry) or a connection reset (RST, no answer).
An upstream that refuses connections (the server is restarting) also resets the client's connection, as a
load balancer with no backend does. Rates can change while it runs; every fault is counted.
"""
from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                 b"<Message>Please reduce your request rate.</Message></Error>")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "expect"}


@dataclass
class ProxyCounters:
    forwarded: int = 0
    slowdown: int = 0          # 503 SlowDown answered by the proxy
    reset: int = 0             # connections reset by a draw
    upstream_down: int = 0     # connections reset because the upstream refused
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"forwarded": self.forwarded, "slowdown": self.slowdown, "reset": self.reset,
                    "upstream_down": self.upstream_down}


class FaultyProxy:
    """`FaultyProxy(upstream_port, seed)`; `.start()`, `.endpoint`, `.set_rates(slowdown=, reset=)`, `.stop()`."""

    def __init__(self, upstream_port: int, seed: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.slowdown_rate = 0.0
        self.reset_rate = 0.0
        self.counters = ProxyCounters()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for clients that expect it

            def log_message(self, *args) -> None:  # quiet: thousands of requests
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://{host}:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def set_rates(self, slowdown: float = 0.0, reset: float = 0.0) -> None:
        if not (0 <= slowdown <= 1 and 0 <= reset <= 1):
            raise ValueError(f"fault rates must lie in [0, 1]: slowdown={slowdown}, reset={reset}")
        self.slowdown_rate, self.reset_rate = slowdown, reset

    def start(self) -> "FaultyProxy":
        self._thread = threading.Thread(target=self.server.serve_forever, name="chaos-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- one request ---------------------------------------------------------------------------------------
    def _draw(self) -> str | None:
        with self.rng_lock:
            u = self.rng.random()
        if u < self.slowdown_rate:
            return "slowdown"
        if u < self.slowdown_rate + self.reset_rate:
            return "reset"
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = _read_body(h)
        fault = self._draw()
        if fault == "reset":
            self.counters.add("reset")
            return _reset(h)
        if fault == "slowdown":
            self.counters.add("slowdown")
            h.send_response(503, "Slow Down")
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(SLOWDOWN_BODY)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(SLOWDOWN_BODY)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (ConnectionError, OSError, http.client.HTTPException):
            self.counters.add("upstream_down")
            return _reset(h)
        finally:
            conn.close()
        self.counters.add("forwarded")
        h.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                h.send_header(k, v)
        length = resp.getheader("Content-Length") if h.command == "HEAD" else None
        h.send_header("Content-Length", length if length is not None else str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a reset connection is the point, not an error
        pass


def _read_body(h: BaseHTTPRequestHandler) -> bytes | None:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else (b"" if h.command in ("PUT", "POST") else None)


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Close with SO_LINGER 0: the client sees 'connection reset by peer', not a clean close."""
    h.close_connection = True
    try:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()
    except OSError:
        pass
