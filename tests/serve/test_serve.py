"""`bcdeploy serve` on loopback: real requests, masks equal to `bcdeploy infer`'s, a bounded load test."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.mmseg, pytest.mark.slow]
ray = pytest.importorskip("ray", reason="needs the serve extra (ray[serve])")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, data: bytes, timeout: float = 60) -> dict:
    request = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(exported):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bcdeploy.cli", "serve", str(exported / "model.onnx"),
                             "--port", str(port), "--max-batch", "4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}/segment"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited early:\n{proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/metadata", timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("serve did not become ready in 240 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from bcdeploy.data.synth import render_case

    folder = tmp_path_factory.mktemp("serve_in")
    paths = []
    for index in range(3):
        _, gray, _ = render_case(21, index, 400, 460)
        path = folder / f"S{index}.png"
        cv2.imwrite(str(path), gray)
        paths.append(path)
    return paths


def test_masks_equal_bcdeploy_infer(server, exported, images, tmp_path):
    run_cli("infer", "--engine", exported / "model.onnx", *images, "--out", tmp_path)
    for path in images:
        reply = post(server, path.read_bytes())
        mask = cv2.imdecode(np.frombuffer(base64.b64decode(reply["mask_png_b64"]), np.uint8), cv2.IMREAD_UNCHANGED)
        expected = cv2.imread(str(tmp_path / "masks" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert reply["classes"] == ["background", "benign", "malignant"]
        assert np.array_equal(mask, expected)


def test_bad_upload_is_a_400_with_one_line(server):
    with pytest.raises(urllib.error.HTTPError) as err:
        post(server, b"not an image")
    assert err.value.code == 400 and "not a TIFF, PNG, JPEG or DICOM" in json.loads(err.value.read())["error"]


def test_bounded_concurrent_load(server, images):
    """8 clients x 3 requests, loopback only: every reply correct-sized, latencies recorded."""
    payloads = [p.read_bytes() for p in images]
    latencies = []

    def client(k: int) -> None:
        for j in range(3):
            t0 = time.perf_counter()
            reply = post(server, payloads[(k + j) % len(payloads)])
            latencies.append(time.perf_counter() - t0)
            assert reply["width"] > 0 and reply["mask_png_b64"]

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    elapsed = time.perf_counter() - start
    assert len(latencies) == 24 and elapsed < 120
    assert np.percentile(latencies, 99) < 60
