"""The one shape of everything that segments: the run loop, `infer`, `predict` and the
benchmarks take a Predictor and never a closure plus loose classes and palette.

`Segmenter` (any exported model: onnxruntime, TensorRT, OpenVINO) and `train.predict.TorchPredictor`
(PyTorch/MMSeg) implement it.

`describe()` is what a result is bound to. It must hold:
* `backend` and the versions that produced the masks, `model` (the model file's path) and `sha256`
  (its SHA-256: the model's identity, whatever its path);
* `mask_options`: every setting that can change a mask (sidecar contents, provider/device/precision,
  sliding window...), as JSON data. The run loop recomputes an image when `sha256` or `mask_options`
  differ from what its outputs were made with; nothing else in `describe()` forces a recompute.

A predictor may also say how many `predict` calls it serves at once from different threads
(`concurrency`, OpenVINO's streams); one without that attribute takes one call at a time. And it may
offer `model_view(image)`: the image reduced to what its `predict` reads (resized to the model's input),
with the same prediction, which a run applies ahead of the model (run/segment.to_model_view), so that
queued images hold a model-size copy and not a full-size one. Without it images stay whole until the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from bcdeploy.runtime.spans import StageSpan, durations_ms

if TYPE_CHECKING:
    from bcdeploy.runtime.images.imageio import DecodedImage


@dataclass
class Prediction:
    """One image's result. Stage times are derived from `spans` (when each stage ran), never stored
    beside them: one fact, one place."""

    mask: np.ndarray  # (H, W) uint8 class indices at the original size
    probs: np.ndarray | None  # (C, h, w) softmax at model resolution, padding cropped; None for argmax models
    spans: list[StageSpan] = field(default_factory=list)  # runtime/spans.py

    @property
    def timings_ms(self) -> dict[str, float]:
        return durations_ms(self.spans)


@runtime_checkable
class Predictor(Protocol):
    @property
    def classes(self) -> list[str]: ...

    @property
    def palette(self) -> list[list[int]]: ...

    def describe(self) -> dict[str, Any]: ...

    def predict(self, images: list[DecodedImage]) -> list[Prediction]: ...


def concurrency_of(predictor: Predictor) -> int:
    """How many `predict` calls `predictor` serves at once (module docstring)."""
    return max(1, int(getattr(predictor, "concurrency", 1)))


def model_view_of(predictor: Predictor) -> Callable[[DecodedImage], DecodedImage] | None:
    """`predictor.model_view`, or None where it reads images whole (module docstring)."""
    return getattr(predictor, "model_view", None)
