"""The node's durable state: received instances on disk and in SQLite (its results wait in the outbox of
the run ledger in DIR/results, runtime/run/outbox.py, the one outbox `infer --dicomweb` uses too).

DIR/spool/<study>/<series>/<instance>.dcm holds each accepted mammogram, written atomically and
fsynced; DIR/gateway.sqlite records it in the same breath, and only then does the SCP answer success:
an instance the sender was told is stored survives SIGKILL and power loss. The states:

    instances: waiting -> processed | failed   (the run ledger in DIR/results says why a failure failed)

A SOP Instance UID names one set of bytes (PS3.3: an instance is defined by its UID). The same bytes
received again are the same instance (a modality resending what it had no answer for); other bytes
under a UID already held are refused and kept out: they never replace the first instance, whichever
patient or study they claim (the sender is told and the audit trail says so).

Crashes: a run over a study's instances counts itself in `crashed_runs` before it starts and takes it
back when it returns, so after a native crash (a decoder's SIGSEGV, the kernel's OOM killer) the
instances of the run that never returned carry the count. The node then runs them one at a time, and an
instance whose own runs never returned QUARANTINE_AFTER times is marked failed, kept in the spool, and
never tried again: one hostile file cannot put the node in a crash loop (gateway/node.py).

The spool's quota (--max-spool-gb) counts what is waiting to be segmented; failed instances stay for a
look, outside it (`gateway --status` shows their size), so failures never lock out new studies. The
disk's floor (--min-free-gb) keeps room for what the node writes after accepting: results, ledger,
audit trail.

A study is due when it has instances waiting and none arrived for the idle time. An image's results
are due from the moment the run commits its row (the same ledger transaction queues them); the
instance is marked processed after the run, so a kill between the two re-runs the study: the resume
rule skips the finished images, whose results are already due. A result is marked sent after the PACS
answered success; a kill between the two sends it again with the same SOP Instance UID, which a PACS
stores once (DICOM defines an instance by its UID; Orthanc keeps the first copy).

One connection, serialised by a lock: the SCP's association threads, the main loop and the sender
thread all use it; every write is one short transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcdeploy.errors import InputError, OutputError
from bcdeploy.fileio import atomic_path

if TYPE_CHECKING:
    from bcdeploy.runtime.run.outbox import Outbox

DB_NAME = "gateway.sqlite"
SPOOL = "spool"
RESULTS = "results"
# What DICOM allows in a UID (PS3.5 9.1): digits and dots, at most 64 characters. A UID names a spool
# file, so anything else (`../x`, a slash) is refused before it reaches a path.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, sop_class TEXT NOT NULL,
    path TEXT NOT NULL,                        -- below DIR
    size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    received REAL NOT NULL, calling_ae TEXT,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'processed', 'failed')),
    error TEXT, finished REAL,
    crashed_runs INTEGER NOT NULL DEFAULT 0);  -- runs of this instance begun and never ended
CREATE INDEX IF NOT EXISTS instances_state ON instances (state, study_uid);
"""
SCHEMA_VERSION = "3"
# version -> the statements that bring a state of that version to the next one. 2 -> 3 moves the results
# table into the run ledger's outbox, which lives in another file: the node does it once the outbox is
# open (Spool.move_results_to), so a state of version 2 opens and is stamped 3 there.
MIGRATIONS = {"1": "ALTER TABLE instances ADD COLUMN crashed_runs INTEGER NOT NULL DEFAULT 0"}
_LEGACY_RESULTS = ("path", "sha256", "sop_uid", "kind", "source_sop", "study_uid", "state", "attempts", "error",
                   "created", "sent")
NO_RESULTS = {"due": 0, "sent": 0, "refused": 0, "last_error": None, "oldest_due": None}  # an outbox not yet made
QUARANTINE_AFTER = 2  # runs of one instance alone that never returned before it is not tried again


@dataclass(frozen=True)
class Instance:
    sop_uid: str
    study_uid: str
    series_uid: str
    path: Path  # absolute
    sha256: str
    crashed_runs: int = 0  # runs of it that began and never returned (module docstring)
    calling_ae: str = ""  # who sent it


class Collision(InputError):
    """Other bytes under a SOP Instance UID the node already holds."""


def check_uid(value: Any, what: str) -> str:
    uid = str(value or "").strip()
    if not _UID.match(uid) or len(uid) > 64:
        raise InputError(f"{what} {uid[:80]!r} is not a DICOM UID (digits and dots, at most 64 characters)")
    return uid


class Spool:
    def __init__(self, root: Path, *, max_bytes: int | None = None, min_free_bytes: int = 0) -> None:
        self.root = Path(root)
        self.results = self.root / RESULTS
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.path = self.root / DB_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")  # a success status promises the row survives power loss
            fresh = not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            self.db.executescript(SCHEMA)
            if fresh:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            version = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            while version in MIGRATIONS:
                next_version = str(int(version) + 1)
                self.db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[version]}; UPDATE meta SET value = "
                                      f"'{next_version}' WHERE key = 'schema_version'; COMMIT;")
                version = next_version
        except (OSError, sqlite3.Error) as err:
            raise OutputError(f"{self.path}: cannot open the gateway's state ({err})") from None
        if version not in (SCHEMA_VERSION, "2"):
            raise InputError(f"{self.path}: gateway state of schema version {version!r}; this bcdeploy reads "
                             f"{SCHEMA_VERSION}")
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    # --- receiving ------------------------------------------------------------------------------------
    def spooled_bytes(self, state: str = "waiting") -> int:
        """The bytes of the spooled instances in `state`: the quota counts those waiting (module docstring)."""
        return int(self._query("SELECT COALESCE(SUM(size), 0) FROM instances WHERE state = ?", (state,))[0][0])

    def no_room(self, size: int) -> tuple[str, str] | None:
        """Why an instance of `size` bytes is refused now: (reason, line), or None when there is room. Over
        the quota (--max-spool-gb), or the file system would keep less than `min_free_bytes`
        (--min-free-gb): refused while the sender is there to be told and retry, rather than written
        into a disk the results, the ledger and the audit trail still need."""
        if self.max_bytes is not None and self.spooled_bytes() + size > self.max_bytes:
            return "spool_full", (f"the spool is full ({self.max_bytes:,} bytes; --max-spool-gb): the node processes "
                                  "what it holds first")
        free = self.free_bytes()
        if free - size < self.min_free_bytes:
            return "disk_low", (f"the node's disk has {free:,} bytes free, under --min-free-gb "
                                f"({self.min_free_bytes:,}): the node keeps room for its results")
        return None

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def receive(self, data: bytes, *, study_uid: str, series_uid: str, sop_uid: str, sop_class: str,
                calling_ae: str) -> Instance:
        """Write the instance's file (atomic, fsynced), then record it as waiting; returns only when both
        are durable. The same bytes received again wait again (the run's resume rule knows them); other
        bytes under a UID held already raise Collision and change nothing (module docstring)."""
        digest = hashlib.sha256(data).hexdigest()
        self._refuse_collision(sop_uid, digest)
        # the file is named by its bytes too, so two copies racing under one UID never write one file
        relative = Path(SPOOL) / study_uid / series_uid / f"{sop_uid}-{digest[:16]}.dcm"
        target = self.root / relative
        with atomic_path(target) as tmp:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_folder(target.parent)
        with self._transaction() as db:
            stored = db.execute("INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting', NULL, NULL, 0) "
                                "ON CONFLICT(sop_uid) DO UPDATE SET received = excluded.received, "
                                "calling_ae = excluded.calling_ae, path = excluded.path, state = 'waiting', "
                                "error = NULL, finished = NULL WHERE instances.sha256 = excluded.sha256",
                                (sop_uid, study_uid, series_uid, sop_class, str(relative), len(data), digest,
                                 time.time(), calling_ae)).rowcount
        if not stored:  # another copy under this UID was recorded between the check and now
            target.unlink(missing_ok=True)
            self._refuse_collision(sop_uid, digest)
        return Instance(sop_uid, study_uid, series_uid, target, digest)

    def _refuse_collision(self, sop_uid: str, digest: str) -> None:
        rows = self._query("SELECT sha256, study_uid FROM instances WHERE sop_uid = ?", (sop_uid,))
        if rows and rows[0][0] != digest:
            raise Collision(f"SOP Instance UID {sop_uid} is held already with other content (study {rows[0][1]}); "
                            "the first copy is kept: an instance UID names one set of bytes")

    # --- processing -----------------------------------------------------------------------------------
    def studies_due(self, idle_s: float, now: float | None = None) -> list[str]:
        """Studies with instances waiting and none received in the last `idle_s` seconds, oldest first."""
        now = time.time() if now is None else now
        rows = self._query("SELECT study_uid, MAX(received) AS last FROM instances WHERE state = 'waiting' "
                           "GROUP BY study_uid HAVING last <= ? ORDER BY last", (now - idle_s,))
        return [row[0] for row in rows]

    def waiting(self, study_uid: str) -> list[Instance]:
        rows = self._query("SELECT sop_uid, study_uid, series_uid, path, sha256, crashed_runs, calling_ae FROM instances "
                           "WHERE study_uid = ? AND state = 'waiting' ORDER BY series_uid, sop_uid", (study_uid,))
        return [Instance(r[0], r[1], r[2], self.root / r[3], r[4], r[5], r[6] or "") for r in rows]

    @contextlib.contextmanager
    def run_of(self, instances: list[Instance]) -> Iterator[None]:
        """Count a run over `instances` as begun (durably) until it returns, by exception too; a process
        that dies inside leaves the count standing (module docstring)."""
        self._count_run(instances, +1)
        try:
            yield
        finally:
            self._count_run(instances, -1)

    def _count_run(self, instances: list[Instance], step: int) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE instances SET crashed_runs = MAX(crashed_runs + ?, 0) WHERE sop_uid = ? "
                           "AND sha256 = ?", [(step, i.sop_uid, i.sha256) for i in instances])

    def quarantine(self, instance: Instance, error: str) -> None:
        """Mark an instance failed for good, its file kept in the spool for a look."""
        with self._transaction() as db:
            db.execute("UPDATE instances SET state = 'failed', error = ?, finished = ? WHERE sop_uid = ? "
                       "AND sha256 = ? AND state = 'waiting'", (error, time.time(), instance.sop_uid, instance.sha256))

    def finish(self, instances: list[Instance], rows: dict[str, dict[str, Any]]) -> None:
        """After a study's run, with the rows it settled (by SOP Instance UID): each instance whose row
        describes the bytes it was received with is processed or failed; an instance replaced meanwhile,
        or one the run did not reach (interrupted), keeps waiting. One transaction."""
        now = time.time()
        with self._transaction() as db:
            for instance in instances:
                row = rows.get(instance.sop_uid)
                if row is None or row.get("sha256") != instance.sha256:
                    continue
                state = "processed" if row["status"] == "ok" else "failed"
                db.execute("UPDATE instances SET state = ?, error = ?, finished = ? "
                           "WHERE sop_uid = ? AND sha256 = ? AND state = 'waiting'",
                           (state, row.get("error"), now, instance.sop_uid, instance.sha256))

    def release(self, instance: Instance) -> None:
        """Drop a finished instance's spooled file: its outcome is in the ledgers, the PACS keeps the image."""
        with contextlib.suppress(FileNotFoundError):
            if self._query("SELECT 1 FROM instances WHERE sop_uid = ? AND sha256 = ? AND state = 'processed'",
                           (instance.sop_uid, instance.sha256)):
                instance.path.unlink()

    # --- the outbox, from a state of version 2 ----------------------------------------------------------
    def move_results_to(self, outbox: Outbox, source_key: Callable[[str], str]) -> None:
        """Results recorded by a node of schema version 2 move into the run ledger's outbox (sent ones too,
        for the record), then the old table goes and the state is stamped 3. Copied with INSERT OR
        IGNORE before the drop, so a kill in between copies again and loses nothing."""
        if self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'"):
            rows = self._query(f"SELECT {', '.join(_LEGACY_RESULTS)} FROM results")
            outbox.adopt([{**dict(zip(_LEGACY_RESULTS, row)), "source": source_key(row[4])} for row in rows])
        with self._transaction() as db:
            db.execute("DROP TABLE IF EXISTS results")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))

    # --- reporting ------------------------------------------------------------------------------------
    def status(self, results: dict[str, Any] | None = None) -> dict[str, Any]:
        """The queue, for `gateway --status` and the log; `results`: the outbox's counts (none: empty)."""
        results = results or NO_RESULTS
        instances = dict(self._query("SELECT state, COUNT(*) FROM instances GROUP BY state"))
        return {"received": sum(instances.values()), "waiting": instances.get("waiting", 0),
                "processed": instances.get("processed", 0), "failed": instances.get("failed", 0),
                "results_due": results["due"], "sent": results["sent"], "refused": results["refused"],
                "spool_bytes": self.spooled_bytes(), "failed_bytes": self.spooled_bytes("failed"),
                "last_send_error": results["last_error"], "oldest_due": results.get("oldest_due")}

    def close(self) -> None:
        with self._lock:
            self.db.close()


def open_status(root: Path) -> dict[str, Any]:
    """The queue of the node at `root`, read without creating anything."""
    path = Path(root) / DB_NAME
    if not path.is_file():
        raise InputError(f"{root}: no gateway state here ({DB_NAME} is missing); is it the node's --out folder?")
    spool = Spool.__new__(Spool)
    spool.root, spool.results, spool.max_bytes, spool.path = Path(root), Path(root) / RESULTS, None, path
    try:
        spool.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as err:
        raise InputError(f"{path}: cannot open the gateway's state ({err})") from None
    spool._lock = threading.Lock()
    try:
        return spool.status(_outbox_counts(spool))
    except sqlite3.Error as err:  # a damaged or foreign file: one line, never a traceback
        raise InputError(f"{path}: the gateway's state cannot be read ({err}); keep a copy and restore it from a "
                         "backup, or move it aside to start an empty node") from None
    finally:
        spool.close()


def resend_refused(root: Path) -> int:
    """`gateway --resend DIR`: the results the destination refused for good are due again (a running node
    sends them within a second; a stopped one at its next start). Returns how many."""
    from bcdeploy.runtime.run.ledger import LEDGER_NAME
    from bcdeploy.runtime.run.outbox import Outbox

    open_status(root)  # a folder that is no node, or a damaged state: one line, nothing written
    ledger = Path(root) / RESULTS / LEDGER_NAME
    if not ledger.is_file():
        return 0
    outbox = Outbox(ledger)  # not through the run ledger's lock: a running node may hold it for a study
    try:
        return outbox.requeue_refused()
    finally:
        outbox.close()


def _outbox_counts(spool: Spool) -> dict[str, Any]:
    """The outbox's counts, read only; a state not yet moved to the outbox (version 2) counts its own table."""
    from bcdeploy.runtime.run.ledger import LEDGER_NAME, open_outbox
    from bcdeploy.runtime.run.outbox import delivery_counts

    if spool._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'"):
        return delivery_counts(spool._query, "results")
    if not (spool.results / LEDGER_NAME).is_file():
        return NO_RESULTS
    outbox = open_outbox(spool.results, read_only=True)
    try:
        return outbox.counts()
    finally:
        outbox.close()


def _fsync_folder(folder: Path) -> None:
    """The rename that made the file visible is durable only once its folder is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
