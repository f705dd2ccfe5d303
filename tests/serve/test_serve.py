"""`bcdeploy serve` in local mode, on loopback: real requests, masks equal to the runtime's, limits
(413 before the body is read, 400 for any bad image), no stall behind a slow image, every Ray and
Serve socket on loopback, the health route, and a graceful drain on SIGTERM (last: it stops the server)."""

import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from tests.ray_cluster import LOOPBACK_ADDRESSES, listening_sockets
from tests.serve.bad_images import huge_header_tiff
from tests.serve.helpers import decoded_mask, post, runtime_mask, start_server, stop_server
from tests.tiny_models import synthetic_png

pytestmark = [pytest.mark.slow]
ray = pytest.importorskip("ray", reason="needs the serve extra (ray[serve])")
MAX_BODY_MB = 1


@pytest.fixture(scope="module")
def server(tiny_model):
    proc, url = start_server(tiny_model, "--max-batch", "4", "--max-body-mb", str(MAX_BODY_MB),
                             "--max-pixels", "40000000")
    yield proc, url
    stop_server(proc)


def large_png(width: int = 6000, height: int = 5000) -> bytes:
    """30 MP, mammogram-sized and valid: seconds of decode, postprocessing and encoding."""
    image = np.zeros((height, width), np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 3, 200, -1)
    return cv2.imencode(".png", image)[1].tobytes()


def raw_http(port: int, head: str, body_chunks: list[bytes] = ()) -> tuple[int, dict]:
    """Send a request by hand (to declare a length without sending the body); read the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before taking all of it: that is the point
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _content_length(reply):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    status = int(reply.split(b" ", 2)[1])
    return status, json.loads(reply.split(b"\r\n\r\n", 1)[1])


def _content_length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def test_masks_equal_the_runtime(server, tiny_model):
    _, url = server
    for seed in range(3):
        data = synthetic_png(seed)
        status, reply = post(url, data)
        assert status == 200 and reply["classes"] == ["background", "benign", "malignant"]
        assert np.array_equal(decoded_mask(reply), runtime_mask(tiny_model, data))


def test_huge_header_tiff_is_a_400_with_one_line(server):
    _, url = server
    status, reply = post(url, huge_header_tiff())
    assert status == 400
    assert "upload" in reply["error"] and "\n" not in reply["error"]


def test_bad_upload_is_a_400_with_one_line(server):
    status, reply = post(server[1], b"not an image")
    assert status == 400 and "not a TIFF, PNG, JPEG or DICOM" in reply["error"] and "\n" not in reply["error"]


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(server):
    """Only the headers go out: a server that waited for the body would time out."""
    port = int(server[1].split(":")[2].split("/")[0])
    size = (MAX_BODY_MB + 1) * 2**20
    status, reply = raw_http(port, f"POST /segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n")
    assert status == 413 and str(size) in reply["error"] and "--max-body-mb" in reply["error"]


def test_streamed_body_over_the_limit_is_a_413(server):
    port = int(server[1].split(":")[2].split("/")[0])
    chunks = [bytes(256 * 1024)] * (4 * MAX_BODY_MB + 4)
    status, reply = raw_http(port, "POST /segment HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                             chunks)
    assert status == 413 and "--max-body-mb" in reply["error"]


def test_slow_image_does_not_stall_a_small_one(server):
    """A 30 MP upload is in progress when a small one arrives: the small one must finish well before
    the large one (a blocked event loop makes it wait for all of the large one's work)."""
    _, url = server
    small = synthetic_png(7)
    done: dict[str, float] = {}

    def send(name: str, data: bytes) -> None:
        status, _ = post(url, data)
        done[name] = time.perf_counter()
        assert status == 200

    large = large_png()
    started = time.perf_counter()
    send("large", large)  # alone first: how long its work takes on this machine (a fixed 0.5 s wait was
    alone = time.perf_counter() - started  # once longer than all of it, and the small one came second)
    done.clear()
    large_thread = threading.Thread(target=send, args=("large", large))
    start = time.perf_counter()
    large_thread.start()
    time.sleep(alone / 4)  # the large request is being worked on by now
    small_start = time.perf_counter()
    send("small", small)
    large_thread.join(120)
    assert set(done) == {"large", "small"}
    small_latency, large_latency = done["small"] - small_start, done["large"] - start
    assert done["small"] < done["large"]
    assert small_latency < 0.5 * large_latency, (small_latency, large_latency)


def test_bounded_concurrent_load(server):
    """6 clients x 3 requests: every reply a full-size mask."""
    _, url = server
    payloads = [synthetic_png(seed) for seed in range(3)]

    def client(k: int) -> list[int]:
        return [post(url, payloads[(k + j) % 3])[0] for j in range(3)]

    with ThreadPoolExecutor(6) as pool:
        statuses = [s for batch in pool.map(client, range(6)) for s in batch]
    assert statuses == [200] * 18


def _metrics(url: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_refusals_and_latency(server):
    """GET /segment/metrics (issue 39), read by Prometheus' own parser: the counts move by exactly what
    this test sent (other tests share the server: deltas, not totals)."""
    url = server[1]
    before = _metrics(url)
    assert post(url, synthetic_png(1))[0] == 200
    assert post(url, synthetic_png(2))[0] == 200
    assert post(url, b"not an image")[0] == 400
    port = int(url.split(":")[2].split("/")[0])
    size = (MAX_BODY_MB + 1) * 2**20
    assert raw_http(port, f"POST /segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n")[0] == 413
    after = _metrics(url)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("bcdeploy_serve_requests_total", route="segment", code="200") == 2
    assert moved("bcdeploy_serve_requests_total", route="segment", code="400") == 1
    assert moved("bcdeploy_serve_refused_total", reason="bad_image") == 1
    assert moved("bcdeploy_serve_refused_total", reason="body_too_large") == 1
    assert moved("bcdeploy_serve_request_seconds_count") == 2
    assert 0 < moved("bcdeploy_serve_request_seconds_sum") < 60


def test_health_route(server):
    port = int(server[1].split(":")[2].split("/")[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthz", timeout=10) as response:
        assert response.status == 200


def test_every_ray_and_serve_socket_is_on_loopback(server):
    proc, url = server
    port = int(url.split(":")[2].split("/")[0])
    sockets = listening_sockets(proc.pid)
    assert any(p == port for *_, p in sockets), "the HTTP proxy's socket must be among those found"
    assert len({pid for pid, *_ in sockets}) >= 5, sockets  # driver, GCS, raylet, agents, proxy, replicas
    exposed = [s for s in sockets if s[2] not in LOOPBACK_ADDRESSES]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_sigterm_drains_the_request_in_flight(server):
    """Runs last: SIGTERM while a slow request is in flight; it is answered, then serve exits 0."""
    proc, url = server
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(post(url, large_png())[0]))
    thread.start()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    thread.join(120)
    assert result == [200]
    assert proc.wait(90) == 0
