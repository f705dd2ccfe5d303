"""What the CPU runs fast (runtime/cpu.py) and which variant of an export `infer` names (runtime/variants.py):
pure functions on synthetic /proc/cpuinfo texts and sidecars written here (no model is run)."""

import json

import pytest

from bcdeploy.runtime.backends.options import OnnxRuntimeOptions, OpenVINOOptions
from bcdeploy.runtime.cpu import advise, cpu_flags, cpu_line
from bcdeploy.runtime.metadata import ModelMeta, sidecar_path_for
from bcdeploy.runtime.variants import faster_variant, start_line
from tests.tiny_models import SHA_A, SHA_B, description


def _cpuinfo(model: str, flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: fpu sse2 {flags}\nprocessor\t: 1\n"


VNNI = _cpuinfo("AMD EPYC 9R14", "avx avx2 fma avx512f avx512_vnni")
BF16 = _cpuinfo("Intel Xeon Platinum 8480+", "avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8")
AVX2 = _cpuinfo("Intel Xeon E5-2686 v4", "avx avx2 fma")
NO_FLAGS = "processor\t: 0\nmodel name\t: Apple M2\n"


def test_advice_from_cpu_flags():
    vnni, amx, avx2, unknown = (advise(cpu_flags(text)) for text in (VNNI, BF16, AVX2, NO_FLAGS))
    assert (vnni.int8, vnni.bf16) == ("VNNI", None)
    assert "INT8 pays (VNNI): model.int8.xml with OpenVINO" in vnni.text()
    assert (amx.int8, amx.bf16) == ("AMX-INT8", "AMX-BF16") and "model.xml --precision bf16" in amx.text()
    assert (avx2.int8, avx2.bf16) == ("AVX2", None) and "~1.9x" in avx2.text() and "sgemm peak" in avx2.text()
    assert not unknown.known and unknown.int8 is None and "unknown" in unknown.text()
    assert advise(cpu_flags(_cpuinfo("old", "sse4_2"))).int8 is None  # no AVX2: no claim that INT8 pays


def test_cpu_line_names_model_cores_flags_and_advice():
    line = cpu_line(VNNI)
    assert line.startswith("cpu: AMD EPYC 9R14, ") and " cores, flags avx2 fma avx512f avx512_vnni; INT8 pays" in line
    assert "flags unknown; no advice" in cpu_line(NO_FLAGS)


def test_bench_sysinfo_reads_flags_through_the_runtime():
    """One place knows the flags: bench.sysinfo uses runtime.cpu's functions, not a copy."""
    from bcdeploy.bench import sysinfo
    from bcdeploy.runtime import cpu

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
    from bcdeploy.runtime.metadata import find_sidecar, read_sidecar

    return read_sidecar(find_sidecar(path))


@pytest.fixture
def needs_openvino():
    pytest.importorskip("openvino")


def test_fastest_variant_of_the_same_export(tmp_path, needs_openvino):
    folder = _export(tmp_path, "model.onnx", "model.int8.onnx", "model.xml", "model.int8.xml")
    vnni, amx = advise(cpu_flags(VNNI)), advise(cpu_flags(BF16))
    ort, ov = OnnxRuntimeOptions(), OpenVINOOptions()
    for model in ("model.onnx", "model.xml", "model.int8.onnx"):
        found = faster_variant(folder / model, _meta(folder / model), ov if model.endswith(".xml") else ort, vnni)
        assert found.path == folder / "model.int8.xml" and found.precision is None and found.reason == "VNNI", model
    assert faster_variant(folder / "model.int8.xml", _meta(folder / "model.int8.xml"), ov, amx) is None  # fastest
    bf16 = OpenVINOOptions(precision="bf16")
    assert faster_variant(folder / "model.xml", _meta(folder / "model.xml"), bf16, amx).path.name == "model.int8.xml"
    cuda = OnnxRuntimeOptions(provider="cuda")
    assert faster_variant(folder / "model.onnx", _meta(folder / "model.onnx"), cuda, vnni) is None  # not on the CPU
    assert faster_variant(folder / "model.onnx", _meta(folder / "model.onnx"), ort, advise(None)) is None


def test_only_variants_of_the_same_checkpoint_are_named(tmp_path, needs_openvino):
    """A model of another checkpoint beside this one is not this model, faster: never named."""
    _export(tmp_path, "model.onnx", "model.xml")
    _export(tmp_path, "model.int8.onnx", "model.int8.xml", sha=SHA_B)
    amx = advise(cpu_flags(BF16))
    found = faster_variant(tmp_path / "model.onnx", _meta(tmp_path / "model.onnx"), OnnxRuntimeOptions(), amx)
    assert found.label() == "model.xml --precision bf16" and found.reason == "AMX-BF16"
    assert faster_variant(tmp_path / "model.onnx", _meta(tmp_path / "model.onnx"), OnnxRuntimeOptions(),
                          advise(cpu_flags(VNNI))) is None  # VNNI without BF16: FP32 IR is no faster
    (tmp_path / "model.bin").unlink()  # an IR without its weights cannot run
    assert faster_variant(tmp_path / "model.onnx", _meta(tmp_path / "model.onnx"), OnnxRuntimeOptions(), amx) is None


def test_start_line_hint(tmp_path, needs_openvino):
    folder = _export(tmp_path, "model.onnx", "model.int8.onnx", "model.int8.xml")
    meta = _meta(folder / "model.onnx")
    line = start_line(folder / "model.onnx", meta, OnnxRuntimeOptions(), cpuinfo=VNNI)
    assert "\n" not in line and line.startswith("cpu: AMD EPYC 9R14")
    assert line.endswith("; hint: model.int8.xml beside this model is the fastest variant on this CPU (VNNI)")
    assert "hint" not in start_line(folder / "model.onnx", meta, OnnxRuntimeOptions(), cpuinfo=NO_FLAGS)
    _export(folder, "model.xml")
    own = start_line(folder / "model.xml", _meta(folder / "model.xml"), OpenVINOOptions(), cpuinfo=BF16)
    assert own.endswith("; hint: model.int8.xml beside this model is the fastest variant on this CPU (AMX-INT8)")
    for name in ("model.int8.onnx", "model.int8.xml", "model.int8.bin"):
        (folder / name).unlink()
    own = start_line(folder / "model.xml", _meta(folder / "model.xml"), OpenVINOOptions(), cpuinfo=BF16)
    assert own.endswith("; hint: --precision bf16 runs this model faster on this CPU (AMX-BF16)")
    unhashed = ModelMeta.from_dict({**description(), "source": {}})
    assert "hint" not in start_line(folder / "model.onnx", unhashed, OnnxRuntimeOptions(), cpuinfo=VNNI)
