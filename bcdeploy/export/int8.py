"""INT8 ONNX (QDQ, per-channel weights) by onnxruntime's static quantisation, for CPU edge boxes.

Why: on CPUs FP32 is at its peak already (see benchmarks/); INT8 is the way past it. On this project's
AVX2-only CI machine the reference model runs 1.9x faster than FP32; with VNNI the gain is larger.
Calibration uses the same preprocessed images the parity check uses (real ones when given), and the
result is parity-checked against PyTorch like every other export. Two recipes, recorded in the sidecar:
* CPU (default): uint8 activations with a zero point, int8 per-channel weights (U8S8), onnxruntime's
  fastest on x86;
* TensorRT (`symmetric=True`): int8 activations and weights, zero point 0 - the only Q/DQ TensorRT
  builds (explicit quantisation) - and FP32 biases, which TensorRT fuses into the INT8 convolution
  itself (it has no INT32 dequantisation of a bias); the same file still runs in onnxruntime.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bcdeploy._imports import require
from bcdeploy.fileio import atomic_path


def recipe(symmetric: bool) -> dict:
    """What the sidecar records as `export.quantization`."""
    return {"format": "QDQ", "symmetric": symmetric, "weights": "int8 per-channel",
            "activations": "int8, zero point 0" if symmetric else "uint8 with zero point",
            "bias": "fp32" if symmetric else "int32"}


def quantize_int8(src: str | Path, dst: str | Path, calibration: Sequence[np.ndarray], symmetric: bool = False) -> Path:
    """Statically quantise `src` with activations calibrated on `calibration` batches (N,3,H,W)."""
    quantization = require("onnxruntime.quantization", "INT8 export")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": b[i:i + 1]} for b in calibration for i in range(b.shape[0])])

        def get_next(self):
            return next(self.batches, None)

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp, atomic_path(dst) as out:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(str(prepared), str(out), Reader(), quant_format=quantization.QuantFormat.QDQ,
                                     per_channel=True, weight_type=quantization.QuantType.QInt8,
                                     activation_type=quantization.QuantType.QInt8 if symmetric else quantization.QuantType.QUInt8,
                                     extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                                                    "QuantizeBias": not symmetric})
    return dst
