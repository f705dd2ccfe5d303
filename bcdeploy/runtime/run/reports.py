"""results.json and lesions.csv: views of the ledger, regenerated at the end of every run.

They list every image that has outputs, from this run and earlier ones, so a report never loses an
image because a run was interrupted or an earlier report was deleted or corrupted. `failed` lists
this run's failures.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy import __version__
from bcdeploy.errors import InputError, OutputError
from bcdeploy.fileio import write_json, write_text
from bcdeploy.runtime.run.ledger import STAGES, Ledger

LESION_COLUMNS = ("image", "lesion_id", "class", "area_px", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                  "centroid_x", "centroid_y", "mean_prob", "source")


def image_entry(row: dict[str, Any]) -> dict[str, Any]:
    """One ledger row as results.json shows it."""
    image = json.loads(row["image"] or "{}")
    return {
        "name": row["name"], "file": row["source"], "status": row["status"],
        "source": {"path": row["source"], "size": row["size"], "mtime_ns": row["mtime_ns"], "sha256": row["sha256"]},
        "model": {"sha256": row["model_sha256"], "mask_options": json.loads(row["mask_options"] or "null")},
        **image, "target": row["target"],
        "lesions": json.loads(row["lesions"] or "[]"),
        "outputs": json.loads(row["outputs"] or "{}"),
        "time_ms": {s: round(row[f"{s}_ms"], 2) for s in STAGES if row.get(f"{s}_ms") is not None},
        "started": row["started"], "finished": row["finished"], "run": row["run_id"],
    }


def write_reports(out: Path, ledger: Ledger, run_id: int, summary: dict[str, Any], model: dict[str, Any],
                  classes: list[str]) -> Path:
    """Write lesions.csv and results.json from the ledger; returns the results.json path."""
    import cv2

    listed, missing = [], []
    try:
        for row in ledger.rows("ok"):
            entry = image_entry(row)
            (listed if _present(out, entry["outputs"]) else missing).append(entry)
        lesions_csv = _lesions_csv(listed)
    except (ValueError, TypeError, KeyError, AttributeError) as err:  # a row this code never wrote
        raise InputError(f"{ledger.path}: the run ledger cannot be read (a row holds {type(err).__name__}: {err}); "
                         "move it away to start a new ledger (every image in this folder is then recomputed)") from None
    results = {
        "tool": "bcdeploy", "version": __version__, "model": model, "classes": classes,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__},
        "ledger": str(ledger.path),
        "summary": {**summary, "listed": len(listed)},
        "failed": ledger.run_failures(run_id),
        "outputs_missing": [{"name": e["name"], "file": e["file"]} for e in missing],
        "images": listed,
    }
    path = out / "results.json"
    _write(out / "lesions.csv", lambda target: write_text(target, lesions_csv))
    _write(path, lambda target: write_json(target, results))
    return path


def _present(out: Path, outputs: dict[str, dict]) -> bool:
    """Cheap check (sizes) that an image's outputs are still there; the resume rule hashes them."""
    try:
        return all((out / o["path"]).stat().st_size == o["size"] for o in outputs.values())
    except OSError:
        return False


def _lesions_csv(entries: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LESION_COLUMNS)
    for entry in entries:
        for lesion in entry["lesions"]:
            writer.writerow([entry["name"], lesion["id"], lesion["class"], lesion["area_px"], *lesion["bbox"],
                             *lesion["centroid"], lesion.get("mean_prob", ""), entry["file"]])
    return buf.getvalue()


def _write(target: Path, write) -> None:
    try:
        write(target)
    except OSError as err:
        raise OutputError(f"{target}: cannot write the report ({err.strerror or err}); the finished images are "
                          f"kept in {target.parent}/ledger.sqlite and listed by the next run") from None
