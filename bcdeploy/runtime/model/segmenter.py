"""Segmenter: a runner plus the shared pre/postprocessing, from decoded images to class masks.

This is the one code path every backend goes through (and the parity benchmark with it), so two
backends can only disagree because their engines compute different logits.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy.errors import BackendError, InputError
from bcdeploy.fileio import sha256_file
from bcdeploy.runtime.model.backends import BackendOptions, open_runner
from bcdeploy.runtime.images.imageio import DecodedImage
from bcdeploy.runtime.model.sidecar import ModelMeta, read_sidecar_of, settle_meta
from bcdeploy.runtime.model.checks import check_model_io
from bcdeploy.runtime.model.postprocess import crop_padding, labels_to_mask, logits_to_mask, softmax
from bcdeploy.runtime.model.predictor import Prediction
from bcdeploy.runtime.model.preprocess import PreprocessInfo, preprocess, resize_for_model
from bcdeploy.runtime.model.sliding_window import sliding_window_inference
from bcdeploy.runtime.spans import StageSpan, stage_span


@dataclass
class SlidingWindow:
    """Tile the original-resolution image with windows of `size` (default: the model's input size)."""

    size: tuple[int, int] | None = None
    overlap: float = 0.25
    mode: str = "gaussian"
    batch_size: int = 4


class Segmenter:
    """Open a model file (backend by suffix), read and check its metadata, segment BGR uint8 images."""

    def __init__(self, model_path: str | Path, sliding_window: SlidingWindow | None = None, *,
                 options: BackendOptions | None = None) -> None:
        """`options`: the backend's options object, checked against the model's backend
        (`registry.options_for(model_path, threads=2)` builds one); None: the backend's defaults."""
        self.model_path = Path(model_path)
        # The model file's SHA-256 and its sidecar need no session: another thread reads them while the
        # backend builds one (they took 0.2 s of a 0.8 s start after it, measured with a 116 MB ONNX on 2 cores).
        with ThreadPoolExecutor(1, "model-check") as side:
            sha256 = side.submit(sha256_file, self.model_path)
            sidecar = side.submit(read_sidecar_of, self.model_path)
            self.runner = open_runner(self.model_path, options)
            try:
                # Both checks run before any image is read: a description that does not fit the model
                # would give wrong masks without an error.
                self.meta: ModelMeta = settle_meta(self.model_path, sidecar.result(), self.runner.embedded_metadata())
                check_model_io(self.meta, self.runner.input_specs(), self.runner.output_specs(), self.model_path)
                self._sha256 = sha256.result()
            except Exception:
                self.runner.deactivate()
                raise
        self.sliding_window = sliding_window
        if sliding_window and self.meta.output_kind != "logits":
            self.runner.deactivate()
            raise BackendError(f"{model_path}: sliding-window blending needs a logits model; this one outputs argmax")

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the Predictor protocol (runtime/model/predictor.py) -----------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def palette(self) -> list[list[int]]:
        return [list(p) for p in self.meta.palette]

    @property
    def concurrency(self) -> int:
        """Images `predict` serves at once from different threads (runner.concurrency); the run loop
        keeps that many in flight."""
        return self.runner.concurrency

    def describe(self) -> dict[str, Any]:
        """Backend, versions, the model file and its SHA-256, and every setting that changes masks."""
        runner = self.runner.describe()
        sw = asdict(self.sliding_window) if self.sliding_window else None
        # threads and OpenVINO's streams change speed, not masks (bit-identical: tests/runtime/test_streams.py);
        # the sidecar (normalisation, sizes, classes) changes masks
        engine = {k: v for k, v in runner.items() if k not in ("threads", "hint")}
        sidecar = hashlib.sha256(json.dumps(self.meta.to_dict(), sort_keys=True).encode()).hexdigest()
        return {**runner, "model": str(self.model_path), "sha256": self._sha256, "precision": self.meta.precision,
                "sliding_window": sw,
                "mask_options": {"engine": engine, "sidecar_sha256": sidecar, "sliding_window": sw}}

    def predict(self, images: list[DecodedImage] | list[np.ndarray]) -> list[Prediction]:
        """Segment a batch of decoded images (or bare (H,W,3) uint8 BGR arrays, as `serve` passes them);
        sizes may differ, each is resized as MMSeg's test Resize."""
        if not images:
            return []
        sizes = [img.shape if isinstance(img, DecodedImage) else None for img in images]
        images = [img.bgr if isinstance(img, DecodedImage) else img for img in images]
        if self.sliding_window:
            return [self._predict_sliding(img, hw) for img, hw in zip(images, sizes)]
        spans: list[list[StageSpan]] = [[] for _ in images]
        prepared = []
        for image, hw, mine in zip(images, sizes, spans):
            with stage_span("preprocess", mine):
                prepared.append(preprocess(_check_image(image), self.meta, original_hw=hw))
        tensors, infos = zip(*prepared)
        # A keep_ratio model gives each aspect ratio its own size. MMSeg refuses mixed sizes in one test
        # batch rather than pad them (padding would change the logits near the border), so neither do we:
        # one backend call per size, whose span each image of that call shares.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, tensor in enumerate(tensors):
            by_shape.setdefault(tensor.shape, []).append(index)
        outputs: list[np.ndarray | None] = [None] * len(images)
        for indices in by_shape.values():
            batch, call = np.stack([tensors[i] for i in indices]), []
            with stage_span("infer", call):
                out = self.runner.infer(batch)
            for i, o in zip(indices, out):
                outputs[i] = o
                spans[i].append(call[0].for_batch(len(indices)))
        return [self._postprocess(o, info, mine) for o, info, mine in zip(outputs, infos, spans)]

    def model_view(self, image: DecodedImage) -> DecodedImage:
        """`image` as this model reads it: resized to its input size by the very call `predict` would
        make (preprocess.resize_for_model), so the prediction is bit-identical. The run loop calls it on
        the reader thread, after keeping the overlay's picture where one is drawn (a full-size mammogram
        is 40 MiB, the model's input 1 MiB). With a sliding window the model reads every pixel: the image
        as it is."""
        if self.sliding_window or not image.full_size:
            return image
        small = resize_for_model(image.bgr, self.meta)
        return image if small is image.bgr else image.resized(small)

    def raw_logits(self, batch: np.ndarray) -> np.ndarray:
        """Backend output for an already preprocessed batch (parity checks compare these)."""
        return self.runner.infer(batch)

    def _postprocess(self, output: np.ndarray, info: PreprocessInfo, spans: list[StageSpan]) -> Prediction:
        with stage_span("postprocess", spans):
            if self.meta.output_kind == "argmax":
                mask, probs = labels_to_mask(output, info), None
            else:
                logits = output.astype(np.float32, copy=False)
                mask = logits_to_mask(logits, info, self.meta.align_corners)
                probs = softmax(crop_padding(logits, info))
        return Prediction(mask, probs, spans)

    def _predict_sliding(self, image: np.ndarray, original_hw: tuple[int, int] | None) -> Prediction:
        """One image at its original resolution; `infer` spans every window and their blending."""
        cfg = self.sliding_window
        spans: list[StageSpan] = []
        with stage_span("preprocess", spans):
            chw, info = preprocess(_check_image(image), self.meta, resize=False, original_hw=original_hw)
        window = tuple(cfg.size or self.meta.input_size)
        if any(w % self.meta.size_divisor for w in window):
            raise InputError(f"sliding window {window} must be divisible by {self.meta.size_divisor}")
        with stage_span("infer", spans):
            logits = sliding_window_inference(chw[None], window, self.runner.infer, cfg.overlap, cfg.mode,
                                              cfg.batch_size, self.meta.pad_value)[0]
        return self._postprocess(logits, info, spans)


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"expected an (H,W,3) uint8 BGR image, got {image.shape} {image.dtype}")
    return image
