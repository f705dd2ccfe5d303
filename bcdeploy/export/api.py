"""`bcdeploy export`: checkpoint -> dynamic ONNX (+ FP16 ONNX, TensorRT engine, OpenVINO IR), each
checked against PyTorch before it is called good, each with its sidecar."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bcdeploy.errors import ConfigError
from bcdeploy.export import deploy_config as dc
from bcdeploy.export.parity import (
    DEFAULT_CASES,
    FP16_TOLERANCES,
    FP32_TOLERANCES,
    INT8_TOLERANCES,
    ParityReport,
    Tolerances,
    compare,
    parity_batches,
    require_parity,
)
from bcdeploy.fileio import sha256_file, staged_dir, write_text
from bcdeploy.runtime.metadata import ModelMeta, sidecar_path_for

log = logging.getLogger(__name__)


@dataclass
class ExportOptions:
    checkpoint: str
    config: str | None = None
    out: str = "export"
    deploy_config: str | None = None
    argmax: bool = False
    fp16: bool = False
    int8: bool = False
    engine: bool = False
    simplify: bool = False
    openvino: bool = False
    images: Sequence[str] = ()
    cases: Sequence[tuple[tuple[int, int], int]] = DEFAULT_CASES
    tolerances: Tolerances = FP32_TOLERANCES
    fp16_tolerances: Tolerances = FP16_TOLERANCES
    int8_tolerances: Tolerances = INT8_TOLERANCES
    trust_checkpoint: bool = False
    timing_cache: str | None = None
    precision: str = "fp16"  # TensorRT engine precision
    triton: str | None = None  # model repository to write


@dataclass
class ExportResult:
    files: dict[str, str] = field(default_factory=dict)
    parity: dict[str, ParityReport] = field(default_factory=dict)
    seconds: float = 0.0


def export(options: ExportOptions) -> ExportResult:
    """Run the whole export; raises ParityError (with the table) if a conversion drifts, and then
    writes nothing into `options.out`."""
    from bcdeploy.export.graph import prepare_for_export
    from bcdeploy.export.model_meta import meta_from_segmentor
    from bcdeploy.train.model import build_segmentor, find_config

    start = time.perf_counter()
    deploy = dc.load_deploy_config(options.deploy_config) if options.deploy_config else {}
    argmax = options.argmax or dc.with_argmax(deploy)
    config = find_config(options.checkpoint, options.config)
    segmentor = build_segmentor(config, options.checkpoint, "cpu", options.trust_checkpoint)
    meta = meta_from_segmentor(segmentor, segmentor.cfg, options.checkpoint, sha256_file(options.checkpoint), config, argmax)
    profile = dc.input_profile(deploy) or _default_profile(meta)
    module = prepare_for_export(segmentor, argmax)
    out = Path(options.out)
    result = ExportResult()
    # Everything is built in a staging folder and moved into `out` only once every check passed:
    # a drift leaves no unchecked model behind, and no new model beside an older sidecar.
    with staged_dir(out) as stage:
        _export_into(stage, options, module, meta, profile, deploy, result)
    result.files = {key: str(out / Path(path).name) for key, path in result.files.items()}
    if options.triton:
        from bcdeploy.serve.triton_repo import write_triton_repo

        result.files["triton_onnx"] = str(write_triton_repo(options.triton, out / "model.onnx", meta, "bcdeploy_segmenter_onnx"))
        if options.engine:
            engine_meta = replace(meta, precision=options.precision)
            result.files["triton_trt"] = str(write_triton_repo(options.triton, out / "model.trt", engine_meta,
                                                               "bcdeploy_segmenter_trt"))
    result.seconds = time.perf_counter() - start
    return result


def _export_into(out: Path, options: ExportOptions, module, meta: ModelMeta, profile: dict, deploy: dict,
                 result: ExportResult) -> None:
    """Write and check every requested artefact into `out` (the staging folder)."""
    import torch

    from bcdeploy.export.onnx_export import EXPORTER, OPSET, embed_metadata, export_onnx, simplify_onnx

    onnx_path = export_onnx(module, out / "model.onnx", tuple(meta.input_size))
    if options.simplify:
        simplify_onnx(onnx_path)
    batches = parity_batches(meta, options.cases, options.images)

    def reference(batch):
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()

    meta.dynamic_profile = profile
    meta.export = {"opset": OPSET, "exporter": EXPORTER, "simplified": options.simplify,
                   "deploy_config": Path(options.deploy_config).name if options.deploy_config else None}
    report = require_parity(compare(reference, _ort(onnx_path), batches, meta.output_kind, options.tolerances,
                                    ("pytorch", "onnxruntime fp32")))
    result.parity["onnx"] = report
    meta.export["parity"] = report.summary()
    _finish(onnx_path, meta, embed_metadata, result, "onnx")

    if options.fp16 or options.engine:
        from bcdeploy.export.fp16 import convert_to_fp16

        fp16_path = _export_variant(onnx_path, "fp16", convert_to_fp16, meta, reference, batches,
                                    options.fp16_tolerances, result)
    if options.int8:
        from bcdeploy.export.int8 import quantize_int8

        calibration = parity_batches(meta, [(tuple(meta.input_size), 4)] * 2, options.images, seed=1)
        _export_variant(onnx_path, "int8", lambda src, dst: quantize_int8(src, dst, calibration), meta, reference,
                        batches, options.int8_tolerances, result)
    if options.openvino:
        _export_openvino(onnx_path, meta, result)
    if options.engine:
        source = fp16_path if options.precision == "fp16" else onnx_path
        build_engine_file(source, out / "model.trt", replace(meta, precision=options.precision), profile,
                          options.precision, dc.workspace_bytes(deploy), options.timing_cache, result)


def _ort(path: Path):
    from bcdeploy.runtime.backends.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path).activate()
    return runner.infer


def _default_profile(meta: ModelMeta) -> dict[str, list[int]]:
    h, w = meta.input_size
    return {"min": [1, 3, 256, 256], "opt": [1, 3, h, w], "max": [4, 3, 2048, 2048]}


def _finish(path: Path, meta: ModelMeta, embed, result: ExportResult, key: str) -> None:
    if embed is not None:
        embed(path, meta)
    sidecar = sidecar_path_for(path)
    write_text(sidecar, meta.to_json() + "\n")
    result.files[key] = str(path)
    result.files[f"{key}_sidecar"] = str(sidecar)


def _export_variant(onnx_path, precision, convert, meta, reference, batches, tolerances, result) -> Path:
    """model.<precision>.onnx from the FP32 ONNX, parity-checked against PyTorch, with its own sidecar."""
    from bcdeploy.export.onnx_export import embed_metadata

    path = convert(onnx_path, onnx_path.with_name(f"model.{precision}.onnx"))
    variant_meta = replace(meta, precision=precision, export=dict(meta.export))
    report = require_parity(compare(reference, _ort(path), batches, meta.output_kind, tolerances,
                                    ("pytorch", f"onnxruntime {precision}")))
    result.parity[precision] = report
    variant_meta.export["parity"] = report.summary()
    _finish(path, variant_meta, embed_metadata, result, precision)
    return path


def _export_openvino(onnx_path: Path, meta: ModelMeta, result: ExportResult) -> None:
    from bcdeploy._imports import require

    ov = require("openvino", "--openvino export")
    xml = onnx_path.with_suffix(".xml")
    model = ov.convert_model(str(onnx_path))
    tmp = xml.with_name(".model.part.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)
    result.files["openvino"] = str(xml)


def build_engine_file(onnx_path: Path, engine_path: Path, meta: ModelMeta, profile: dict, precision: str,
                      workspace: int, timing_cache: str | None, result: ExportResult | None = None) -> Path:
    """Build `engine_path` and write its sidecar (the metadata plus TensorRT version and GPU)."""
    from bcdeploy.export.tensorrt_build import build_engine

    info = build_engine(onnx_path, engine_path, profile, precision, workspace, timing_cache)
    engine_meta = replace(meta, engine=info, dynamic_profile=profile)
    _finish(engine_path, engine_meta, None, result or ExportResult(), "engine")
    return engine_path


def build_engine_from_onnx(onnx_path: str | Path, out: str | Path | None, deploy_config: str | None,
                           precision: str = "fp16", timing_cache: str | None = None) -> Path:
    """`bcdeploy build-engine model.onnx`: the metadata comes from the ONNX's sidecar or embedding."""
    from bcdeploy.runtime.metadata import load_meta

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ConfigError(f"{onnx_path}: ONNX file not found")
    meta = load_meta(onnx_path, _embedded(onnx_path))
    deploy = dc.load_deploy_config(deploy_config) if deploy_config else {}
    profile = dc.input_profile(deploy) or meta.dynamic_profile or _default_profile(meta)
    engine_path = Path(out) if out else onnx_path.with_name(onnx_path.name.split(".")[0] + ".trt")
    return build_engine_file(onnx_path, engine_path, replace(meta, precision=precision), profile, precision,
                             dc.workspace_bytes(deploy), timing_cache)


def _embedded(onnx_path: Path) -> str | None:
    import onnx

    from bcdeploy.runtime.metadata import METADATA_KEY

    model = onnx.load(str(onnx_path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
