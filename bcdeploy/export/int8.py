"""INT8 ONNX (QDQ, per-channel weights) by onnxruntime's static quantisation, for CPU edge boxes.

Why: on CPUs FP32 is at its peak already (see benchmarks/); INT8 is the way past it. On this project's
AVX2-only CI machine the reference model runs 1.9x faster than FP32; with VNNI the gain is larger.
Calibration uses the same preprocessed images the parity check uses (real ones when given), and the
result is parity-checked against PyTorch like every other export. QDQ keeps the graph portable: the
same file runs in onnxruntime on CPU and can be built by TensorRT as an explicitly quantised network.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bcdeploy._imports import require
from bcdeploy.fileio import atomic_path


def quantize_int8(src: str | Path, dst: str | Path, calibration: Sequence[np.ndarray]) -> Path:
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
                                     per_channel=True, activation_type=quantization.QuantType.QUInt8,
                                     weight_type=quantization.QuantType.QInt8)
    return dst
