"""`bcdeploy prepare`: turn DMID (either layout) into an MMSeg training set with a manifest.

Fixes over the original project's tools/dmid/prepare_dataset.py:
* classes come from the metadata row whose centre lies in each mask component, with the y origin
  detected from the data (see lesion_matching.py) instead of assumed;
* the split is decided from metadata before anything is written, and everything is written into a
  staging directory that replaces the output directory only when complete, so a validation mask can
  never land in the training folder, neither from this run nor from a stale earlier one;
* normal images are included as all-background images (unless asked otherwise);
* every output file is hashed into manifest.json so a training set can be audited and reproduced;
* masks are binarised at a threshold and specks below a minimum area dropped (see lesion_matching.py),
  both counted in the manifest, so JPEG or anti-aliasing noise never becomes a lesion;
* the output folder may not equal, contain or lie inside any input, so `--overwrite` can never
  delete the data set it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bcdeploy.data.layout import index_files
from bcdeploy.data.lesion_matching import (
    DEFAULT_MASK_THRESHOLD,
    DEFAULT_MIN_LESION_AREA,
    IGNORE_INDEX,
    binarize_mask,
    count_hits,
    label_components,
    match_rows,
)
from bcdeploy.data.metadata import group_by_image, read_metadata, worst_severity
from bcdeploy.data.records import LesionRow
from bcdeploy.data.split import stratified_split
from bcdeploy.errors import BcDeployError, DataError, InputError
from bcdeploy.fileio import atomic_path, refuse_overlap, replaced_dir, sha256_file, write_json
from bcdeploy.runtime.images.imageio import read_image, read_mask

MANIFEST_VERSION = 1
PALETTE = {"background": [0, 0, 0], "benign": [0, 255, 0], "malignant": [255, 0, 0], "tumor": [255, 0, 0]}


@dataclass(frozen=True, kw_only=True)
class PrepareOptions:
    images_dir: str
    masks_dir: str
    metadata: str
    output_dir: str
    categories: tuple[str, ...] = ("B", "M")
    binary: bool = False
    resize_ratio: float = 1.0
    train_ratio: float = 0.8
    seed: int = 0
    image_format: str = "jpg"
    skip_bad: bool = False
    include_normals: bool = True
    y_origin: str = "auto"
    overwrite: bool = False
    workers: int = 2
    mask_threshold: int = DEFAULT_MASK_THRESHOLD
    min_lesion_area: int = DEFAULT_MIN_LESION_AREA

    @property
    def class_names(self) -> list[str]:
        if self.binary:
            return ["background", "tumor"]
        return ["background"] + [{"B": "benign", "M": "malignant"}[c] for c in self.categories]

    def class_index(self, severity: str | None) -> int:
        if severity is None:
            return IGNORE_INDEX
        if self.binary:
            return 1 if severity in self.categories else IGNORE_INDEX
        return self.categories.index(severity) + 1 if severity in self.categories else IGNORE_INDEX


@dataclass
class PrepareReport:
    manifest_path: str
    y_origin: str
    counts: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    unmatched_components: int = 0
    unmatched_rows: int = 0
    dropped_components: int = 0
    masks_not_0_255: int = 0


def prepare(options: PrepareOptions, on_progress: Callable[[str, int], None] | None = None) -> PrepareReport:
    """Prepare the data set; returns the report. Raises DataError on bad input unless skip_bad."""
    _validate(options)
    rows_by_id = group_by_image(read_metadata(options.metadata))
    images = index_files(options.images_dir, "image")
    masks = index_files(options.masks_dir, "mask") if Path(options.masks_dir).is_dir() else {}
    skipped: list[dict] = []
    cases = _pair_cases(options, rows_by_id, images, masks, skipped)
    y_origin, evidence = _decide_origin(options, cases, skipped)
    cases = [c for c in cases if c[0] not in {s["id"] for s in skipped}]
    if not options.include_normals:
        cases = [c for c in cases if c[2] is not None]
    split = stratified_split({cid: worst_severity(rows) for cid, _, _, rows in cases}, options.train_ratio, options.seed)

    output = Path(options.output_dir)
    with replaced_dir(output, overwrite=options.overwrite) as staging:
        jobs = [(options, cid, img, mask, rows, split[cid], y_origin, str(staging)) for cid, img, mask, rows in cases]
        records = {}
        for cid, record in _pool_map(_prepare_one, jobs, options.workers):
            if "error" in record:
                if not options.skip_bad:
                    raise DataError(record["error"])
                skipped.append({"id": cid, "reason": record["error"]})
            else:
                records[cid] = record
            if on_progress:
                on_progress(cid, len(jobs))
        manifest = _manifest(options, records, skipped, y_origin, evidence)
        _refuse_all_lesions_dropped(options, manifest["counts"])
        _check_no_leak(staging, manifest)
        write_json(staging / "manifest.json", manifest)
    return PrepareReport(
        manifest_path=str(output / "manifest.json"),
        y_origin=y_origin,
        counts=manifest["counts"],
        skipped=skipped,
        unmatched_components=sum(len(r["unmatched_components"]) for r in records.values()),
        unmatched_rows=sum(len(r["unmatched_rows"]) for r in records.values()),
        dropped_components=manifest["counts"]["dropped_components"],
        masks_not_0_255=manifest["counts"]["masks_not_0_255"],
    )


def _validate(options: PrepareOptions) -> None:
    # Before anything is written: the staging folder goes beside the output, and --overwrite removes it.
    refuse_overlap(options.output_dir, [options.images_dir, options.masks_dir, options.metadata], "--output-dir")
    if not 1 <= options.mask_threshold <= 255:
        raise InputError(f"--mask-threshold must lie in [1, 255], got {options.mask_threshold}")
    if options.min_lesion_area < 0:
        raise InputError(f"--min-lesion-area must be >= 0 pixels, got {options.min_lesion_area}")
    if not 0.0 < options.train_ratio < 1.0:
        raise InputError(f"--train-ratio must lie strictly between 0 and 1, got {options.train_ratio}")
    if not 0.0 < options.resize_ratio <= 4.0:
        raise InputError(f"--resize-ratio must lie in (0, 4], got {options.resize_ratio}")
    if options.image_format not in ("jpg", "png"):
        raise InputError(f"--image-format must be jpg or png, got {options.image_format!r}")
    bad = [c for c in options.categories if c not in ("B", "M")]
    if bad or not options.categories or len(set(options.categories)) != len(options.categories):
        raise InputError(f"--categories takes B and/or M once each, got {' '.join(options.categories)}")
    if options.y_origin not in ("auto", "top", "bottom"):
        raise InputError(f"y origin must be auto, top or bottom, got {options.y_origin!r}")
    output = Path(options.output_dir)
    if output.exists() and any(output.iterdir()) and not options.overwrite:
        raise InputError(f"{output}: output directory is not empty; pass --overwrite to replace it")


def _pair_cases(options, rows_by_id, images, masks, skipped) -> list[tuple[str, Path, Path | None, list[LesionRow]]]:
    cases = []
    for cid, rows in sorted(rows_by_id.items()):
        problem = None
        if cid not in images:
            problem = f"{options.metadata}:{rows[0].source_line}: metadata row for {cid}, but no image {cid}.* in {options.images_dir}"
        elif any(not r.is_normal for r in rows) and cid not in masks:
            problem = f"{images[cid]}: metadata lists lesions but there is no mask {cid}.* in {options.masks_dir}"
        if problem:
            if not options.skip_bad:
                raise DataError(problem)
            skipped.append({"id": cid, "reason": problem})
            continue
        cases.append((cid, images[cid], masks.get(cid), rows))
    for cid in sorted(set(images) - set(rows_by_id)):
        skipped.append({"id": cid, "reason": f"{images[cid]}: image has no metadata row; not used"})
    return cases


def _decide_origin(options, cases, skipped) -> tuple[str, dict]:
    """Count, over the whole set, which y origin puts centres inside mask components."""
    jobs = [(cid, mask, rows, options.mask_threshold, options.min_lesion_area)
            for cid, _, mask, rows in cases if mask is not None and any(r.has_centre for r in rows)]
    evidence = {"top": 0, "bottom": 0}
    for cid, hits in _pool_map(_origin_job, jobs, options.workers):
        if isinstance(hits, str):
            if not options.skip_bad:
                raise DataError(hits)
            skipped.append({"id": cid, "reason": hits})
            continue
        for key in evidence:
            evidence[key] += hits[key]
    if options.y_origin != "auto":
        return options.y_origin, evidence
    if evidence["top"] == evidence["bottom"]:
        return "top", {**evidence, "note": "no evidence either way; assumed top"}
    return ("top" if evidence["top"] > evidence["bottom"] else "bottom"), evidence


def _origin_job(job) -> tuple[str, dict | str]:
    cid, mask_path, rows, threshold, min_area = job
    try:
        _, labels, _ = label_components(binarize_mask(read_mask(mask_path), threshold, min_area)[0])
    except InputError as err:
        return cid, str(err)
    return cid, count_hits(rows, labels)


def _pool_map(fn, jobs, workers) -> Iterator:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, jobs, chunksize=1)


def _prepare_one(job) -> tuple[str, dict]:
    """Read, label, resize and write one image (runs in a worker process)."""
    options, cid, image_path, mask_path, rows, split, y_origin, staging = job
    try:
        return cid, _prepare_one_checked(options, cid, image_path, mask_path, rows, split=split, y_origin=y_origin,
                                         staging=Path(staging))
    except BcDeployError as err:
        return cid, {"error": str(err)}


def _prepare_one_checked(options, cid, image_path, mask_path, rows, *, split, y_origin, staging) -> dict:
    import cv2

    image = read_image(image_path).bgr
    height, width = image.shape[:2]
    annotation = np.zeros((height, width), np.uint8)
    match, stats = None, None
    if mask_path is not None:
        mask = read_mask(mask_path)
        if mask.shape != (height, width):
            raise DataError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path.name} is {width}x{height}")
        lesion, stats = binarize_mask(mask, options.mask_threshold, options.min_lesion_area)
        _refuse_all_below_threshold(mask_path, mask, rows, options.mask_threshold)
        count, labels, _ = label_components(lesion)
        match = match_rows(rows, labels, count, y_origin)
        lut = np.zeros(count, np.uint8)
        for label, severity in match.class_of_component.items():
            lut[label] = options.class_index(severity)
        annotation = lut[labels]
        del labels, mask, lesion
    out_w, out_h = max(1, round(width * options.resize_ratio)), max(1, round(height * options.resize_ratio))
    if (out_w, out_h) != (width, height):
        shrink = out_w < width
        image = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        annotation = cv2.resize(annotation, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    image_out = staging / "images" / split / f"{cid}.{options.image_format}"
    ann_out = staging / "annotations" / split / f"{cid}.png"
    _write_image(image_out, image)
    _write_image(ann_out, annotation)
    present = sorted(int(v) for v in np.unique(annotation))
    return {
        "split": split,
        "source": {"image": str(image_path), "mask": str(mask_path) if mask_path else None},
        "size": [width, height],
        "out_size": [out_w, out_h],
        "metadata_classes": sorted({r.severity for r in rows if r.severity}),
        "label_values": present,
        "components": 0 if match is None else len(match.class_of_component),
        "unmatched_components": [] if match is None else match.unmatched_components,
        "unmatched_rows": [] if match is None else match.unmatched_rows,
        "conflicts": [] if match is None else match.conflicts,
        "dropped_components": 0 if stats is None else stats.dropped_components,
        "dropped_pixels": 0 if stats is None else stats.dropped_pixels,
        "mask_values": None if stats is None else stats.value_histogram,
        "files": {
            "image": {"path": str(image_out.relative_to(staging)), "sha256": sha256_file(image_out)},
            "annotation": {"path": str(ann_out.relative_to(staging)), "sha256": sha256_file(ann_out)},
        },
    }


def _refuse_all_below_threshold(mask_path: Path, mask: np.ndarray, rows: list[LesionRow], threshold: int) -> None:
    """A mask that marks pixels, none of them at the threshold, for an image whose metadata lists lesions,
    is a mask stored another way (0/1, 0/100), not an empty one: binarising it would silently turn every
    lesion into background, so it is refused (one line; `--skip-bad` skips it and lists it)."""
    top = int(mask.max())
    if 0 < top < threshold and any(not r.is_normal for r in rows):
        raise DataError(f"{mask_path}: mask values are 0..{top}, all below --mask-threshold {threshold}, but the "
                        f"metadata lists lesions for this image: every lesion would be dropped (a mask saved as "
                        f"0/{top}?); pass --mask-threshold {top} if {top} marks lesion pixels")


def _refuse_all_lesions_dropped(options: PrepareOptions, counts: dict) -> None:
    """The metadata lists lesions, yet no annotation holds one: a training set without a single lesion
    is no training set (typically --min-lesion-area above every lesion's size); nothing is written."""
    listed = counts["with_benign"] + counts["with_malignant"]
    labelled = sum(value for key, value in counts.items() if key.startswith("labelled_"))
    if listed and not labelled:
        raise DataError(f"the metadata lists lesions in {listed} image(s) but no annotation holds one: "
                        f"{counts['dropped_components']} mask component(s) were dropped as smaller than "
                        f"--min-lesion-area {options.min_lesion_area} px; lower it")


def _write_image(path: Path, array: np.ndarray) -> None:
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), array, params):
            raise InputError(f"{path}: cannot write image")


def _manifest(options, records, skipped, y_origin, evidence) -> dict:
    splits = {"train": sorted(c for c, r in records.items() if r["split"] == "train"),
              "val": sorted(c for c, r in records.items() if r["split"] == "val")}
    counts = {name: len(ids) for name, ids in splits.items()}
    counts["images"] = len(records)
    counts["skipped"] = len(skipped)
    counts["normal"] = sum(1 for r in records.values() if not r["metadata_classes"])
    counts["with_benign"] = sum(1 for r in records.values() if "B" in r["metadata_classes"])
    counts["with_malignant"] = sum(1 for r in records.values() if "M" in r["metadata_classes"])
    counts["unmatched_components"] = sum(len(r["unmatched_components"]) for r in records.values())
    counts["unmatched_rows"] = sum(len(r["unmatched_rows"]) for r in records.values())
    counts["ignored_pixels_images"] = sum(1 for r in records.values() if IGNORE_INDEX in r["label_values"])
    counts["dropped_components"] = sum(r["dropped_components"] for r in records.values())
    counts["masks_not_0_255"] = sum(1 for r in records.values() if r["mask_values"])
    # what the annotations hold, beside what the metadata says: they differ when lesions were dropped
    for index, name in enumerate(options.class_names[1:], 1):
        counts[f"labelled_{name}"] = sum(1 for r in records.values() if index in r["label_values"])
    opts = asdict(options)
    opts.pop("workers")
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": "bcdeploy prepare",
        "options": opts,
        "classes": options.class_names,
        "palette": [PALETTE[name] for name in options.class_names],
        "ignore_index": IGNORE_INDEX,
        "y_origin": y_origin,
        "y_origin_evidence": evidence,
        "splits": splits,
        "counts": counts,
        "skipped": skipped,
        "images": dict(sorted(records.items())),
    }


def _check_no_leak(staging: Path, manifest: dict) -> None:
    """Every file sits in its own image's split, and no id is in both splits (the original tools' bug)."""
    train, val = set(manifest["splits"]["train"]), set(manifest["splits"]["val"])
    if train & val:
        raise BcDeployError(f"internal error: ids in both splits: {sorted(train & val)}")
    for kind in ("images", "annotations"):
        for split, ids in (("train", train), ("val", val)):
            stems = {p.stem for p in (staging / kind / split).glob("*")}
            if stems - ids:
                raise BcDeployError(f"internal error: {kind}/{split} holds files of another split: {sorted(stems - ids)}")


