"""Stage spans of a real `bcdeploy infer` run (tiny ONNX model, generated images): every image's stages
with start and end on one clock and the thread that ran them; and a version-1 ledger (written by the
schema text of the code before spans) still opens, keeps its rows and gains the column."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.run.ledger import SCHEMA_VERSION, STAGES, Ledger
from tests.conftest import run_cli

THREADS = {"read": "decode", "hash": "decode", "decode": "decode", "preprocess": "segment", "infer": "segment",
           "postprocess": "segment", "write": "write"}
SLACK_S = 0.005  # `started`/`finished` and the spans are read from the clock at slightly different moments


@pytest.fixture(scope="module")
def model(tiny_onnx) -> Path:
    return tiny_onnx


def write_images(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        assert cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 256, (48 + 16 * i, 64, 3), dtype=np.uint8))
    return folder


def ledger_rows(out: Path) -> list[dict]:
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM images ORDER BY name")]


@pytest.mark.parametrize("batch", [1, 2])
def test_every_image_records_each_stage_with_start_end_and_thread(model, tmp_path, batch):
    out = tmp_path / "out"
    run_cli("infer", "--model", model, write_images(tmp_path / "in"), "--out", out, "--batch-size", batch)
    rows = ledger_rows(out)
    assert [r["status"] for r in rows] == ["ok"] * 4
    for index, row in enumerate(rows):
        spans = json.loads(row["spans"])
        # Images read ahead (all but the first batch, read while the model opens) are reduced to the
        # model's view and their overlay's picture on the reader thread: a first `preprocess` span there.
        ahead = index >= batch
        expected = [(stage, THREADS[stage]) for stage in STAGES]
        if ahead:
            expected.insert(STAGES.index("preprocess"), ("preprocess", "decode"))
        assert [(s["stage"], s["thread"]) for s in spans] == expected, "each stage in pipeline order"
        for stage in STAGES:
            mine = [s for s in spans if s["stage"] == stage]
            ms = sum((s["end"] - s["start"]) * 1000 / s.get("shared", 1) for s in mine)
            assert row[f"{stage}_ms"] == pytest.approx(ms), "a stage timed twice is summed"
        for span in spans:
            assert span["end"] >= span["start"] >= row["started"] - SLACK_S
            assert span["end"] <= row["finished"] + SLACK_S
        assert all(a["end"] <= b["start"] + SLACK_S for a, b in zip(spans, spans[1:])), "one image's stages follow each other"
        assert {s.get("shared", 1) for s in spans if s["stage"] == "infer"} == {batch}, "a batch shares its inference"


# The `images` table as version 1 (before spans) created it: a frozen copy of that code's SCHEMA text.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL, finished REAL,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS images (
    source TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    argument TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER, mtime_ns INTEGER, sha256 TEXT,
    model_sha256 TEXT, mask_options TEXT, target TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    image TEXT,
    lesions TEXT,
    outputs TEXT,
    started REAL, finished REAL,
    read_ms REAL, hash_ms REAL, decode_ms REAL, preprocess_ms REAL, infer_ms REAL, postprocess_ms REAL, write_ms REAL);
CREATE TABLE IF NOT EXISTS failures (
    run_id INTEGER NOT NULL REFERENCES runs(id), item TEXT NOT NULL, error TEXT NOT NULL);
"""


def write_v1_ledger(out: Path) -> dict:
    """A version-1 ledger with one run and one failed image (a failure needs no output files)."""
    out.mkdir(parents=True)
    old = {"source": "/data/old.png", "name": "old", "argument": "/data", "path": "/data/old.png", "status": "failed",
           "error": "/data/old.png: cannot decode", "run_id": 1, "started": time.time() - 60,
           "finished": time.time() - 59, "read_ms": 1.5, "hash_ms": 0.25}
    with closing(sqlite3.connect(out / "ledger.sqlite", isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(SCHEMA_V1)
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO runs (started, finished, status, model) VALUES (?, ?, 'done', '{}')",
                   (old["started"], old["finished"]))
        db.execute(f"INSERT INTO images ({', '.join(old)}) VALUES ({', '.join('?' * len(old))})", list(old.values()))
    return old


def test_a_version_1_ledger_is_migrated_and_keeps_its_rows(model, tmp_path):
    out = tmp_path / "out"
    old = write_v1_ledger(out)
    run_cli("infer", "--model", model, write_images(tmp_path / "in", 2), "--out", out)
    rows = {r["name"]: r for r in ledger_rows(out)}
    assert set(rows) == {"old", "img0", "img1"}
    assert {k: rows["old"][k] for k in old} == old and rows["old"]["spans"] is None
    assert all({s["stage"] for s in json.loads(rows[n]["spans"])} == set(STAGES) for n in ("img0", "img1"))
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        assert [r[0] for r in db.execute("SELECT id FROM runs ORDER BY id")] == [1, 2]
    ledger = Ledger(out)  # a second open of the migrated ledger migrates nothing
    try:
        assert len(ledger.rows()) == 3
    finally:
        ledger.close()
