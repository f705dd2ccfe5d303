"""CPU flags, the measured FP32 matmul peak, and GFLOP/s per latency row."""

import numpy as np
import pytest

from bcdeploy.bench.latency import achieved, model_gflop
from bcdeploy.bench.report import latency_markdown, machine_line
from bcdeploy.bench.sysinfo import CPU_FLAGS, cpu_flags, describe, matmul_peak

EPYC = """processor\t: 0
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 sha_ni
processor\t: 1
"""


def test_cpu_flags_from_cpuinfo():
    flags = cpu_flags(EPYC)
    assert set(flags) == set(CPU_FLAGS)
    assert {f for f, on in flags.items() if on} == {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert cpu_flags("processor\t: 0\n") is None  # unknown is not 'absent'


def test_machine_description_has_flags_and_optional_peak():
    machine = describe()
    assert "cpu_flags" in machine and "fp32_matmul" not in machine
    line = machine_line({**machine, "cpu_flags": cpu_flags(EPYC), "fp32_matmul": {"peak_gflops": 456.2, "n": 1024}})
    assert "avx512_vnni avx512_bf16" in line and "amx" not in line and "456 GFLOP/s" in line


def test_matmul_peak_is_measured_here():
    peak = matmul_peak(n=256, seconds=0.05)
    assert peak["numpy_gflops"] > 0 and peak["peak_gflops"] == max(v for k, v in peak.items() if k.endswith("_gflops"))


def test_achieved_rate_and_share():
    row = achieved(635.0, 2, 2000.0, 450.0)
    assert row == {"gflop": 635.0, "gflops_per_s": 635.0, "of_fp32_peak": pytest.approx(635 / 450, abs=1e-3)}
    assert achieved(None, 1, 10.0, 450.0)["gflops_per_s"] is None


def _conv_model(path, weights_as_initializer=True):
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    nodes = [h.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    inits = [w]
    if not weights_as_initializer:  # as in an INT8 QDQ graph: weights come out of another node
        inits = [onnx.numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w0")]
        nodes.insert(0, h.make_node("Identity", ["w0"], ["w"]))
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, "h", "w"])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_model_flops_come_from_the_fp32_graph_beside_an_int8_one(tmp_path):
    pytest.importorskip("onnxruntime")
    _conv_model(tmp_path / "model.onnx")
    _conv_model(tmp_path / "model.int8.onnx", weights_as_initializer=False)
    expected = 2 * 8 * 32 * 48 * 27 / 1e9
    assert model_gflop(tmp_path / "model.int8.onnx", (32, 48)) == pytest.approx(expected, abs=1e-3)
    assert model_gflop(tmp_path / "model.onnx", (32, 48)) == pytest.approx(expected, abs=1e-3)
    assert model_gflop(tmp_path / "model.engine", (32, 48)) == pytest.approx(expected, abs=1e-3)
    alone = tmp_path / "alone"
    alone.mkdir()
    _conv_model(alone / "net.int8.onnx", weights_as_initializer=False)
    assert model_gflop(alone / "net.int8.onnx", (32, 48)) is None  # nothing countable: no made-up figure


def test_latency_table_shows_rate_and_share():
    entry = {"model": "model.onnx", "backend": "onnxruntime", "precision": "fp32", "status": "ok", "batch": 1,
             "size": [640, 640], "mean_ms": 1400.0, "p50_ms": 1390.0, "p90_ms": 1410.0, "p99_ms": 1420.0,
             "throughput_ips": 0.71, **achieved(635.0, 1, 1390.0, 456.0)}
    report = {"machine": {"cpu": "x", "cores": 2, "python": "3.11", "cpu_flags": cpu_flags(EPYC),
                          "fp32_matmul": {"peak_gflops": 456.0, "n": 1024}}, "entries": [entry], "end_to_end": []}
    table = latency_markdown(report)
    assert "| 457 | 100 % |" in table and "GFLOP/s" in table and "avx512_vnni" in table
    assert "CPU advice: INT8 dot-product instructions (VNNI), BF16 instructions (AVX-512 BF16)" in table
    assert "speeds are measured" in table and "pays" not in table
