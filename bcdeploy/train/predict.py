"""The PyTorch/MMSeg reference predictor, with the runtime's Prediction type, for `bcdeploy predict`
and the parity benchmark. It implements the runtime's Predictor protocol (runtime/model/predictor.py).

Images go to MMSeg as the runtime's decoded arrays (`LoadImageFromNDArray`). For 8-bit files these
are the pixels MMSeg's own `LoadImageFromFile` gives (the same `cv2.imdecode`, BGR, alpha dropped),
and 16-bit and DICOM files, which MMSeg's loader cannot map, need the runtime's mapping anyway.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bcdeploy.fileio import sha256_file
from bcdeploy.runtime.images.imageio import DecodedImage
from bcdeploy.runtime.model.predictor import Prediction
from bcdeploy.runtime.spans import StageSpan, stage_span


class TorchPredictor:
    def __init__(self, config: str | Path | None, checkpoint: str | Path, device: str = "cpu", trust: bool = False) -> None:
        from bcdeploy.train.model import build_segmentor, find_config

        self.config = find_config(checkpoint, config)
        self.checkpoint = Path(checkpoint)
        # Hashed while MMSeg loads them, as Segmenter hashes a model: the identity a run records is that of
        # the files loaded, not of files replaced after opening.
        with ThreadPoolExecutor(1, "checkpoint-hash") as side:
            digests = side.submit(lambda: (sha256_file(self.checkpoint), sha256_file(self.config)))
            self.model = build_segmentor(self.config, checkpoint, device, trust)
        self._sha256, self._config_sha256 = digests.result()
        self.classes = list(self.model.dataset_meta["classes"])
        self.palette = [list(p) for p in self.model.dataset_meta["palette"]]
        self.device = device

    def predict(self, images: list[DecodedImage]) -> list[Prediction]:
        import torch
        from mmseg.apis import inference_model

        # inference_model switches test_pipeline[0] to LoadImageFromNDArray in place for arrays; set it
        # explicitly so the pipeline never depends on what ran before.
        self.model.cfg.test_pipeline[0]["type"] = "LoadImageFromNDArray"
        out = []
        for image in images:
            spans: list[StageSpan] = []  # inference_model does every stage in one call: one `infer` span
            with stage_span("infer", spans), torch.no_grad():
                sample = inference_model(self.model, image.bgr)
            logits = sample.seg_logits.data.float()
            probs = torch.softmax(logits, dim=0).cpu().numpy()
            mask = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
            out.append(Prediction(mask, probs, spans))
        return out

    def describe(self) -> dict[str, Any]:
        import torch

        return {"backend": "pytorch", "device": self.device, "torch": torch.__version__,
                "config": str(self.config), "checkpoint": str(self.checkpoint), "model": str(self.checkpoint),
                "sha256": self._sha256,
                "mask_options": {"device": self.device, "config_sha256": self._config_sha256}}
