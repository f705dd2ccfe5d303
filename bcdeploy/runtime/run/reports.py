"""results.json and lesions.csv: views of the ledger, regenerated at the end of every run.

They list every image that has outputs, from this run and earlier ones, so a report never loses an
image because a run was interrupted or an earlier report was deleted or corrupted. `failed` lists
this run's failures. With `no_phi` both leave identifiers out (phi.py says how and why the ledger
keeps them). lesions.csv gives sizes in mm where the image has a pixel spacing (DICOM): area_mm2, and
bbox_mm as "x y w h"; both empty otherwise (a size is never invented from a guessed spacing).
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
from bcdeploy.runtime.run.phi import deidentify, row_identifiers

LESION_COLUMNS = ("image", "lesion_id", "class", "area_px", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                  "centroid_x", "centroid_y", "mean_prob", "source", "area_mm2", "bbox_mm")


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
                  classes: list[str], *, no_phi: bool = False, identifiers: set[str] = frozenset()) -> Path:
    """Write lesions.csv and results.json from the ledger; returns the results.json path.

    `no_phi`: leave identifiers out: the images' identifying tags and `identifiers` (the source's)."""
    import cv2

    rows = ledger.rows("ok")
    listed, missing = [], []
    try:
        for row in rows:
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
        "summary": {**summary, "listed": len(listed), **_per_node(listed)},
        "failed": ledger.run_failures(run_id),
        "outputs_missing": [{"name": e["name"], "file": e["file"]} for e in missing],
        "images": listed,
    }
    if no_phi:
        results = deidentify(results, ledger.rows(), {*row_identifiers(rows), *identifiers})
        results["no_phi"] = True
        lesions_csv = _lesions_csv(results["images"])
    path = out / "results.json"
    _write(out / "lesions.csv", lambda target: write_text(target, lesions_csv))
    _write(path, lambda target: write_json(target, results))
    return path


def _per_node(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """`infer --ray` records the node that segmented each image (its ledger row's image JSON): how many
    of the listed images each node did; nothing for a local run."""
    nodes: dict[str, int] = {}
    for entry in entries:
        if entry.get("node"):
            nodes[entry["node"]] = nodes.get(entry["node"], 0) + 1
    return {"per_node": dict(sorted(nodes.items()))} if nodes else {}


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
                             *lesion["centroid"], lesion.get("mean_prob", ""), entry["file"],
                             _blank(lesion.get("area_mm2")), " ".join(map(str, lesion.get("bbox_mm") or []))])
    return buf.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _write(target: Path, write) -> None:
    try:
        write(target)
    except OSError as err:
        raise OutputError(f"{target}: cannot write the report ({err.strerror or err}); the finished images are "
                          f"kept in {target.parent}/ledger.sqlite and listed by the next run") from None
