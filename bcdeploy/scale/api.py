"""`bcdeploy infer` as one library call: the same run on this machine's threads or on Ray."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bcdeploy.runtime.model.backends import BackendOptions
from bcdeploy.runtime.run import InputSource, RunOptions, RunSummary, run


def infer(model_path: str | Path, inputs: Sequence[str] | InputSource, options: RunOptions, *,
          backend: BackendOptions | None = None, sliding_window: Any = None, ray: Any = None) -> RunSummary:
    """Segment `inputs` with the exported model at `model_path`: locally (the model opens while the
    first images are read, and closes when the run ends), or on Ray when `ray` (scale.ray_infer.RayOptions)
    is given. Both write the same outputs, ledger and reports."""
    if ray is not None:
        from bcdeploy.scale.ray_infer import run_on_ray

        return run_on_ray(model_path, inputs, options,
                          dataclasses.replace(ray, backend=backend, sliding_window=sliding_window))
    from bcdeploy.runtime.model.backends.registry import options_for
    from bcdeploy.runtime.model.segmenter import Segmenter

    backend = backend if backend is not None else options_for(model_path)
    with contextlib.ExitStack() as stack:
        return run(lambda images: stack.enter_context(
            Segmenter(model_path, sliding_window, options=backend.for_run(images))), inputs, options)
