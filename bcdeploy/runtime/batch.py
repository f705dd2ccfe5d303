"""`bcdeploy infer`/`predict`: files in, masks + overlays + lesion report out, robust to bad files.

* Inputs: files, directories (optionally recursive) and glob patterns; a missing or unreadable one is
  listed as failed and the run goes on; the caller's exit code says that some failed.
* Overlap: the next batch is decoded on a worker thread while the current one runs (OpenCV and the
  backends release the GIL), and outputs are encoded/written on another.
* Every output is written under a temporary name and renamed; a re-run skips images whose three
  outputs exist unless `overwrite`; results.json keeps the earlier entries of skipped images.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bcdeploy import __version__
from bcdeploy.errors import BcDeployError
from bcdeploy.fileio import write_json, write_text
from bcdeploy.runtime.imageio import IMAGE_SUFFIXES, DecodedImage, read_image
from bcdeploy.runtime.lesions import extract_lesions
from bcdeploy.runtime.outputs import write_jpeg, write_png
from bcdeploy.runtime.segmenter import Prediction
from bcdeploy.runtime.visualize import biner, overlay

log = logging.getLogger(__name__)
PredictFn = Callable[[list[DecodedImage], list[Path]], list[Prediction]]
LESION_COLUMNS = ("image", "lesion_id", "class", "area_px", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                  "centroid_x", "centroid_y", "mean_prob")


@dataclass
class RunOptions:
    out: Path
    batch_size: int = 1
    overwrite: bool = False
    recursive: bool = False
    metadata: str | None = None


@dataclass
class RunSummary:
    processed: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)
    results_path: Path | None = None
    seconds: float = 0.0


def collect_inputs(inputs: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[dict]]:
    """Expand files/dirs/globs; returns (image paths in order, failures for arguments that match nothing)."""
    found: list[Path] = []
    failures: list[dict] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
            found += matches
            if not matches:
                failures.append({"file": item, "error": f"{item}: pattern matches no file"})
        else:
            failures.append({"file": item, "error": f"{item}: no such file or directory"})
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique, failures


def output_paths(out: Path, stem: str) -> dict[str, Path]:
    return {"mask": out / "masks" / f"{stem}.png", "biner": out / "biner" / f"{stem}.png", "vis": out / "vis" / f"{stem}.jpg"}


def run(predict: PredictFn, model_info: dict, classes: list[str], palette: list[list[int]], inputs: Sequence[str],
        options: RunOptions, on_progress: Callable[[str, int], None] | None = None) -> RunSummary:
    start = time.perf_counter()
    out = Path(options.out)
    paths, failures = collect_inputs(inputs, options.recursive)
    targets = _targets(options.metadata)
    previous = _previous_entries(out / "results.json")
    summary = RunSummary(failed=list(failures))
    entries: dict[str, dict] = {}
    stems: dict[str, Path] = {}
    todo: list[Path] = []
    for path in paths:
        stem = path.stem
        if stem in stems:
            summary.failed.append({"file": str(path), "error": f"{path}: output name {stem} already used by {stems[stem]}"})
            continue
        stems[stem] = path
        if not options.overwrite and all(p.exists() for p in output_paths(out, stem).values()):
            summary.skipped += 1
            entries[stem] = previous.get(stem, {"file": str(path), "status": "done earlier"})
            continue
        todo.append(path)

    batches = [todo[i:i + options.batch_size] for i in range(0, len(todo), options.batch_size)]
    with ThreadPoolExecutor(1, "decode") as reader, ThreadPoolExecutor(1, "write") as writer:
        pending_writes: list[Future] = []
        next_batch = reader.submit(_decode_batch, batches[0]) if batches else None
        for index in range(len(batches)):
            decoded = next_batch.result()
            next_batch = reader.submit(_decode_batch, batches[index + 1]) if index + 1 < len(batches) else None
            good = [(p, img, ms) for p, img, ms in decoded if isinstance(img, DecodedImage)]
            for p, err, _ in decoded:
                if not isinstance(err, DecodedImage):
                    summary.failed.append({"file": str(p), "error": str(err)})
            predictions = _predict_safely(predict, good, summary)
            for (path, image, decode_ms), pred in zip(good, predictions):
                if pred is None:
                    continue
                target = targets.get(path.stem)
                pending_writes.append(writer.submit(_write_outputs, out, path, image, pred, classes, palette,
                                                    target, decode_ms))
            for _ in batches[index]:
                if on_progress:
                    on_progress(str(batches[index]), len(todo))
        for future in pending_writes:
            entry = future.result()
            if entry.get("status") == "failed":
                summary.failed.append({"file": entry["file"], "error": entry["error"]})
            else:
                summary.processed += 1
            entries[Path(entry["file"]).stem] = entry
    for failure in summary.failed:
        entries.setdefault(Path(failure["file"]).stem, {"file": failure["file"], "status": "failed", "error": failure["error"]})
    summary.seconds = time.perf_counter() - start
    summary.results_path = _write_reports(out, entries, summary, model_info, classes)
    return summary


def _decode_batch(paths: list[Path]) -> list[tuple[Path, DecodedImage | BcDeployError, float]]:
    decoded = []
    for path in paths:
        start = time.perf_counter()
        try:
            image: DecodedImage | BcDeployError = read_image(path)
        except BcDeployError as err:
            image = err
        decoded.append((path, image, (time.perf_counter() - start) * 1000))
    return decoded


def _predict_safely(predict: PredictFn, good, summary: RunSummary) -> list[Prediction | None]:
    if not good:
        return []
    try:
        return predict([img for _, img, _ in good], [p for p, _, _ in good])
    except BcDeployError as err:
        if len(good) == 1:
            summary.failed.append({"file": str(good[0][0]), "error": f"{good[0][0]}: {err}"})
            return [None]
        # one bad image must not sink the batch: retry one by one to find it
        return [_predict_safely(predict, [item], summary)[0] for item in good]


def _write_outputs(out, path, image: DecodedImage, pred: Prediction, classes, palette, target, decode_ms) -> dict:
    start = time.perf_counter()
    try:
        lesions = extract_lesions(pred.mask, classes, pred.probs)
        paths = output_paths(out, path.stem)
        write_png(paths["mask"], pred.mask)
        write_png(paths["biner"], biner(pred.mask, len(classes)))
        write_jpeg(paths["vis"], overlay(image.bgr, pred.mask, palette, classes, lesions, target))
    except (BcDeployError, OSError) as err:
        return {"file": str(path), "status": "failed", "error": f"{path}: cannot write outputs ({err})"}
    timings = {"decode": decode_ms, **pred.timings_ms, "write": (time.perf_counter() - start) * 1000}
    return {
        "file": str(path), "status": "ok", "size": [image.shape[1], image.shape[0]], "format": image.format,
        "source_dtype": image.source_dtype, "intensity_map": image.intensity_map, "target": target,
        "time_ms": {k: round(v, 2) for k, v in timings.items()},
        "lesions": lesions,
        "outputs": {k: str(v) for k, v in output_paths(out, path.stem).items()},
    }


def _targets(metadata: str | None) -> dict[str, str]:
    """Image id -> 'M', 'B' or 'N' (normal) from DMID metadata, for the overlay's `Target:` label."""
    if not metadata:
        return {}
    from bcdeploy.data.metadata import group_by_image, read_metadata

    out = {}
    for image_id, rows in group_by_image(read_metadata(metadata)).items():
        classes = {r.severity for r in rows if r.severity}
        out[image_id] = "M" if "M" in classes else ("B" if "B" in classes else "N")
    return out


def _previous_entries(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {Path(e["file"]).stem: e for e in data.get("images", []) if e.get("status") != "failed"}
    except (json.JSONDecodeError, KeyError, TypeError):
        log.warning("%s: unreadable earlier results; skipped images will lack their details", path)
        return {}


def _write_reports(out: Path, entries: dict[str, dict], summary: RunSummary, model_info: dict, classes: list[str]) -> Path:
    import cv2

    images = [entries[k] for k in sorted(entries)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LESION_COLUMNS)
    for entry in images:
        for lesion in entry.get("lesions", []):
            writer.writerow([Path(entry["file"]).stem, lesion["id"], lesion["class"], lesion["area_px"], *lesion["bbox"],
                             *lesion["centroid"], lesion.get("mean_prob", "")])
    write_text(out / "lesions.csv", buf.getvalue())
    results = {
        "tool": "bcdeploy", "version": __version__, "model": model_info, "classes": classes,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__},
        "summary": {"processed": summary.processed, "skipped": summary.skipped, "failed": len(summary.failed),
                    "seconds": round(summary.seconds, 2)},
        "failed": summary.failed,
        "images": images,
    }
    write_json(out / "results.json", results)
    return out / "results.json"
