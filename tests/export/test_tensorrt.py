"""TensorRT: everything decided before TensorRT is called runs here; engine builds are marked trt/gpu."""

import enum
import importlib.util
import json
import shutil
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from bcdeploy.errors import ConfigError
from bcdeploy.export.api import ExportOptions, planned_steps
from bcdeploy.export.tensorrt_build import check_engine_source, default_profile, engine_precision, network_flags
from bcdeploy.runtime.model.sidecar import ModelMeta
from tests.conftest import REFERENCE_CONFIG, TINY_CONFIG

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
META = ModelMeta(classes=["a", "b"], palette=[[0, 0, 0], [1, 1, 1]], mean=[0.0] * 3, std=[1.0] * 3,
                 input_size=[192, 192])


def _invoke(*args):
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    return CliRunner().invoke(cli, list(map(str, args)))


def _ordered(profile):
    return all(lo <= o <= hi for lo, o, hi in zip(profile["min"], profile["opt"], profile["max"]))


@pytest.mark.mmseg
@pytest.mark.parametrize("config, size", [(TINY_CONFIG, [192, 192]), (REFERENCE_CONFIG, [640, 640])])
def test_default_profile_derives_from_the_config_and_is_ordered(config, size):
    from mmengine.config import Config

    from bcdeploy.export.model_meta import resize_from_cfg, size_divisor_from_cfg

    cfg = Config.fromfile(str(config))
    input_size, _ = resize_from_cfg(cfg)
    profile = default_profile(input_size, size_divisor_from_cfg(cfg.model.data_preprocessor))
    assert input_size == size and profile["opt"] == [1, 3, *size] and _ordered(profile)
    assert profile["max"][2:] == [2048, 2048] and profile["min"][2] <= 16


def test_default_profile_pads_opt_to_the_divisor_and_grows_max_for_large_models():
    assert default_profile([200, 3000], 32) == {"min": [1, 3, 32, 32], "opt": [1, 3, 224, 3008],
                                                "max": [4, 3, 2048, 3008]}


def test_precision_routing():
    assert engine_precision(None) == "fp16"
    assert engine_precision(None, fp16_mode=False) == "fp32"
    assert engine_precision(None, fp16_mode=True, int8_mode=True) == "int8"  # MMDeploy's int8 configs set both
    assert engine_precision("int8", fp16_mode=True) == "int8"
    with pytest.raises(ConfigError, match="fp16_mode=True"):
        engine_precision("fp32", fp16_mode=True)
    with pytest.raises(ConfigError, match="fp16_mode=False"):
        engine_precision("fp16", fp16_mode=False)
    with pytest.raises(ConfigError, match="precision must be one of"):
        engine_precision("bf8")
    # --engine --precision int8 implies the INT8 ONNX it builds from; fp16 the FP16 one; fp32 only model.onnx
    assert planned_steps(ExportOptions(checkpoint="c", engine=True), "int8") == ("onnx", "int8", "engine")
    assert planned_steps(ExportOptions(checkpoint="c", engine=True), "fp16") == ("onnx", "fp16", "engine")
    assert planned_steps(ExportOptions(checkpoint="c", engine=True, openvino=True), "fp32") == ("onnx", "openvino", "engine")


def test_export_options_are_keyword_only():
    with pytest.raises(TypeError):
        ExportOptions("ckpt.pth", None, "out")  # positional: must fail


def test_engine_source_must_be_in_the_engine_precision():
    check_engine_source(replace(META, precision="fp16"), "fp16", "model.fp16.onnx")
    with pytest.raises(ConfigError, match="builds from model.fp16.onnx"):
        check_engine_source(META, "fp16", "model.onnx")
    cpu_int8 = replace(META, precision="int8", export={"quantization": {"symmetric": False}})
    with pytest.raises(ConfigError, match="symmetric INT8"):
        check_engine_source(cpu_int8, "int8", "model.int8.onnx")
    check_engine_source(replace(cpu_int8, export={"quantization": {"symmetric": True}}), "int8", "model.int8.onnx")


def test_networks_are_strongly_typed_where_tensorrt_has_it():
    flags10 = enum.IntEnum("Flags", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 5})
    assert network_flags(SimpleNamespace(__version__="10.7.0", NetworkDefinitionCreationFlag=flags10)) == 1 << 5
    flags8 = enum.IntEnum("Flags", {"EXPLICIT_BATCH": 0})
    assert network_flags(SimpleNamespace(__version__="8.6.1", NetworkDefinitionCreationFlag=flags8)) == 1


@pytest.mark.mmseg
def test_build_engine_refuses_a_mismatched_source_before_tensorrt(exported):
    result = _invoke("build-engine", exported / "model.onnx", "--precision", "fp16")
    assert result.exit_code == 1 and "builds from model.fp16.onnx" in result.output, result.output
    result = _invoke("build-engine", exported / "model.int8.onnx")  # quantised for the CPU
    assert result.exit_code == 1 and "symmetric INT8" in result.output, result.output


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown where TensorRT is missing")
@pytest.mark.mmseg
def test_missing_tensorrt_is_one_clear_line(exported, tmp_path):
    result = _invoke("build-engine", exported / "model.fp16.onnx", "--out", tmp_path / "model.trt")
    assert result.exit_code == 1 and result.output.strip().startswith("error:") and "bcdeploy[trt]" in result.output
    assert not (tmp_path / "model.trt").exists()
    # an engine file that exists (with its sidecar), so the run gets past file checks to the backend
    (tmp_path / "model.trt").write_bytes(b"engine bytes")
    shutil.copy(exported / "model.fp16.bcdeploy.json", tmp_path / "model.trt.bcdeploy.json")
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((64, 64), np.uint8))
    result = _invoke("infer", "--engine", tmp_path / "model.trt", image, "--out", tmp_path / "out")
    assert result.exit_code != 0 and "bcdeploy[trt]" in result.output and "Traceback" not in result.output, result.output


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.mmseg
def test_engine_builds_and_matches_onnxruntime(exported, tmp_path):
    from bcdeploy.export.api import build_engine_from_onnx
    from bcdeploy.runtime.model.segmenter import Segmenter

    engine = build_engine_from_onnx(exported / "model.fp16.onnx", tmp_path / "model.trt", None)
    sidecar = json.loads((tmp_path / "model.trt.bcdeploy.json").read_text())
    assert sidecar["precision"] == "fp16" and sidecar["engine"]["strongly_typed"] and not sidecar["export"]["parity"]["checked"]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (600, 480, 3), dtype=np.uint8)]
    with Segmenter(engine) as trt_seg, Segmenter(exported / "model.onnx") as ort_seg:
        assert trt_seg.meta.engine["tensorrt_version"]
        a, b = trt_seg.predict(images)[0].mask, ort_seg.predict(images)[0].mask
    assert (a == b).mean() >= 0.99


@pytest.mark.parametrize("recorded, here, refused", [
    ({"tensorrt_version": "10.3.0", "compute_capability": "9.0"}, ("10.3.0", "9.0"), None),
    ({"tensorrt_version": "10.1.0", "compute_capability": "9.0"}, ("10.3.0", "9.0"), "TensorRT 10.1.0"),
    ({"tensorrt_version": "10.3.0", "compute_capability": "8.6", "gpu": "RTX A6000"}, ("10.3.0", "9.0"),
     "compute capability 8.6 (RTX A6000)"),
    ({}, ("10.3.0", "9.0"), None),  # facts the sidecar does not hold are not guessed
])
def test_an_engine_built_by_another_tensorrt_release_or_gpu_is_refused_before_deserialising(recorded, here, refused):
    """A minor release apart is as incompatible as a major one (the check compared majors only)."""
    from bcdeploy.runtime.model.backends.tensorrt import built_elsewhere

    why = built_elsewhere(recorded, *here)
    assert (why is None) if refused is None else (refused in why)
