"""The node's path from a received instance to a sent result, counted: the run hands back the rows it
settled and queues the results in the one outbox (runtime/run/outbox.py), so the node opens no ledger
of its own and parses no result file to learn its UID; the sender reads each result file once, to send
it. Counted with Python's audit hooks (every `open` and `sqlite3.connect` in the process) over a real
spool, a real onnxruntime model, and Orthanc's DICOM port as the PACS."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from bcdeploy.gateway.node import Gateway, GatewayOptions
from bcdeploy.gateway.scp import ScpOptions
from bcdeploy.pacs.destinations import DimseDestination
from bcdeploy.runtime.images.imageio import DEFAULT_MAX_PIXELS
from tests.gateway.test_gateway import results_in_pacs, study_uid_of, write_study

pytestmark = pytest.mark.slow

_events: list[tuple[str, tuple]] | None = None  # recording while a list
_events_lock = threading.Lock()


def _hook(event: str, args: tuple) -> None:
    if _events is not None and event in ("open", "sqlite3.connect"):
        with _events_lock:
            _events.append((event, args))


sys.addaudithook(_hook)  # hooks cannot be removed; this one records only inside `_recording`


class _Recording:
    def __enter__(self) -> list[tuple[str, tuple]]:
        global _events
        _events = []
        return _events

    def __exit__(self, *exc: object) -> None:
        global _events
        _events = None


def _result_reads(events: list[tuple[str, tuple]], results: Path) -> dict[str, int]:
    """Opens for reading of DICOM result files below `results`, by file."""
    reads: dict[str, int] = {}
    for event, args in events:
        if event != "open" or not isinstance(args[0], str | Path) or not str(args[0]).endswith(".dcm"):
            continue
        path, mode = Path(args[0]), args[1]
        if path.is_relative_to(results) and isinstance(mode, str) and "r" in mode and "+" not in mode:
            reads[path.relative_to(results).as_posix()] = reads.get(path.relative_to(results).as_posix(), 0) + 1
    return reads


def _ledger_opens(events: list[tuple[str, tuple]]) -> int:
    return sum(1 for event, args in events if event == "sqlite3.connect" and str(args[0]).endswith("ledger.sqlite"))


def test_the_node_reads_back_nothing_the_run_told_it_and_sends_each_file_from_one_read(tiny_onnx, pacs, tmp_path):
    from bcdeploy.runtime.model.segmenter import Segmenter

    sources = write_study(tmp_path / "modality", "PAT-OUTBOX", images=3)
    study = study_uid_of(sources[0])
    options = GatewayOptions(out=tmp_path / "node", scp=ScpOptions(ae_title="BCDEPLOY", port=0, max_pixels=DEFAULT_MAX_PIXELS),
                             destination=DimseDestination(pacs.aet, "127.0.0.1", pacs.dicom_port))
    node = Gateway(lambda: Segmenter(tiny_onnx), options)
    try:
        import pydicom

        for path in sources:  # what the SCP does on C-STORE, minus the network
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            node.spool.receive(path.read_bytes(), study_uid=study, series_uid=str(ds.SeriesInstanceUID),
                               sop_uid=str(ds.SOPInstanceUID), sop_class=str(ds.SOPClassUID), calling_ae="MODALITY")
        with _Recording() as during_run:
            node._process(study)
        assert node.spool.status()["processed"] == 3
        assert _ledger_opens(during_run) == 1, "the node opened the ledger beside the run's own"
        assert _result_reads(during_run, node.spool.results) == {}, "the node read back a result the run wrote"

        with _Recording() as during_send:
            drained = node.sender.drain()
        assert (drained.sent, drained.due, drained.refused) == (9, 0, 0), drained
        reads = _result_reads(during_send, node.spool.results)
        assert len(reads) == 9 and set(reads.values()) == {1}, reads
        assert _ledger_opens(during_send) == 0
    finally:
        node.close()
    in_pacs = results_in_pacs(pacs, study)
    assert {m: len(found) for m, found in in_pacs.items() if m != "MG"} == {"SEG": 3, "SR": 3, "OT": 3}
