"""Does `bcdeploy infer`'s memory stay flat over a long directory? Resident memory against images done.

    python benchmarks/memory_flat.py MODEL DIR --out RESULT [--work WORK] [INFER OPTIONS, e.g. --hint latency]

Runs `bcdeploy infer MODEL DIR` once (in a fresh output folder of its own), samples the process tree's
resident memory every 0.2 s and the number of ledger rows committed (images done) beside it, and
reports the peak over the whole run against the bound the issue sets: 3x the largest decoded image
(H x W x 3 bytes) plus the model's working set (the compute-only process's peak,
benchmarks/plain_loop.py). Flat means no growth with images done: the run after its first 10 images
is cut into quarters, and the last quarter's median and peak are no higher than the first quarter's
(within 5 %); a single early peak is no baseline, as peaks come and go with each image's size and the
allocator. Writes RESULT.json and RESULT.md with the machine's CPU model and flags.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_memory import tree_rss_bytes  # noqa: E402

from bcdeploy.bench.report import machine_line  # noqa: E402
from bcdeploy.bench.sysinfo import describe  # noqa: E402
from bcdeploy.fileio import write_json, write_text  # noqa: E402

MIB = 2 ** 20
_FLAT_WORDS = {True: "yes", False: "NO", None: "n/a (too few images)"}


def images_done(ledger: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=0.1)) as db:
            return int(db.execute("SELECT count(*) FROM images").fetchone()[0])
    except sqlite3.Error:
        return 0


def largest_image_bytes(folder: Path) -> int:
    import tifffile

    largest = 0
    for path in folder.iterdir():
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                height, width = tif.pages[0].shape[:2]
            largest = max(largest, height * width * 3)
    return largest


def model_working_set(model: Path, folder: Path, work: Path) -> int:
    """Peak RSS (bytes) of the model's compute alone at the same input (plain_loop.py --compute-only on
    two images: over all of them it would hold every preprocessed input and inflate the bound)."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("plain_loop.py")), str(model), str(folder),
                             str(work / "plain"), "--compute-only", "--limit", "2"], stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.1)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("inputs", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("bench_work/memory_flat"))
    args, infer_options = parser.parse_known_args()  # the rest go to bcdeploy infer
    out_dir = args.work / args.out.name  # a run's own folder: a ledger shared between runs would count both
    shutil.rmtree(out_dir, ignore_errors=True)
    ledger = out_dir / "ledger.sqlite"
    samples: list[tuple[float, int, int]] = []  # (seconds, images done, rss bytes)
    start = time.perf_counter()
    proc = subprocess.Popen(["bcdeploy", "infer", "--model", str(args.model), str(args.inputs), "--out", str(out_dir),
                             "--overwrite", *infer_options], stdout=subprocess.DEVNULL)
    while proc.poll() is None:
        samples.append((time.perf_counter() - start, images_done(ledger), tree_rss_bytes(proc.pid)))
        time.sleep(0.2)
    if proc.returncode != 0:
        sys.exit(f"bcdeploy infer exited {proc.returncode}")
    total = images_done(ledger)
    peak = max(rss for _, _, rss in samples)
    quarters = _quarters(samples, total)
    flat = (all(quarters[-1][k] <= quarters[0][k] * 1.05 for k in ("median", "peak")) if len(quarters) == 4
            else None)  # too few images to tell
    image, working = largest_image_bytes(args.inputs), model_working_set(args.model, args.inputs, args.work)
    bound = 3 * image + working
    report = {"machine": describe(), "model": str(args.model), "infer_options": infer_options, "images": total,
              "seconds": round(samples[-1][0], 1),
              "quarters_mib": [{k: round(v / MIB) if k != "images" else v for k, v in q.items()} for q in quarters],
              "peak_mib": round(peak / MIB), "flat": flat,
              "largest_decoded_image_mib": round(image / MIB), "model_working_set_mib": round(working / MIB),
              "bound_mib": round(bound / MIB), "within_bound": peak <= bound,
              "samples": [[round(t, 1), done, round(rss / MIB)] for t, done, rss in samples[::5]]}
    write_json(args.out.with_suffix(".json"), report)
    command = " ".join(["bcdeploy infer --model", args.model.name, *infer_options])
    lines = [f"# Memory over a {total}-image run (`{command}`)", "",
             machine_line(report["machine"]), "",
             "| quarter (images done) | median | peak |", "|---|---|---|",
             *(f"| {q['images']} | {q['median']} MiB | {q['peak']} MiB |" for q in report["quarters_mib"]), "",
             "| peak | flat (last quarter <= first + 5 %) | 3 x largest image + model working set | within |",
             "|---|---|---|---|",
             f"| {report['peak_mib']} MiB | {_FLAT_WORDS[flat]} | 3 x {report['largest_decoded_image_mib']} + "
             f"{report['model_working_set_mib']} = {report['bound_mib']} MiB | {'yes' if report['within_bound'] else 'NO'} |"]
    write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


def _quarters(samples: list[tuple[float, int, int]], total: int) -> list[dict]:
    """Median and peak resident memory over each quarter of the images after the first 10 (start-up and
    the first images fill the pipeline; growth after that is what a leak looks like). Fewer than 14
    images after those: one window over them all, so flatness cannot be judged (one quarter)."""
    start = min(10, total // 2)
    edges = [start + (total - start) * q // 4 for q in range(5)] if total - start >= 14 else [start, total]
    out = []
    for low, high in zip(edges, edges[1:]):
        window = [rss for _, done, rss in samples if low <= done < high or (high == total and done == total)]
        if window:
            out.append({"images": f"{low}-{high}", "median": statistics.median(window), "peak": max(window)})
    return out


if __name__ == "__main__":
    main()
