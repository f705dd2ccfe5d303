"""A dead cluster (issue "Reliability round 3", defect 3): `infer --ray ADDRESS` and `serve --address
ADDRESS` where nothing listens end with one error line and exit 1 within the connect timeout, instead of
waiting forever. Real processes, a real free port on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")


def dead_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # closed when the block ends: nothing listens there


@pytest.mark.parametrize("command", [
    ["infer", "--model", "{model}", "{images}", "--out", "{out}", "--ray", "{address}", "--connect-timeout", "3"],
    ["serve", "{model}", "--address", "{address}", "--connect-timeout", "3"],
], ids=["infer --ray", "serve --address"])
def test_nothing_listening_is_one_line_and_exit_1(command, tiny_onnx, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    fields = {"model": str(tiny_onnx), "images": str(tmp_path / "images"), "out": str(tmp_path / "out"),
              "address": dead_address()}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bcdeploy.cli", *(part.format(**fields) for part in command)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach a Ray cluster" in errors[0] and fields["address"] in errors[0], done.stderr
    assert time.monotonic() - start < 60
