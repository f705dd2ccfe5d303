"""The real parts around a DICOM node under test: Orthanc with its DICOM port as the PACS, the node as a
`bcdeploy gateway` subprocess stopped by its process id, DCMTK's storescu/echoscu as the modality."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.orthanc_server import OrthancProcess, dicomweb_plugin, free_port

MODALITY = "MODALITY"
NODE = "BCDEPLOY"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory) -> OrthancProcess:
    pytest.importorskip("pynetdicom", reason="needs the gateway extra: pip install 'bcdeploy[gateway]'")
    server = OrthancProcess(tmp_path_factory.mktemp("pacs"), dicom=True, dicomweb=dicomweb_plugin() is not None).start()
    try:
        yield server
    finally:
        server.stop()


@functools.cache
def dcmtk(tool: str) -> str:
    """DCMTK's own `tool`, the independent peer: pynetdicom installs console scripts of the same names
    (storescu, echoscu) into the virtual environment, first on PATH, and those would test pynetdicom
    against itself (their messages and exit codes differ too)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = shutil.which(tool, path=folder)
        if path is None:
            continue
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        if "dcmtk" in (version.stdout + version.stderr).lower():
            return path
    pytest.skip(f"DCMTK's {tool} is not installed (Debian: apt-get install dcmtk)")


class Node:
    """`bcdeploy gateway` as a subprocess on a free loopback port."""

    def __init__(self, out: Path, model: Path, pacs: OrthancProcess, *extra: str, log_path: Path | None = None) -> None:
        self.out, self.model, self.pacs, self.extra = out, model, pacs, list(extra)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = log_path or out.parent / f"{out.name}.log"

    def start(self, *extra: str, timeout: float = 90.0) -> Node:
        extra = [*self.extra, *extra]
        destination = [] if {"--stow", "--send-to"} & set(extra) else ["--send-to", f"{self.pacs.aet}@127.0.0.1:{self.pacs.dicom_port}"]
        args = [sys.executable, "-m", "bcdeploy.cli", "gateway", "--model", str(self.model), "--out", str(self.out),
                "--host", "127.0.0.1", "--port", str(self.port), "--allow", MODALITY, *destination, *extra]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        started = len(self.log().split("listening on")) - 1
        self.wait_for(lambda: len(self.log().split("listening on")) - 1 > started, timeout, "the node to listen")
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the node exited ({self.proc.returncode}) while waiting for {what}:\n"
                                     f"{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.log()[-4000:]}")

    def signal(self, signum: int, timeout: float = 60.0) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)

    def storescu(self, *files: Path, calling: str = MODALITY, called: str = NODE) -> subprocess.CompletedProcess:
        return subprocess.run([dcmtk("storescu"), "-aet", calling, "-aec", called, "127.0.0.1", str(self.port),
                               *map(str, files)], capture_output=True, text=True, timeout=120)

    def status(self) -> str:
        return subprocess.run([sys.executable, "-m", "bcdeploy.cli", "gateway", "--status", str(self.out)],
                              capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture
def node_factory(tmp_path, tiny_onnx, pacs):
    nodes: list[Node] = []

    def make(*extra: str, name: str = "node", out: Path | None = None) -> Node:
        """A node in tmp_path/name, or with its folder at `out` (its log stays in tmp_path)."""
        node = Node(out or tmp_path / name, tiny_onnx, pacs, *extra, log_path=tmp_path / f"{name}.log")
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()
