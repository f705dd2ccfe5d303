"""The floor of a directory run: the model's compute plus what `bcdeploy infer` does around it.

    python benchmarks/side_work.py MODEL DIR [--save masks] [--compute-s S]

Runs the real run pipeline (runtime/run: read, hash, decode, preprocess, postprocess, lesion records,
outputs, ledger, reports) over DIR twice with the same model. The first run records the model's
output for each input; the second serves those outputs instead of computing them and is the one
measured: the process's CPU seconds per image are the side work, in core-seconds, measured alone
(nothing else competes for the cores). While the model holds every core the side work can only fill
its gaps, so with the model's compute alone per image (`plain_loop.py --compute-only`, given as
--compute-s) the floor on C cores is compute + side work / C. Prints the figures and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bcdeploy.bench.report import machine_line
from bcdeploy.bench.sysinfo import describe
from bcdeploy.runtime.results.outputs import parse_save
from bcdeploy.runtime.run import RunOptions, run
from bcdeploy.runtime.model.segmenter import Segmenter


def _key(batch: np.ndarray) -> bytes:
    """A cheap fingerprint of a preprocessed batch (a sample of its values, not a full hash)."""
    return np.ascontiguousarray(batch[..., ::37, ::41]).tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("--save", help="outputs to write, as infer's --save (default: infer's defaults)")
    parser.add_argument("--compute-s", type=float, help="the model's compute alone per image (plain_loop.py)")
    args = parser.parse_args()
    save = parse_save(args.save)
    outputs: dict[bytes, np.ndarray] = {}
    with Segmenter(args.model) as segmenter, tempfile.TemporaryDirectory() as work:
        model_infer = segmenter.runner.infer

        def recording(batch: np.ndarray) -> np.ndarray:
            out = model_infer(batch)
            outputs[_key(batch)] = out
            return out

        segmenter.runner.infer = recording
        options = RunOptions(out=Path(work) / "out", save=save, overwrite=True)
        run(lambda _images: segmenter, [str(args.inputs)], options)
        segmenter.runner.infer = lambda batch: outputs[_key(batch)].copy()
        cpu, wall = time.process_time(), time.perf_counter()
        summary = run(lambda _images: segmenter, [str(args.inputs)], options)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    images, cores = summary.processed, len(os.sched_getaffinity(0))
    side = cpu / images
    machine = describe()
    result = {"machine": machine, "images": images, "side_work_core_s": round(side, 3),
              "wall_s_per_image": round(wall / images, 3), "cores": cores, "save": sorted(save)}
    print(machine_line(machine))
    print(f"side work: {side:.3f} core-s per image over {images} images ({wall / images:.3f} s wall each), "
          f"outputs {', '.join(sorted(save))}")
    if args.compute_s is not None:
        floor = args.compute_s + side / cores
        result |= {"compute_s": args.compute_s, "floor_s": round(floor, 3)}
        print(f"floor on {cores} cores: {args.compute_s:.3f} + {side:.3f} / {cores} = {floor:.3f} s per image")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
