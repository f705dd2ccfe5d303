import pytest

from bcdeploy.errors import InputError
from bcdeploy.runtime.model.backends import registry
from bcdeploy.runtime.model.backends.options import OnnxRuntimeOptions


def test_suffix_selects_runner():
    assert registry.runner_class_for("m.onnx").__name__ == "OnnxRuntimeRunner"
    assert registry.runner_class_for("m.XML").__name__ == "OpenVINORunner"
    for suffix in (".trt", ".engine", ".plan"):
        assert registry.backend_for(f"model{suffix}").name == "tensorrt"
        assert registry.runner_class_for(f"model{suffix}").name == "tensorrt"


def test_each_runner_declares_the_options_it_is_registered_with():
    for backend in registry.backends():
        assert backend.runner_class().options_type is backend.options


def test_unknown_suffix_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        registry.backend_for("model.pt")
    for suffix in (".onnx", ".trt", ".engine", ".plan", ".xml"):
        assert suffix in str(err.value)
    assert set(registry.SUFFIXES) == {".onnx", ".trt", ".engine", ".plan", ".xml"}


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="backend onnxruntime is already registered"):
        registry.register(registry.Backend("onnxruntime", (".onnx2",), "x:Y", OnnxRuntimeOptions))
    with pytest.raises(ValueError, match=r"suffix \.onnx is already registered to onnxruntime"):
        registry.register(registry.Backend("other", (".ONNX",), "x:Y", OnnxRuntimeOptions))
    assert registry.backend_for("m.onnx").runner.endswith("OnnxRuntimeRunner")
