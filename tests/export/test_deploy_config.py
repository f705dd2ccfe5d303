import re
from pathlib import Path

import pytest

from bcdeploy.errors import ConfigError
from bcdeploy.export import deploy_config as dc

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "deploy_configs" / "mmseg"


def test_tensorrt_fp16_dynamic_profile_from_inheritance():
    cfg = dc.load_deploy_config(CONFIGS / "segmentation_tensorrt-fp16_dynamic-512x512-2048x2048.py")
    assert dc.backend_type(cfg) == "tensorrt" and dc.fp16_mode(cfg) and not dc.with_argmax(cfg)
    assert dc.input_profile(cfg) == {"min": [1, 3, 512, 512], "opt": [1, 3, 640, 640], "max": [4, 3, 2048, 2048]}
    assert cfg["onnx_config"]["dynamic_axes"]["input"] == {0: "batch", 2: "height", 3: "width"}
    assert cfg["onnx_config"]["opset_version"] == 17 and dc.workspace_bytes(cfg) == 1 << 32


def test_static_and_onnxruntime_configs():
    static = dc.load_deploy_config(CONFIGS / "segmentation_tensorrt-fp16_static-640x640.py")
    assert dc.input_profile(static)["min"] == dc.input_profile(static)["max"] == [1, 3, 640, 640]
    ort = dc.load_deploy_config(CONFIGS / "segmentation_onnxruntime_dynamic.py")
    assert dc.backend_type(ort) == "onnxruntime" and dc.input_profile(ort) is None


def test_mmdeploy_configs_read_as_they_are(tmp_path):
    """The shape of MMDeploy 1.x's own mmseg configs: bases two folders up, dict() calls, 1 << 30."""
    (tmp_path / "_base_" / "backends").mkdir(parents=True)
    (tmp_path / "mmseg").mkdir()
    (tmp_path / "_base_" / "onnx_config.py").write_text(
        "onnx_config = dict(type='onnx', export_params=True, keep_initializers_as_inputs=False, opset_version=11,\n"
        "    save_file='end2end.onnx', input_names=['input'], output_names=['output'], input_shape=None, optimize=True)\n")
    (tmp_path / "_base_" / "backends" / "tensorrt-fp16.py").write_text(
        "backend_config = dict(type='tensorrt', common_config=dict(fp16_mode=True, max_workspace_size=0))\n")
    (tmp_path / "mmseg" / "segmentation_static.py").write_text(
        "_base_ = ['../_base_/onnx_config.py']\ncodebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)\n")
    (tmp_path / "mmseg" / "segmentation_dynamic.py").write_text(
        "_base_ = ['./segmentation_static.py']\nonnx_config = dict(\n    dynamic_axes={\n"
        "        'input': {0: 'batch', 2: 'height', 3: 'width'},\n        'output': {0: 'batch', 2: 'height', 3: 'width'}\n    }, )\n")
    cfg_path = tmp_path / "mmseg" / "segmentation_tensorrt-fp16_dynamic-512x1024-2048x2048.py"
    cfg_path.write_text(
        "_base_ = ['./segmentation_dynamic.py', '../_base_/backends/tensorrt-fp16.py']\n"
        "backend_config = dict(\n    common_config=dict(max_workspace_size=1 << 30),\n    model_inputs=[\n        dict(\n"
        "            input_shapes=dict(\n                input=dict(\n                    min_shape=[1, 3, 512, 1024],\n"
        "                    opt_shape=[1, 3, 1024, 2048],\n                    max_shape=[1, 3, 2048, 2048])))\n    ])\n")
    cfg = dc.load_deploy_config(cfg_path)
    assert dc.with_argmax(cfg) and dc.fp16_mode(cfg) and dc.workspace_bytes(cfg) == 1 << 30
    assert dc.input_profile(cfg)["opt"] == [1, 3, 1024, 2048]
    assert cfg["onnx_config"]["save_file"] == "end2end.onnx"


@pytest.mark.parametrize("text, message", [
    ("import os\n", "imports are not allowed"),
    ("x = open('/etc/passwd')\n", "unsupported expression"),
    ("for i in range(3):\n    pass\n", "only `name = value`"),
    ("_base_ = ['./missing.py']\n", "not found"),
])
def test_code_is_never_run(tmp_path, text, message):
    path = tmp_path / "cfg.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        dc.load_deploy_config(path)


def test_profile_must_be_ordered(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("backend_config = dict(model_inputs=[dict(input_shapes=dict(input=dict(min_shape=[1,3,64,64], "
                    "opt_shape=[1,3,32,32], max_shape=[1,3,128,128])))])\n")
    with pytest.raises(ConfigError, match="ordered"):
        dc.input_profile(dc.load_deploy_config(path))


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.py")))
def test_every_shipped_config_is_honoured_field_by_field(name):
    settings = dc.settings(dc.load_deploy_config(CONFIGS / name))
    assert settings.backend in dc.BACKENDS
    if "tensorrt" in name:
        assert settings.workspace_bytes == 1 << 32 and settings.profile["opt"] == [1, 3, 640, 640]
        assert settings.fp16_mode is ("fp16" in name) and settings.trace_hw == (640, 640)


def test_settings_carry_what_the_engine_build_uses(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("backend_config = dict(type='tensorrt', common_config=dict(fp16_mode=False, int8_mode=True, "
                    "max_workspace_size=1 << 28), model_inputs=[dict(input_shapes=dict(input=dict(min_shape=[1,3,32,32], "
                    "opt_shape=[1,3,64,96], max_shape=[2,3,128,128])))])\n"
                    "codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)\n"
                    "onnx_config = dict(input_shape=[96, 64], opset_version=17)\n")
    settings = dc.settings(dc.load_deploy_config(path))
    assert settings == dc.DeploySettings(argmax=True, backend="tensorrt", fp16_mode=False, int8_mode=True,
                                         workspace_bytes=1 << 28, trace_hw=(64, 96),
                                         profile={"min": [1, 3, 32, 32], "opt": [1, 3, 64, 96], "max": [2, 3, 128, 128]})


@pytest.mark.parametrize("text, field", [
    ("backend_config = dict(type='tensorrt', common_config=dict(fp16_mode=True, calib_file='c.bin'))\n",
     "backend_config.common_config.calib_file"),
    ("onnx_config = dict(opset_version=11)\n", "onnx_config.opset_version=11"),
    ("onnx_config = dict(input_names=['images'])\n", "onnx_config.input_names"),
    ("onnx_config = dict(dynamic_axes={'input': {1: 'channels'}})\n", "onnx_config.dynamic_axes"),
    ("codebase_config = dict(type='mmdet')\n", "codebase_config.type"),
    ("backend_config = dict(type='ncnn')\n", "backend_config.type='ncnn'"),
    ("backend_config = dict(model_inputs=[dict(input_shapes=dict(input=dict(min_shape=[1,3,8,8], opt_shape=[1,3,8,8], "
     "max_shape=[1,3,8,8])), input_dtype='fp16')])\n", "backend_config.model_inputs"),
    ("ir_config = dict(type='torchscript')\n", "ir_config.type"),
])
def test_fields_bcdeploy_would_ignore_are_refused_by_name(tmp_path, text, field):
    path = tmp_path / "cfg.py"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(field)):
        dc.settings(dc.load_deploy_config(path))
