"""`bcdeploy infer --ray` on 1 vs 2 local Ray nodes, beside a plain local `infer`: images/minute and
CPU-seconds per image, same run, same machine, then what a 100 000-image archive costs on N nodes.

    python benchmarks/ray_infer.py [--images 24] [--size 1000x800] [--out-dir benchmarks/results]

The model is serve_load.py's synthetic compute model (six 3x3 convolutions, 32 channels, at 384x384
here), the images synthetic gray PNGs. Configurations, each over the same images into a fresh --out:
  local      `infer --threads 2` in this process (no Ray)
  ray 1 node a loopback Ray node with 2 CPUs: `--workers 2 --cpus-per-worker 0.5 --threads 1`
  ray 2 nodes head + worker node, 1 CPU each: the same flags (one actor per node, as Ray spreads them)
CPU-seconds are those of this process and every process below it (the Ray nodes, their workers),
read with psutil before and after; Ray's start-up is outside the timed part, its idle polling inside.
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
import time
from pathlib import Path

import numpy as np

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback-only nodes: read once, when ray loads
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_load import cpu_flags, synthetic_model  # noqa: E402

ARCHIVE = 100_000
RAY_FLAGS = ("--workers", "2", "--cpus-per-worker", "0.5", "--threads", "1")


def cpu_seconds() -> float:
    """User + system CPU of this process and all its descendants (the Ray nodes and workers)."""
    import ray  # noqa: F401 - puts Ray's bundled psutil on sys.path

    psutil = importlib.import_module("psutil")

    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


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

    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = CliRunner().invoke(cli, ["infer", "--model", str(model), str(images), "--out", str(out), *flags])
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
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


def archive_costs(cpu_s_per_image: float, cores_per_node: int) -> list[dict]:
    """Wall hours for the archive on N nodes, if the measured CPU-seconds per image scale linearly."""
    core_hours = cpu_s_per_image * ARCHIVE / 3600
    return [{"nodes": n, "cores_per_node": cores_per_node, "core_hours": round(core_hours, 1),
             "wall_hours": round(core_hours / (n * cores_per_node), 2)} for n in (1, 4, 16)]


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# bcdeploy infer --ray: 1 vs 2 local Ray nodes (same run, same machine)", "",
             f"CPU: {m['cpu']} ({m['cores']} cores; flags: {', '.join(m['cpu_flags']) or 'n/a'}; 1-min load "
             f"average before/after: {m['load_average_1m']}). Model: {report['model']}; "
             f"{report['images']} images {report['size']} PNG.", "",
             "| configuration | images | seconds | images/min | CPU-s/image |", "|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['images']} | {r['seconds']} | {r['images_per_minute']} | {r['cpu_s_per_image']} |"
              for r in report["results"]]
    lines += ["", f"A {ARCHIVE:,}-image archive at {report['archive_basis']} CPU-s/image (the 2-node Ray run, "
              "overhead included), if it scales linearly:", "",
              "| nodes | cores/node | core-hours | wall hours |", "|---|---|---|---|"]
    lines += [f"| {c['nodes']} | {c['cores_per_node']} | {c['core_hours']} | {c['wall_hours']} |"
              for c in report["archive"]]
    lines += ["", report["note"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", default="1000x800", help="HxW of the generated images")
    parser.add_argument("--cores-per-node", type=int, default=16, help="for the archive estimate")
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args()
    from bcdeploy.bench.sysinfo import describe
    from bcdeploy.fileio import write_json, write_text

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(args, Path(tmp))
    machine = {**describe(), "cpu_flags": cpu_flags(),
               "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
    basis = results[-1]["cpu_s_per_image"]
    note = (f"On {machine['cores']} cores every configuration shares the same cores: the ratios show what Ray "
            "costs per image (scheduling, object store, pickling, idle polling), not a scale-out speed-up, "
            "which needs more machines. The archive estimate assumes the per-image CPU cost measured here and "
            "perfect scaling over nodes; the shared machine's load (above) makes absolute numbers noisy.")
    report = {"model": "synthetic (6x conv3x3, 32 ch, 384x384)", "images": args.images, "size": args.size,
              "machine": machine, "results": results, "archive_basis": basis,
              "archive": archive_costs(basis, args.cores_per_node), "note": note}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ray_infer.json", report)
    write_text(out / "ray_infer.md", markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
