"""One short GPU check for a lent H100/H200 (about 2 minutes): PyTorch CUDA FP32 vs FP16 latency and
mask parity of the reference model at 640x640, plus onnxruntime-gpu and TensorRT when installed
(skipped with the reason when not). Run from the repo root:  python benchmarks/gpu_check.py OUT_DIR
Prints one JSON document and writes it to OUT_DIR/gpu_check.json."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path


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
                          "agreement": float((out.argmax(1) == ref.argmax(1)).float().mean())}
        for batch in (2, 4, 8):
            xb = torch.randn(batch, 3, 640, 640, device="cuda")
            def run_b(xb=xb):
                with torch.autocast("cuda", dtype=torch.float16):
                    return module(xb)
            rows[f"fp16_batch{batch}"] = summarize(measure(run_b, warmup=3, min_runs=10, min_seconds=2.0,
                                                           sync=torch.cuda.synchronize), batch)
        rows["full_image_fp16"] = _full_image(module, torch)
    report["pytorch_cuda"] = rows
    report["onnxruntime_gpu"] = _ort_gpu(module, x)
    report["tensorrt"] = "installed" if importlib.util.find_spec("tensorrt") else "skipped: tensorrt not installed"
    return report


def _full_image(module, torch) -> dict:
    """A DMID-size mammogram end to end on the GPU as MMSeg runs it: upload the uint8 image, resize to
    640x640, normalise, FP16 model, logits resized to 2864x4432 (align_corners=False), argmax, download."""
    import torch.nn.functional as F

    from bcdeploy.bench.timing import measure, summarize

    image = torch.randint(0, 256, (2864, 4432, 3), dtype=torch.uint8).pin_memory()
    mean = torch.tensor([123.675, 116.28, 103.53], device="cuda").view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375], device="cuda").view(1, 3, 1, 1)

    def run():
        x = image.cuda(non_blocking=True).permute(2, 0, 1)[None].float()
        x = (F.interpolate(x, size=(640, 640), mode="bilinear", align_corners=False) - mean) / std
        with torch.autocast("cuda", dtype=torch.float16):
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
