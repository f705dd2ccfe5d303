"""A real Orthanc with its DICOMweb plugin for the session (tests/orthanc_server.py), DICOM port off."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.orthanc_server import OrthancProcess


@dataclass(frozen=True)
class Orthanc:
    url: str  # REST root
    dicomweb: str  # DICOMweb root
    pid: int


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Orthanc:
    pytest.importorskip("dicomweb_client", reason="needs the pacs extra: pip install 'bcdeploy[pacs]'")
    server = OrthancProcess(tmp_path_factory.mktemp("orthanc"), dicomweb=True).start()
    try:
        yield Orthanc(server.url, f"{server.url}/dicom-web", server.pid)
    finally:
        server.stop()
