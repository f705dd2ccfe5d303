"""`gateway --http`: /metrics read by Prometheus' own parser, /readyz on a disk that fills and empties,
the status page in a real browser (headless Chromium), and the HTTP side's refusals (issue 39)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bcdeploy.gateway.audit import read_audit
from tests.gateway.test_gateway import wait_for_results, write_study
from tests.orthanc_server import free_port

pytestmark = pytest.mark.slow


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, content type, body) of one request; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def monitored(node_factory, *extra: str, out: Path | None = None):
    port = free_port()
    node = node_factory("--http", f"127.0.0.1:{port}", *extra, out=out).start()
    node.wait_for(lambda: "HTTP on 127.0.0.1" in node.log(), 30, "the HTTP side")
    return node, f"http://127.0.0.1:{port}"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text exposition, parsed by prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(found: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, labels[k]) in ls for k in labels))


def test_metrics_after_a_study_sent_by_storescu_equal_the_audit_counts(node_factory, pacs, tmp_path, tiny_onnx):
    import hashlib

    import pydicom
    from pydicom.uid import generate_uid

    sources = write_study(tmp_path / "in", "GW-METRICS", images=2)
    truncated = pydicom.dcmread(sources[0])
    truncated.SOPInstanceUID = truncated.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    truncated.PixelData = truncated.PixelData[: len(truncated.PixelData) // 3]
    truncated.save_as(tmp_path / "truncated.dcm")
    node, base = monitored(node_factory, "--study-idle", "0.5")

    assert node.storescu(*sources).returncode == 0
    node.storescu(tmp_path / "truncated.dcm")  # refused: pixel data shorter than its header says
    assert node.storescu(sources[0], calling="STRANGER").returncode != 0  # not in --allow
    wait_for_results(node, pacs, sources)
    node.wait_for(lambda: "0 due, 6 sent" in node.status(), 60, "every result sent")

    status, content_type, text = get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    found = samples(text)
    audit = read_audit(node.out)

    def audited(event: str, action: str | None = None, ok: bool | None = None, text: str = "") -> int:
        return sum(1 for e in audit if e["event"] == event and action in (None, e["action"])
                   and ok in (None, e["outcome"] == 0) and text in e.get("outcome_text", ""))

    assert total(found, "bcdeploy_gateway_instances_received_total", segmented="true") == audited(
        "instance", "C", True, "stored") == 2
    assert total(found, "bcdeploy_gateway_instances_refused_total") == audited("instance", "C", False) == 1
    assert total(found, "bcdeploy_gateway_instances_refused_total", reason="does_not_match") == 1
    assert total(found, "bcdeploy_gateway_associations_accepted_total") == audited("association", "E", True) == 2
    assert total(found, "bcdeploy_gateway_associations_refused_total", reason="calling_ae") == audited(
        "security", text="association refused") == 1
    assert total(found, "bcdeploy_gateway_results_sent_total") == audited("instance", "R", True) == 6
    assert total(found, "bcdeploy_gateway_results_sent_total", kind="seg") == 2
    assert total(found, "bcdeploy_gateway_results_refused_total") == audited("instance", "R", False) == 0
    assert total(found, "bcdeploy_gateway_images_segmented_total") == 2
    assert total(found, "bcdeploy_gateway_segmentation_seconds_count") == 2
    assert 0 < total(found, "bcdeploy_gateway_segmentation_seconds_sum") < 120
    assert total(found, "bcdeploy_gateway_studies_processed_total") == 1
    assert total(found, "bcdeploy_gateway_results_due") == 0
    assert total(found, "bcdeploy_gateway_results_oldest_due_age_seconds") == 0
    assert total(found, "bcdeploy_gateway_destination_up") == 1
    assert 0 < total(found, "bcdeploy_gateway_disk_free_bytes") <= shutil.disk_usage(node.out).total
    assert total(found, "bcdeploy_gateway_spool_bytes", state="waiting") == 0  # processed instances are released
    assert total(found, "bcdeploy_gateway_associations_open") == 0
    model_sha = hashlib.sha256(tiny_onnx.read_bytes()).hexdigest()
    assert total(found, "bcdeploy_gateway_model_info", sha256=model_sha, file=tiny_onnx.name) == 1
    assert total(found, "process_start_time_seconds") > 0

    alive, _, body = get(f"{base}/healthz")
    assert alive == 200 and json.loads(body) == {"alive": True}
    ready, _, body = get(f"{base}/readyz")
    assert ready == 200 and json.loads(body)["ready"] is True, body


def test_readyz_turns_not_ready_on_a_full_disk_and_ready_again_when_space_returns(node_factory, tmp_path):
    """The node's folder on a small tmpfs: filled, /readyz says 503 naming the disk and the spool, and
    the SCP refuses (0xA700) rather than write into it; emptied, both come back."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?)")
    try:
        sources = write_study(tmp_path / "in", "GW-DISK", images=1)
        node, base = monitored(node_factory, "--study-idle", "600", "--min-free-gb", "0.008", out=mount / "node")
        status, _, body = get(f"{base}/readyz")
        assert status == 200, body

        filler = mount / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)  # until ENOSPC
        status, content_type, body = get(f"{base}/readyz")
        report = json.loads(body)
        assert status == 503 and content_type == "application/json" and report["ready"] is False
        assert set(report["failed"]) == {"disk", "spool"}, report
        assert "takes no write" in report["checks"]["spool"]["detail"]
        sent = node.storescu(*sources)
        assert sent.returncode != 0 or "0xa700" in (sent.stderr + sent.stdout).lower()
        metrics = samples(get(f"{base}/metrics")[2])
        assert total(metrics, "bcdeploy_gateway_instances_refused_total", reason="disk_low") == 1

        filler.unlink()
        status, _, body = get(f"{base}/readyz")
        assert status == 200 and json.loads(body)["failed"] == [], body
        assert node.storescu(*sources).returncode == 0
        assert "1 received" in node.status()
        node.stop()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _chromium() -> str:
    for name in ("chromium-headless-shell", "chromium", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no headless Chromium (Debian: apt-get install chromium-headless-shell)")


def _browser(url: str, *args: str) -> str:
    run = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          *args, url],
                         capture_output=True, text=True, timeout=120)
    return run.stdout


def test_the_status_page_shows_the_study_no_patient_and_an_ae_title_as_text(node_factory, pacs, tmp_path):
    import pydicom

    sources = write_study(tmp_path / "in", "GW-PAGE-PATIENT", images=2)
    header = pydicom.dcmread(sources[0], stop_before_pixels=True)
    node, base = monitored(node_factory, "--study-idle", "0.5", "--allow", "<script>")
    assert node.storescu(*sources, calling="<script>").returncode == 0
    assert node.storescu(sources[0], calling="<b>x</b>").returncode != 0  # a stranger: refused, shown
    wait_for_results(node, pacs, sources)
    node.wait_for(lambda: "0 due, 6 sent" in node.status(), 60, "every result sent")

    dom = _browser(f"{base}/", "--dump-dom")
    assert str(header.StudyInstanceUID) in dom and "done" in dom
    assert "ready" in dom and "<b>x</b>" not in dom and "&lt;b&gt;x&lt;/b&gt;" in dom
    assert "&lt;script&gt;" in dom and "<script" not in dom  # the AE title is text, not an element
    for identifier in (str(header.PatientID), str(header.PatientName), str(header.PatientName).split("^")[0]):
        assert identifier not in dom, identifier
    shot = tmp_path / "gateway-status.png"
    _browser(f"{base}/", f"--screenshot={shot}", "--window-size=1280,800", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if folder := os.environ.get("BCDEPLOY_DOC_IMAGES"):  # the README's picture, made by this test
        shutil.copy(shot, Path(folder) / shot.name)


def test_the_http_side_answers_get_only_and_bounds_requests(node_factory, tmp_path):
    node, base = monitored(node_factory, "--study-idle", "600")
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = get(f"{base}/metrics", method=method)
        assert status == 405, method
    assert get(f"{base}/nothing-here")[0] == 404
    assert get(f"{base}/healthz", method="HEAD")[0] == 200
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 40_000 + b"\r\n\r\n")
        answer = sock.recv(200).decode(errors="replace")
    assert answer.startswith("HTTP/1.0 431"), answer
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # a huge request line
        sock.sendall(b"GET /" + b"a" * 40_000 + b" HTTP/1.1\r\n\r\n")
        answer = sock.recv(200).decode(errors="replace")
    assert answer.startswith("HTTP/1.0 431"), answer
    assert get(f"{base}/healthz")[0] == 200  # and the server goes on


@pytest.mark.parametrize(("args", "line"), [
    (["--http", "0.0.0.0:9110"], "needs --http-allow"),
    (["--http", "10.1.2.3:9110", "--http-allow", "not-a-network"], "--http-allow"),
    (["--http", "127.0.0.1"], "HOST:PORT"),
    (["--http-allow", "10.0.0.0/8"], "goes with --http"),
])
def test_a_careless_http_address_is_refused_with_one_line(args, line, tmp_path, tiny_onnx):
    run = subprocess.run([sys.executable, "-m", "bcdeploy.cli", "gateway", "--model", str(tiny_onnx), "--out",
                          str(tmp_path / "node"), "--send-to", "PACS@127.0.0.1:104", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and line in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "node").exists()  # refused before the node made anything


def test_recent_failures_read_only_the_end_of_a_long_trail(tmp_path):
    from bcdeploy.gateway.audit import AuditLog, recent_failures

    assert recent_failures(tmp_path) == []  # no trail yet
    audit = AuditLog(tmp_path)
    for i in range(3000):
        audit.record("instance", "C", 0 if i % 100 else 8, text=f"event {i:04d}")  # a failure every 100th
    line = audit.path.stat().st_size / 3000
    failures = recent_failures(tmp_path, limit=5, tail_bytes=int(150 * line))  # the last 150 lines, about
    assert [f["outcome_text"] for f in failures] == ["event 2900"]
    assert [f["outcome_text"] for f in recent_failures(tmp_path, limit=3)] == ["event 2900", "event 2800", "event 2700"]
