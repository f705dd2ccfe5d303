"""`--dicom-seg`: a DICOM Segmentation beside the PNG outputs of each DICOM input (runtime.dicom_seg).

The SEG is built from the same bytes that were decoded (never re-read from disk or the PACS: it must
reference the instance the mask was computed from) and from the mask at the source's size. Its path
follows the output layout: `seg/<name>.dcm`. It is recorded in the ledger like every other output
(size and SHA-256), so the resume rule covers it. Non-DICOM inputs get no SEG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy.runtime.dicom_seg import SegAlgorithm, write_seg

SEG_FOLDER, SEG_SUFFIX = "seg", ".dcm"


def seg_algorithm(predictor: Any) -> SegAlgorithm:
    """Model name, version and checkpoint hash: from the exported model's sidecar when the predictor
    has one (Segmenter.meta), else from describe() (a PyTorch checkpoint is its own checkpoint)."""
    description = predictor.describe()
    meta = getattr(predictor, "meta", None)
    if meta is not None:
        return SegAlgorithm.from_model(meta, description["model"])
    name = Path(str(description.get("config") or description.get("model") or "model")).stem
    version = f"{Path(str(description.get('model', '?'))).name} {description.get('backend', '?')}"
    return SegAlgorithm(name, version, str(description.get("sha256") or "unknown"))


def write_seg_output(out: Path, name: str, data: bytes, origin: str, mask: np.ndarray, classes: list[str], *,
                     algorithm: SegAlgorithm, max_pixels: int) -> str:
    """Write `seg/<name>.dcm` for the DICOM file `data`; returns its path relative to `out`."""
    from bcdeploy.runtime.dicom import read_dataset

    source = read_dataset(data, origin, max_pixels=max_pixels)
    relative = f"{SEG_FOLDER}/{name}{SEG_SUFFIX}"
    write_seg(out / relative, source, mask, classes, algorithm=algorithm)
    return relative
