"""One short GPU check for a lent H100/H200 (about 2 minutes): the reference model at 640x640 on PyTorch
CUDA in FP32, FP16 and BF16 (model alone; argmax agreement and per-class Dice against FP32), batches,
and a DMID-size mammogram end to end (FP32 and FP16); then a TensorRT FP16 engine built by bcdeploy
from the same weights, model alone and end to end through the runtime, with Dice against torch FP32
(one line where TensorRT is not installed), and whether onnxruntime-gpu is there.
Run from the repo root:  python benchmarks/gpu_check.py OUT_DIR
Prints one JSON document and writes it to OUT_DIR/gpu_check.json."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(out_dir: str) -> dict:
    import torch

    from bcdeploy.bench.sysinfo import describe
    from bcdeploy.bench.timing import measure, summarize
    from bcdeploy.export.graph import prepare_for_export
    from bcdeploy.train.model import build_segmentor

    report: dict = {"machine": describe(), "torch": torch.__version__}
    if not torch.cuda.is_available():
        report["status"] = "skipped: torch sees no CUDA device"
        return report
    report["gpu"] = torch.cuda.get_device_name(0)
    config = Path(__file__).resolve().parents[1] / "configs" / "unet" / "unet-s5-d16_deeplabv3_breast-cancer.py"
    torch.manual_seed(0)
    module = prepare_for_export(build_segmentor(config, None)).cuda().eval()
    x = torch.randn(1, 3, 640, 640, device="cuda")
    rows = {}
    with torch.no_grad():
        ref = module(x).float()
        for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
            def run(dtype=dtype):
                with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                    return module(x)
            out = run().float()
            stats = summarize(measure(run, warmup=5, min_runs=20, min_seconds=2.0, sync=torch.cuda.synchronize))
            rows[name] = {**stats, "max_abs_dlogit": float((out - ref).abs().max()),
                          "agreement": float((out.argmax(1) == ref.argmax(1)).float().mean()),
                          "dice_vs_fp32": dice_per_class(out.argmax(1).cpu().numpy(), ref.argmax(1).cpu().numpy(),
                                                         ref.shape[1])}
        for batch in (2, 4, 8):
            xb = torch.randn(batch, 3, 640, 640, device="cuda")
            def run_b(xb=xb):
                with torch.autocast("cuda", dtype=torch.float16):
                    return module(xb)
            rows[f"fp16_batch{batch}"] = summarize(measure(run_b, warmup=3, min_runs=10, min_seconds=2.0,
                                                           sync=torch.cuda.synchronize), batch)
        image = torch.randint(0, 256, (2864, 4432, 3), dtype=torch.uint8).pin_memory()
        rows["full_image_fp32"] = _full_image(module, torch, image, torch.float32)
        rows["full_image_fp16"] = _full_image(module, torch, image, torch.float16)
    report["pytorch_cuda"] = rows
    report["onnxruntime_gpu"] = _ort_gpu(module, x)
    report["tensorrt"] = _tensorrt(module, config, x, ref, Path(out_dir))
    return report


def dice_per_class(mask: np.ndarray, reference: np.ndarray, classes: int) -> list[float | None]:
    """Dice of each class between two label maps (None where neither has the class)."""
    out: list[float | None] = []
    for c in range(classes):
        a, b = mask == c, reference == c
        total = int(a.sum() + b.sum())
        out.append(None if total == 0 else round(2.0 * float(np.logical_and(a, b).sum()) / total, 6))
    return out


def _tensorrt(module, config: Path, x, ref, out_dir: Path) -> dict | str:
    """A TensorRT FP16 engine through bcdeploy's own export steps (ONNX, FP16 ONNX, engine) from the same
    weights, run by the runtime's TensorRT backend: model alone on `x`, end to end on a DMID-size image,
    Dice against torch FP32. One line where TensorRT is not installed."""
    if importlib.util.find_spec("tensorrt") is None:
        return "skipped: tensorrt not installed"
    from bcdeploy.bench.timing import measure, summarize
    from bcdeploy.export.fp16 import convert_to_fp16
    from bcdeploy.export.model_meta import meta_from_segmentor
    from bcdeploy.export.onnx_export import embed_metadata, export_onnx
    from bcdeploy.export.tensorrt_build import build_engine, default_profile
    from bcdeploy.runtime.images.imageio import DecodedImage
    from bcdeploy.runtime.model.sidecar import sidecar_path_for
    from bcdeploy.runtime.model.segmenter import Segmenter

    folder = out_dir / "trt"
    folder.mkdir(parents=True, exist_ok=True)
    segmentor = module.segmentor
    meta = meta_from_segmentor(segmentor, segmentor.cfg, None, None, config, argmax=False)
    onnx32 = export_onnx(module.cpu().float(), folder / "model.onnx", tuple(meta.input_size))
    module.cuda()
    onnx16 = convert_to_fp16(onnx32, folder / "model.fp16.onnx")
    fp16_meta = dataclasses.replace(meta, precision="fp16")
    embed_metadata(onnx16, fp16_meta)
    engine_path = folder / "model.trt"
    engine_info = build_engine(onnx16, engine_path, default_profile(meta.input_size, meta.size_divisor), "fp16")
    sidecar_path_for(engine_path).write_text(dataclasses.replace(fp16_meta, engine=engine_info).to_json())
    with Segmenter(engine_path) as segmenter:
        batch = x.cpu().numpy()
        logits = segmenter.raw_logits(batch)
        alone = summarize(measure(lambda: segmenter.raw_logits(batch), warmup=5, min_runs=20, min_seconds=2.0))
        image = np.random.default_rng(0).integers(0, 256, (2864, 4432, 3), dtype=np.uint8)
        decoded = DecodedImage(image, "png", "uint8", 1)
        e2e = summarize(measure(lambda: segmenter.predict([decoded]), warmup=2, min_runs=10, min_seconds=2.0))
    labels = np.asarray(logits).argmax(1)
    reference = ref.argmax(1).cpu().numpy()
    return {"engine": engine_info, "model_alone_640": alone, "full_image_e2e": e2e,
            "agreement_vs_torch_fp32": float((labels == reference).mean()),
            "dice_vs_torch_fp32": dice_per_class(labels, reference, ref.shape[1])}


def _full_image(module, torch, image, dtype) -> dict:
    """A DMID-size mammogram end to end on the GPU as MMSeg runs it: upload the uint8 image, resize to
    640x640, normalise, model in `dtype`, logits resized to 2864x4432 (align_corners=False), argmax, download."""
    import torch.nn.functional as F

    from bcdeploy.bench.timing import measure, summarize

    mean = torch.tensor([123.675, 116.28, 103.53], device="cuda").view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375], device="cuda").view(1, 3, 1, 1)

    def run():
        x = image.cuda(non_blocking=True).permute(2, 0, 1)[None].float()
        x = (F.interpolate(x, size=(640, 640), mode="bilinear", align_corners=False) - mean) / std
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            logits = module(x)
        logits = F.interpolate(logits.float(), size=image.shape[:2], mode="bilinear", align_corners=False)
        return logits.argmax(1).to(torch.uint8).cpu()

    return {"size": "2864x4432", **summarize(measure(run, warmup=3, min_runs=10, min_seconds=2.0,
                                                          sync=torch.cuda.synchronize))}


def _ort_gpu(module, x) -> dict | str:
    if importlib.util.find_spec("onnxruntime") is None:
        return "skipped: onnxruntime not installed"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"skipped: no CUDAExecutionProvider (have {ort.get_available_providers()})"
    return "available (run bcdeploy bench latency --provider cuda)"


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    result = main(str(out))
    result["seconds"] = round(time.time() - start, 1)
    text = json.dumps(result, indent=2, default=str)
    (out / "gpu_check.json").write_text(text)
    print(text)
