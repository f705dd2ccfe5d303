"""What the CPU has (runtime/model/cpu.py: facts, no speed claims) and what `infer`'s cpu: line says of an export's
variants (runtime/model/variants.py): only what was measured on this machine (runtime/model/speed_record.py), else how
to measure it. Pure functions on synthetic /proc/cpuinfo texts, sidecars and speed records written here."""

import json

import pytest

from bcdeploy.runtime.model.backends.options import OnnxRuntimeOptions
from bcdeploy.runtime.model.cpu import advise, cpu_flags, cpu_line
from bcdeploy.runtime.model.sidecar import ModelMeta, sidecar_path_for
from bcdeploy.runtime.model.speed_record import RECORD_NAME, save_measurement
from bcdeploy.runtime.model.variants import start_line
from tests.tiny_models import SHA_A, SHA_B, description


def _cpuinfo(model: str, flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: fpu sse2 {flags}\nprocessor\t: 1\n"


VNNI = _cpuinfo("AMD EPYC 9R14", "avx avx2 fma avx512f avx512_vnni")
BF16 = _cpuinfo("Intel Xeon Platinum 8480+", "avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8")
AVX2 = _cpuinfo("Intel Xeon E5-2686 v4", "avx avx2 fma")
NO_FLAGS = "processor\t: 0\nmodel name\t: Apple M2\n"


def test_advice_from_cpu_flags_states_facts_not_speeds():
    vnni, amx, avx2, unknown = (advise(cpu_flags(text)) for text in (VNNI, BF16, AVX2, NO_FLAGS))
    assert (vnni.int8, vnni.bf16) == ("VNNI", None) and "INT8 dot-product instructions (VNNI)" in vnni.text()
    assert (amx.int8, amx.bf16) == ("AMX-INT8", "AMX-BF16") and "BF16 instructions (AMX-BF16)" in amx.text()
    assert (avx2.int8, avx2.bf16) == ("AVX2", None) and "no INT8 dot-product instructions" in avx2.text()
    for advice in (vnni, amx, avx2):  # a flag table once said "INT8 ~1.9x" where 1.1x was measured
        assert "pays" not in advice.text() and "~" not in advice.text() and "faster" not in advice.text()
    assert not unknown.known and unknown.int8 is None and "unknown" in unknown.text()
    assert advise(cpu_flags(_cpuinfo("old", "sse4_2"))).int8 is None


def test_cpu_line_names_model_cores_flags_and_facts():
    line = cpu_line(VNNI)
    assert line.startswith("cpu: AMD EPYC 9R14, ") and " cores, flags avx2 fma avx512f avx512_vnni; INT8 dot-product" in line
    assert "flags unknown; no advice" in cpu_line(NO_FLAGS)


def test_bench_sysinfo_reads_flags_through_the_runtime():
    """One place knows the flags: bench.sysinfo uses runtime.cpu's functions, not a copy."""
    from bcdeploy.bench import sysinfo
    from bcdeploy.runtime.model import cpu

    assert sysinfo.cpu_flags is cpu.cpu_flags and sysinfo.CPU_FLAGS is cpu.CPU_FLAGS


def _export(folder, *names, sha=SHA_A):
    """Sidecars as export writes them (the model files' bytes are never read: nothing runs here)."""
    precisions = {"model.onnx": "fp32", "model.xml": "fp32", "model.int8.onnx": "int8", "model.int8.xml": "int8",
                  "model.fp16.onnx": "fp16"}
    for name in names:
        path = folder / name
        path.write_bytes(b"model")
        if name.endswith(".xml"):
            path.with_suffix(".bin").write_bytes(b"weights")
        data = description(precision=precisions[name], source={"checkpoint": "c.pth", "checkpoint_sha256": sha})
        sidecar_path_for(path).write_text(json.dumps(data))
    return folder


def _meta(path):
    from bcdeploy.runtime.model.sidecar import find_sidecar, read_sidecar

    return read_sidecar(find_sidecar(path))


@pytest.fixture
def needs_openvino():
    pytest.importorskip("openvino")


def test_without_a_measurement_here_the_line_says_how_to_measure(tmp_path):
    folder = _export(tmp_path, "model.onnx", "model.int8.onnx")
    line = start_line(folder / "model.onnx", _meta(folder / "model.onnx"), OnnxRuntimeOptions(), cpuinfo=VNNI)
    assert "\n" not in line and line.startswith("cpu: AMD EPYC 9R14")
    assert line.endswith(f"; its variants are not measured on this CPU: bcdeploy bench cpu {folder}")
    assert "faster" not in line


def test_a_measurement_made_here_is_quoted_and_one_from_elsewhere_is_not(tmp_path):
    folder = _export(tmp_path, "model.onnx", "model.int8.onnx", "model.fp16.onnx")
    save_measurement(folder, {"model.onnx": 100.0, "model.int8.onnx": 91.0, "model.fp16.onnx": 99.0}, runs=5, cpuinfo=AVX2)
    onnx_meta = _meta(folder / "model.onnx")
    here = start_line(folder / "model.onnx", onnx_meta, OnnxRuntimeOptions(), cpuinfo=AVX2)
    assert here.endswith("; measured here: model.int8.onnx computes 1.10x faster than model.onnx (91 vs 100 ms, "
                         "bench cpu; its masks differ slightly: check with bench parity)")
    fastest = start_line(folder / "model.int8.onnx", _meta(folder / "model.int8.onnx"), OnnxRuntimeOptions(), cpuinfo=AVX2)
    assert fastest.endswith("; measured here: model.int8.onnx is the fastest of its export (91 ms compute)")
    elsewhere = start_line(folder / "model.onnx", onnx_meta, OnnxRuntimeOptions(), cpuinfo=VNNI)  # another CPU
    assert "not measured on this CPU" in elsewhere and "faster" not in elsewhere


@pytest.mark.parametrize("record", ["not json", json.dumps({"format": "bcdeploy-speed", "entries": "x"}),
                                    "NAN", None])
def test_an_edited_or_broken_record_is_not_trusted(tmp_path, record):
    folder = _export(tmp_path, "model.onnx", "model.int8.onnx")
    save_measurement(folder, {"model.onnx": 100.0, "model.int8.onnx": 50.0}, runs=5, cpuinfo=AVX2)
    path = folder / RECORD_NAME
    if record == "NAN":
        path.write_text(path.read_text().replace("50.0", "NaN"))
    elif record is not None:
        path.write_text(record)
    else:
        path.write_text(path.read_text().replace("50.0", "-5.0"))
    line = start_line(folder / "model.onnx", _meta(folder / "model.onnx"), OnnxRuntimeOptions(), cpuinfo=AVX2)
    assert "not measured on this CPU" in line


def test_no_variant_beside_or_another_checkpoint_beside_says_nothing_of_speed(tmp_path):
    folder = _export(tmp_path, "model.onnx")
    _export(folder, "model.int8.onnx", sha=SHA_B)  # another checkpoint's model is no variant of this one
    line = start_line(folder / "model.onnx", _meta(folder / "model.onnx"), OnnxRuntimeOptions(), cpuinfo=VNNI)
    assert "measured here" not in line and "not measured" not in line
    unhashed = ModelMeta.from_dict({**description(), "source": {}})
    assert "bench cpu " not in start_line(folder / "model.onnx", unhashed, OnnxRuntimeOptions(), cpuinfo=VNNI)


def test_bf16_on_openvino_is_a_variant_of_its_own(tmp_path):
    """OpenVINO emulates BF16 where the CPU has no BF16 instructions: 9x slower than FP32 on an AVX-512 VNNI
    Xeon (benchmarks/results/cpu-avx512-vnni/compute.md), and the line said nothing of it. `bench cpu` times
    an FP32 IR at BF16 as `model.xml#bf16`; a run at BF16 is compared under that name, a run at FP32 under
    the file's."""
    from bcdeploy.runtime.model.backends.options import OpenVINOOptions

    folder = _export(tmp_path, "model.onnx", "model.xml", "model.int8.xml")
    save_measurement(folder, {"model.onnx": 2100.0, "model.xml": 2110.0, "model.xml#bf16": 19135.0,
                              "model.int8.xml": 537.0}, runs=5, cpuinfo=VNNI)
    xml_meta = _meta(folder / "model.xml")
    bf16 = start_line(folder / "model.xml", xml_meta, OpenVINOOptions(precision="bf16"), cpuinfo=VNNI)
    assert "no BF16 instructions" in bf16
    assert bf16.endswith("; measured here: model.int8.xml computes 35.63x faster than model.xml#bf16 "
                         "(537 vs 19135 ms, bench cpu; its masks differ slightly: check with bench parity)")
    fp32 = start_line(folder / "model.xml", xml_meta, OpenVINOOptions(), cpuinfo=VNNI)
    assert "faster than model.xml (537 vs 2110 ms" in fp32 and "#bf16" not in fp32
    # where BF16 is the fastest (AMX), an FP32 run is told so; an INT8 IR at BF16 is no variant bench cpu times
    save_measurement(folder, {"model.onnx": 2034.0, "model.xml": 2010.0, "model.xml#bf16": 395.0,
                              "model.int8.xml": 420.0}, runs=5, cpuinfo=BF16)
    amx = start_line(folder / "model.onnx", _meta(folder / "model.onnx"), OnnxRuntimeOptions(), cpuinfo=BF16)
    assert "model.xml#bf16 computes 5.15x faster than model.onnx" in amx
    int8_bf16 = start_line(folder / "model.int8.xml", _meta(folder / "model.int8.xml"),
                           OpenVINOOptions(precision="bf16"), cpuinfo=BF16)
    assert "measured here" not in int8_bf16 and "not measured" not in int8_bf16
