"""A real Orthanc for tests, started as a process, stopped by its process id, and startable again on the
same ports and storage (a PACS that goes down and comes back).

Loopback only: HTTP with RemoteAccessAllowed=false (Orthanc 1.10 has no bind-address setting, so it
refuses every non-loopback client instead); tests reach its DICOM port, when enabled, on 127.0.0.1. No
authentication, storage in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins", "/usr/local/share/orthanc/plugins")
INSTALL = "apt-get install orthanc orthanc-dicomweb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dicomweb_plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        candidate = Path(folder) / "libOrthancDicomWeb.so"
        if candidate.is_file():
            return candidate
    return None


class OrthancProcess:
    def __init__(self, root: Path, *, dicom: bool = False, dicomweb: bool = False) -> None:
        binary = shutil.which("Orthanc")
        plugin = dicomweb_plugin() if dicomweb else None
        if binary is None or (dicomweb and plugin is None):
            pytest.skip(f"Orthanc{' and its DICOMweb plugin are' if dicomweb else ' is'} not installed "
                        f"(Debian: {INSTALL})")
        self.binary, self.root = binary, root
        self.http_port, self.dicom_port, self.aet = free_port(), free_port(), "ORTHANC"
        config: dict[str, Any] = {
            "Name": "bcdeploy-test", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
            "HttpPort": self.http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomServerEnabled": dicom, "DicomPort": self.dicom_port, "DicomAet": self.aet,
            "StorageCompression": False, "HttpCompressionEnabled": False, "Plugins": [],
        }
        if plugin is not None:
            config["Plugins"] = [str(plugin)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/", "EnableWado": False}
        (root / "orthanc.json").write_text(json.dumps(config, indent=1))
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> OrthancProcess:
        log = self.root / "orthanc.log"
        with log.open("a") as out:
            self.proc = subprocess.Popen([self.binary, str(self.root / "orthanc.json")], stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                self.get("/system")
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"Orthanc did not answer on {self.url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()  # SIGTERM to this process id only
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
            return json.loads(response.read())

    def instances_by_modality(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored instance's tags, grouped by its series' Modality."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for series in self.get("/series?expand"):
            modality = series["MainDicomTags"].get("Modality", "?")
            for instance in series["Instances"]:
                grouped.setdefault(modality, []).append(self.get(f"/instances/{instance}/simplified-tags"))
        return grouped


class TlsFront:
    """HTTPS in front of a plain HTTP server (what nginx or stunnel does before a hospital's Orthanc; the
    Debian build of Orthanc 1.10 crashes on its own HTTPS): TLS 1.2+ with `cert`/`key`, and with
    `client_ca` every client must present a certificate that CA signed. Bytes are relayed both ways."""

    def __init__(self, target_port: int, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        import ssl
        import threading

        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"https://localhost:{self.port}"
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> TlsFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.listener.close()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        import threading

        try:
            raw.settimeout(10)
            tls = self.context.wrap_socket(raw, server_side=True)
            tls.settimeout(None)
        except OSError:
            self.refused += 1
            raw.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def pump(source: socket.socket, sink: socket.socket) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, sink):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)
