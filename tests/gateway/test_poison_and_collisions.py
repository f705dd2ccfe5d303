"""One hostile instance never stops the node: a panicking codestream is that image's failure, a file that
crashed the node is quarantined instead of crashing every restart, and a SOP Instance UID received again
with other content never replaces the first. A real node subprocess, Orthanc as the PACS."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pydicom
import pytest

from bcdeploy.gateway.audit import read_audit
from tests.gateway.conftest import MODALITY, NODE
from tests.gateway.test_gateway import assert_one_result_set_per_image, wait_for_results, write_study
from tests.hostile_codestreams import poison_dicom

pytestmark = pytest.mark.slow
RLE = "1.2.840.10008.1.2.5"


def _send(port: int, *datasets) -> list[int]:
    """C-STORE each dataset in its own transfer syntax over one association (pynetdicom as the modality)."""
    from pynetdicom import AE

    ae = AE(ae_title=MODALITY)
    for ds in datasets:
        ae.add_requested_context(str(ds.SOPClassUID), [str(ds.file_meta.TransferSyntaxUID)])
    assoc = ae.associate("127.0.0.1", port, ae_title=NODE)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def test_a_panicking_codestream_fails_alone_and_the_node_goes_on(node_factory, pacs, tmp_path):
    good = write_study(tmp_path / "in", "GW-POISON", images=1)[0]
    study = str(pydicom.dcmread(good, stop_before_pixels=True).StudyInstanceUID)
    poison = poison_dicom(tmp_path / "poison.dcm", "rle", 0, patient="GW-POISON", study_uid=study)
    if poison is None:
        pytest.skip("no RLE encoder installed")
    node = node_factory("--study-idle", "0.5").start()
    assert _send(node.port, pydicom.dcmread(poison), pydicom.dcmread(good)) == [0, 0]
    wait_for_results(node, pacs, [good])
    node.wait_for(lambda: "1 processed, 1 failed" in node.status(), 30, "the poison image to count as failed")
    assert node.proc.poll() is None  # still serving
    assert "PanicException" in node.log()
    assert node.signal(signal.SIGTERM) == 0
    assert_one_result_set_per_image(pacs, [good])


def _die_inside_a_run(out, study: str, sops: list[str] | None = None) -> None:
    """A process that begins a run over the study's waiting instances (or `sops` of them) in the node's
    state and dies there, as a decoder's SIGSEGV would end the node."""
    code = textwrap.dedent(f"""
        import os, signal
        from bcdeploy.gateway.spool import Spool
        spool = Spool({str(out)!r})
        instances = [i for i in spool.waiting({study!r}) if {sops!r} is None or i.sop_uid in {sops!r}]
        with spool.run_of(instances):
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == -signal.SIGKILL


def test_an_image_that_crashed_the_node_is_quarantined_and_its_study_goes_on(node_factory, pacs, tmp_path):
    sources = write_study(tmp_path / "in", "GW-CRASH", images=2)
    uids = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sources]
    study = str(pydicom.dcmread(sources[0], stop_before_pixels=True).StudyInstanceUID)
    node = node_factory("--study-idle", "600").start()  # receive only
    assert node.storescu(*sources).returncode == 0
    assert node.signal(signal.SIGTERM) == 0
    _die_inside_a_run(node.out, study)  # the study's run crashed the node: both images are suspects
    _die_inside_a_run(node.out, study, [uids[0]])  # then the first image's run alone crashed it again

    node.start("--study-idle", "0.5")
    wait_for_results(node, pacs, sources[1:])
    node.wait_for(lambda: "1 processed, 1 failed" in node.status(), 30, "the quarantine in the status")
    log = node.log()
    assert "segmenting its 1 image(s) one at a time" in log  # the second, suspect by the study's crash, alone
    assert f"instance {uids[0]}: the node stopped 2 times while segmenting it alone" in log
    quarantined = [e for e in read_audit(node.out) if "quarantined" in e["outcome_text"]]
    assert len(quarantined) == 1 and quarantined[0]["objects"]["sop_uids"] == [uids[0]]
    assert node.signal(signal.SIGTERM) == 0
    assert list((node.out / "spool").rglob(f"{uids[0]}-*.dcm"))  # kept for a look


def test_a_crashed_study_is_run_one_image_at_a_time(node_factory, pacs, tmp_path):
    sources = write_study(tmp_path / "in", "GW-CRASH1", images=2)
    study = str(pydicom.dcmread(sources[0], stop_before_pixels=True).StudyInstanceUID)
    node = node_factory("--study-idle", "600").start()
    assert node.storescu(*sources).returncode == 0
    assert node.signal(signal.SIGTERM) == 0
    _die_inside_a_run(node.out, study)
    node.start("--study-idle", "0.5")
    wait_for_results(node, pacs, sources)
    assert "segmenting its 2 image(s) one at a time" in node.log()
    assert node.log().count("segmenting 1 image(s)") == 2
    node.wait_for(lambda: "2 processed, 0 failed" in node.status(), 30, "both images processed")


def test_a_uid_received_again_with_other_content_is_refused_and_the_first_kept(node_factory, pacs, tmp_path):
    [first] = write_study(tmp_path / "a", "GW-UID-A", images=1)
    [other] = write_study(tmp_path / "b", "GW-UID-B", images=1)  # another patient's study ...
    impostor = pydicom.dcmread(other)
    original = pydicom.dcmread(first)
    impostor.SOPInstanceUID = impostor.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID  # ... same UID
    node = node_factory("--study-idle", "2").start()
    assert _send(node.port, original) == [0]
    [status] = _send(node.port, impostor)
    assert status == 0x0111, hex(status)
    wait_for_results(node, pacs, [first])
    assert "held already with other content" in node.log()
    refused = [e for e in read_audit(node.out) if e["event"] == "instance" and e["outcome"] != 0]
    assert len(refused) == 1 and "other content" in refused[0]["outcome_text"]
    node.wait_for(lambda: "1 received, 0 waiting, 1 processed" in node.status(), 30, "the first image processed")
