import json

import pytest

from bcdeploy.export.triton_repo import config_pbtxt, write_triton_repo
from bcdeploy.runtime.model.sidecar import ModelMeta

META = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0], [0, 255, 0], [255, 0, 0]],
                 mean=[1.0, 2.0, 3.0], std=[1.0, 1.0, 1.0], input_size=[640, 640])


def _parse(text):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_config_is_a_valid_triton_model_config():
    config = _parse(config_pbtxt("seg", META, "onnxruntime_onnx", max_batch=8))
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert list(config.input[0].dims) == [3, -1, -1] and list(config.output[0].dims) == [3, -1, -1]
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4, 8]
    from tritonclient.grpc import model_config_pb2

    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert config.instance_group[0].count == 1


def test_argmax_model_config():
    from dataclasses import replace

    config = _parse(config_pbtxt("seg", replace(META, output_kind="argmax", output_dtype="uint8"), "tensorrt_plan"))
    assert list(config.output[0].dims) == [1, -1, -1]


def test_repository_layout(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx bytes")
    folder = write_triton_repo(tmp_path / "repo", model, META, "seg")
    assert (folder / "1" / "model.onnx").read_bytes() == b"onnx bytes"
    assert json.loads((folder / "bcdeploy.json").read_text())["classes"] == META.classes
    _parse((folder / "config.pbtxt").read_text())


@pytest.mark.mmseg
def test_export_writes_triton_repository(export_run):
    """The shared export ran with --triton: the repository holds the checked model.onnx, byte for byte."""
    folder = export_run.triton / "bcdeploy_segmenter_onnx"
    assert (folder / "1" / "model.onnx").read_bytes() == (export_run.out / "model.onnx").read_bytes()
    assert json.loads((folder / "bcdeploy.json").read_text()) == json.loads((export_run.out / "model.bcdeploy.json").read_text())
    _parse((folder / "config.pbtxt").read_text())
    assert f"triton: {folder}" in export_run.stdout
