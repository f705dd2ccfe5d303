"""The run ledger: `<out>/ledger.sqlite`, the durable record of every image a run has finished.

Why SQLite: one transaction per finished image (WAL, synchronous=NORMAL) survives Ctrl-C, a crash of
the process or a full disk with every earlier row intact, and never a half row; results.json and
lesions.csv are views regenerated from it at the end of every run. On a power loss (the machine, not
the process) WAL with synchronous=NORMAL may roll back the last few commits; that is harmless here,
because a row is committed only after the image's outputs are in place, so a row always describes
files that exist, and an image without a row (a crash in between, or a rolled-back commit) is simply
recomputed by the next run. Rows are keyed by the resolved source path; the
output name bound to a source never changes and is never given to another source.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError, OutputError
from bcdeploy.fileio import exclusive_lock
from bcdeploy.runtime.run import outbox

LEDGER_NAME = "ledger.sqlite"
LOCK_NAME = ".ledger.lock"
SCHEMA_VERSION = 3  # 3: the outbox table (outbox.py)
STAGES = ("read", "hash", "decode", "preprocess", "infer", "postprocess", "write")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL,                      -- running | done | interrupted | stopped
    model TEXT NOT NULL,                       -- the predictor's describe(), JSON
    processed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS images (
    source TEXT PRIMARY KEY,                   -- resolved path of the input file
    name TEXT NOT NULL UNIQUE,                 -- output name: masks/<name>.png, biner/<name>.png, vis/<name>.jpg
    argument TEXT NOT NULL,                    -- the command-line argument it came from
    path TEXT NOT NULL,                        -- the path as found (what messages show)
    size INTEGER, mtime_ns INTEGER, sha256 TEXT,           -- of the bytes decoded (NULL if unreadable)
    model_sha256 TEXT, mask_options TEXT, target TEXT,     -- what the outputs were computed with
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,                                -- the failure line, for status 'failed'
    run_id INTEGER NOT NULL REFERENCES runs(id),
    image TEXT,                                -- JSON: width, height, format, source_dtype, intensity_map, tags
    lesions TEXT,                              -- JSON list, as in results.json
    outputs TEXT,                              -- JSON: {{mask|biner|vis: {{path, size, sha256}}}}
    started REAL, finished REAL,               -- epoch seconds, for a Gantt chart of the pipeline
    {", ".join(f"{stage}_ms REAL" for stage in STAGES)},  -- each stage's duration (the image's share of a batch)
    spans TEXT);                               -- JSON [{{stage, start, end, thread[, shared]}}]: when each stage ran (v2)
CREATE TABLE IF NOT EXISTS studies (              -- per-study results (the CAD SR), rewritten when a study changes
    study_uid TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, sop_uid TEXT NOT NULL,
    images INTEGER NOT NULL, failed INTEGER NOT NULL, run_id INTEGER NOT NULL REFERENCES runs(id), written REAL NOT NULL,
    basis TEXT NOT NULL,                       -- SHA-256 of what it was made from (rows, operating point, model)
    PRIMARY KEY (study_uid, kind));
CREATE TABLE IF NOT EXISTS failures (            -- arguments that gave nothing (no source file to bind to)
    run_id INTEGER NOT NULL REFERENCES runs(id), item TEXT NOT NULL, error TEXT NOT NULL);
""" + outbox.SCHEMA

COLUMNS = ("source", "name", "argument", "path", "size", "mtime_ns", "sha256", "model_sha256", "mask_options", "target",
           "status", "error", "run_id", "image", "lesions", "outputs", "started", "finished",
           *(f"{stage}_ms" for stage in STAGES), "spans")
# What brings a ledger of version N-1 to version N. Columns are only ever added, so an older ledger's rows
# stay (NULL in the new columns) and its images are not recomputed.
MIGRATIONS = {2: (("spans", "TEXT"),)}  # version -> columns it adds to `images`


def _cause(err: sqlite3.Error) -> str:
    name = getattr(err, "sqlite_errorname", "")
    return {"SQLITE_FULL": "No space left on device", "SQLITE_READONLY": "read-only file or file system",
            "SQLITE_CANTOPEN": "cannot open or create the file"}.get(name, str(err))


class Ledger:
    """One connection, used by one thread at a time (the run loop hands it to its writer thread)."""

    def __init__(self, out: Path, *, deliver: frozenset[str] = frozenset()) -> None:
        """`deliver`: the output kinds each saved row queues in the outbox (outbox.py)."""
        self.path = Path(out) / LEDGER_NAME
        self.deliver = deliver
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"{err.filename or self.path.parent}: cannot create the output folder "
                              f"({err.strerror})") from None
        if self.path.is_symlink():  # SQLite would follow it and write wherever it points
            raise OutputError(f"{self.path}: the run ledger is a symlink (to {os.readlink(self.path)}); a ledger "
                              "lives in the output folder itself: move the link away")
        # one run per output folder: two runs writing the same masks interleave, and a row can then describe
        # the other run's file (another model's mask under this model's lesions)
        lock = self.path.with_name(LOCK_NAME)
        self._lock = exclusive_lock(lock, f"{lock.parent}: another bcdeploy run is writing into this folder (it "
                                          f"holds {lock}); wait for it to finish or choose another --out")
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            os.close(self._lock)
            raise OutputError(f"{self.path}: cannot open the run ledger ({_cause(err)})") from None
        self.db.row_factory = sqlite3.Row
        try:
            self._check(existed)
        except BaseException:
            self.close()
            raise

    def _check(self, existed: bool) -> None:
        try:
            if existed:
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "runs", "images", "failures"} <= tables:
                    raise sqlite3.DatabaseError(f"tables {sorted(tables)} are not a bcdeploy run ledger")
                version = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                stamp = None if version is None else str(version[0])
                if stamp is None or not stamp.isdigit() or not 1 <= int(stamp) <= SCHEMA_VERSION:
                    raise sqlite3.DatabaseError(f"schema version {stamp!r} is not one this bcdeploy reads "
                                                f"(1 to {SCHEMA_VERSION})")
                verdict = self.db.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":  # quick_check reports damage as rows, it does not raise
                    raise sqlite3.DatabaseError(" ".join(str(verdict).split())[:200])
        except (sqlite3.DatabaseError, ValueError) as err:
            raise InputError(f"{self.path}: the run ledger cannot be read ({err}); move it away to start a new "
                             "ledger (every image in this folder is then recomputed)") from None
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")  # a process crash loses no committed row (module docstring)
            self.db.executescript(SCHEMA)  # idempotent (IF NOT EXISTS)
            self._migrate()
        except sqlite3.Error as err:
            raise OutputError(f"{self.path}: cannot write the run ledger ({_cause(err)})") from None

    def _migrate(self) -> None:
        """Bring an older ledger up to SCHEMA_VERSION in one transaction (a new one is only stamped)."""
        with self.transaction():
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            have = {column[1] for column in self.db.execute("PRAGMA table_info(images)")}
            for version in range(int(row[0]) + 1 if row else SCHEMA_VERSION + 1, SCHEMA_VERSION + 1):
                for column, kind in MIGRATIONS.get(version, ()):
                    if column not in have:  # a ledger stamped older than its columns: add only what is missing
                        self.db.execute(f"ALTER TABLE images ADD COLUMN {column} {kind}")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def transaction(self):
        return _Transaction(self)

    # --- reads --------------------------------------------------------------------------------------
    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row, checked: the names and output paths it holds are later written, hashed and deleted
        under --out, so a copied-in or edited ledger naming `../x` or `/x` is refused, never followed."""
        sql = "SELECT * FROM images" + (" WHERE status = ?" if status else "") + " ORDER BY name"
        try:
            rows = [dict(r) for r in self.db.execute(sql, (status,) if status else ())]
        except sqlite3.Error as err:  # a damaged page: not UTF-8 text, a malformed b-tree
            raise InputError(f"{self.path}: the run ledger cannot be read ({err}); move it away to start a new "
                             "ledger (every image in this folder is then recomputed)") from None
        for row in rows:
            self._check_paths(row)
        return rows

    def _check_paths(self, row: dict[str, Any]) -> None:
        try:
            outputs = json.loads(row["outputs"] or "{}")
            paths = [row["name"], *(record["path"] for record in outputs.values())]
        except (ValueError, TypeError, KeyError, AttributeError):
            paths = [None]
        bad = next((p for p in paths if not outbox.inside(p)), "")
        if bad != "":
            raise InputError(f"{self.path}: the run ledger cannot be trusted: the row for {row['source']} names "
                             f"{bad!r}, which is not a path inside the output folder; move the ledger away to "
                             "start a new one (every image in this folder is then recomputed)")

    def run_failures(self, run_id: int) -> list[dict[str, str]]:
        images = self.db.execute("SELECT path, error FROM images WHERE run_id = ? AND status = 'failed' ORDER BY name",
                                 (run_id,))
        others = self.db.execute("SELECT item, error FROM failures WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [{"file": r[0], "error": r[1]} for r in [*others, *images]]

    # --- writes: each one transaction ---------------------------------------------------------------
    def begin_run(self, model: dict[str, Any]) -> int:
        with self.transaction():
            cursor = self.db.execute("INSERT INTO runs (started, status, model) VALUES (?, 'running', ?)",
                                     (time.time(), json.dumps(model, sort_keys=True, default=str)))
        return int(cursor.lastrowid)

    def end_run(self, run_id: int, status: str, processed: int, skipped: int, failed: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE runs SET finished = ?, status = ?, processed = ?, skipped = ?, failed = ? WHERE id = ?",
                            (time.time(), status, processed, skipped, failed, run_id))

    def save(self, row: dict[str, Any]) -> None:
        """Insert or replace one image's row and queue its results for delivery (one transaction)."""
        values = [row.get(c) for c in COLUMNS]
        # An upsert on the source, not INSERT OR REPLACE: a name held by another source (a second run
        # writing into the same folder) must fail loudly, never delete that source's row.
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        with self.transaction():
            self.db.execute(f"INSERT INTO images ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                            f"ON CONFLICT(source) DO UPDATE SET {updates}", values)
            outbox.queue(self.db, row, self.deliver)

    def save_study(self, record: dict[str, Any]) -> None:
        """Insert or replace one study's result (studies.py) and queue it for delivery when its kind is
        delivered: one transaction, as an image's row and its results are."""
        columns = ("study_uid", "kind", "path", "sha256", "sop_uid", "images", "failed", "run_id", "written", "basis")
        with self.transaction():
            self.db.execute(f"INSERT OR REPLACE INTO studies ({', '.join(columns)}) VALUES "
                            f"({', '.join('?' * len(columns))})", tuple(record[c] for c in columns))
            outbox.queue_study(self.db, record, self.deliver)

    def studies(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM studies ORDER BY study_uid, kind")]

    def add_failure(self, run_id: int, item: str, error: str) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO failures VALUES (?, ?, ?)", (run_id, item, error))

    def close(self) -> None:
        self.db.close()
        os.close(self._lock)  # releases the folder lock


def open_outbox(out: Path, *, read_only: bool = False) -> outbox.Outbox:
    """The outbox of the output folder `out` (outbox.py). For sending, the ledger is opened once first
    (created, checked and migrated as a run would, the run lock held only for that), so the outbox is
    always inside a whole ledger; the outbox itself takes no lock: it sends while a run writes."""
    if not read_only:
        Ledger(out).close()
    return outbox.Outbox(Path(out) / LEDGER_NAME, read_only=read_only)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error; SQLite errors become one OutputError line."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def __enter__(self) -> None:
        try:
            self.ledger.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise OutputError(f"{self.ledger.path}: cannot write the run ledger ({_cause(err)})") from None

    def __exit__(self, exc_type, exc, tb) -> bool:
        db = self.ledger.db
        if exc_type is None:
            try:
                db.execute("COMMIT")
                return False
            except sqlite3.Error as err:
                exc = err
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise OutputError(f"{self.ledger.path}: cannot write the run ledger ({_cause(exc)})") from None
        return False
