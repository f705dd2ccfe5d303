"""Time whole commands against each other on a shared, drifting machine: run them in turn
(A B C, A B C, ...), repeat, and report each one's best, median and worst, and the ratio to the
baseline round by round (a ratio from one round compares runs seconds apart, so drift cancels).

    python benchmarks/alternate.py --repeat 3 --images 8 --out benchmarks/results/e2e \\
        --run mmseg  "python benchmarks/mmseg_baseline.py --ckpt CKPT DIR" \\
        --run fp32   "bcdeploy infer --engine E/model.onnx DIR --out /tmp/o32 --overwrite" \\
        --run int8   "bcdeploy infer --engine E/model.int8.onnx DIR --out /tmp/o8 --overwrite"

The first --run is the baseline. Per-image time is the whole process's wall time (start-up and model
load included, as a user waits for it) over --images, or the time a command measured itself and printed
as `TIMED_S=<seconds>` (the model's compute alone). CPU time and peak RSS are each command's own (wait4's
rusage). Writes OUT.json and OUT.md with the machine's CPU model and flags.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bcdeploy.bench.report import machine_line
from bcdeploy.bench.sysinfo import describe
from bcdeploy.fileio import write_json, write_text


def run_once(cmd: list[str], log) -> dict:
    """Wall and CPU time and peak resident memory of one command (its own rusage, from wait4). A command
    that prints `TIMED_S=<seconds>` last (benchmarks/plain_loop.py --compute-only) is timed by that
    figure instead of its wall time: the part it measured itself."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = output.decode(errors="replace")
    log.write(text)
    timed = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("TIMED_S=")]
    return {"wall_s": round(float(timed[-1]) if timed else wall, 3), "process_wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "rc": proc.returncode}


def spread(values: list[float], higher_is_better: bool = False) -> dict:
    best, worst = (max, min) if higher_is_better else (min, max)
    return {"best": round(best(values), 3), "median": round(statistics.median(values), 3), "worst": round(worst(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", nargs=2, action="append", metavar=("NAME", "COMMAND"), required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0, help="rounds run first and not counted")
    parser.add_argument("--images", type=int, required=True, help="images each command processes")
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.md")
    args = parser.parse_args()
    names = [name for name, _ in args.run]
    commands = {name: shlex.split(cmd) for name, cmd in args.run}
    runs: dict[str, list[dict]] = {name: [] for name in names}
    log_path = args.out.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        for round_index in range(args.warmup + args.repeat):
            for name in names:
                log.write(f"\n### round {round_index} {name}: {shlex.join(commands[name])}\n")
                log.flush()
                result = run_once(commands[name], log)
                print(f"round {round_index} {name}: {result['wall_s']:.1f} s (rc {result['rc']})", flush=True)
                if round_index >= args.warmup:
                    runs[name].append(result)
    base = names[0]
    summary = {}
    for name in names:
        per_image = [r["wall_s"] / args.images for r in runs[name]]
        ratios = [b["wall_s"] / r["wall_s"] for b, r in zip(runs[base], runs[name])]
        summary[name] = {"command": shlex.join(commands[name]), "per_image_s": spread(per_image),
                         "cpu_per_image_s": spread([r["cpu_s"] / args.images for r in runs[name]]),
                         "peak_rss_mib": max(r["peak_rss_mib"] for r in runs[name]),
                         "speedup_vs_" + base: spread(ratios, higher_is_better=True), "exit_codes": sorted({r["rc"] for r in runs[name]}),
                         "runs": runs[name]}
    report = {"machine": describe(), "images": args.images, "repeat": args.repeat, "warmup": args.warmup,
              "baseline": base, "results": summary}
    write_json(args.out.with_suffix(".json"), report)
    write_text(args.out.with_suffix(".md"), markdown(report))
    print(markdown(report))
    if any(s["exit_codes"] != [0] for s in summary.values()):
        sys.exit(f"a command failed: see {log_path}")


def markdown(report: dict) -> str:
    base = report["baseline"]
    lines = [f"# Whole process per image ({report['images']} images, {report['repeat']} alternating rounds)", "",
             machine_line(report["machine"]), "",
             f"| command | per image best | median | worst | CPU s per image (median) | peak RSS | "
             f"vs {base} (per round: best / median / worst) |",
             "|---|---|---|---|---|---|---|"]
    for name, s in report["results"].items():
        p, r = s["per_image_s"], s["speedup_vs_" + base]
        lines.append(f"| {name} | {p['best']:.2f} s | {p['median']:.2f} s | {p['worst']:.2f} s | "
                     f"{s['cpu_per_image_s']['median']:.2f} | {s.get('peak_rss_mib', 0):,.0f} MiB | "
                     f"{r['best']:.2f}x / {r['median']:.2f}x / {r['worst']:.2f}x |")
    lines += ["", "Commands:", ""] + [f"- {name}: `{s['command']}`" for name, s in report["results"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
