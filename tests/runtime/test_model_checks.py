"""A model description (sidecar or embedded) is validated by schema, then checked against the model's
own inputs and outputs and against the metadata embedded in the model, before any image is read."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.errors import ConfigError
from bcdeploy.runtime.model.sidecar import ModelMeta
from tests.tiny_models import CLASSES, SHA_A, SHA_B, description, write_onnx, write_sidecar

pytest.importorskip("onnxruntime")


def _open(model):
    from bcdeploy.runtime.model.segmenter import Segmenter

    return Segmenter(model)


# --- schema -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, expected", [
    ("mean", "123", "mean = '123'"),  # a string of length 3 passed the old length check
    ("mean", ["1", "2", "3"], "mean.0 = '1'"),
    ("std", [58.0, 0.0, 57.0], "std.1 = 0.0"),
    ("size_divisor", 0, "size_divisor = 0"),
    ("size_divisor", True, "size_divisor = True"),
    ("input_size", [32, -32], "input_size.1 = -32"),
    ("input_size", [32], "input_size = [32]"),
    ("classes", [], "classes = []"),
    ("classes", ["background", ""], "classes.1 = ''"),
    ("classes", ["a", "a", "b"], "repeated: a"),
    ("palette", [[0, 0, 0], [0, 255, 0], [255, 0, 256]], "palette.2.2 = 256"),
    ("palette", [[0, 0, 0], [0, 255, 0]], "2 colours for 3 classes"),
    ("palette", [[0, 0, 0], [0, 255], [255, 0, 0]], "palette.1 = [0, 255]"),
    ("output_kind", "probabilities", "output_kind = 'probabilities'"),
    ("channel_order", "rgb", "channel_order = 'rgb'"),
    ("layout", "NHWC", "layout = 'NHWC'"),
    ("keep_ratio", "yes", "keep_ratio = 'yes'"),
    ("pad_value", None, "pad_value = None"),
    ("source", {"checkpoint_sha256": "abc"}, "is not a SHA-256"),
])
def test_schema_refuses_bad_field_naming_file_field_and_value(field, value, expected):
    with pytest.raises(ConfigError) as err:
        ModelMeta.from_dict(description(**{field: value}), "m.bcdeploy.json")
    message = str(err.value)
    assert message.startswith("m.bcdeploy.json: ") and expected in message and "\n" not in message


@pytest.mark.parametrize("data, expected", [
    ([1, 2, 3], "JSON object, this is a JSON list"),
    ("a model", "this is a JSON string"),
    (None, "this is a JSON null"),
    ({**description(), "format": "other"}, "not a bcdeploy model description"),
    ({**description(), "schema_version": "1"}, "schema_version = '1'"),
    ({**description(), "schema_version": 9}, "upgrade bcdeploy"),
])
def test_schema_refuses_what_is_not_a_description(data, expected):
    with pytest.raises(ConfigError, match=expected):
        ModelMeta.from_dict(data, "m.bcdeploy.json")


def test_missing_required_field_is_named():
    data = description()
    del data["std"]
    with pytest.raises(ConfigError, match="std is missing"):
        ModelMeta.from_dict(data, "m.bcdeploy.json")


def test_valid_description_round_trips_with_defaults():
    data = description()
    del data["channel_order"], data["size_divisor"]
    meta = ModelMeta.from_dict(data, "m")
    assert meta.channel_order == "RGB" and meta.size_divisor == 16 and meta.classes == CLASSES
    assert ModelMeta.from_dict(json.loads(meta.to_json()), "again") == meta


# --- against the model's own inputs and outputs -----------------------------------------------------

def test_fewer_classes_than_output_channels_is_refused(tmp_path):
    """Today: 2 classes on a 3-channel model silently drop the third (malignant) class."""
    model = write_onnx(tmp_path / "model.onnx", channels=3)
    write_sidecar(model, description(classes=["background", "benign"]))
    with pytest.raises(ConfigError) as err:
        _open(model)
    assert "2 classes" in str(err.value) and "3 output channels" in str(err.value)


def test_argmax_claimed_on_a_logits_model_is_refused(tmp_path):
    model = write_onnx(tmp_path / "model.onnx", channels=3)
    write_sidecar(model, description(output_kind="argmax", output_dtype="uint8"))
    with pytest.raises(ConfigError, match="'argmax'.*float32"):
        _open(model)


def test_logits_claimed_on_an_argmax_model_is_refused(tmp_path):
    model = write_onnx(tmp_path / "model.onnx", channels=3, argmax=True)
    write_sidecar(model, description())
    with pytest.raises(ConfigError, match="'logits'.*uint8"):
        _open(model)


def test_io_names_must_match(tmp_path):
    model = write_onnx(tmp_path / "model.onnx", output_name="seg_logits")
    write_sidecar(model, description())
    with pytest.raises(ConfigError, match="output_name 'output'.*'seg_logits'"):
        _open(model)


def test_matching_models_open_and_segment(tmp_path):
    logits = write_onnx(tmp_path / "model.onnx", channels=3)
    write_sidecar(logits, description())
    argmax = write_onnx(tmp_path / "argmax.onnx", channels=3, argmax=True)
    write_sidecar(argmax, description(output_kind="argmax", output_dtype="uint8"))
    image = np.full((40, 30, 3), 100, np.uint8)
    for model in (logits, argmax):
        with _open(model) as segmenter:
            assert segmenter.predict([image])[0].mask.shape == (40, 30)
            assert [s.name for s in segmenter.runner.input_specs()] == ["input"]


# --- against the metadata embedded in the model file ------------------------------------------------

def test_sidecar_naming_another_checkpoint_than_the_embedded_metadata_is_refused(tmp_path):
    """Issue 10: a sidecar left from another export must not be believed over the model's own metadata."""
    model = write_onnx(tmp_path / "model.onnx", embedded=description())
    write_sidecar(model, description(source={"checkpoint": "iter_90.pth", "checkpoint_sha256": SHA_B}))
    with pytest.raises(ConfigError) as err:
        _open(model)
    assert SHA_A in str(err.value) and SHA_B in str(err.value) and "iter_90.pth" in str(err.value)


def test_sidecar_disagreeing_with_embedded_preprocessing_is_refused(tmp_path):
    model = write_onnx(tmp_path / "model.onnx", embedded=description())
    write_sidecar(model, description(mean=[0.0, 0.0, 0.0]))
    with pytest.raises(ConfigError, match=r"mean = \[0.0, 0.0, 0.0\].*\[123.675, 116.28, 103.53\]"):
        _open(model)


def test_agreeing_sidecar_and_embedded_metadata_open(tmp_path):
    model = write_onnx(tmp_path / "model.onnx", embedded=description(precision="fp32"))
    write_sidecar(model, description(precision="fp32", versions={"bcdeploy": "other"}))
    with _open(model) as segmenter:
        assert segmenter.meta.versions == {"bcdeploy": "other"}


def test_bad_embedded_metadata_is_refused_without_a_sidecar(tmp_path):
    model = write_onnx(tmp_path / "model.onnx", embedded=description(size_divisor=0))
    with pytest.raises(ConfigError, match="embedded metadata.*size_divisor = 0"):
        _open(model)


# --- through the command line: one line, nothing read, nothing written ------------------------------

@pytest.mark.parametrize("sidecar", [[1, 2, 3], description(mean="123"), description(size_divisor=0),
                                     description(classes=["background", "benign"])])
def test_infer_refuses_a_bad_sidecar_with_one_line(tmp_path, sidecar):
    import cv2

    model = write_onnx(tmp_path / "model.onnx")
    write_sidecar(model, sidecar)
    cv2.imwrite(str(tmp_path / "a.png"), np.full((40, 30), 90, np.uint8))
    result = CliRunner().invoke(cli, ["infer", "--engine", str(model), str(tmp_path / "a.png"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.bcdeploy.json" in lines[0]
    assert not (tmp_path / "out").exists()


def test_openvino_ir_is_checked_the_same_way(tmp_path):
    ov = pytest.importorskip("openvino")
    from openvino.tools.ovc import convert_model  # not ov.convert_model: absent when the runtime loaded openvino

    onnx_path = write_onnx(tmp_path / "model.onnx")
    ov.save_model(convert_model(str(onnx_path)), str(tmp_path / "model.xml"), compress_to_fp16=False)
    onnx_path.unlink()
    write_sidecar(tmp_path / "model.xml", description(classes=["background", "benign"]))
    with pytest.raises(ConfigError, match="2 classes.*3 output channels"):
        _open(tmp_path / "model.xml")
    write_sidecar(tmp_path / "model.xml", description())
    with _open(tmp_path / "model.xml") as segmenter:
        assert [str(s) for s in segmenter.runner.output_specs()] == ["output: float32 [?x3x?x?]"]


def test_an_fp16_sidecar_copied_over_the_fp32_model_is_refused(tmp_path):
    """Issue "Reliability round 3", defect 6: the ONNX carries its own description (export embeds it); a
    sidecar saying fp16 beside a graph that says fp32 belongs to another file, and the report would lie."""
    model = write_onnx(tmp_path / "model.onnx", embedded=description(precision="fp32"))
    write_sidecar(model, description(precision="fp16"))
    with pytest.raises(ConfigError, match="precision = 'fp16'.*'fp32'"):
        _open(model)


def test_a_sidecar_copied_over_an_openvino_ir_is_refused(tmp_path):
    """The IR carries the description its ONNX embedded (OpenVINO keeps ONNX metadata in rt_info under
    `framework`): the INT8 IR with the FP32 sidecar copied beside it is refused like an ONNX would be."""
    ov = pytest.importorskip("openvino")
    from openvino.tools.ovc import convert_model

    onnx_path = write_onnx(tmp_path / "model.onnx", embedded=description(precision="int8"))
    ov.save_model(convert_model(str(onnx_path)), str(tmp_path / "model.int8.xml"), compress_to_fp16=False)
    write_sidecar(tmp_path / "model.int8.xml", description(precision="fp32"))
    with pytest.raises(ConfigError, match="precision = 'fp32'.*'int8'"):
        _open(tmp_path / "model.int8.xml")
    write_sidecar(tmp_path / "model.int8.xml", description(precision="int8"))
    with _open(tmp_path / "model.int8.xml") as segmenter:
        assert segmenter.meta.precision == "int8"


# --- identity -----------------------------------------------------------------------------------------

def test_identity_is_of_the_model_file_that_was_loaded(tmp_path) -> None:
    """The SHA-256 a run records (describe) is read while the model loads, not at the first describe: a
    file replaced after opening (a re-export into the same folder mid-run) must not lend its hash to
    masks the loaded model made."""
    import hashlib

    from tests.tiny_models import write_onnx

    model = write_onnx(tmp_path / "model.onnx")
    write_sidecar(model, description())
    loaded = hashlib.sha256(model.read_bytes()).hexdigest()
    with _open(model) as segmenter:
        write_onnx(model, weight=np.ones((3, 3, 1, 1), np.float32))  # another model's bytes, same path
        assert hashlib.sha256(model.read_bytes()).hexdigest() != loaded
        assert segmenter.describe()["sha256"] == loaded
