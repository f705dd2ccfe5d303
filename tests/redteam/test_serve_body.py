"""`serve` reads an upload's body in the ingress: a client that declares a length and then sends
nothing more (slowloris) held a request slot and a connection forever. The body read must give up
after a bounded idle time with one-line 408, not wait for bytes that never come.

Drives the real `read_capped` with a real starlette Request over an ASGI receive channel that stalls,
as a slow client's connection does (no Ray cluster needed)."""

from __future__ import annotations

import asyncio
import time

import pytest

ray_app = pytest.importorskip("bcdeploy.serve.ray_app", reason="needs the serve extra (ray[serve])")


def _stalling_request(declared: int, sent: bytes):
    from starlette.requests import Request

    messages = [{"type": "http.request", "body": sent, "more_body": True}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never sends the rest

    scope = {"type": "http", "method": "POST", "path": "/segment", "query_string": b"",
             "headers": [(b"content-length", str(declared).encode())]}
    return Request(scope, receive)


def test_a_stalled_body_is_refused_after_the_idle_limit(monkeypatch):
    monkeypatch.setattr(ray_app, "BODY_IDLE_S", 0.5, raising=False)

    async def read():
        return await asyncio.wait_for(ray_app.read_capped(_stalling_request(1000, b"x" * 10), 10_000), 10)

    start = time.monotonic()
    with pytest.raises(Exception) as err:
        asyncio.run(read())
    assert not isinstance(err.value, asyncio.TimeoutError), "the read waited for bytes that never came"
    assert getattr(err.value, "status", None) == 408 and "\n" not in str(err.value)
    assert time.monotonic() - start < 5
