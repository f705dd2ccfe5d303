"""The peer row: the loop a user writes instead of `bcdeploy infer`, short and honest.

    python benchmarks/plain_loop.py MODEL DIR OUT [--compute-only]

For each image: cv2.imread, resize to the sidecar's input size, normalize with its mean and std, the
model (onnxruntime's InferenceSession for .onnx, OpenVINO's compiled model for .xml, both with their
defaults: nothing tuned), argmax, resize the mask back (nearest), cv2.imwrite a PNG. One thread, no
overlap, no ledger, no checks.

--compute-only reads and preprocesses every image first (untimed), then times only the model calls at
the same input: the model's compute alone, the floor no runner can beat. It prints `TIMED_S=<seconds>`
last, which benchmarks/alternate.py takes instead of the process's wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}


def open_model(path: Path):
    """A function from an NCHW float32 batch to NCHW logits."""
    if path.suffix == ".xml":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU")
        return lambda x: compiled(x)[compiled.output(0)]
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def sidecar(model: Path) -> dict:
    for candidate in (model.with_suffix(".bcdeploy.json"), model.parent / "model.bcdeploy.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    raise SystemExit(f"{model}: no sidecar beside it")


def preprocess(path: Path, meta: dict) -> tuple[np.ndarray, tuple[int, int]]:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    height, width = meta["input_size"]
    resized = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    if meta.get("channel_order", "RGB") == "RGB":
        resized = resized[..., ::-1]
    x = (resized.astype(np.float32) - np.float32(meta["mean"])) / np.float32(meta["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), bgr.shape[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--compute-only", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="the first N images only (0: all)")
    args = parser.parse_args()
    meta = sidecar(args.model)
    model = open_model(args.model)
    paths = sorted(p for p in args.inputs.iterdir() if p.suffix.lower() in SUFFIXES)[:args.limit or None]
    if args.compute_only:
        batches = [preprocess(p, meta)[0] for p in paths]
        model(batches[0])  # the first call allocates; a user's loop pays it once too, outside this floor
        start = time.perf_counter()
        for x in batches:
            model(x)
        print(f"TIMED_S={time.perf_counter() - start:.4f}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        x, (height, width) = preprocess(path, meta)
        mask = model(x)[0].argmax(axis=0).astype(np.uint8)
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(args.out / f"{path.stem}.png"), mask)


if __name__ == "__main__":
    main()
