"""Throughput of `bcdeploy serve` with 1 vs 2 replicas on loopback: bounded load (N concurrent clients,
a fixed number of requests each), throughput and latency percentiles, same run, same machine.

    python benchmarks/serve_load.py [--model M.onnx] [--image I] [--replicas 1 2] [--clients 1 4]
                                    [--requests 6] [--out-dir benchmarks/results]

Without --model, a synthetic compute model is built with onnx.helper (six 3x3 convolutions, 32
channels at 512x512: ~20 GFLOP per image, i.e. real CPU work per request, no training needed);
without --image, a 2000x1600 gray PNG. Each replica count gets its own server (`--replicas R
--cpus-per-replica 1 --threads CORES/R`), so 1 replica x 2 threads is compared with 2 replicas x 1
thread on the same cores. On a 2-core machine this measures Serve's overhead, not a speed-up: both
configurations share the same two cores. Writes serve_load.json and serve_load.md (with the CPU
model and its SIMD flags). Only 127.0.0.1 is contacted; each server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def machine_with_load(load_before: float) -> dict:
    """bench.sysinfo's machine description (CPU flags included) plus the 1-minute load average before and
    after the run: how much else ran on these cores (a shared machine makes numbers noisy)."""
    from bcdeploy.bench.sysinfo import describe

    return {**describe(), "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def machine_header(machine: dict) -> str:
    from bcdeploy.bench.report import machine_line

    return f"Machine: {machine_line(machine)}; 1-min load average before/after: {machine['load_average_1m']}."


def synthetic_model(folder: Path, size: int = 512, width: int = 32, depth: int = 6) -> Path:
    """A logits model with real compute (3x3 convs) and its sidecar; masks are not the point here."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from bcdeploy.runtime.model.sidecar import ModelMeta, sidecar_path_for

    rng = np.random.default_rng(0)
    nodes, inits, prev, channels = [], [], "input", 3
    for k in range(depth):
        out_ch = 3 if k == depth - 1 else width
        w = (rng.standard_normal((out_ch, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        name = "output" if k == depth - 1 else f"h{k}"
        nodes.append(helper.make_node("Conv", [prev, f"w{k}"], [name + ("" if k == depth - 1 else "_c")], pads=[1] * 4))
        if k < depth - 1:
            nodes.append(helper.make_node("Relu", [name + "_c"], [name]))
        prev, channels = name, out_ch
    graph = helper.make_graph(nodes, "synthetic", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "synthetic.onnx"
    onnx.save(model, str(path))
    meta = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0], [0, 255, 0], [255, 0, 0]],
                     mean=[128.0] * 3, std=[64.0] * 3, input_size=[size, size])
    sidecar_path_for(path).write_text(meta.to_json())
    return path


def synthetic_image(folder: Path) -> Path:
    import cv2

    image = np.full((2000, 1600), 30, np.uint8)
    cv2.ellipse(image, (800, 1000), (600, 800), 0, 0, 360, 140, -1)
    cv2.circle(image, (900, 800), 60, 240, -1)
    path = folder / "synthetic.png"
    cv2.imwrite(str(path), image)
    return path


def start_server(model: str, replicas: int, threads: int, max_batch: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bcdeploy.cli", "serve", model, "--port", str(port),
                             "--replicas", str(replicas), "--cpus-per-replica", "1", "--threads", str(threads),
                             "--max-batch", str(max_batch)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    url = f"http://127.0.0.1:{port}/segment"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/metadata", timeout=5):
                return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("server not ready in 240 s")


def load(url: str, payload: bytes, clients: int, requests: int) -> dict:
    latencies: list[float] = []

    def client(_: int) -> None:
        for _ in range(requests):
            req = urllib.request.Request(url, data=payload, method="POST")
            t0 = time.perf_counter()
            with urllib.request.urlopen(req, timeout=300) as response:
                response.read()
            latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - start
    arr = np.array(latencies)
    return {"clients": clients, "requests": len(arr), "seconds": round(elapsed, 2),
            "throughput_rps": round(len(arr) / elapsed, 2), "p50_ms": round(float(np.percentile(arr, 50)), 1),
            "p95_ms": round(float(np.percentile(arr, 95)), 1), "mean_ms": round(float(arr.mean()), 1)}


def run_replicas(model: str, payload: bytes, replicas: int, args: argparse.Namespace) -> list[dict]:
    threads = max(1, (os.cpu_count() or 1) // replicas)
    proc, url = start_server(model, replicas, threads, args.max_batch)
    try:
        load(url, payload, replicas, 2)  # warm-up: every replica's session runs once
        return [{"replicas": replicas, "threads_per_replica": threads, **load(url, payload, c, args.requests)}
                for c in args.clients]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def markdown(report: dict) -> str:
    lines = ["# bcdeploy serve: 1 vs 2 replicas (same run, same machine)", "",
             machine_header(report["machine"]) + f" Model: {report['model']}; image: {report['image']}.",
             "", "| replicas | threads/replica | clients | requests | img/s | p50 ms | p95 ms |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['replicas']} | {r['threads_per_replica']} | {r['clients']} | {r['requests']} | {r['throughput_rps']} "
              f"| {r['p50_ms']} | {r['p95_ms']} |" for r in report["results"]]
    lines += ["", report["note"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--image")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--max-batch", type=int, default=4)
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(synthetic_model(Path(tmp)))
        image = args.image or str(synthetic_image(Path(tmp)))
        payload = Path(image).read_bytes()
        results = [row for r in args.replicas for row in run_replicas(model, payload, r, args)]
    machine = machine_with_load(load_before)
    note = (f"On {machine['cores']} cores both configurations share the same cores: the ratio shows what "
            "Serve's extra replica costs or saves, not a scale-out speed-up (that needs more machines).")
    report = {"model": args.model or "synthetic (6x conv3x3, 32 ch, 512x512)", "image": args.image or
              "synthetic 2000x1600 gray PNG", "max_batch": args.max_batch, "machine": machine, "results": results,
              "note": note}
    from bcdeploy.bench.report import write_report

    write_report(Path(args.out_dir) / "serve_load", report, markdown(report))


if __name__ == "__main__":
    main()
