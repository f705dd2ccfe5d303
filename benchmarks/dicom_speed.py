"""DICOM decode time per transfer syntax for a DMID-size 12-bit mammogram, and DICOM SEG write time.

Run from the repo root:  python benchmarks/dicom_speed.py [OUT_DIR] [--runs N]
Decode = bcdeploy.runtime.images.dicom.decode_dicom on the file bytes: parse, header checks, pixel decode,
modality/VOI LUT, 8-bit scaling (what `bcdeploy infer` spends per DICOM before preprocessing).
Ratios are against uncompressed explicit VR in the same run, so they compare across machines.
Prints one JSON document and writes OUT_DIR/dicom_speed.json when OUT_DIR is given.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE = (4084, 3328)  # rows x columns of a DMID mammogram


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def decode_times(folder: Path, runs: int) -> dict:
    from bcdeploy.errors import InputError
    from bcdeploy.runtime.images.dicom import decode_dicom
    from tests.dicom_samples import SYNTAXES, mammogram_dataset, mammogram_pixels, write_syntax

    source = mammogram_dataset(mammogram_pixels(SHAPE, bits=12, seed=0))
    rows = {}
    for name, syntax in SYNTAXES.items():
        path = write_syntax(source, name, folder / f"{name}.dcm")
        if path is None:
            rows[name] = {"uid": syntax.uid, "status": f"skipped: no {syntax.tool} encoder"}
            continue
        data = path.read_bytes()
        try:
            decode_dicom(data, path, max_pixels=80_000_000)
        except InputError as err:
            rows[name] = {"uid": syntax.uid, "status": f"refused: {err}"}
            continue
        ms = _median_ms(lambda: decode_dicom(data, path, max_pixels=80_000_000), runs)
        rows[name] = {"uid": syntax.uid, "lossless": syntax.lossless, "file_mb": round(len(data) / 1e6, 2),
                      "decode_ms": ms}
    base = rows["explicit"]["decode_ms"]
    for row in rows.values():
        if "decode_ms" in row:
            row["ratio_to_uncompressed"] = round(row["decode_ms"] / base, 2)
    return rows


def seg_time(folder: Path, runs: int) -> dict:
    from bcdeploy.runtime.results.dicom.seg import SegAlgorithm, write_seg
    from tests.dicom_samples import mammogram_dataset, mammogram_pixels

    source = mammogram_dataset(mammogram_pixels(SHAPE, bits=12, seed=0))
    mask = np.zeros(SHAPE, np.uint8)
    mask[1000:1400, 800:1300] = 1
    mask[2500:2700, 1500:1650] = 2
    algo = SegAlgorithm("unet-s5-d16_deeplabv3", "0.1.0", "0" * 64)
    path = folder / "seg.dcm"
    ms = _median_ms(lambda: write_seg(path, source, mask, ["background", "benign", "malignant"], algorithm=algo), runs)
    return {"segments": 2, "write_ms": ms, "file_mb": round(path.stat().st_size / 1e6, 2)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from bcdeploy.bench.sysinfo import describe

    with tempfile.TemporaryDirectory() as tmp:
        report = {"machine": describe(), "image": f"{SHAPE[1]}x{SHAPE[0]} 12-bit MONOCHROME2", "runs": args.runs,
                  "decode": decode_times(Path(tmp), args.runs), "seg": seg_time(Path(tmp), args.runs)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.out_dir) / "dicom_speed.json").write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
