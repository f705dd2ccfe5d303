"""`bcdeploy infer --ray` on 1 vs 2 local Ray nodes, beside a plain local `infer`: images/minute and
CPU-seconds per image, same run, same machine, then what a 100 000-image archive costs on N nodes.

    python benchmarks/ray_infer.py [--images 24] [--size 1000x800] [--out-dir benchmarks/results]

The model is serve_load.py's synthetic compute model (six 3x3 convolutions, 32 channels, at 384x384
here), the images synthetic gray PNGs. Configurations, each over the same images into a fresh --out:
  local      `infer --threads 2` in this process (no Ray)
  ray 1 node a loopback Ray node with 2 CPUs: `--workers 2 --cpus-per-worker 0.5 --threads 1`
  ray 2 nodes head + worker node, 1 CPU each: the same flags (one actor per node, as Ray spreads them)
CPU-seconds are those of this process and every process below it (the Ray nodes, their workers),
sampled with psutil every 0.1 s; Ray's start-up is outside the timed part, its idle polling inside.
On a 2-core machine every configuration shares the same two cores: the numbers show Ray's overhead
per image, not a speed-up (that needs more machines). Everything listens on 127.0.0.1 and is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback-only nodes: read once, when ray loads
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_load import machine_header, machine_with_load, synthetic_model  # noqa: E402

ARCHIVE = 100_000
REFERENCE_S_PER_IMAGE = 4.38  # README "Benchmarks": the reference model, onnxruntime FP32, one DMID-size image
RAY_FLAGS = ("--workers", "2", "--cpus-per-worker", "0.5", "--threads", "1")


class CpuMeter:
    """User + system CPU of this process and all its descendants (the Ray nodes, their workers and
    actors), sampled every 0.1 s: a worker that exits before the end (Ray Data stops its actors when a
    dataset is done) keeps what it used up to its last sample."""

    def __init__(self) -> None:
        import ray  # noqa: F401 - puts Ray's bundled psutil on sys.path

        self.psutil = importlib.import_module("psutil")
        self.first = self._sample()
        self.last = dict(self.first)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _sample(self) -> dict[tuple[int, float], float]:
        me = self.psutil.Process()
        found = {}
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(self.psutil.Error):
                t = proc.cpu_times()
                found[(proc.pid, proc.create_time())] = t.user + t.system
        return found

    def _poll(self) -> None:
        while not self.stop.wait(0.1):
            self.last.update(self._sample())

    def seconds(self) -> float:
        self.stop.set()
        self.thread.join()
        self.last.update(self._sample())
        return sum(cpu - self.first.get(key, 0.0) for key, cpu in self.last.items())


def make_images(folder: Path, count: int, height: int, width: int) -> Path:
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        image = np.full((height, width), 30, np.uint8)
        cv2.ellipse(image, (width // 2, height // 2), (width // 3, height // 3), 0, 0, 360, 140, -1)
        cv2.circle(image, (int(rng.integers(100, width - 100)), int(rng.integers(100, height - 100))), 40, 240, -1)
        cv2.imwrite(str(folder / f"img_{k:03d}.png"), image)
    return folder


def timed(label: str, nodes: int, model: Path, images: Path, out: Path, *flags: str) -> dict:
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    meter, t0 = CpuMeter(), time.perf_counter()
    result = CliRunner().invoke(cli, ["infer", "--model", str(model), str(images), "--out", str(out), *flags])
    seconds, cpu = time.perf_counter() - t0, meter.seconds()
    if result.exit_code != 0:
        raise SystemExit(f"{label}: exit {result.exit_code}: {result.output[-2000:]}")
    count = len(list((out / "masks").glob("*.png")))
    return {"config": label, "nodes": nodes, "images": count, "seconds": round(seconds, 2),
            "images_per_minute": round(60 * count / seconds, 1), "cpu_s_per_image": round(cpu / count, 3)}


def run_all(args: argparse.Namespace, tmp: Path) -> list[dict]:
    from ray.cluster_utils import Cluster

    height, width = map(int, args.size.split("x"))
    model = synthetic_model(tmp, size=384)
    images = make_images(tmp / "images", args.images, height, width)
    results = [timed("local infer (no Ray)", 1, model, images, tmp / "local", "--threads", "2")]
    node_args = {"node_ip_address": "127.0.0.1", "include_dashboard": False, "object_store_memory": 200 * 2**20}
    for nodes in (1, 2):
        cluster = Cluster(initialize_head=True, connect=False, head_node_args={**node_args, "num_cpus": 3 - nodes})
        try:
            if nodes == 2:
                cluster.add_node(**node_args, num_cpus=1)
            cluster.wait_for_nodes()
            timed("warm-up", nodes, model, images, tmp / f"warm{nodes}", *RAY_FLAGS, "--ray", cluster.address)
            results.append(timed(f"infer --ray, {nodes} node(s)", nodes, model, images, tmp / f"ray{nodes}",
                                 *RAY_FLAGS, "--ray", cluster.address))
        finally:
            cluster.shutdown()
    return results


def archive_costs(cpu_s_per_image: float, cores_per_node: int, basis: str) -> list[dict]:
    """Wall hours for the archive on N nodes, if the CPU-seconds per image scale linearly."""
    core_hours = cpu_s_per_image * ARCHIVE / 3600
    return [{"basis": basis, "cpu_s_per_image": round(cpu_s_per_image, 3), "nodes": n, "cores_per_node": cores_per_node,
             "core_hours": round(core_hours, 1), "wall_hours": round(core_hours / (n * cores_per_node), 2)}
            for n in (1, 4, 16)]


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# bcdeploy infer --ray: 1 vs 2 local Ray nodes (same run, same machine)", "",
             machine_header(m) + f" Model: {report['model']}; {report['images']} images {report['size']} PNG.", "",
             "| configuration | images | seconds | images/min | CPU-s/image |", "|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['images']} | {r['seconds']} | {r['images_per_minute']} | {r['cpu_s_per_image']} |"
              for r in report["results"]]
    lines += ["", f"A {ARCHIVE:,}-image archive, if the CPU-seconds per image scale linearly over nodes: the "
              "measured 2-node Ray run (this small model, Ray's overhead included), and the reference model's "
              f"{REFERENCE_S_PER_IMAGE} s per DMID-size image (README; wall seconds on 2 cores taken as CPU-s, so a "
              "lower bound) plus Ray's measured overhead per image:", "",
              "| basis | CPU-s/image | nodes | cores/node | core-hours | wall hours |", "|---|---|---|---|---|---|"]
    lines += [f"| {c['basis']} | {c['cpu_s_per_image']} | {c['nodes']} | {c['cores_per_node']} | {c['core_hours']} "
              f"| {c['wall_hours']} |" for c in report["archive"]]
    lines += ["", report["note"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", default="1000x800", help="HxW of the generated images")
    parser.add_argument("--cores-per-node", type=int, default=16, help="for the archive estimate")
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args()
    from bcdeploy.bench.report import write_report

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(args, Path(tmp))
    machine = machine_with_load(load_before)
    basis = results[-1]["cpu_s_per_image"]
    overhead = max(0.0, basis - results[0]["cpu_s_per_image"])
    note = (f"On {machine['cores']} cores every configuration shares the same cores: the ratios show what Ray "
            "costs per image (scheduling, object store, pickling, idle polling), not a scale-out speed-up, "
            "which needs more machines. The archive estimate assumes the per-image CPU cost measured here and "
            "perfect scaling over nodes; the shared machine's load (above) makes absolute numbers noisy.")
    report = {"model": "synthetic (6x conv3x3, 32 ch, 384x384)", "images": args.images, "size": args.size,
              "machine": machine, "results": results, "ray_overhead_cpu_s_per_image": round(overhead, 3),
              "archive": [*archive_costs(basis, args.cores_per_node, "measured, 2 Ray nodes"),
                          *archive_costs(REFERENCE_S_PER_IMAGE + overhead, args.cores_per_node,
                                         "reference model + Ray overhead")], "note": note}
    write_report(Path(args.out_dir) / "ray_infer", report, markdown(report))


if __name__ == "__main__":
    main()
