"""Markdown tables and PNG plots for the benchmark JSON (ultralytics-style one-glance tables)."""

from __future__ import annotations

from pathlib import Path

from bcdeploy.fileio import atomic_path


def write_report(stem: Path | None, report: dict, table: str) -> None:
    """`stem`.json (the data) and `stem`.md (the table) for a benchmark, then the table on stdout; with no
    stem only the table. One writer for every benchmark script and `bcdeploy bench`."""
    from bcdeploy.fileio import write_json, write_text

    if stem is not None:
        stem = Path(stem)
        write_json(stem.with_suffix(".json"), report)
        write_text(stem.with_suffix(".md"), table)
    print(table)


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def machine_line(machine: dict) -> str:
    """CPU, cores, GPU, Python; the CPU flags and the measured FP32 matmul peak when recorded."""
    from bcdeploy.bench.sysinfo import flags_line

    gpu = machine.get("gpu") or "no GPU"
    line = f"{machine['cpu']}, {machine['cores']} cores, {gpu}; Python {machine['python']}"
    if "cpu_flags" in machine:
        line += f"; {flags_line(machine['cpu_flags'])}"
    peak = machine.get("fp32_matmul")
    if peak:
        line += f"; FP32 matmul peak {peak['peak_gflops']:.0f} GFLOP/s (n={peak['n']})"
    return line


def parity_markdown(report: dict) -> str:
    lines = [f"# Parity vs PyTorch/MMSeg ({len(report['images'])} images)", "", machine_line(report["machine"]), "",
             "| format | status | precision | size MB | agreement % | Dice vs ref (lesion classes) | mDice vs GT "
             "| lesions detected | max abs dlogit | gate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ref = report["reference"]
    lines.append(f"| {ref['model']} | ok | fp32 | - | 100 | 1 | {_fmt(ref.get('vs_ground_truth', {}).get('mDice'))} | "
                 f"{_detected(ref)} | 0 | reference |")
    for row in report["backends"]:
        if row["status"] != "ok":
            lines.append(f"| {row['model']} | {row['status']} | | | | | | | | |")
            continue
        lesion_dice = [v for k, v in row["dice_vs_reference"].items() if k != "background" and v is not None]
        dice = _fmt(sum(lesion_dice) / len(lesion_dice), ".4f") if lesion_dice else "-"
        gate = "pass" if row["passed"] else "FAIL: " + "; ".join(row["gate_failures"])
        lines.append(f"| {row['model']} | ok | {row['precision']} | {row['size_mb']} | {100 * row['agreement']:.3f} | {dice} | "
                     f"{_fmt(row.get('vs_ground_truth', {}).get('mDice'))} | {_detected(row)} | "
                     f"{_fmt((row.get('logits') or {}).get('max_abs'), '.2e')} | {gate} |")
    return "\n".join(lines) + "\n"


def _detected(row: dict) -> str:
    lesion = row.get("lesion")
    if not lesion or not lesion.get("gt_lesions"):
        return "-"
    return f"{lesion['detected']}/{lesion['gt_lesions']}"


def latency_markdown(report: dict) -> str:
    from bcdeploy.runtime.model.cpu import advise

    advice = advise(report["machine"].get("cpu_flags")).text()  # which variant to try on this CPU
    lines = ["# Latency", "", machine_line(report["machine"]), "", f"CPU advice: {advice}", "",
             "## Model compute (ms per batch)", "",
             "| format | backend | precision | batch | size | mean | p50 | p90 | p99 | images/s | GFLOP/s | of FP32 peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["entries"]:
        if e["status"] != "ok":
            lines.append(f"| {e['model']} | {e['status']} | | | | | | | | | | |")
            continue
        share = e.get("of_fp32_peak")
        lines.append(f"| {e['model']} | {e.get('backend')} | {e['precision']} | {e['batch']} | {e['size'][0]}x{e['size'][1]} | "
                     f"{e['mean_ms']:.1f} | {e['p50_ms']:.1f} | {e['p90_ms']:.1f} | {e['p99_ms']:.1f} | {e['throughput_ips']:.2f} | "
                     f"{_fmt(e.get('gflops_per_s'), '.0f')} | {'-' if share is None else f'{100 * share:.0f} %'} |")
    if report["end_to_end"]:
        lines += ["", "## End to end per image (decode + preprocess + infer + postprocess)", "",
                  "| format | precision | decode | preprocess | infer | postprocess | p50 | p99 | images/s | speed-up vs MMSeg |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for e in report["end_to_end"]:
            s = e["stages_ms"]
            lines.append(f"| {e['model']} | {e['precision']} | {s['decode']:.1f} | {s['preprocess']:.1f} | {s['infer']:.1f} | "
                         f"{s['postprocess']:.1f} | {e['p50_ms']:.1f} | {e['p99_ms']:.1f} | {e['throughput_ips']:.2f} | "
                         f"{_fmt(e.get('speedup_vs_mmseg'))}x |")
        base = report.get("mmseg_baseline")
        if base:
            lines.append(f"| {base['model']} | fp32 | | | | | {base['p50_ms']:.1f} | {base['p99_ms']:.1f} | "
                         f"{base['throughput_ips']:.2f} | 1.00x |")
    return "\n".join(lines) + "\n"


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def plot_latency(report: dict, path: Path) -> None:
    plt = _pyplot()
    ok = [e for e in report["entries"] if e["status"] == "ok"]
    labels = sorted({f"{e['model']}" for e in ok})
    batches = sorted({e["batch"] for e in ok})
    sizes = sorted({tuple(e["size"]) for e in ok})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        width = 0.8 / max(1, len(batches))
        for j, batch in enumerate(batches):
            values = [next((e["p50_ms"] for e in ok if e["model"] == m and e["batch"] == batch and tuple(e["size"]) == size), 0)
                      for m in labels]
            ax.bar([i + j * width for i in range(len(labels))], values, width, label=f"batch {batch}")
        ax.set_xticks([i + width * (len(batches) - 1) / 2 for i in range(len(labels))], labels, rotation=20, ha="right")
        ax.set(ylabel="p50 ms per batch", title=f"{size[0]}x{size[1]}")
        ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_parity(report: dict, path: Path) -> None:
    plt = _pyplot()
    rows = [r for r in report["backends"] if r["status"] == "ok"]
    classes = report["classes"][1:]
    fig, ax = plt.subplots(figsize=(max(5, 1.5 * len(rows) + 2), 4))
    width = 0.8 / max(1, len(classes))
    for j, name in enumerate(classes):
        ax.bar([i + j * width for i in range(len(rows))], [r["dice_vs_reference"].get(name) or 0 for r in rows], width, label=name)
    ax.set_xticks([i + width * (len(classes) - 1) / 2 for i in range(len(rows))], [r["model"] for r in rows], rotation=20, ha="right")
    ax.set(ylabel="Dice vs PyTorch masks", ylim=(0, 1.05), title="Dice per backend")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _pyplot():
    from bcdeploy._imports import require

    matplotlib = require("matplotlib", "benchmark plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
