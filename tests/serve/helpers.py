"""HTTP helpers for the serve tests: a serve subprocess, posting images, comparing masks."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from tests.ray_cluster import free_port


def post(url: str, data: bytes, timeout: float = 120) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def start_server(model, *args: str, loopback_env: bool = False) -> tuple[subprocess.Popen, str]:
    """`bcdeploy serve MODEL ARGS` in a subprocess (its own session); waits until it answers."""
    port = free_port()
    # local mode runs without the loopback switch tests/conftest.py sets: keeping its Ray on loopback
    # is serve's own job; a driver joining a test cluster keeps it
    env = {k: v for k, v in os.environ.items() if loopback_env or k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    proc = subprocess.Popen([sys.executable, "-m", "bcdeploy.cli", "serve", str(model), "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}/segment"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited early:\n{proc.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/metadata", timeout=5) as response:
                if response.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("serve did not become ready in 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def decoded_mask(reply: dict) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(reply["mask_png_b64"]), np.uint8), cv2.IMREAD_UNCHANGED)


def runtime_mask(model, data: bytes) -> np.ndarray:
    from bcdeploy.runtime.images.imageio import decode_image
    from bcdeploy.runtime.model.segmenter import Segmenter

    with Segmenter(model) as segmenter:
        return segmenter.predict([decode_image(data).bgr])[0].mask
