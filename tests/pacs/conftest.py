"""A real Orthanc with its DICOMweb plugin, started for the test session and stopped by its process id.

Loopback only: HTTP on a free port with RemoteAccessAllowed=false (Orthanc 1.10 has no bind-address
setting, so it refuses every non-loopback client instead), the DICOM server disabled, no
authentication, storage in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins", "/usr/local/share/orthanc/plugins")
INSTALL = "apt-get install orthanc orthanc-dicomweb"


@dataclass(frozen=True)
class Orthanc:
    url: str  # REST root
    dicomweb: str  # DICOMweb root
    pid: int


def _dicomweb_plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        candidate = Path(folder) / "libOrthancDicomWeb.so"
        if candidate.is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/dicom-web/studies", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"Orthanc did not answer on {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    binary, plugin = shutil.which("Orthanc"), _dicomweb_plugin()
    if binary is None or plugin is None:
        pytest.skip(f"Orthanc and its DICOMweb plugin are not installed (Debian: {INSTALL})")
    pytest.importorskip("dicomweb_client", reason="needs the pacs extra: pip install 'bcdeploy[pacs]'")
    root = tmp_path_factory.mktemp("orthanc")
    port = _free_port()
    config = {
        "Name": "bcdeploy-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomServerEnabled": False, "DicomPort": _free_port(), "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "StorageCompression": False, "HttpCompressionEnabled": False,
    }
    (root / "orthanc.json").write_text(json.dumps(config, indent=1))
    log = root / "orthanc.log"
    with log.open("w") as out:
        proc = subprocess.Popen([binary, str(root / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT,
                                cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log)
        yield Orthanc(url, f"{url}/dicom-web", proc.pid)
    finally:
        proc.terminate()  # SIGTERM to this process id only
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
