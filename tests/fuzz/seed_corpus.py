"""Seed files for the reader fuzzer: one small valid file per format the runtime reads (PNG, JPEG,
8- and 16-bit TIFF, DICOM in several transfer syntaxes), written into the corpus folder given."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import tifffile


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax

    gray = (mammogram_pixels((48, 40), seed=1) >> 4).astype(np.uint8)
    cv2.imwrite(str(folder / "seed.png"), gray)
    cv2.imwrite(str(folder / "seed.jpg"), gray)
    tifffile.imwrite(folder / "seed8.tif", gray)
    tifffile.imwrite(folder / "seed16.tif", mammogram_pixels((48, 40), seed=2), compression="zlib")
    for syntax in ("explicit", "implicit", "rle", "deflated"):
        write_syntax(mammogram_dataset(mammogram_pixels((48, 40), seed=3)), syntax, folder / f"seed_{syntax}.dcm")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
