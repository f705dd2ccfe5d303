import importlib.util
import json
import urllib.request

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli

pytestmark = pytest.mark.mmseg


def _inspect(*args) -> str:
    result = CliRunner().invoke(cli, ["inspect", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_inspect_onnx_json(exported):
    info = json.loads(_inspect(exported / "model.onnx", "--json", "--size", "192x192"))
    assert info["inputs"] == [{"name": "input", "shape": ["batch", 3, "height", "width"], "dtype": "float32"}]
    assert info["outputs"][0]["shape"] == ["batch", 3, "height", "width"]
    assert info["opset"] == {"ai.onnx": 17} and info["producer"].startswith("bcdeploy")
    assert info["operators"]["Conv"] > 10 and info["parameters"] > 100_000
    assert info["metadata"]["classes"] == ["background", "benign", "malignant"]
    assert info["flops"]["gflops"] > 0


def test_flops_scale_with_pixels(exported):
    from bcdeploy.inspect.onnx_info import inspect_onnx

    small = inspect_onnx(exported / "model.onnx", (128, 128))["flops"]["gflops"]
    large = inspect_onnx(exported / "model.onnx", (256, 256))["flops"]["gflops"]
    assert large == pytest.approx(4 * small, rel=0.02)


def test_inspect_text_and_engine_sidecar_only(exported, tmp_path):
    text = _inspect(exported / "model.onnx")
    assert "parameters" in text and "bcdeploy: classes" in text
    engine = tmp_path / "model.trt"
    engine.write_bytes(b"not really an engine")
    (tmp_path / "model.trt.bcdeploy.json").write_text((exported / "model.bcdeploy.json").read_text())
    info = json.loads(_inspect(engine, "--json"))
    assert info["metadata"]["classes"][0] == "background"
    if importlib.util.find_spec("tensorrt") is None:
        assert info["inspector"] == "TensorRT is not installed here: showing the sidecar only"
    else:  # a real TensorRT must refuse these bytes rather than describe them
        assert "cannot deserialise" in info["inspector"] and "layers" not in info


def test_netron_serves_the_model_on_loopback(exported):
    from bcdeploy.inspect.netron_server import start_netron, stop_netron

    address = start_netron(exported / "model.onnx", "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/", timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read(4096).lower()
    finally:
        stop_netron(address)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{address[0]}:{address[1]}/", timeout=2)
