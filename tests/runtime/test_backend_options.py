"""Each backend declares its options; the registry builds them and refuses one that does not apply."""

import json

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.errors import ConfigError
from bcdeploy.runtime.model.backends import (
    OnnxRuntimeOptions,
    OpenVINOOptions,
    TensorRTOptions,
    backend_for,
    model_files,
    option_choices,
    options_for,
)
from tests.tiny_models import description, write_onnx, write_sidecar


def test_options_for_builds_the_backends_own_options():
    assert options_for("m.onnx", provider="cuda", threads=2) == OnnxRuntimeOptions(provider="cuda", threads=2)
    assert options_for("m.xml", precision="bf16", device="gpu") == OpenVINOOptions(precision="bf16", device="GPU")
    assert options_for("m.plan", device_id=1) == TensorRTOptions(device_id=1)
    # None is "not given": the backend's default
    assert options_for("m.trt", threads=None, provider=None) == TensorRTOptions()


@pytest.mark.parametrize("model, given, backend, takes", [
    ("m.trt", {"threads": 2}, "tensorrt", "device_id"),
    ("m.engine", {"provider": "cuda"}, "tensorrt", "device_id"),
    ("m.xml", {"provider": "cpu"}, "openvino", "device, precision, threads"),
    ("m.onnx", {"precision": "bf16"}, "onnxruntime", "provider, threads, device_id"),
    ("m.onnx", {"device": "GPU"}, "onnxruntime", "provider, threads, device_id"),
])
def test_an_option_that_does_not_apply_names_the_backend_and_what_it_takes(model, given, backend, takes):
    with pytest.raises(ConfigError) as err:
        options_for(model, **given)
    message = str(err.value)
    assert f"{next(iter(given))} does not apply to the {backend} backend" in message and takes in message


@pytest.mark.parametrize("options, expected", [
    (lambda: OnnxRuntimeOptions(provider="rocm"), "provider 'rocm' is not one of cpu, cuda, tensorrt"),
    (lambda: OnnxRuntimeOptions(threads=-1), "threads must be an integer >= 0"),
    (lambda: OpenVINOOptions(precision="int4"), "precision 'int4' is not one of fp32, bf16, fp16"),
    (lambda: TensorRTOptions(device_id=True), "device_id must be an integer >= 0"),
    (lambda: OnnxRuntimeOptions(trt_fp16="yes"), "trt_fp16 must be true or false"),
])
def test_option_values_are_checked_when_built(options, expected):
    with pytest.raises(ConfigError, match=expected):
        options()


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        OnnxRuntimeOptions("cuda")  # type: ignore[misc]


def test_a_runner_refuses_another_backends_options(tmp_path):
    runner_class = backend_for("m.onnx").runner_class()
    with pytest.raises(ConfigError, match="takes OnnxRuntimeOptions, not TensorRTOptions"):
        runner_class(tmp_path / "m.onnx", TensorRTOptions())


def test_registry_answers_choices_and_files():
    assert option_choices("provider") == ("cpu", "cuda", "tensorrt")
    assert option_choices("precision") == ("fp32", "bf16", "fp16")
    assert [p.name for p in model_files("d/model.xml")] == ["model.xml", "model.bin"]
    assert [p.name for p in model_files("d/model.onnx")] == ["model.onnx"]


def test_cli_choices_come_from_the_registry():
    result = CliRunner().invoke(cli, ["infer", "--help"])
    assert result.exit_code == 0
    for flag in ("--provider [cpu|cuda|tensorrt]", "--device-id", "--precision [fp32|bf16|fp16]", "--threads"):
        assert flag in result.output


# --- through the command line -----------------------------------------------------------------------

def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("model, flags, expected", [
    ("model.trt", ["--threads", "2"], "--threads does not apply to the tensorrt backend (it takes --device-id)"),
    ("model.xml", ["--provider", "cuda"], "--provider does not apply to the openvino backend"),
    ("model.onnx", ["--precision", "bf16"], "--precision does not apply to the onnxruntime backend"),
])
def test_infer_refuses_an_option_of_another_backend(tmp_path, model, flags, expected):
    """Today these are dropped silently (the .trt runs with its defaults, the provider is ignored)."""
    (tmp_path / model).write_bytes(b"")
    line = _one_error_line(_invoke("infer", "--engine", tmp_path / model, tmp_path, "--out", tmp_path / "out", *flags))
    assert expected in line


def test_bench_latency_refuses_bf16_on_onnxruntime(tmp_path):
    """Today `model.onnx#bf16` is reported as a BF16 row but runs FP32: it is refused with one line."""
    model = write_onnx(tmp_path / "model.onnx")
    write_sidecar(model, description())
    line = _one_error_line(_invoke("bench", "latency", "--models", f"{model}#bf16", "--sizes", "32x32",
                                   "--min-seconds", "0.01", "--out", tmp_path / "out"))
    assert "#precision does not apply to the onnxruntime backend" in line and "OpenVINO" in line
    assert not (tmp_path / "out").exists()


def test_bench_latency_refuses_an_option_no_listed_model_takes(tmp_path):
    line = _one_error_line(_invoke("bench", "latency", "--models", tmp_path / "model.trt", "--threads", "2",
                                   "--out", tmp_path / "out"))
    assert "--threads" in line and "tensorrt" in line


def test_bench_latency_applies_shared_options_where_they_apply(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("matplotlib")
    model = write_onnx(tmp_path / "model.onnx")
    write_sidecar(model, description())
    result = _invoke("bench", "latency", "--models", model, "--models", tmp_path / "missing.trt", "--threads", "1",
                     "--sizes", "32x32", "--min-seconds", "0.01", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    entries = {e["model"]: e for e in json.loads((tmp_path / "out" / "latency.json").read_text())["entries"]}
    assert entries["model.onnx"]["threads"] == 1 and entries["model.onnx"]["precision"] == "fp32"
    assert entries["missing.trt"]["status"].startswith("skipped:")
