"""Model compute alone, contenders alternating in one process: onnxruntime FP32 vs INT8 (any
ONNX/OpenVINO models the runtime opens) at one size, batch 1, each round running every model
--runs times in turn. Reports each model's best / median / worst ms and its ratio to the first model
per round, with the model's GFLOP (counted on the FP32 graph) and GFLOP/s beside the FP32 matmul peak.

    python benchmarks/compute_bench.py E/model.onnx E/model.int8.onnx [E/model.xml#bf16] \\
        --size 640x640 --rounds 5 --runs 3 --out benchmarks/results/compute
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from bcdeploy.bench.latency import achieved, model_gflop
from bcdeploy.bench.models import open_segmenter, parse_spec, precision_of
from bcdeploy.bench.report import machine_line, write_report
from bcdeploy.bench.sysinfo import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--size", default="640x640")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="calls per model per round")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    machine = describe(peak=True)
    peak = machine["fp32_matmul"]["peak_gflops"]
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    models = []
    for text in args.models:
        spec = parse_spec(text, threads=args.threads or None)
        segmenter, reason = open_segmenter(spec)
        if segmenter is None:
            raise SystemExit(f"{text}: {reason}")
        segmenter.runner.infer(x)  # warm-up: first call allocates
        models.append((text, spec, segmenter))
    samples = {text: [] for text, _, _ in models}
    ratios = {text: [] for text, _, _ in models}
    for _ in range(args.rounds):
        best_this_round = {}
        for text, _, segmenter in models:
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                segmenter.runner.infer(x)
                times.append((time.perf_counter() - t0) * 1000)
            samples[text] += times
            best_this_round[text] = min(times)
        first = best_this_round[models[0][0]]
        for text in best_this_round:
            ratios[text].append(first / best_this_round[text])
    rows = []
    for text, spec, segmenter in models:
        ms = samples[text]
        # the model's precision last: an OpenVINO runner's describe() names its precision *hint* (fp32 for an INT8 IR)
        rows.append({"model": text, **segmenter.runner.describe(), "precision": precision_of(segmenter, spec),
                     "best_ms": round(min(ms), 1), "median_ms": round(statistics.median(ms), 1),
                     "worst_ms": round(max(ms), 1), "speedup_vs_first": [round(min(ratios[text]), 2),
                     round(statistics.median(ratios[text]), 2), round(max(ratios[text]), 2)],
                     **achieved(model_gflop(spec.path, size), 1, statistics.median(ms), peak)})
        segmenter.close()
    report = {"machine": machine, "size": list(size), "rounds": args.rounds, "runs": args.runs, "rows": rows}
    write_report(args.out, report, markdown(report))


def markdown(report: dict) -> str:
    h, w = report["size"]
    lines = [f"# Model compute at {h}x{w}, batch 1 ({report['rounds']} alternating rounds x {report['runs']} calls)", "",
             machine_line(report["machine"]), "",
             "| model | precision | best ms | median | worst | vs first (min / median / max per round) | GFLOP/s (median) | of FP32 peak |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lo, mid, hi = r["speedup_vs_first"]
        share = r["of_fp32_peak"]
        lines.append(f"| {r['model']} | {r['precision']} | {r['best_ms']} | {r['median_ms']} | {r['worst_ms']} | "
                     f"{lo}x / {mid}x / {hi}x | {r['gflops_per_s'] or '-'} | {'-' if share is None else f'{100 * share:.0f} %'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
