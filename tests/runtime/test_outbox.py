"""The outbox's own rules (runtime/run/outbox.py), on a real ledger: a saved row queues its DICOM results
in the same transaction, a re-done image's due results are replaced, not doubled, and a row naming a path
outside the output folder (an edited ledger) is refused and never handed to a sender."""

from __future__ import annotations

import json

from bcdeploy.runtime.run.ledger import Ledger, open_outbox


def _row(source: str, sha: str, status: str = "ok") -> dict:
    outputs = {"seg": {"path": "seg/a.dcm", "size": 3, "sha256": sha, "sop_uid": "2.25.7"},
               "masks": {"path": "masks/a.png", "size": 3, "sha256": "m"}}
    return {"source": source, "name": "a", "argument": "x", "path": "x", "status": status, "run_id": 1,
            "outputs": json.dumps(outputs), "image": json.dumps({"tags": {"study_instance_uid": "1.2.3"}})}


def test_a_saved_row_queues_its_dicom_results_and_a_redone_image_replaces_them(tmp_path):
    ledger = Ledger(tmp_path, deliver=frozenset({"seg"}))
    run = ledger.begin_run({"model": "m"})
    ledger.save({**_row("dimse:1", "aa"), "run_id": run})
    outbox = open_outbox(tmp_path, read_only=True)
    [due] = outbox.due()
    assert (due.sop_uid, due.kind, due.study_uid, due.source, due.sha256) == ("2.25.7", "seg", "1.2.3", "dimse:1", "aa")
    ledger.save({**_row("dimse:1", "bb"), "run_id": run})  # the same image done again: new bytes
    assert [d.sha256 for d in outbox.due()] == ["bb"]
    ledger.save({**_row("dimse:1", "cc", status="failed"), "run_id": run})  # failed now: nothing to send
    assert outbox.due() == []
    outbox.close()
    ledger.close()


def test_a_row_naming_a_path_outside_the_folder_is_refused_never_sent(tmp_path):
    Ledger(tmp_path).close()
    outbox = open_outbox(tmp_path)
    base = {"sha256": "aa", "sop_uid": "2.25.1", "kind": "seg", "source": "dimse:1", "study_uid": "1.2",
            "state": "due", "attempts": 0, "error": None, "created": 1.0, "sent": None}
    outbox.adopt([{**base, "path": "../../etc/passwd"}, {**base, "path": "/etc/shadow", "created": 2.0},
                  {**base, "path": "seg/ok.dcm", "created": 3.0}])
    assert [d.path for d in outbox.due()] == [tmp_path / "seg/ok.dcm"]
    counts = outbox.counts()
    assert (counts["due"], counts["refused"]) == (1, 2) and "not a path inside" in counts["last_error"]
    outbox.close()
