"""The timeline of one `bcdeploy infer` run, read from its ledger: the Gantt chart and its figures
(`bcdeploy bench timeline OUT_DIR`).

Why it never writes, creates or locks anything in the run folder: the folder belongs to its run (a
resumed run trusts what is there), and a benchmark reads it while the next run may be starting. It
does not take the run lock either, so it can look at a run in progress. SQLite needs care for that: a
read-only connection (`mode=ro`) to a WAL database whose `-wal`/`-shm` files are absent (a run that
closed cleanly) creates them beside the ledger and leaves them. So a closed ledger is opened
`immutable` (no side files; safe, nothing writes it) and one with a `-wal` file (a run in progress, or
one that crashed) is copied, with its `-wal`, into a temporary folder and read there.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import statistics
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bcdeploy.bench.timeline import Span, plot_timeline, to_spans
from bcdeploy.errors import InputError
from bcdeploy.fileio import refuse_overlap, write_json
from bcdeploy.runtime.run.ledger import LEDGER_NAME, STAGES


@dataclass(frozen=True)
class RunSpans:
    """What the ledger holds about one run: its `runs` row, each drawn image's spans, and per stage the
    milliseconds of each image (its share of a batch's span)."""

    ledger: Path
    run: dict[str, Any]
    spans: list[Span]
    ok: int
    failed: int
    stage_ms: dict[str, list[float]]


def draw_run_timeline(out_dir: str | Path, png: str | Path, run: int | None = None) -> dict[str, Any]:
    """Draw run `run` (default: the last) of the run folder `out_dir` as a Gantt chart at `png`, write its
    figures as JSON beside it (same name, .json) and return them. Refuses a `png` inside `out_dir`."""
    png = Path(png)
    if png.suffix.lower() == ".json":
        raise InputError(f"--png {png}: its figures are written beside it as .json; give the picture another suffix")
    refuse_overlap(png, [out_dir], "--png")
    found = read_run_spans(out_dir, run)
    stats = plot_timeline(found.spans, png, title=f"{Path(out_dir).name}, run {found.run['id']}")
    report = timeline_report(found, stats)
    write_json(png.with_suffix(".json"), report)
    return report


def timeline_report(found: RunSpans, stats: dict[str, Any]) -> dict[str, Any]:
    """Per-stage median ms, each row's and thread's busy share of the wall time, images per second."""
    run = found.run
    wall = stats["wall_s"]
    return {"ledger": str(found.ledger), "run": run["id"], "status": run["status"], "images": found.ok,
            "failed": found.failed, "wall_s": wall, "images_per_s": round(found.ok / wall, 4) if wall > 0 else None,
            "run_s": round(run["finished"] - run["started"], 3) if run["finished"] else None,
            "stage_ms": {stage: {"median": round(statistics.median(ms), 3), "images": len(ms)}
                         for stage, ms in found.stage_ms.items()},
            "rows": stats["rows"], "threads": stats["threads"]}


def timeline_markdown(report: dict[str, Any]) -> str:
    lines = [f"run {report['run']} ({report['status']}): {report['images']} images in {report['wall_s']:.2f} s, "
             f"{report['images_per_s'] or 0:.2f} images/s", "", "| row | busy s | share of wall | median ms |",
             "|---|---:|---:|---:|"]
    for row, busy in {**report["rows"], **{f"thread {t}": b for t, b in report["threads"].items()}}.items():
        median = report["stage_ms"].get(row.split(" (")[0], {}).get("median", "")
        lines.append(f"| {row} | {busy['busy_s']:.3f} | {busy['share'] or 0:.1%} | {median} |")
    return "\n".join(lines)


def read_run_spans(out_dir: str | Path, run: int | None = None) -> RunSpans:
    """The spans of run `run` (default: the last one) from `out_dir`'s ledger, read without changing it."""
    ledger = Path(out_dir) / LEDGER_NAME
    if not ledger.is_file():
        raise InputError(f"{out_dir}: no run ledger ({LEDGER_NAME}) here; give the --out folder of a "
                         "`bcdeploy infer` run")
    try:
        with _read_only(ledger) as db:
            runs = {r["id"]: dict(r) for r in db.execute("SELECT * FROM runs ORDER BY id")}
            chosen = _choose(ledger, runs, run)
            rows = [dict(r) for r in db.execute("SELECT * FROM images WHERE run_id = ? ORDER BY name", (chosen,))]
    except (sqlite3.Error, OSError) as err:
        raise InputError(f"{ledger}: the run ledger cannot be read ({err}); if a run is writing it, try again "
                         "when it has finished") from None
    drawn = [r for r in rows if r.get("spans")]
    if not drawn:
        raise InputError(f"{ledger}: run {chosen} recorded no stage spans (it processed {len(rows)} image(s); "
                         "images it skipped keep an earlier run's row, and bcdeploy before ledger version 2 kept "
                         "no spans); choose another --run, or rerun with `bcdeploy infer --overwrite`")
    spans, stage_ms = _parse(ledger, drawn)
    return RunSpans(ledger, runs[chosen], spans, sum(r["status"] == "ok" for r in drawn),
                    sum(r["status"] != "ok" for r in drawn), stage_ms)


def _choose(ledger: Path, runs: dict[int, dict], run: int | None) -> int:
    if not runs:
        raise InputError(f"{ledger}: no run recorded yet")
    if run is None:
        return max(runs)
    if run not in runs:
        raise InputError(f"{ledger}: no run {run}; it holds runs {min(runs)} to {max(runs)}")
    return run


def _parse(ledger: Path, rows: list[dict]) -> tuple[list[Span], dict[str, list[float]]]:
    """Checked spans (a ledger is a file, and files can lie) and each stage's per-image milliseconds (as
    the ledger's `<stage>_ms` columns: a stage timed twice for one image is summed)."""
    spans: list[Span] = []
    stage_ms: dict[str, list[float]] = {}
    for row in rows:
        try:
            records = json.loads(row["spans"])
            mine = to_spans({**r, "image": row["name"]} for r in records)
            shares = [int(r.get("shared", 1)) for r in records]
            if min(shares, default=1) < 1:
                raise ValueError("a span shared by fewer than one image")
        except (ValueError, TypeError, KeyError, AttributeError, InputError) as err:
            raise InputError(f"{ledger}: the spans of {row['name']} are not a list of stage spans ({err})") from None
        per_stage: dict[str, float] = {}  # a stage timed twice (preprocess: reader and model) is summed
        for span, shared in zip(mine, shares):
            per_stage[span.stage] = per_stage.get(span.stage, 0.0) + (span.end - span.start) * 1000 / shared
        for stage, ms in per_stage.items():
            stage_ms.setdefault(stage, []).append(ms)
        spans += mine
    order = {stage: i for i, stage in enumerate(STAGES)}
    return spans, dict(sorted(stage_ms.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


@contextlib.contextmanager
def _read_only(ledger: Path) -> Iterator[sqlite3.Connection]:
    """A connection that leaves the run folder as it was (module docstring)."""
    wal = ledger.with_name(ledger.name + "-wal")
    with contextlib.ExitStack() as stack:
        if wal.exists():
            copy = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bcdeploy-timeline-"))) / ledger.name
            shutil.copyfile(ledger, copy)
            shutil.copyfile(wal, copy.with_name(wal.name))
            uri = f"{copy.as_uri()}?mode=ro"
        else:
            uri = f"{ledger.resolve().as_uri()}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True)
        stack.callback(db.close)
        db.row_factory = sqlite3.Row
        yield db
