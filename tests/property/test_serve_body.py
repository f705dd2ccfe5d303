"""Property tests of the serve request body (issue "Reliability round 3"): whatever a client sends as
Content-Length, body chunks and X-Filename, the ingress reads the body whole or refuses it with its own
status (413 too large, 408 stalled), and a body that reaches the decoder gives an image or one clear
error line; never another exception (a 500 and a traceback in the server log).

The request is starlette's real Request over an ASGI receive channel, as uvicorn builds it; only the
network is left out."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette", reason="needs the serve extra: pip install 'bcdeploy[serve]'")

from starlette.requests import Request  # noqa: E402

from bcdeploy.errors import BcDeployError  # noqa: E402

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 64
# what a client can put in a header: latin-1 text, digits of other scripts, signs, spaces, huge numbers
HEADER_TEXT = st.one_of(st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=12),
                        st.integers(min_value=-10, max_value=10 ** 30).map(str), st.sampled_from(["²", "¹²", " 5", "+5", "0x10"]))


def _request(content_length: str | None, chunks: list[bytes], name: str | None) -> Request:
    headers = []
    if content_length is not None:
        headers.append((b"content-length", content_length.encode("latin-1")))
    if name is not None:
        headers.append((b"x-filename", name.encode("latin-1")))
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks or [b""])]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/segment", "headers": headers, "query_string": b""}
    return Request(scope, receive)


@SETTINGS
@given(content_length=st.one_of(st.none(), HEADER_TEXT), chunks=st.lists(st.binary(max_size=40), max_size=5))
def test_the_body_is_read_whole_or_refused_with_its_status(content_length, chunks):
    from bcdeploy.serve.ray_app import BodyTooLarge, read_capped

    total = sum(map(len, chunks))
    try:
        body = asyncio.run(read_capped(_request(content_length, chunks, None), LIMIT))
    except BodyTooLarge as err:
        assert err.status in (408, 413)
        assert total > LIMIT or (content_length or "").strip().isdigit(), (content_length, total)
        return
    assert body == b"".join(chunks) and len(body) <= LIMIT


@SETTINGS
@given(name=st.text(alphabet=st.characters(max_codepoint=255), max_size=300),
       data=st.one_of(st.binary(max_size=256), st.sampled_from([b"\x89PNG\r\n\x1a\n", b"II*\x00", b""])))
def test_an_uploaded_name_and_body_give_an_image_or_one_error_line(name, data):
    """X-Filename is the client's text: it names the upload in the error, on one line, whatever it holds."""
    from bcdeploy.runtime.images.imageio import decode_image
    from bcdeploy.serve.ray_app import upload_name

    shown = upload_name(name)
    assert "\n" not in shown and "\r" not in shown and 0 < len(shown) <= 120
    try:
        decode_image(data, shown, max_pixels=10_000)
    except BcDeployError as err:
        assert "\n" not in str(err).strip()
