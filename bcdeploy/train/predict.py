"""The PyTorch/MMSeg reference predictor, with the runtime's Prediction type, for `bcdeploy predict`
and the parity benchmark. 8-bit files go to MMSeg by path (its own loader, exactly what a user of
MMSeg gets); 16-bit and DICOM, which MMSeg's loader cannot map, go as the runtime's decoded array."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bcdeploy.runtime.imageio import DecodedImage
from bcdeploy.runtime.segmenter import Prediction


class TorchPredictor:
    def __init__(self, config: str | Path | None, checkpoint: str | Path, device: str = "cpu", trust: bool = False) -> None:
        from bcdeploy.train.model import build_segmentor, find_config

        self.config = find_config(checkpoint, config)
        self.checkpoint = Path(checkpoint)
        self.model = build_segmentor(self.config, checkpoint, device, trust)
        self.classes = list(self.model.dataset_meta["classes"])
        self.palette = [list(p) for p in self.model.dataset_meta["palette"]]
        self.device = device

    def __call__(self, images: list[DecodedImage], paths: list[Path]) -> list[Prediction]:
        import torch
        from mmseg.apis import inference_model

        out = []
        for image, path in zip(images, paths):
            start = time.perf_counter()
            from_file = image.format != "dicom" and image.source_dtype == "uint8"
            # MMSeg's inference_model switches test_pipeline[0] to LoadImageFromNDArray in place the first
            # time it gets an array and never back, so paths after an array would fail: set it every time.
            self.model.cfg.test_pipeline[0]["type"] = "LoadImageFromFile" if from_file else "LoadImageFromNDArray"
            with torch.no_grad():
                sample = inference_model(self.model, str(path) if from_file else image.bgr)
            logits = sample.seg_logits.data.float()
            probs = torch.softmax(logits, dim=0).cpu().numpy()
            mask = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
            out.append(Prediction(mask, probs, {"infer": (time.perf_counter() - start) * 1000}))
        return out

    def describe(self) -> dict:
        import torch

        return {"backend": "pytorch", "device": self.device, "torch": torch.__version__,
                "config": str(self.config), "checkpoint": str(self.checkpoint)}
