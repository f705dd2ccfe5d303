import json
from dataclasses import replace

import numpy as np
import pytest

from bcdeploy.errors import ParityError
from bcdeploy.export.parity import FP32_TOLERANCES, compare, require_parity
from bcdeploy.fileio import sha256_file
from tests.conftest import REFERENCE_CONFIG


def _export(*args):
    """`bcdeploy export ...` in-process (click's runner): same command, no 4 s torch import per call."""
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    return CliRunner().invoke(cli, ["export", *map(str, args)])

SIZES = [((640, 640), 1), ((512, 768), 1), ((1024, 832), 1), ((640, 640), 2), ((512, 768), 2), ((1024, 832), 2)]


def _torch_reference(ckpt, argmax=False):
    import torch

    from bcdeploy.export.graph import prepare_for_export
    from bcdeploy.train.model import build_segmentor, find_config

    module = prepare_for_export(build_segmentor(find_config(ckpt), ckpt), argmax)

    def run(batch):
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()
    return run


@pytest.mark.mmseg
def test_sidecar_and_embedded_metadata(exported, trained):
    import onnx

    sidecar = json.loads((exported / "model.bcdeploy.json").read_text())
    assert sidecar["format"] == "bcdeploy-model"
    assert sidecar["classes"] == ["background", "benign", "malignant"]
    assert sidecar["mean"] == [123.675, 116.28, 103.53] and sidecar["channel_order"] == "RGB"
    assert sidecar["input_size"] == [192, 192] and sidecar["size_divisor"] == 16
    assert sidecar["output_kind"] == "logits" and sidecar["input_name"] == "input" and sidecar["output_name"] == "output"
    assert sidecar["export"]["opset"] == 17 and "dynamo=False" in sidecar["export"]["exporter"]
    assert {"torch", "mmsegmentation", "onnx"} <= set(sidecar["versions"])
    assert sidecar["source"]["checkpoint_sha256"] == sha256_file(trained)
    profile = sidecar["dynamic_profile"]  # derived from the model's 192x192: min <= opt <= max
    assert profile["opt"] == [1, 3, 192, 192]
    assert all(lo <= o <= hi for lo, o, hi in zip(profile["min"], profile["opt"], profile["max"]))
    assert sidecar["export"]["parity"]["passed"]
    model = onnx.load(str(exported / "model.onnx"))
    embedded = {p.key: p.value for p in model.metadata_props}
    assert json.loads(embedded["bcdeploy"]) == sidecar
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


@pytest.mark.mmseg
@pytest.mark.slow
def test_onnx_matches_pytorch_at_every_size_and_batch(exported, trained):
    from bcdeploy.export.parity import parity_batches
    from bcdeploy.runtime.model.backends.onnxruntime import OnnxRuntimeRunner
    from bcdeploy.runtime.model.sidecar import load_meta

    meta = load_meta(exported / "model.onnx")
    batches = parity_batches(meta, SIZES)
    with OnnxRuntimeRunner(exported / "model.onnx") as runner:
        report = compare(_torch_reference(trained), runner.infer, batches, "logits", FP32_TOLERANCES)
    assert report.passed, report.table()
    assert [r.batch for r in report.rows] == [1, 1, 1, 2, 2, 2]
    assert all(r.agreement >= 0.999 for r in report.rows)


@pytest.mark.mmseg
def test_fp16_onnx_parity_on_cpu(exported, trained):
    import onnx

    sidecar = json.loads((exported / "model.fp16.bcdeploy.json").read_text())
    assert sidecar["precision"] == "fp16"
    parity = sidecar["export"]["parity"]
    assert parity["passed"] and parity["min_agreement"] >= 0.99 and parity["min_dice"] >= 0.98
    model = onnx.load(str(exported / "model.fp16.onnx"))
    half = sum(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert half > 10, "weights should be FP16"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # FP32 I/O
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    resize_inputs = [n for n in model.graph.node if n.op_type == "Resize"]
    assert all("fp16" not in n.output[0] for n in resize_inputs)


@pytest.mark.mmseg
@pytest.mark.slow
def test_argmax_and_simplified_export(trained, tmp_path):
    result = _export("--ckpt", trained, "--out", tmp_path, "--argmax", "--simplify")
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "model.bcdeploy.json").read_text())
    assert sidecar["output_kind"] == "argmax" and sidecar["output_dtype"] == "uint8" and sidecar["export"]["simplified"]
    import onnxruntime as ort

    out = ort.InferenceSession(str(tmp_path / "model.onnx")).run(None, {"input": np.zeros((2, 3, 512, 768), np.float32)})[0]
    assert out.dtype == np.uint8 and out.shape == (2, 1, 512, 768)


@pytest.mark.mmseg
@pytest.mark.slow
def test_reference_model_exports_dynamic(tmp_path):
    """The full UNet-S5-D16 + ASPP (random init): the size-freezing Upsample trap is what this guards."""
    import torch

    from bcdeploy.train.model import build_segmentor

    model = build_segmentor(REFERENCE_CONFIG, None)
    assert sum(p.numel() for p in model.parameters()) > 25e6
    model.cfg.dump(str(tmp_path / REFERENCE_CONFIG.name))  # as MMEngine's Runner dumps it into the work dir
    ckpt = tmp_path / "iter_0.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, ckpt)
    result = _export("--ckpt", ckpt, "--out", tmp_path / "out")
    assert result.exit_code == 0 and "FAIL" not in result.output, result.output
    sidecar = json.loads((tmp_path / "out" / "model.bcdeploy.json").read_text())
    assert sidecar["input_size"] == [640, 640]
    assert {tuple(c["size"]) for c in sidecar["export"]["parity"]["cases"]} == {(640, 640), (512, 768), (1024, 832)}


def test_parity_failure_raises_one_error_with_the_table():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((1, 3, 32, 48)).astype(np.float32) for _ in range(2)]
    reference = lambda b: np.concatenate([b[:, :1], -b[:, :1]], axis=1)  # noqa: E731
    drifting = lambda b: reference(b) + np.float32(0.5) * (b[:, :1] > 1.5)  # noqa: E731
    report = compare(reference, drifting, batches, "logits", FP32_TOLERANCES)
    assert not report.passed
    with pytest.raises(ParityError) as err:
        require_parity(report)
    message = str(err.value)
    assert message.count("FAIL") == 2 and "32x48" in message and "outside atol" in message
    assert compare(reference, reference, batches, "logits", FP32_TOLERANCES).passed


@pytest.mark.mmseg
def test_int8_onnx_is_quantized_and_parity_checked(exported):
    """The shared export ran --int8 with the gate lifted to 0 (the CI model's margins are thin): check
    what it measured and that the CLI's gate reached the INT8 comparison. The gate itself is tested on
    arrays in test_parity_gates.py, without exporting again."""
    import onnx

    sidecar = json.loads((exported / "model.int8.bcdeploy.json").read_text())
    parity = sidecar["export"]["parity"]
    assert sidecar["precision"] == "int8" and parity["checked"] and parity["passed"] and parity["min_agreement"] >= 0.9
    assert parity["tolerances"]["min_agreement"] == 0 and parity["candidate"] == "onnxruntime int8"
    recipe = sidecar["export"]["quantization"]
    fp32_nodes = recipe.pop("fp32_nodes")
    assert recipe == {"format": "QDQ", "symmetric": False, "weights": "int8 per-channel",
                      "activations": "uint8 with zero point", "bias": "int32", "calibration_images": 16}
    graph = onnx.load(str(exported / "model.int8.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # the classifier stays FP32: its weights are a float initializer; every other convolution reads
    # dequantised INT8 weights
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert len(fp32_nodes) == 1 and fp32_nodes[0].endswith("conv_seg/Conv") and set(fp32_nodes) <= set(convs)
    for name, conv in convs.items():
        assert (conv.input[1] not in dequantized) == (name in fp32_nodes), name
    assert (exported / "model.int8.onnx").stat().st_size < 0.5 * (exported / "model.onnx").stat().st_size


@pytest.mark.mmseg
def test_int8_openvino_ir_is_converted_from_the_int8_onnx_and_parity_checked(exported, export_run):
    """The shared export ran --int8 --openvino: model.int8.xml/.bin beside model.int8.onnx, still INT8 inside
    (FakeQuantize), checked against PyTorch by the runtime's OpenVINO runner on the INT8 gate, recipe recorded."""
    ov = pytest.importorskip("openvino")
    from bcdeploy.runtime.model.backends.registry import backend_for

    xml = exported / "model.int8.xml"
    assert xml.is_file() and (exported / "model.int8.bin").is_file() and backend_for(xml).name == "openvino"
    sidecar = json.loads((exported / "model.int8.xml.bcdeploy.json").read_text())
    onnx_sidecar = json.loads((exported / "model.int8.bcdeploy.json").read_text())
    parity = sidecar["export"]["parity"]
    assert sidecar["precision"] == "int8" and parity["checked"] and parity["passed"]
    assert parity["candidate"] == "openvino int8" and parity["tolerances"] == onnx_sidecar["export"]["parity"]["tolerances"]
    assert sidecar["export"]["quantization"] == onnx_sidecar["export"]["quantization"]
    assert sidecar["export"]["source"] == "model.int8.onnx" and sidecar["source"] == onnx_sidecar["source"]
    ops = {op.get_type_name() for op in ov.Core().read_model(str(xml)).get_ops()}
    assert "FakeQuantize" in ops, sorted(ops)
    assert any(line.split()[:3] == ["openvino_int8", "int8", "ok"] for line in export_run.stdout.splitlines())


@pytest.mark.mmseg
@pytest.mark.slow
def test_int8_for_tensorrt_is_symmetric_and_still_runs_on_cpu(exported, tmp_path):
    """What `export --engine --precision int8` builds from: every Q/DQ zero point 0 and int8, biases FP32
    (TensorRT refuses anything else), parity as good as the CPU recipe's on the same gate."""
    import onnx
    from onnx import numpy_helper

    from bcdeploy.export.int8 import quantize_int8
    from bcdeploy.export.parity import INT8_TOLERANCES, parity_batches
    from bcdeploy.runtime.model.backends.onnxruntime import OnnxRuntimeRunner
    from bcdeploy.runtime.model.sidecar import load_meta

    meta = load_meta(exported / "model.onnx")
    calibration = parity_batches(meta, [(tuple(meta.input_size), 4)] * 2, seed=1)
    path = quantize_int8(exported / "model.onnx", tmp_path / "model.int8.onnx", calibration, symmetric=True)
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    zero_points = [inits[n.input[2]] for n in qdq if len(n.input) > 2]
    assert len(qdq) > 20 and len(zero_points) == len(qdq)
    assert {z.dtype for z in zero_points} == {np.dtype(np.int8)} and all((z == 0).all() for z in zero_points)
    with OnnxRuntimeRunner(exported / "model.onnx") as fp32, OnnxRuntimeRunner(path) as int8:
        report = compare(fp32.infer, int8.infer, parity_batches(meta, [((192, 192), 1), ((256, 320), 2)]), "logits",
                         replace(INT8_TOLERANCES, max_dice_drop=1.0))
    assert report.passed, report.table()


def test_parity_tolerates_rare_fp32_reordering_noise_but_not_a_large_or_common_error():
    """A handful of logits just past atol (kernel summation order) pass; one far past it, or many, do not."""
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((1, 3, 1000, 1000)).astype(np.float32)
    reference = lambda b: np.concatenate([b[:, :1], -b[:, :1]], axis=1)  # noqa: E731

    def off_by(error: float, count: int):
        def run(b):
            out = reference(b).copy()
            out[0, 0].reshape(-1)[:count] += np.float32(error)
            return out
        return run

    rare = off_by(3e-3, 20)  # 20 of 2 M logits, 0.001 %
    assert compare(reference, rare, [batch], "logits", FP32_TOLERANCES).passed
    strict = replace(FP32_TOLERANCES, max_outlier_fraction=0.0)
    assert not compare(reference, rare, [batch], "logits", strict).passed  # they really are outside atol
    too_large = compare(reference, off_by(1e-2, 1), [batch], "logits", FP32_TOLERANCES)
    assert not too_large.passed and "x atol" in too_large.rows[0].failures[0]
    too_many = compare(reference, off_by(3e-3, 20_000), [batch], "logits", FP32_TOLERANCES)
    assert not too_many.passed and "outside atol" in too_many.rows[0].failures[0]


@pytest.mark.mmseg
@pytest.mark.slow
def test_keep_ratio_and_align_corners_models_give_mmseg_masks(trained, prepared, tmp_path):
    """A config whose test Resize keeps the aspect ratio and whose heads align corners: the exported
    model, run by the runtime, gives the masks `mmseg.apis.inference_model` gives for that config."""
    from mmengine.config import Config

    from bcdeploy.runtime.images.imageio import read_image
    from bcdeploy.runtime.model.segmenter import Segmenter
    from bcdeploy.train.model import find_config

    cfg = Config.fromfile(find_config(trained, None))
    for pipeline in (cfg.test_pipeline, cfg.test_dataloader.dataset.pipeline):
        for step in pipeline:
            if step["type"] == "Resize":
                step.update(scale=(224, 160), keep_ratio=True)
    cfg.model.decode_head.align_corners = cfg.model.auxiliary_head.align_corners = True
    cfg.model.data_preprocessor.test_cfg = dict(size_divisor=32)  # MMSeg pads free-size inputs only if told
    config = tmp_path / "keep_ratio.py"
    cfg.dump(str(config))
    result = _export("--ckpt", trained, "--config", config, "--out", tmp_path / "export")
    assert result.exit_code == 0, result.output
    model = tmp_path / "export" / "model.onnx"
    sidecar = json.loads((tmp_path / "export" / "model.bcdeploy.json").read_text())
    assert sidecar["keep_ratio"] is True and sidecar["align_corners"] is True and sidecar["input_size"] == [160, 224]
    assert sidecar["size_divisor"] == 32

    val = sorted((prepared / "images" / "val").iterdir())
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    proc = CliRunner().invoke(cli, ["bench", "parity", "--ckpt", str(trained), "--config", str(config), "--models",
                                    str(model), *map(str, val), "--out", str(tmp_path / "parity")])
    row = json.loads((tmp_path / "parity" / "parity.json").read_text())["backends"][0]
    assert row["status"] == "ok" and row["agreement"] >= 0.999 and row["logits"]["max_abs"] < 1e-3, proc.output

    # Mixed aspect ratios in one call: each size goes through the backend on its own, as MMSeg would.
    image = read_image(val[0]).bgr
    pictures = [image, np.ascontiguousarray(image[:, : image.shape[1] // 2]), image[: image.shape[0] // 2].copy()]
    with Segmenter(model) as segmenter:
        together = segmenter.predict(pictures)
        alone = [segmenter.predict([p])[0] for p in pictures]
    assert len({p.probs.shape for p in together}) == 3
    for a, b, picture in zip(together, alone, pictures):
        assert a.mask.shape == picture.shape[:2] and np.array_equal(a.mask, b.mask)
