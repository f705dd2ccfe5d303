"""`gateway --http HOST:PORT`: the node's window for the hospital's monitoring, read-only.

    /metrics   Prometheus text format (metrics.py)
    /healthz   200 while the process answers
    /readyz    200 or 503, with a JSON body naming each check and what failed (health.py)
    /          the status page (status_page.py): server-rendered, refreshes itself, no JavaScript

The HTTP side is built for a hostile network even though it should never face one:
- GET and HEAD only; any other method is 405, and no request body is ever read.
- A request (line and headers) over MAX_REQUEST_BYTES is answered 431 and closed; a client that sends
  nothing within TIMEOUT_S is dropped; at most MAX_CONNECTIONS are served at once (the rest closed).
- A non-loopback address needs --http-allow (networks): the command refuses it with one line
  otherwise, and a client outside those networks (loopback is always allowed) is closed unanswered.
- Nothing a peer controls reaches the page unescaped (status_page.py).
The standard library's server is enough for this: four read-only paths on a thread each, no framework
to pull into the node's dependencies.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bcdeploy.errors import InputError

log = logging.getLogger("bcdeploy.gateway")

MAX_REQUEST_BYTES = 16 * 1024
MAX_CONNECTIONS = 16
TIMEOUT_S = 10.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HttpOptions:
    host: str
    port: int
    allow: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, address: str, allow: tuple[str, ...] = ()) -> HttpOptions:
        """`HOST:PORT` (or `:PORT`, loopback) and --http-allow's networks, checked: a non-loopback address
        without --http-allow is refused here, before anything listens."""
        host, sep, port = address.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(f"--http {address!r}: give HOST:PORT, e.g. 127.0.0.1:9110")
        try:
            networks = tuple(ipaddress.ip_network(n, strict=False) for n in allow)
        except ValueError as err:
            raise InputError(f"--http-allow: {err}") from None
        if not _loopback(host) and not networks:
            raise InputError(f"--http {address}: listening beyond this machine needs --http-allow NETWORK "
                             "(the monitoring hosts, e.g. 10.2.0.0/24); the HTTP side has no login")
        return cls(host=host, port=int(port), allow=networks)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Page:
    status: int
    content_type: str
    body: bytes


Route = Callable[[], Page]


def json_page(status: int, body: dict[str, Any]) -> Page:
    return Page(status, "application/json", (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())


class _TooLarge(Exception):
    pass


class _CappedReader:
    """The connection's reader, counting what one request may read (line and headers)."""

    def __init__(self, raw: Any, cap: int) -> None:
        self.raw, self.left = raw, cap

    def readline(self, limit: int = -1) -> bytes:
        line = self.raw.readline(min(limit, self.left + 1) if limit >= 0 else self.left + 1)
        self.left -= len(line)
        if self.left < 0:
            raise _TooLarge
        return line

    def read(self, n: int = -1) -> bytes:  # never called for GET; bounded all the same
        raise _TooLarge

    def close(self) -> None:
        self.raw.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = TIMEOUT_S
    server_version = "bcdeploy-gateway"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile = _CappedReader(self.rfile, MAX_REQUEST_BYTES)  # type: ignore[assignment]
        self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""

    def handle(self) -> None:
        try:
            super().handle()
        except _TooLarge:
            self.close_connection = True
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"a request holds at most {MAX_REQUEST_BYTES} bytes")
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _not_allowed(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _not_allowed

    def _answer(self, *, head: bool) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            page = Page(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
        else:
            try:
                page = route()
            except Exception as err:  # one failed scrape answers 500; the node goes on
                log.error("HTTP %s: %s", self.path.split("?", 1)[0], err)
                page = Page(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", b"internal error\n")
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.end_headers()
        if not head:
            self.wfile.write(page.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("HTTP %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    allow: tuple[Network, ...]

    def __init__(self, address: tuple[str, int]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        host = str(client_address[0])
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if not ip.is_loopback and not any(ip in network for network in self.allow):
            log.warning("HTTP connection from %s closed: not in --http-allow", host)
            return False
        return self._slots.acquire(blocking=False)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("HTTP connection from %s ended with an error", client_address[0], exc_info=True)


class HttpServer:
    """The routes served on their own threads until `stop`."""

    def __init__(self, options: HttpOptions, routes: dict[str, Route]) -> None:
        try:
            self._server = _Server((options.host, options.port))
        except OSError as err:
            raise InputError(f"--http {options.host}:{options.port}: cannot listen ({err.strerror or err})") from None
        self._server.routes, self._server.allow = routes, options.allow
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
