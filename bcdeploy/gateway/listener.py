"""The node's listening socket, hardened: no peer can hold the door another peer needs.

pynetdicom's server wraps each accepted connection in TLS inside `get_request`, on the one thread that
accepts connections, handshaking there with no deadline: a peer that connected and never sent a
ClientHello stopped every later association, valid certificates included. Here the accepting thread
only accepts; each connection's own thread (socketserver's ThreadingMixIn) runs the handshake under
`HANDSHAKE_TIMEOUT_S`, and at most `PENDING_PER_ADDRESS` handshakes from one address wait at once.
A peer that fails (silent, plain DICOM on a TLS port, no or an untrusted certificate, an old protocol)
is reported through `on_refused` (a log line and a Security Alert in the audit trail) and never
becomes an association.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

HANDSHAKE_TIMEOUT_S = 10.0
PENDING_PER_ADDRESS = 4
log = logging.getLogger("bcdeploy.gateway")


class GuardedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the TLS handshake on the connection's thread, under a deadline."""

    on_refused: Callable[[str, str], None] = staticmethod(lambda address, why: None)
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending: Counter[str] = Counter()
        self._pending_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept only: nothing a peer sends (or does not send) is waited for on this thread."""
        return self.socket.accept()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            request = self._handshake(request, client_address)
            if request is None:
                return
        super().process_request_thread(request, client_address)

    def _handshake(self, raw: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        host = str(client_address[0])
        address = f"{host}:{client_address[1]}"
        with self._pending_lock:
            crowded = self._pending[host] >= PENDING_PER_ADDRESS
            if not crowded:
                self._pending[host] += 1
        if crowded:
            _close(raw)
            self.on_refused(address, f"more than {PENDING_PER_ADDRESS} TLS handshakes from {host} at once")
            return None
        try:
            raw.settimeout(self.handshake_timeout_s)
            wrapped = self.ssl_context.wrap_socket(raw, server_side=True)
            wrapped.settimeout(None)  # the association sets its own network timeout
            return wrapped
        except (OSError, ValueError) as err:  # ssl.SSLError and socket.timeout are OSErrors
            _close(raw)
            why = (f"no TLS handshake within {self.handshake_timeout_s:g} s" if isinstance(err, TimeoutError)
                   else f"TLS handshake failed ({_reason(err)})")
            self.on_refused(address, why)
            return None
        finally:
            with self._pending_lock:
                self._pending[host] -= 1
                if self._pending[host] <= 0:
                    del self._pending[host]


def start_guarded_server(ae: Any, address: tuple[str, int], *, handlers: list, ssl_context: ssl.SSLContext | None,
                         on_refused: Callable[[str, str], None]) -> GuardedServer:
    """`ae.start_server(..., block=False)` with the GuardedServer (pynetdicom's own call fixes its class)."""
    server = ae.make_server(address, evt_handlers=handlers, ssl_context=ssl_context, server_class=GuardedServer)
    server.on_refused = on_refused
    ae._servers.append(server)  # pynetdicom's shutdown() removes the server from this list
    threading.Thread(target=server.serve_forever, name="AcceptorServer", daemon=True).start()
    return server


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err) or type(err).__name__
    return str(reason)[:120]


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
