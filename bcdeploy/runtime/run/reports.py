"""results.json, lesions.csv and cases.csv: views of the ledger, regenerated at the end of every run.

They list every image that has outputs, from this run and earlier ones, so a report never loses an
image because a run was interrupted or an earlier report was deleted or corrupted. `failed` lists
this run's failures. With `no_phi` both leave identifiers out (phi.py says how and why the ledger
keeps them). lesions.csv gives sizes in mm where the image has a pixel spacing (DICOM): area_mm2,
bbox_mm as "x y w h" and longest_diameter_mm; empty otherwise (a size is never invented from a guessed
spacing; longest_diameter_px and area_px always hold the sizes in pixels). `score` is each lesion's
likelihood (runtime/results/lesions.py says which statistic and why).

cases.csv holds the case scores (runtime/lesions.case_score: how likely an image holds a malignant
finding), one row per image, and for DICOM inputs one per breast (study and ImageLaterality) and one per
study, each the maximum over its images: a breast is as suspicious as its most suspicious view.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy import __version__
from bcdeploy.errors import InputError, OutputError
from bcdeploy.fileio import write_json, write_text
from bcdeploy.runtime.run.ledger import STAGES, Ledger
from bcdeploy.runtime.run.phi import deidentify, pseudonym, row_identifiers

LESION_COLUMNS = ("image", "lesion_id", "class", "area_px", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                  "centroid_x", "centroid_y", "mean_prob", "source", "area_mm2", "bbox_mm", "score",
                  "longest_diameter_px", "longest_diameter_mm")
CASE_COLUMNS = ("level", "name", "study", "laterality", "case_score", "images", "lesions", "malignant_lesions")


def image_entry(row: dict[str, Any]) -> dict[str, Any]:
    """One ledger row as results.json shows it."""
    image = json.loads(row["image"] or "{}")
    image.pop("study_header", None)  # the run's private record, for its study's CAD SR (run/studies.py)
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
                  classes: list[str], *, no_phi: bool = False, identifiers: set[str] = frozenset()) -> Reports:
    """Write lesions.csv, cases.csv and results.json from the ledger.

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
        "cases": case_table(listed, study_key=pseudonym if no_phi else str),
    }
    if no_phi:
        results = deidentify(results, ledger.rows(), {*row_identifiers(rows), *identifiers})
        results["no_phi"] = True
        lesions_csv = _lesions_csv(results["images"])
    top = max(results["cases"]["images"], key=lambda c: c["case_score"], default=None)
    results["summary"]["highest_case_score"] = top and {"name": top["name"], "case_score": top["case_score"]}
    path = out / "results.json"
    _write(out / "lesions.csv", lambda target: write_text(target, lesions_csv))
    _write(out / "cases.csv", lambda target: write_text(target, _cases_csv(results["cases"])))
    _write(path, lambda target: write_json(target, results))
    return Reports(path, top and (top["name"], top["case_score"]))


@dataclass(frozen=True)
class Reports:
    results_path: Path
    highest_case: tuple[str, float] | None  # (image name, case score), None when no image has one


def case_table(entries: list[dict[str, Any]], *, study_key: Callable[[str], str] = str) -> dict[str, list[dict]]:
    """Case scores per image, and per breast and per study where the images say them (DICOM tags); each
    group's score is the maximum over its images. `study_key` names a study (a pseudonym under --no-phi)."""
    images, groups = [], {"breasts": {}, "studies": {}}
    for entry in entries:
        if entry.get("case_score") is None:
            continue
        tags = entry.get("tags") or {}
        lesions = entry.get("lesions") or []
        study = study_key(tags["study_instance_uid"]) if tags.get("study_instance_uid") else None
        row = {"name": entry["name"], "study": study, "laterality": tags.get("laterality"),
               "case_score": entry["case_score"], "images": 1, "lesions": len(lesions),
               "malignant_lesions": sum(lesion["class"].lower() == "malignant" for lesion in lesions)}
        images.append(row)
        if study is None:
            continue
        for level, key in (("studies", (study, None)), ("breasts", (study, row["laterality"]))):
            if level == "breasts" and not row["laterality"]:
                continue
            group = groups[level].setdefault(key, {"name": "/".join(filter(None, key)), "study": study,
                                                   "laterality": key[1], "case_score": 0.0, "images": 0,
                                                   "lesions": 0, "malignant_lesions": 0})
            group["case_score"] = max(group["case_score"], row["case_score"])
            for count in ("images", "lesions", "malignant_lesions"):
                group[count] += row[count]
    return {"images": images, **{level: list(found.values()) for level, found in groups.items()}}


def _cases_csv(cases: dict[str, list[dict]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CASE_COLUMNS)
    for level, rows in (("image", cases["images"]), ("breast", cases["breasts"]), ("study", cases["studies"])):
        for row in rows:
            writer.writerow([level, *(_blank(row[column]) for column in CASE_COLUMNS[1:])])
    return buf.getvalue()


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
                             _blank(lesion.get("area_mm2")), " ".join(map(str, lesion.get("bbox_mm") or [])),
                             _blank(lesion.get("score")), _blank(lesion.get("longest_diameter_px")),
                             _blank(lesion.get("longest_diameter_mm"))])
    return buf.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _write(target: Path, write) -> None:
    try:
        write(target)
    except OSError as err:
        raise OutputError(f"{target}: cannot write the report ({err.strerror or err}); the finished images are "
                          f"kept in {target.parent}/ledger.sqlite and listed by the next run") from None
