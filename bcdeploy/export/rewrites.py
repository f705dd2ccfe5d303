"""Export-time rewrites, registered in one place: what MMSeg code does that the tracer cannot keep dynamic,
and the exact, shape-generic replacement that it can.

Two kinds, after MMDeploy's module and function rewriters:
* module swaps (`MODULE_SWAPS`) replace submodules of the model being exported, for good: the swapped
  module computes the same values, so the PyTorch reference of the parity check runs it too;
* function patches (`FUNCTION_PATCHES`) replace a torch function only while the graph is traced
  (`traced_with_rewrites`), so the parity check compares the rewritten graph with the original function.

Each entry names the architectures that need it; tests/export/test_rewrites.py checks each against the
original at sizes the export never saw. To add one for a custom layer: write the replacement, add a
`FunctionPatch` or `ModuleSwap` here with the architectures it serves, and a test of its exactness.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.onnx.operators
from torch import nn


@dataclass(frozen=True)
class ModuleSwap:
    name: str
    why: str
    architectures: tuple[str, ...]
    swap: Callable[[nn.Module], int]  # replaces in place; returns how many modules it replaced


@dataclass(frozen=True)
class FunctionPatch:
    name: str
    why: str
    architectures: tuple[str, ...]
    target: str  # "module:attribute[.attribute]", e.g. "torch.nn.functional:adaptive_avg_pool2d"
    make: Callable[[Callable], Callable]  # original -> replacement

    def resolve(self) -> tuple[object, str] | None:
        """(owner, attribute name) of the target; None where its module is not installed."""
        import importlib

        module_name, _, path = self.target.partition(":")
        try:
            owner: object = importlib.import_module(module_name)
        except ImportError:
            return None
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        return owner, attribute


# --- mmseg's Upsample ------------------------------------------------------------------------------------
class DynamicUpsample(nn.Module):
    """Drop-in for mmseg.models.utils.Upsample that traces without freezing the output size."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool | None) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners)


def _swap_upsample(model: nn.Module) -> int:
    from mmseg.models.utils import Upsample

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Upsample) and not child.size and child.scale_factor:
                align = child.align_corners if child.mode in ("linear", "bilinear", "bicubic", "trilinear") else None
                setattr(parent, name, DynamicUpsample(child.scale_factor, child.mode, align))
                replaced += 1
    return replaced


# --- adaptive average pooling -----------------------------------------------------------------------------
def _pool_axis(x: torch.Tensor, dim: int, bins: int) -> torch.Tensor:
    """Adaptive average pooling along one axis, exactly as PyTorch bins it (bin i spans
    floor(i*n/bins) .. ceil((i+1)*n/bins)), from a cumulative sum indexed by bin edges computed from the
    traced size `n`: every size stays a graph value (Shape -> arithmetic -> Gather), none is frozen."""
    n = torch.onnx.operators.shape_as_tensor(x)[dim]
    index = torch.arange(bins, dtype=torch.int64)
    start = torch.div(index * n, bins, rounding_mode="floor")
    end = torch.div((index + 1) * n + bins - 1, bins, rounding_mode="floor")
    summed = torch.cumsum(x, dim)
    summed = torch.cat([torch.zeros_like(summed.narrow(dim, 0, 1)), summed], dim)
    shape = [1] * x.dim()
    shape[dim] = bins
    count = (end - start).to(x.dtype).reshape(shape)
    return (summed.index_select(dim, end) - summed.index_select(dim, start)) / count


def _make_adaptive_avg_pool2d(original: Callable) -> Callable:
    def adaptive_avg_pool2d(x: torch.Tensor, output_size) -> torch.Tensor:
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if size in ((1, 1),) or None in size or x.dim() != 4:
            return original(x, output_size)  # global pooling is ReduceMean/GlobalAveragePool: dynamic already
        return _pool_axis(_pool_axis(x, 2, int(size[0])), 3, int(size[1]))
    return adaptive_avg_pool2d


# --- criss-cross attention (CCNet) ---------------------------------------------------------------------------
def _make_criss_cross_forward(original: Callable) -> Callable:
    """mmcv's CrissCrossAttention.forward, with the -inf diagonal of the column energies masked from the
    energy tensor's own (traced) size: mmcv builds it with torch.diag from a Python int, which ONNX
    cannot export and a trace would freeze."""
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        energy_h = torch.einsum("bchw,bciw->bwhi", query, key)
        ones = torch.ones_like(energy_h[0, 0])
        diagonal = (torch.triu(ones) * torch.tril(ones)).bool()
        energy_h = energy_h.masked_fill(diagonal, float("-inf")).transpose(1, 2)
        energy_w = torch.einsum("bchw,bchj->bhwj", query, key)
        attention = F.softmax(torch.cat([energy_h, energy_w], dim=-1), dim=-1)
        height = energy_h.shape[-1]
        out = torch.einsum("bciw,bhwi->bchw", value, attention[..., :height])
        out = out + torch.einsum("bchj,bhwj->bchw", value, attention[..., height:])
        return self.gamma(out) + x
    return forward


MODULE_SWAPS: tuple[ModuleSwap, ...] = (
    ModuleSwap("Upsample by scale factor",
               "mmseg's Upsample computes int(t * scale_factor) from the input shape: tracing freezes the ints",
               ("unet", "fastfcn", "setr"), _swap_upsample),
)
FUNCTION_PATCHES: tuple[FunctionPatch, ...] = (
    FunctionPatch("adaptive_avg_pool2d",
                  "the TorchScript exporter cannot export adaptive pooling to a fixed grid of a dynamic input "
                  "('input size not accessible')",
                  ("pspnet", "upernet", "icnet", "apcnet", "ann", "fastscnn", "dmnet", "swin", "fastfcn"),
                  "torch.nn.functional:adaptive_avg_pool2d", _make_adaptive_avg_pool2d),
    FunctionPatch("CrissCrossAttention.forward",
                  "mmcv masks the attention's diagonal with torch.diag of a Python int: no ONNX operator, "
                  "and a size frozen by the trace",
                  ("ccnet",), "mmcv.ops.cc_attention:CrissCrossAttention.forward", _make_criss_cross_forward),
)


def swap_modules(model: nn.Module) -> dict[str, int]:
    """Apply every module swap to `model` in place; returns how many modules each replaced."""
    return {swap.name: swap.swap(model) for swap in MODULE_SWAPS}


@contextlib.contextmanager
def traced_with_rewrites() -> Iterator[None]:
    """Every function patch in force for the duration (tracing); the originals are back afterwards."""
    originals = []
    for patch in FUNCTION_PATCHES:
        found = patch.resolve()
        if found is not None:
            originals.append((patch, *found, getattr(*found)))
    try:
        for patch, owner, attribute, original in originals:
            setattr(owner, attribute, patch.make(original))
        yield
    finally:
        for _patch, owner, attribute, original in originals:
            setattr(owner, attribute, original)


@contextlib.contextmanager
def failures_named(model: nn.Module, sample: torch.Tensor) -> Iterator[None]:
    """Any failure while tracing `model` becomes one ExportError line naming the innermost module that was
    running (for a failure in the ONNX conversion after the trace: the scope the exporter names, or the
    module that calls the operator it could not convert), the operation, and what the user can do. A
    user's custom layer is then one line, not a traceback."""
    from bcdeploy.errors import ExportError
    from bcdeploy.runtime.images.decoder_guard import failures_become

    names = {module: name for name, module in model.named_modules()}
    running: list[nn.Module] = []

    def export_error(err: BaseException) -> ExportError:
        where = (_module_named(names, running[-1]) if running else _scope_in(str(err))
                 or _module_calling(model, names, sample, _operator_in(str(err))) or "the model")
        return ExportError(f"ONNX export failed in {where}: {_first_line(err)}. This layer cannot be traced with "
                           "dynamic height and width: add an export rewrite for it (README, 'A rewrite for a custom "
                           "layer'), or replace the layer in the config")

    with failures_become(export_error), _modules_running(names, running):
        yield


@contextlib.contextmanager
def _modules_running(modules: dict[nn.Module, str], running: list[nn.Module]) -> Iterator[None]:
    """Keep `running` the live stack of the `modules` whose forward is running, innermost last (a failure
    leaves it standing: the module it happened in stays on top)."""

    def entered(module: nn.Module, args: object) -> None:
        running.append(module)

    def left(module: nn.Module, args: object, output: object) -> None:  # returns None: the output stays as is
        if running:
            running.pop()

    hooks = [module.register_forward_pre_hook(entered) for module in modules]
    hooks += [module.register_forward_hook(left) for module in modules]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _module_named(names: dict[nn.Module, str], module: nn.Module) -> str:
    return f"{names.get(module) or 'the model'} ({type(module).__module__}.{type(module).__name__})"


def _operator_in(message: str) -> str | None:
    """`linalg_svdvals` of "Exporting the operator 'aten::linalg_svdvals' to ONNX ..."."""
    import re

    found = re.search(r"operator '?(?:aten|prim|mmcv)::(\w+)", message)
    return found.group(1) if found else None


def _module_calling(model: nn.Module, names: dict[nn.Module, str], sample: torch.Tensor, operator: str | None
                    ) -> str | None:
    """The innermost module that calls `operator` when `model` runs on `sample` (eagerly, once)."""
    if operator is None:
        return None
    from torch.overrides import TorchFunctionMode

    found: list[nn.Module] = []
    running: list[nn.Module] = []
    with _modules_running(names, running):

        class Finder(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                if not found and running and getattr(func, "__name__", "").lstrip("_") == operator:
                    found.append(running[-1])
                return func(*args, **(kwargs or {}))

        try:
            with torch.no_grad(), Finder():
                model(sample)
        except Exception:  # noqa: BLE001 - only a diagnosis: the export's own error is what the user gets
            pass
    return _module_named(names, found[0]) if found else None


def _scope_in(message: str) -> str | None:
    """The innermost module scope the TorchScript exporter names in its error (`scope: a.B::x/c.D::y`)."""
    import re

    found = re.search(r"scope: ([^\s#]+)", message)
    if not found:
        return None
    innermost = found.group(1).split("/")[-1]  # e.g. mmseg.models.decode_heads.psp_head.PPM::decode_head.psp_modules.0
    kind, _, name = innermost.partition("::")
    return f"{name or 'the model'} ({kind})"


def _first_line(err: BaseException, limit: int = 240) -> str:
    text = str(err).split("[Caused by", 1)[0].strip().splitlines()
    line = text[0].strip() if text else ""
    line = line.split(" Please feel free to request support", 1)[0]
    line = f"{type(err).__name__}: {line}" if line else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
