"""TensorRT: what can be checked without a GPU runs here; engine builds are marked trt/gpu."""

import importlib.util

import numpy as np
import pytest

from bcdeploy.errors import BackendError, ConfigError
from bcdeploy.export.tensorrt_build import check_precision
from tests.conftest import run_cli

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_int8_calibration_only_before_tensorrt_11():
    check_precision("10.7.0", "int8")
    check_precision("11.0.0", "fp16")
    with pytest.raises(BackendError, match="QDQ"):
        check_precision("11.2.0", "int8")
    with pytest.raises(ConfigError):
        check_precision("10.7.0", "bf8")


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown where TensorRT is missing")
@pytest.mark.mmseg
def test_missing_tensorrt_is_one_clear_line(exported):
    proc = run_cli("build-engine", exported / "model.fp16.onnx", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "bcdeploy[trt]" in proc.stderr
    proc = run_cli("infer", "--engine", exported / "missing.trt", exported / "x.png", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.mmseg
def test_engine_builds_and_matches_onnxruntime(exported, tmp_path):
    from bcdeploy.export.api import build_engine_from_onnx
    from bcdeploy.runtime.segmenter import Segmenter

    engine = build_engine_from_onnx(exported / "model.fp16.onnx", tmp_path / "model.trt", None, "fp16")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (600, 480, 3), dtype=np.uint8)]
    with Segmenter(engine) as trt_seg, Segmenter(exported / "model.onnx") as ort_seg:
        assert trt_seg.meta.engine["tensorrt_version"]
        a, b = trt_seg.predict(images)[0].mask, ort_seg.predict(images)[0].mask
    assert (a == b).mean() >= 0.99
