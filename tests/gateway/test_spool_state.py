"""The node's SQLite state as a crash, a collision and a full quota leave it: a real Spool, processes that
really die inside a run, and the state read back by the next one."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bcdeploy.gateway.source import source_key
from bcdeploy.gateway.spool import QUARANTINE_AFTER, SCHEMA_VERSION, Collision, Spool, open_status
from bcdeploy.runtime.run.ledger import open_outbox

STUDY, SERIES = "1.2.3", "1.2.3.4"


def _receive(spool: Spool, data: bytes, sop: str = "1.2.3.4.5", study: str = STUDY):
    return spool.receive(data, study_uid=study, series_uid=SERIES, sop_uid=sop, sop_class="1.2.840.10008.5.1.4.1.1.1.2",
                         calling_ae="MODALITY")


def _die_inside_a_run(root: Path, study: str = STUDY) -> None:
    """A process that opens the spool, begins a run over the study's waiting instances and is killed."""
    code = textwrap.dedent(f"""
        import os, signal
        from bcdeploy.gateway.spool import Spool
        spool = Spool({str(root)!r})
        with spool.run_of(spool.waiting({study!r})):
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr


def test_a_run_that_never_returned_leaves_its_count_and_one_that_did_leaves_none(tmp_path):
    spool = Spool(tmp_path)
    first, second = _receive(spool, b"first", "1.2.3.4.5"), _receive(spool, b"second", "1.2.3.4.6")
    with spool.run_of([first]):
        pass
    with pytest.raises(RuntimeError), spool.run_of([second]):
        raise RuntimeError("a run that failed as a whole returns by exception")
    assert [i.crashed_runs for i in spool.waiting(STUDY)] == [0, 0]
    spool.close()

    for crashes in range(1, QUARANTINE_AFTER + 1):
        _die_inside_a_run(tmp_path)
        reopened = Spool(tmp_path)
        assert [i.crashed_runs for i in reopened.waiting(STUDY)] == [crashes, crashes]
        reopened.close()


def test_quarantine_marks_failed_keeps_the_file_and_leaves_the_quota(tmp_path):
    spool = Spool(tmp_path, max_bytes=10)
    poison = _receive(spool, b"0123456789")
    assert spool.no_room(1)[0] == "spool_full"
    spool.quarantine(poison, "crashed twice")
    assert spool.no_room(10) is None and poison.path.is_file()
    status = spool.status()
    assert (status["failed"], status["waiting"], status["failed_bytes"], status["spool_bytes"]) == (1, 0, 10, 0)
    assert spool.waiting(STUDY) == []


def test_other_bytes_under_a_held_uid_are_refused_and_change_nothing(tmp_path):
    spool = Spool(tmp_path)
    first = _receive(spool, b"the first image")
    with pytest.raises(Collision, match="held already with other content"):
        _receive(spool, b"another patient's image", study="9.9.9")  # same UID, another patient's study
    with pytest.raises(Collision):
        _receive(spool, b"other pixels, same study")
    [kept] = spool.waiting(STUDY)
    assert kept.sha256 == hashlib.sha256(b"the first image").hexdigest() == first.sha256
    assert first.path.read_bytes() == b"the first image"
    assert spool.waiting("9.9.9") == [] and len(list((tmp_path / "spool").rglob("*.dcm"))) == 1
    again = _receive(spool, b"the first image")  # the same bytes again: the same instance, waiting again
    assert again.sha256 == first.sha256 and len(spool.waiting(STUDY)) == 1


def test_a_state_of_schema_version_1_is_migrated(tmp_path):
    db = sqlite3.connect(tmp_path / "gateway.sqlite")
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE instances (sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
            sop_class TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            received REAL NOT NULL, calling_ae TEXT, state TEXT NOT NULL, error TEXT, finished REAL);
        INSERT INTO instances VALUES ('1.2.3.4.5', '1.2.3', '1.2.3.4', '1.2', 'spool/x.dcm', 3, 'ab', 0, 'M',
                                      'waiting', NULL, NULL);
    """)
    db.commit()
    db.close()
    spool = Spool(tmp_path)
    assert spool._query("SELECT value FROM meta")[0][0] == "2"  # the step to 3 needs the outbox (next test)
    assert [i.crashed_runs for i in spool.waiting(STUDY)] == [0]
    outbox = open_outbox(spool.results)
    spool.move_results_to(outbox, source_key)
    assert spool._query("SELECT value FROM meta")[0][0] == SCHEMA_VERSION


def test_a_state_of_schema_version_2_moves_its_results_into_the_outbox(tmp_path):
    """The node's results table of version 2 goes into the run ledger's one outbox, states kept: a result
    due before the upgrade is sent after it, one sent is not sent again; `--status` counts them there."""
    spool = Spool(tmp_path)
    spool.db.executescript("""
        CREATE TABLE results (path TEXT NOT NULL, sha256 TEXT NOT NULL, sop_uid TEXT NOT NULL, kind TEXT NOT NULL,
            source_sop TEXT NOT NULL, study_uid TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL
            DEFAULT 0, error TEXT, created REAL NOT NULL, sent REAL, PRIMARY KEY (path, sha256));
        INSERT INTO results VALUES ('seg/a.dcm', 'aa', '2.25.1', 'seg', '1.2.3.4.5', '1.2.3', 'due', 1, 'down', 1, NULL);
        INSERT INTO results VALUES ('sr/a.dcm', 'bb', '2.25.2', 'sr', '1.2.3.4.5', '1.2.3', 'sent', 0, NULL, 2, 3);
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
    """)
    spool.close()
    assert open_status(tmp_path)["results_due"] == 1  # read before the move: from the old table
    spool = Spool(tmp_path)
    outbox = open_outbox(spool.results)
    spool.move_results_to(outbox, source_key)
    spool.move_results_to(outbox, source_key)  # a second start changes nothing
    [due] = outbox.due()
    assert (due.sop_uid, due.kind, due.attempts, due.source, due.path) == (
        "2.25.1", "seg", 1, "dimse:1.2.3.4.5", spool.results / "seg/a.dcm")
    assert outbox.counts() == {"due": 1, "sent": 1, "refused": 0, "last_error": "down", "oldest_due": 1.0}
    outbox.close()
    spool.close()
    status = open_status(tmp_path)
    assert (status["results_due"], status["sent"], status["last_send_error"]) == (1, 1, "down")
