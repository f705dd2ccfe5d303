"""The outbox: each DICOM result a run committed for delivery, until a destination took it.

One outbox for every delivery (`infer --dicomweb`, `infer --stow`, the DICOM node): its rows live in the
run ledger (table `outbox` of ledger.sqlite) and are written in the same transaction as the image's row
(Ledger.save), so a committed image and its due results are one fact: a kill can lose neither alone.
Sending happens after the commit (bcdeploy.pacs.sender), so an unreachable PACS never fails an image and
never forces a re-segmentation: the results wait here, and the next send (the node's sender thread, or
the same `infer` command run again) takes them.

    due -> sent | refused   (refused: the destination answered a failure status repeatedly, or the file
                             is no longer the bytes the run wrote)

A result is marked sent only after the destination answered success; a kill in between sends it again
with the same SOP Instance UID, which a PACS stores once. A result that a re-run of its image replaced
(new bytes under the same path) is dropped while still due: the new one is queued instead.

This module is the outbox's state only: plain SQLite, no network (the sender is in bcdeploy.pacs).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bcdeploy.errors import InputError, OutputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    path TEXT NOT NULL,                        -- below the output folder
    sha256 TEXT NOT NULL,                      -- of the file as the run wrote it
    sop_uid TEXT NOT NULL,                     -- the result's own SOP Instance UID (minted by the writer)
    kind TEXT NOT NULL,                        -- output kind: seg | sr | sc | cad
    source TEXT NOT NULL,                      -- the ledger key of the image it was made for, or study:<uid>
    study_uid TEXT,                            -- the study it belongs to (the source's)
    state TEXT NOT NULL CHECK (state IN ('due', 'sent', 'refused')),
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, created REAL NOT NULL, sent REAL,
    PRIMARY KEY (path, sha256));
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, created);
CREATE INDEX IF NOT EXISTS outbox_source ON outbox (source);
"""


@dataclass(frozen=True)
class Delivery:
    """One result due for sending."""
    path: Path  # absolute
    sha256: str
    sop_uid: str
    kind: str
    attempts: int
    study_uid: str | None
    source: str  # ledger key of the image


def queue(db: sqlite3.Connection, row: dict[str, Any], kinds: frozenset[str]) -> None:
    """Inside the ledger transaction that commits `row`: its results of `kinds` become due, and results
    of an earlier run of the same image still due are dropped (their files were replaced)."""
    db.execute("DELETE FROM outbox WHERE source = ? AND state = 'due'", (row["source"],))
    if row.get("status") != "ok" or not kinds:
        return
    tags = json.loads(row.get("image") or "{}").get("tags") or {}
    for kind, record in json.loads(row.get("outputs") or "{}").items():
        if kind in kinds and record.get("sop_uid"):
            _due(db, record, kind, row["source"], tags.get("study_instance_uid"))


def queue_study(db: sqlite3.Connection, record: dict[str, Any], kinds: frozenset[str]) -> None:
    """Inside the ledger transaction that records a study's result (Ledger.save_study): it becomes due,
    replacing the study's earlier one of the same kind still due (its file was rewritten)."""
    source = f"study:{record['study_uid']}"
    db.execute("DELETE FROM outbox WHERE source = ? AND kind = ? AND state = 'due'", (source, record["kind"]))
    if record["kind"] in kinds:
        _due(db, record, record["kind"], source, record["study_uid"])


def _due(db: sqlite3.Connection, record: dict[str, Any], kind: str, source: str, study_uid: str | None) -> None:
    """One written result (its path, sha256 and sop_uid) becomes due for sending."""
    db.execute("INSERT OR IGNORE INTO outbox (path, sha256, sop_uid, kind, source, study_uid, state, created) "
               "VALUES (?, ?, ?, ?, ?, ?, 'due', ?)",
               (record["path"], record["sha256"], record["sop_uid"], kind, source, study_uid, time.time()))


def inside(path: Any) -> bool:
    """A relative path that stays below the folder it is joined to: no root, no `..`, no empty part."""
    if not isinstance(path, str) or not path or "\0" in path:
        return False
    parts = PurePosixPath(path).parts
    return not PurePosixPath(path).is_absolute() and all(p not in ("", ".", "..") for p in parts) \
        and "/".join(parts) == path


class Outbox:
    """The outbox in the run ledger at `ledger_path` (ledger.open_outbox), on its own connection: a sender
    thread works beside the run's writer (SQLite's WAL lets them; each write is one short transaction)."""

    def __init__(self, ledger_path: Path, *, read_only: bool = False) -> None:
        self.path = Path(ledger_path)
        self.root = self.path.parent  # result paths are below the output folder
        self._lock = threading.Lock()
        try:
            if read_only:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:  # the ledger made the table (ledger.open_outbox)
                self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        except (OSError, sqlite3.Error) as err:
            raise OutputError(f"{self.path}: cannot open the outbox ({err})") from None

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):
                    return []  # a ledger no delivering run has written yet
                raise InputError(f"{self.path}: the outbox cannot be read ({err})") from None

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock:
            try:
                self.db.execute(sql, params)
            except sqlite3.Error as err:
                raise OutputError(f"{self.path}: cannot write the outbox ({err})") from None

    def due(self, limit: int = 64) -> list[Delivery]:
        """Results due, oldest first. A row naming a path outside the output folder (an edited ledger) is
        refused for good and never read: the outbox is not trusted to say what to send."""
        while True:
            rows = self._query("SELECT path, sha256, sop_uid, kind, attempts, study_uid, source FROM outbox "
                               "WHERE state = 'due' ORDER BY created, path LIMIT ?", (limit,))
            outside = [r[0] for r in rows if not inside(r[0])]
            if not outside:
                return [Delivery(self.root / r[0], *r[1:]) for r in rows]
            for path in outside:
                self._write("UPDATE outbox SET state = 'refused', error = ? WHERE path = ? AND state = 'due'",
                            (f"{path!r} is not a path inside the output folder; not sent", path))

    def mark_sent(self, delivery: Delivery) -> None:
        self._set(delivery, "sent", None, sent=time.time())

    def mark_attempt(self, delivery: Delivery, error: str, *, give_up: bool) -> None:
        self._set(delivery, "refused" if give_up else "due", error, attempts=delivery.attempts + 1)

    def _set(self, delivery: Delivery, state: str, error: str | None, *, sent: float | None = None,
             attempts: int | None = None) -> None:
        self._write("UPDATE outbox SET state = ?, error = ?, sent = COALESCE(?, sent), attempts = COALESCE(?, attempts) "
                    "WHERE path = ? AND sha256 = ?", (state, error, sent, attempts,
                                                      delivery.path.relative_to(self.root).as_posix(), delivery.sha256))

    def adopt(self, rows: list[dict[str, Any]]) -> None:
        """Results recorded elsewhere before there was one outbox (a node's state of version 2), kept as
        they were (state, attempts, error); one transaction, and a row held already is left as it is."""
        columns = ("path", "sha256", "sop_uid", "kind", "source", "study_uid", "state", "attempts", "error",
                   "created", "sent")
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(f"INSERT OR IGNORE INTO outbox ({', '.join(columns)}) VALUES "
                                    f"({', '.join('?' * len(columns))})", [tuple(r[c] for c in columns) for r in rows])
                self.db.execute("COMMIT")
            except sqlite3.Error as err:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise OutputError(f"{self.path}: cannot write the outbox ({err})") from None

    def requeue_refused(self) -> int:
        """Results refused for good, due again with their tries counted afresh (`gateway --resend`, after
        the PACS's refusal was dealt with); returns how many."""
        with self._lock:
            try:
                return self.db.execute("UPDATE outbox SET state = 'due', attempts = 0 WHERE state = 'refused'").rowcount
            except sqlite3.Error as err:
                raise OutputError(f"{self.path}: cannot write the outbox ({err})") from None

    def counts(self) -> dict[str, Any]:
        """due / sent / refused, and the latest error of a result not sent."""
        return delivery_counts(self._query, "outbox")

    def close(self) -> None:
        with self._lock:
            self.db.close()


def delivery_counts(query: Callable[[str], list[tuple]], table: str) -> dict[str, Any]:
    """due / sent / refused, the latest error of a result not sent and when the oldest due one was queued
    (epoch seconds), in `table` (the outbox, or the node's results table of a version-2 state not yet
    moved into it: same columns)."""
    states = dict(query(f"SELECT state, COUNT(*) FROM {table} GROUP BY state"))
    errors = query(f"SELECT error FROM {table} WHERE state != 'sent' AND error IS NOT NULL ORDER BY created DESC LIMIT 1")
    oldest = query(f"SELECT MIN(created) FROM {table} WHERE state = 'due'")
    return {**{state: states.get(state, 0) for state in ("due", "sent", "refused")},
            "last_error": errors[0][0] if errors else None, "oldest_due": oldest[0][0] if oldest else None}
