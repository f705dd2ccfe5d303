"""Bounded load test of `bcdeploy serve` on loopback: N concurrent clients, a fixed number of
requests each, throughput and latency percentiles. Starts and stops the server itself.

    python benchmarks/serve_load.py MODEL IMAGE [--clients 1 4 16] [--requests 8] [--max-batch 8]

Only 127.0.0.1 is ever contacted; every loop is bounded in count, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/metadata", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise SystemExit("server not ready")


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
            "p99_ms": round(float(np.percentile(arr, 99)), 1), "mean_ms": round(float(arr.mean()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("image")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/segment"
    proc = subprocess.Popen([sys.executable, "-m", "bcdeploy.cli", "serve", args.model, "--port", str(port),
                             "--max-batch", str(args.max_batch)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        wait_ready(url, proc)
        payload = open(args.image, "rb").read()
        load(url, payload, 1, 2)  # warm-up
        results = [load(url, payload, c, args.requests) for c in args.clients]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    text = json.dumps({"model": args.model, "image": args.image, "max_batch": args.max_batch, "results": results}, indent=2)
    if args.out:
        open(args.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
