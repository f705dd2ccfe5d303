"""Seeded hostile codestreams: MG DICOM files whose headers are clean and whose compressed pixel data is not.

Each keeps the codestream's own framing (the RLE header with its segment offsets, a JPEG-LS or JPEG 2000
marker prefix) and replaces what follows with random bytes, so the file passes every header check and
reaches the decoder. With pylibjpeg-rle 2.2 every seeded RLE stream here makes the Rust decoder panic
(`pyo3_runtime.PanicException`, a BaseException); the others make their C decoders raise.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

# syntax name (tests/dicom_samples.py) -> bytes of the real codestream kept before the random tail
KEPT_PREFIX = {"rle": 64, "jpegls": 32, "j2k_lossless": 64}


def poison_dicom(path: Path, syntax: str = "rle", seed: int = 0, *, patient: str = "POISON",
                 study_uid: str | None = None, shape: tuple[int, int] = (256, 192)) -> Path | None:
    """Write one MG mammogram in `syntax` whose codestream after its first bytes is random; None when the
    syntax's encoder is not installed."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames

    ds = mammogram_dataset(mammogram_pixels(shape, seed=seed), patient_id=patient, study_uid=study_uid,
                           laterality="L", view="CC", seed=seed)
    clean = write_syntax(ds, syntax, path)
    if clean is None:
        return None
    encoded = pydicom.dcmread(clean)
    frame = next(iter(generate_frames(encoded.PixelData, number_of_frames=1)))
    keep = KEPT_PREFIX[syntax]
    tail = np.random.default_rng(seed).integers(0, 256, max(len(frame) - keep, 64), dtype=np.uint8).tobytes()
    poisoned = copy.deepcopy(encoded)
    poisoned.PixelData = encapsulate([frame[:keep] + tail])
    poisoned.save_as(path, enforce_file_format=True)
    return path
