import pytest

from bcdeploy.errors import InputError
from bcdeploy.runtime.backends import registry


def test_suffix_selects_runner():
    assert registry.runner_class_for("m.onnx").__name__ == "OnnxRuntimeRunner"
    assert registry.runner_class_for("m.xml").__name__ == "OpenVINORunner"
    for suffix in (".trt", ".engine", ".plan"):
        assert registry.runner_class_for(f"model{suffix}").name == "tensorrt"


def test_unknown_suffix_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        registry.runner_class_for("model.pt")
    for suffix in (".onnx", ".trt", ".engine", ".plan", ".xml"):
        assert suffix in str(err.value)


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(".onnx", "x:Y")
