"""Export a segmentor to a dynamic-shape ONNX file with its metadata embedded."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from bcdeploy.errors import BcDeployError
from bcdeploy.fileio import atomic_path
from bcdeploy.runtime.model.sidecar import METADATA_KEY, ModelMeta

log = logging.getLogger(__name__)

OPSET = 17
EXPORTER = "torch.onnx.export (TorchScript tracer, dynamo=False)"


def export_onnx(module, out_path: str | Path, sample_hw: tuple[int, int], opset: int = OPSET) -> Path:
    """Trace `module` at `sample_hw` with dynamic batch/height/width and run onnx.checker.

    The TorchScript exporter is pinned (dynamo=False): with torch >= 2.9 the dynamo exporter is the
    default and its failures hide behind unrelated errors; its graphs also differ across releases.
    """
    import onnx
    import torch

    from bcdeploy.export.rewrites import failures_named, traced_with_rewrites

    out_path = Path(out_path)
    sample = torch.randn(1, 3, *sample_hw)
    # torch's TorchScript exporter always logs the whole graph when a conversion fails (it tests its own
    # log switch without calling it), on stdout by default: hundreds of lines above the one ExportError
    # line a user must read. On stderr it shows with `bcdeploy --verbose` only (_quiet.py).
    set_log_stream = getattr(torch._C, "_jit_set_onnx_log_output_stream", None)
    if set_log_stream is not None:
        set_log_stream("stderr")
    with (atomic_path(out_path) as tmp, torch.no_grad(), warnings.catch_warnings(), traced_with_rewrites(),
          failures_named(module, sample)):
        warnings.simplefilter("ignore")  # tracer warnings about python ints are what rewrites.py fixes
        torch.onnx.export(
            module, (sample,), str(tmp),
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                          "output": {0: "batch", 2: "height", 3: "width"}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
        model = onnx.load(str(tmp))
        try:
            onnx.checker.check_model(model, full_check=True)
        except onnx.checker.ValidationError as err:
            raise BcDeployError(f"{out_path}: exported graph fails onnx.checker: {str(err).splitlines()[0]}") from None
    return out_path


def embed_metadata(onnx_path: str | Path, meta: ModelMeta) -> None:
    """Write the sidecar JSON into metadata_props (plus readable keys Netron shows at a glance)."""
    import onnx

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    props = {
        METADATA_KEY: meta.to_json(),
        "classes": ",".join(meta.classes),
        "mean": ",".join(f"{v:g}" for v in meta.mean),
        "std": ",".join(f"{v:g}" for v in meta.std),
        "channel_order": meta.channel_order,
        "input_size": "x".join(map(str, meta.input_size)),
        "output_kind": meta.output_kind,
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    from bcdeploy import __version__

    model.producer_name, model.producer_version = "bcdeploy", __version__
    with atomic_path(onnx_path) as tmp:
        onnx.save(model, str(tmp))


def simplify_onnx(onnx_path: str | Path) -> None:
    """Simplify in place with onnxslim; the caller re-runs parity on the result."""
    import onnx

    from bcdeploy._imports import require

    onnxslim = require("onnxslim", "--simplify")
    onnx_path = Path(onnx_path)
    slim = onnxslim.slim(onnx.load(str(onnx_path)))
    with atomic_path(onnx_path) as tmp:
        onnx.save(slim, str(tmp))
