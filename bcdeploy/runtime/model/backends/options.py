"""The options each backend takes, one keyword-only dataclass per runner (after Polygraphy, whose
loaders' signatures are their contract): nothing travels in `**kwargs` unread.

This module imports nothing heavy (no numpy, no backend), so the CLI can build its option
declarations and choices from it at start-up. Field metadata carries what a caller needs to offer
the option: `choices` (the registry unions them for `--provider` etc.) and `help`.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar

from bcdeploy.errors import ConfigError

# onnxruntime execution providers by the short name users type.
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}
OPENVINO_PRECISIONS = ("fp32", "bf16", "fp16")
OPENVINO_HINTS = ("auto", "latency", "throughput")


def _choice(default: Any, choices: tuple[str, ...], help: str) -> Any:
    return field(default=default, metadata={"choices": choices, "help": help})


def _count(default: int, help: str) -> Any:
    return field(default=default, metadata={"min": 0, "help": help})


class BackendOptions:
    """Shared behaviour: values checked at construction, so a bad option fails before a model loads."""

    backend: ClassVar[str] = "backend"
    # Why an option a user might expect is absent: said when it is refused.
    refusal_hints: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            choices = f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(f"{self.backend}: {f.name} {value!r} is not one of {', '.join(choices)}")
            if isinstance(f.default, bool) and not isinstance(value, bool):
                raise ConfigError(f"{self.backend}: {f.name} must be true or false, not {value!r}")
            low = f.metadata.get("min")
            if low is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"{self.backend}: {f.name} must be an integer >= {low}, not {value!r}")

    def for_run(self, images: int) -> BackendOptions:
        """These options for a run of `images` images: a backend that runs several images at once
        better than one after the other settles its "auto" choices here (OpenVINO's hint)."""
        return self

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def describe_field(cls, name: str) -> dict[str, Any]:
        """choices/help/default of one option, for CLI declarations."""
        f = next(f for f in fields(cls) if f.name == name)  # type: ignore[arg-type]
        return {**f.metadata, "default": None if f.default is MISSING else f.default}


@dataclass(frozen=True, kw_only=True)
class OnnxRuntimeOptions(BackendOptions):
    backend: ClassVar[str] = "onnxruntime"
    provider: str = _choice("cpu", tuple(ORT_PROVIDERS), "execution provider")
    threads: int = _count(0, "CPU threads (0: the backend's default)")
    device_id: int = _count(0, "GPU index (onnxruntime: for the cuda and tensorrt providers)")
    # Off by default: the model's precision is the file's, never changed behind the user's back (a row
    # labelled fp32 must not run FP16 inside onnxruntime's TensorRT provider).
    trt_fp16: bool = field(default=False, metadata={"help": "let the tensorrt provider run FP16 kernels"})
    trt_cache_dir: str | None = field(default=None, metadata={
        "help": "engine cache of the tensorrt provider (default: trt_cache/ beside the model)"})
    # onnxruntime's default is to spin: its intra-op threads busy-wait after each parallel section,
    # taking the core the decode and write threads of a directory run need (runtime/run/scheduling.py).
    spin: bool = field(default=False, metadata={"help": "let onnxruntime's CPU threads busy-wait between layers"})

    refusal_hints: ClassVar[dict[str, str]] = {
        "precision": "an .onnx file runs at the precision it was exported in (model.fp16.onnx, model.int8.onnx); "
                     "onnxruntime has no BF16 CPU mode worth using: for BF16 on CPU use the OpenVINO IR (model.xml#bf16)",
        "device": "onnxruntime picks a GPU by provider (cuda, tensorrt) and device_id",
    }

@dataclass(frozen=True, kw_only=True)
class OpenVINOOptions(BackendOptions):
    backend: ClassVar[str] = "openvino"
    device: str = field(default="CPU", metadata={"help": "OpenVINO device (CPU, GPU, GPU.1, ...)"})
    precision: str = _choice("fp32", OPENVINO_PRECISIONS, "OpenVINO inference precision hint")
    threads: int = _count(0, "CPU threads (0: the backend's default)")
    # OpenVINO's performance hint. latency: one stream, every thread on one image. throughput:
    # OpenVINO's number of streams for this CPU, each image on one stream's share of the threads,
    # several images at once (bit-identical masks; 2 cores: 2 streams of 1 thread, and the run's
    # decode and write work fills the gaps that threads of one stream would wait in).
    hint: str = _choice("auto", OPENVINO_HINTS, "OpenVINO performance hint; auto: throughput for a run "
                        "of several images, latency for one")

    refusal_hints: ClassVar[dict[str, str]] = {"provider": "execution providers are onnxruntime's"}

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", str(self.device).upper())
        super().__post_init__()

    def for_run(self, images: int) -> OpenVINOOptions:
        if self.hint != "auto":
            return self
        return replace(self, hint="throughput" if images > 1 else "latency")

@dataclass(frozen=True, kw_only=True)
class TensorRTOptions(BackendOptions):
    backend: ClassVar[str] = "tensorrt"
    device_id: int = _count(0, "GPU index")

    refusal_hints: ClassVar[dict[str, str]] = {
        "precision": "an engine's precision is fixed when it is built (bcdeploy build-engine --precision)",
        "threads": "TensorRT runs on the GPU; CPU threads do not apply",
        "provider": "execution providers are onnxruntime's",
    }
