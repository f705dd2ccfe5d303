"""FP16 conversion on hand-built graphs with the traps real exports contain."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bcdeploy.export.fp16 import convert_to_fp16  # noqa: E402


def _graph(tmp_path):
    """input -> Conv(w) -> Relu -> Conv(Identity(w)) -> Resize x2 (scales from the graph) -> output.

    torch.onnx deduplicates equal initializers through Identity nodes (22 of them in the reference
    model); their outputs are weights that no activation flows through, yet FP16 convs read them.
    """
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.2, "w")
    w_in = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2, "w_in")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["input", "w_in"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Identity", ["w"], ["w_shared"]),
        helper.make_node("Conv", ["c1", "w_shared"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["c2", "", "scales"], ["output"], mode="linear"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, "h2", "w2"])], [w, w_in, scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_fp16_graph_loads_runs_and_keeps_fp32_where_needed(tmp_path):
    src = _graph(tmp_path)
    dst = convert_to_fp16(src, tmp_path / "model.fp16.onnx")
    x = np.random.default_rng(1).standard_normal((1, 3, 20, 28)).astype(np.float32)
    ref = ort.InferenceSession(str(src)).run(None, {"input": x})[0]
    out = ort.InferenceSession(str(dst)).run(None, {"input": x})[0]  # loads: every Conv sees one type
    model = onnx.load(str(dst))
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert types["w_in"] == TensorProto.FLOAT16
    assert types["scales"] == TensorProto.FLOAT  # Resize's scales must stay float32
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(n.input[1] in ("w_in", "w", "w_shared__to_fp16") or n.input[1].endswith("__to_fp16") for n in convs)
    assert out.dtype == np.float32 and out.shape == ref.shape == (1, 4, 40, 56)
    np.testing.assert_allclose(out, ref, atol=2e-2, rtol=2e-2)
