"""A fault-injecting HTTP proxy in front of the tests' S3 server (test code only).

The loader is pointed at the proxy (AWS_ENDPOINT_URL) instead of at moto, and
the proxy forwards every request to moto unchanged, except those a `Rule`
matches: it can delete or rewrite the object before forwarding a GET (a
producer's clean-up or a new version, between listing and reading), answer
with an error status (and an S3 error code, or none, as a web server that is
not S3 would) a number of times or for some seconds, cut the connection after
some bytes of the body, delay, or accept the request and never answer. It
counts the requests it is answering at once (`most_at_once`): how many a
client keeps in flight.

It is a threaded HTTP server on 127.0.0.1 on a free port; `stop()` ends it,
and a hanging answer never outlives it (each hang waits on the stop event, and
for at most HANG_SECONDS).
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

HANG_SECONDS = 300  # a never-answered request is let go after this, at the latest
# Headers that belong to one connection, not to the request: not forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Rule:
    """What to do with the requests whose "METHOD /path?query" `match` finds.

    A rule applies `times` times (None: always), or for `seconds` from its first
    match (None: no limit); then it no longer matches."""

    match: str
    status: int | None = None  # answer this status instead of forwarding
    s3_code: str | None = None  # ... with this S3 error code; None: a plain, non-S3 body
    delete_first: bool = False  # delete the object upstream, then forward the GET
    put_first: bytes | None = None  # rewrite the object upstream with this, then forward
    cut_after: int | None = None  # forward, but reset the connection after this many body bytes
    delay: float = 0.0  # wait this long before forwarding
    hang: bool = False  # accept, read the request, never answer
    times: int | None = None
    seconds: float | None = None
    hits: int = 0
    first_hit: float | None = None

    def applies(self, request: str) -> bool:
        if not re.search(self.match, request):
            return False
        now = time.monotonic()
        if self.times is not None and self.hits >= self.times:
            return False
        started = self.first_hit
        if self.seconds is not None and started is not None and now - started > self.seconds:
            return False
        self.hits += 1
        self.first_hit = self.first_hit or now
        return True


@dataclass
class FaultProxy:
    upstream: str  # e.g. http://127.0.0.1:5000 (moto)
    store: Any = None  # a boto3 client of the upstream, for `delete_first` and `put_first`
    rules: list[Rule] = field(default_factory=list)
    # Every request seen, as (request line "METHOD /path?query", its headers).
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # Requests being answered now, and the most there ever were at once.
    at_once: int = 0
    most_at_once: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """env (a MotoServer.env) pointed at the proxy instead."""
        return {**env, "AWS_ENDPOINT_URL": self.endpoint}

    def rule_for(self, request: str, headers: dict[str, str]) -> Rule | None:
        """Record the request; the first rule that applies to it, if any."""
        with self._lock:
            self.seen.append((request, headers))
            return next((rule for rule in self.rules if rule.applies(request)), None)

    def begun(self) -> None:
        with self._lock:
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)

    def ended(self) -> None:
        with self._lock:
            self.at_once -= 1

    def requests(self, pattern: str = "") -> list[tuple[str, dict[str, str]]]:
        """The requests seen so far whose request line `pattern` finds, with their headers."""
        with self._lock:
            return [(line, headers) for line, headers in self.seen if re.search(pattern, line)]

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a client opening dozens of
    # connections at once (as the loader's read-ahead does) would have the rest
    # of its SYNs dropped and resent a second later, which no S3 server does.
    request_queue_size = 128


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as S3 does

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._handle()

        do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        def _handle(self) -> None:
            # From the request read to the answer sent (a hang is counted too).
            proxy.begun()
            try:
                self._answer()
            finally:
                proxy.ended()

        def _answer(self) -> None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                body = self._read_chunked()  # pyarrow's S3 client uploads this way
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = f"{self.command} {self.path}"
            rule = proxy.rule_for(request, dict(self.headers.items()))
            if rule is not None and rule.hang:
                proxy._stop.wait(HANG_SECONDS)
                self.close_connection = True
                return
            if rule is not None and rule.delay:
                time.sleep(rule.delay)
            if rule is not None and rule.status is not None:
                self._answer_error(rule.status, rule.s3_code)
                return
            bucket, _, key = unquote(self.path.split("?")[0]).lstrip("/").partition("/")
            if rule is not None and rule.delete_first:
                proxy.store.delete_object(Bucket=bucket, Key=key)
            if rule is not None and rule.put_first is not None:
                proxy.store.put_object(Bucket=bucket, Key=key, Body=rule.put_first)
            status, headers, payload = self._forward(self.command, self.path, body)
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if self.command == "HEAD":  # no body: the object's own length (pyarrow reads it)
                length = dict((name.lower(), value) for name, value in headers)
                self.send_header("Content-Length", length.get("content-length", "0"))
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if rule is not None and rule.cut_after is not None:
                self.wfile.write(payload[: rule.cut_after])
                self.wfile.flush()
                self._reset()
                return
            self.wfile.write(payload)

        def _read_chunked(self) -> bytes:
            """An HTTP/1.1 chunked body, forwarded with its length instead."""
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()

        def _forward(
            self, method: str, path: str, body: bytes
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            connection = http.client.HTTPConnection(
                upstream.hostname or "127.0.0.1", upstream.port, timeout=60
            )
            try:
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    # The body is read whole and sent at once: no 100-continue.
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "expect"
                }
                connection.request(method, path, body=body or None, headers=headers)
                answer = connection.getresponse()
                return answer.status, answer.getheaders(), answer.read()
            finally:
                connection.close()

        def _answer_error(self, status: int, s3_code: str | None) -> None:
            if s3_code is None:  # a web server that is not S3
                payload = b"<html><body><h1>Not Found</h1></body></html>"
                kind = "text/html"
            else:
                payload = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
                    f"<Code>{s3_code}</Code><Message>injected by the test proxy</Message>"
                    "</Error>"
                ).encode()
                kind = "application/xml"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _reset(self) -> None:
            """Close with a TCP reset (SO_LINGER 0), as a dropped connection looks."""
            sock = self.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            sock.close()

    return Handler
