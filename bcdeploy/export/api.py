"""`bcdeploy export`: checkpoint -> dynamic ONNX (+ FP16/INT8 ONNX, OpenVINO IR, TensorRT engine).

Each step writes one model into the staging folder, checks it against PyTorch (or says why it cannot)
and returns its Artifact; `export()` only collects them. The model metadata is built once and never
changed: a variant's is a `dataclasses.replace` of it. Every file name is decided before anything is
written, so no path is rewritten after the folder commits, and the input files can be protected first.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bcdeploy.errors import ConfigError
from bcdeploy.export import deploy_config as dc
from bcdeploy.export.artifacts import Artifact, ExportResult
from bcdeploy.export.folder import refuse_clobbering, remove_stale
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
from bcdeploy.export.tensorrt_build import DEFAULT_WORKSPACE, check_engine_source, default_profile, engine_precision
from bcdeploy.fileio import sha256_file, staged_dir, write_text
from bcdeploy.runtime.model.sidecar import ModelMeta, load_meta, sidecar_candidates, sidecar_path_for

# The file each step writes (its sidecar is `sidecar_path_for` it); an OpenVINO IR adds its .bin.
FILES = {"onnx": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx", "openvino": "model.xml",
         "openvino_int8": "model.int8.xml", "engine": "model.trt"}
ENGINE_NOT_CHECKED = ("engines run only on a GPU and are not run at export; its source ONNX passed above - "
                      "check the engine where it runs: bcdeploy bench parity --models {path}")


@dataclass(frozen=True, kw_only=True)
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
    images: Sequence[str] = ()  # image files or folders for the parity check (and INT8 calibration)
    cases: Sequence[tuple[tuple[int, int], int]] = DEFAULT_CASES
    tolerances: Tolerances = FP32_TOLERANCES
    fp16_tolerances: Tolerances = FP16_TOLERANCES
    int8_tolerances: Tolerances = INT8_TOLERANCES
    trust_checkpoint: bool = False
    timing_cache: str | None = None
    precision: str | None = None  # TensorRT engine precision; None: the deploy config's, else fp16
    triton: str | None = None  # model repository to write
    operating_points: dict | None = None  # {"cad": {threshold, fp_per_image, ...}} for the sidecar (model_meta.py)


@dataclass(frozen=True)
class _Place:
    """Where a step writes (the staging folder) and where its file is once the export commits."""

    stage: Path
    out: Path

    def staged(self, name: str) -> Path:
        return self.stage / FILES[name]

    def final(self, name: str) -> Path:
        return self.out / FILES[name]


@dataclass(frozen=True)
class _Checker:
    """Runs a candidate against the PyTorch module on the same preprocessed batches; raises on drift."""

    reference: Callable[[np.ndarray], np.ndarray]
    batches: list[np.ndarray]
    output_kind: str

    def __call__(self, candidate: Callable[[np.ndarray], np.ndarray], tolerances: Tolerances, name: str) -> ParityReport:
        return require_parity(compare(self.reference, candidate, self.batches, self.output_kind, tolerances,
                                      ("pytorch", name)))


def planned_steps(options: ExportOptions, precision: str) -> tuple[str, ...]:
    """The steps this export runs, in order: an engine needs the ONNX of its precision."""
    steps = ["onnx"]
    if options.fp16 or (options.engine and precision == "fp16"):
        steps.append("fp16")
    if options.int8 or (options.engine and precision == "int8"):
        steps.append("int8")
    if options.openvino:
        steps.append("openvino")
        if "int8" in steps:  # OpenVINO runs the INT8 QDQ graph faster than onnxruntime on the CPU
            steps.append("openvino_int8")
    if options.engine:
        steps.append("engine")
    return tuple(steps)


def written_names(steps: Sequence[str]) -> tuple[str, ...]:
    """Every file the steps write: model, sidecar, and an OpenVINO IR's weights (model.int8.xml -> model.int8.bin)."""
    names = []
    for step in steps:
        names += [FILES[step], sidecar_path_for(FILES[step]).name]
        if FILES[step].endswith(".xml"):
            names.append(Path(FILES[step]).with_suffix(".bin").name)
    return tuple(names)


def export(options: ExportOptions) -> ExportResult:
    """Run the whole export; raises ParityError (with the table) if a conversion drifts, and then
    writes nothing into `options.out`."""
    from bcdeploy.train.model import find_config

    start = time.perf_counter()
    deploy, precision = _engine_settings(options)
    steps = planned_steps(options, precision)
    names = written_names(steps)
    config = find_config(options.checkpoint, options.config)
    image_dirs = [p for p in options.images if Path(p).is_dir()]
    refuse_clobbering(options.out, names, folders=image_dirs,
                      files=[options.checkpoint, config, options.deploy_config,
                             *(p for p in options.images if p not in image_dirs)])
    module, meta = _load(options, config, deploy)
    check = _Checker(_torch_runner(module), parity_batches(meta, options.cases, options.images), meta.output_kind)
    out = Path(options.out)
    # Everything is built in a staging folder and moved into `out` only once every check passed:
    # a drift leaves no unchecked model behind, and no new model beside an older sidecar.
    with staged_dir(out) as stage:
        artifacts = _run_steps(_Place(stage, out), steps, module, meta, check, options=options, precision=precision,
                               deploy=deploy)
        removed = remove_stale(out, names)  # at commit: no variant of another checkpoint stays
    triton = _write_triton(options.triton, artifacts) if options.triton else ()
    return ExportResult(artifacts=artifacts, removed=tuple(removed), triton=triton,
                        seconds=time.perf_counter() - start)


def _engine_settings(options: ExportOptions) -> tuple[dc.DeploySettings, str]:
    """The deploy config's settings and the engine precision, refusing options that contradict them."""
    deploy = dc.settings(dc.load_deploy_config(options.deploy_config)) if options.deploy_config else dc.DeploySettings()
    precision = engine_precision(options.precision, fp16_mode=deploy.fp16_mode, int8_mode=deploy.int8_mode)
    if options.precision and not options.engine:
        raise ConfigError(f"--precision {options.precision} is the TensorRT engine's precision; add --engine "
                          "(or use --fp16 / --int8 for ONNX variants)")
    if options.engine and options.deploy_config and deploy.backend != "tensorrt":
        raise ConfigError(f"--engine builds TensorRT, but {options.deploy_config} is for backend_config.type="
                          f"{deploy.backend!r}; use a TensorRT deploy config")
    return deploy, precision


def _load(options: ExportOptions, config: Path, deploy: dc.DeploySettings):
    """The exportable module and its metadata (profile and export facts included, never changed later)."""
    from bcdeploy.export.graph import prepare_for_export
    from bcdeploy.export.model_meta import meta_from_segmentor
    from bcdeploy.export.onnx_export import EXPORTER, OPSET
    from bcdeploy.train.model import build_segmentor

    argmax = options.argmax or deploy.argmax
    segmentor = build_segmentor(config, options.checkpoint, "cpu", options.trust_checkpoint)
    meta = meta_from_segmentor(segmentor, segmentor.cfg, options.checkpoint, sha256_file(options.checkpoint), config,
                               argmax)
    meta = replace(meta, dynamic_profile=deploy.profile or default_profile(meta.input_size, meta.size_divisor),
                   export={"opset": OPSET, "exporter": EXPORTER, "simplified": options.simplify,
                           "deploy_config": Path(options.deploy_config).name if options.deploy_config else None},
                   operating_points=dict(options.operating_points or {}))
    return prepare_for_export(segmentor, argmax), meta


def _torch_runner(module) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(batch)).numpy()
    return run


def _run_steps(place: _Place, steps: Sequence[str], module, meta: ModelMeta, check: _Checker, *, options: ExportOptions,
               precision: str, deploy: dc.DeploySettings) -> tuple[Artifact, ...]:
    from bcdeploy.export.fp16 import convert_to_fp16
    from bcdeploy.export.int8 import CALIBRATION_IMAGES, quantize_int8, recipe, sensitive_convs
    from bcdeploy.export.onnx_export import export_onnx, simplify_onnx

    onnx_path = export_onnx(module, place.staged("onnx"), deploy.trace_hw or tuple(meta.input_size))
    if options.simplify:
        simplify_onnx(onnx_path)
    made = {"onnx": _record(place, "onnx", meta, check(_ort(onnx_path), options.tolerances, "onnxruntime fp32"))}
    if "fp16" in steps:
        made["fp16"] = _variant(place, "fp16", convert_to_fp16, meta, check, options.fp16_tolerances)
    if "int8" in steps:
        symmetric = options.engine and precision == "int8"  # TensorRT takes only zero-point-0 Q/DQ
        calibration = parity_batches(meta, [(tuple(meta.input_size), CALIBRATION_IMAGES)], options.images, seed=1)
        fp32_nodes = sensitive_convs(place.staged("onnx"))
        made["int8"] = _variant(place, "int8", lambda src, dst: quantize_int8(src, dst, calibration, symmetric, fp32_nodes),
                                meta, check, options.int8_tolerances, {"quantization": recipe(symmetric, calibration, fp32_nodes)})
    if "openvino" in steps:
        made["openvino"] = _openvino(place, "openvino", "onnx", meta, check, options.tolerances)
    if "openvino_int8" in steps:  # from the checked INT8 ONNX: OpenVINO keeps its Q/DQ as INT8 FakeQuantize
        int8 = made["int8"].meta
        made["openvino_int8"] = _openvino(place, "openvino_int8", "int8",
                                          replace(int8, export={**int8.export, "source": FILES["int8"]}), check,
                                          options.int8_tolerances)
    if "engine" in steps:
        made["engine"] = _engine(place, made[precision if precision != "fp32" else "onnx"], precision, deploy,
                                 options.timing_cache)
    return tuple(made[step] for step in steps)


def _record(place: _Place, name: str, meta: ModelMeta, report: ParityReport | None = None,
            not_checked: str | None = None, embed: bool = True) -> Artifact:
    """The artifact of a written, checked model: its sidecar (and the ONNX's embedded copy) record the check."""
    from bcdeploy.export.onnx_export import embed_metadata

    artifact = Artifact(name=name, precision=meta.precision, path=place.final(name), meta=meta,
                        sidecar=sidecar_path_for(place.final(name)), parity=report, not_checked=not_checked)
    recorded = replace(meta, export={**meta.export, "parity": artifact.parity_summary()})
    if embed and FILES[name].endswith(".onnx"):
        embed_metadata(place.staged(name), recorded)
    write_text(sidecar_path_for(place.staged(name)), recorded.to_json() + "\n")
    return replace(artifact, meta=recorded)


def _variant(place: _Place, precision: str, convert, meta: ModelMeta, check: _Checker, tolerances: Tolerances,
             facts: dict | None = None) -> Artifact:
    """model.<precision>.onnx from the FP32 ONNX, parity-checked against PyTorch."""
    path = convert(place.staged("onnx"), place.staged(precision))
    variant = replace(meta, precision=precision, export={**meta.export, **(facts or {})})
    return _record(place, precision, variant, check(_ort(path), tolerances, f"onnxruntime {precision}"))


def _openvino(place: _Place, name: str, source: str, meta: ModelMeta, check: _Checker,
              tolerances: Tolerances) -> Artifact:
    """OpenVINO IR `name` from the checked ONNX of step `source` (weights kept as they are: FP32, or INT8
    behind FakeQuantize), run by the runtime's own runner against PyTorch with `meta.precision`'s gate."""
    from bcdeploy._imports import require
    from bcdeploy.runtime.model.backends.openvino import OpenVINORunner

    ov = require("openvino", "--openvino export")
    # from its module, not ov.convert_model: the runtime's load of openvino in this process leaves it out
    convert_model = require("openvino.tools.ovc", "--openvino export").convert_model
    xml = place.staged(name)
    ov.save_model(convert_model(str(place.staged(source))), str(xml), compress_to_fp16=False)  # + its .bin
    runner = OpenVINORunner(xml).activate()
    try:
        report = check(runner.infer, tolerances, f"openvino {meta.precision}")
    finally:
        runner.deactivate()
    return _record(place, name, meta, report)


def _engine(place: _Place, source: Artifact, precision: str, deploy: dc.DeploySettings,
            timing_cache: str | None) -> Artifact:
    from bcdeploy.export.tensorrt_build import build_engine

    meta = source.meta
    info = build_engine(place.staged(source.name), place.staged("engine"), meta.dynamic_profile, precision,
                        deploy.workspace_bytes or DEFAULT_WORKSPACE, timing_cache)
    engine_meta = replace(meta, engine=info, export={**meta.export, "source": source.path.name})
    return _record(place, "engine", engine_meta, not_checked=ENGINE_NOT_CHECKED.format(path=place.final("engine")))


def _ort(path: Path):
    from bcdeploy.runtime.model.backends.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path).activate().infer


def _write_triton(repo: str, artifacts: Sequence[Artifact]) -> tuple[Path, ...]:
    from bcdeploy.export.triton_repo import write_triton_repo

    names = {"onnx": "bcdeploy_segmenter_onnx", "engine": "bcdeploy_segmenter_trt"}
    written = tuple(write_triton_repo(repo, a.path, a.meta, names[a.name]) for a in artifacts if a.name in names)
    # As in --out: a model folder of ours that this export did not write holds another checkpoint's model,
    # which Triton would go on serving. Only folders with our bcdeploy.json are ours; the rest of REPO stays.
    for name in set(names.values()) - {folder.name for folder in written}:
        if (Path(repo) / name / "bcdeploy.json").is_file():
            shutil.rmtree(Path(repo) / name)
    return written


def build_engine_from_onnx(onnx_path: str | Path, out: str | Path | None, deploy_config: str | None,
                           precision: str | None = None, timing_cache: str | None = None) -> Path:
    """`bcdeploy build-engine model.onnx`: metadata from the ONNX's sidecar (or embedding); the engine's
    precision is the ONNX's (a strongly typed network takes it from the graph), and --precision or the
    deploy config's fp16_mode/int8_mode must agree with it."""
    from bcdeploy.export.tensorrt_build import build_engine

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ConfigError(f"{onnx_path}: ONNX file not found")
    has_sidecar = any(c.is_file() for c in sidecar_candidates(onnx_path))
    meta = load_meta(onnx_path, None if has_sidecar else _embedded(onnx_path))
    deploy = dc.settings(dc.load_deploy_config(deploy_config)) if deploy_config else dc.DeploySettings()
    asked = precision or deploy.fp16_mode is not None or deploy.int8_mode
    chosen = engine_precision(precision, fp16_mode=deploy.fp16_mode, int8_mode=deploy.int8_mode) if asked else meta.precision
    check_engine_source(meta, chosen, onnx_path)
    profile = deploy.profile or dc.checked_profile(meta.dynamic_profile, str(onnx_path)) or \
        default_profile(meta.input_size, meta.size_divisor)
    engine_path = Path(out) if out else onnx_path.with_name(onnx_path.name.split(".")[0] + ".trt")
    info = build_engine(onnx_path, engine_path, profile, chosen, deploy.workspace_bytes or DEFAULT_WORKSPACE, timing_cache)
    engine_meta = replace(meta, dynamic_profile=profile, engine=info,
                          export={**meta.export, "source": onnx_path.name,
                                  "parity": {"checked": False, "reason": ENGINE_NOT_CHECKED.format(path=engine_path)}})
    write_text(sidecar_path_for(engine_path), engine_meta.to_json() + "\n")
    return engine_path


def _embedded(onnx_path: Path) -> str | None:
    import onnx

    from bcdeploy.runtime.model.sidecar import METADATA_KEY

    model = onnx.load(str(onnx_path), load_external_data=False)
    return next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
