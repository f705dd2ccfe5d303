"""`bcdeploy bench parity`, `bcdeploy bench latency` and `bcdeploy bench timeline`."""

from __future__ import annotations

from pathlib import Path

import click
import cloup

from bcdeploy.cli._options import backend_option_list, flag, parse_hw
from bcdeploy.cli._progress import progress
from bcdeploy.cli._sections import section


@click.group()
def bench() -> None:
    """Benchmarks: Dice parity and latency across backends and precisions."""


def _images(inputs, recursive=False) -> list[Path]:
    from bcdeploy.errors import InputError
    from bcdeploy.runtime.run import find_inputs

    items, failures = find_inputs(inputs, recursive)
    paths = [Path(item.source) for item in items]
    if failures:
        raise InputError("; ".join(f.error for f in failures))
    if not paths:
        raise InputError(f"no images in {' '.join(inputs)}")
    return paths


def _specs(models, **shared):
    """`--models` values (repeatable, or space-separated) with the options given for the whole list."""
    from bcdeploy.bench.models import parse_specs

    def spell(name: str) -> str:  # a precision is asked for as model#precision
        return "#precision" if name == "precision" else flag(name)

    return parse_specs([m for item in models for m in item.split()], spell, **shared)


def _refuse_overlap(out: str, specs, *inputs) -> None:
    """--out is filled with reports: it may not be, hold or sit inside anything the bench reads."""
    from bcdeploy.fileio import refuse_overlap

    refuse_overlap(out, [*inputs, *(spec.path for spec in specs)], "--out")


def _write_report(out: str, name: str, report: dict, markdown, plot) -> None:
    """OUT/<name>.json, .md and .png, then the table on stdout."""
    from bcdeploy.fileio import write_json, write_text

    out_dir = Path(out)
    write_json(out_dir / f"{name}.json", report)
    table = markdown(report)
    write_text(out_dir / f"{name}.md", table)
    plot(report, out_dir / f"{name}.png")
    click.echo(table)
    click.echo(f"wrote {out_dir}/{name}.json, {name}.md, {name}.png")


@bench.command("parity", cls=cloup.Command)
@click.argument("inputs", nargs=-1, required=True)
@section(
    "Reference and contenders",
    click.option("--ckpt", required=True, type=click.Path(dir_okay=False), help="The trained checkpoint (reference)."),
    click.option("--config", type=click.Path(dir_okay=False)),
    click.option("--models", required=True, multiple=True, help="Exported models; repeat or list (path[#bf16])."),
    *backend_option_list("provider"),
)
@section(
    "Gates",
    click.option("--labels", type=click.Path(file_okay=False), help="Ground-truth annotation PNGs (by image stem)."),
    click.option("--min-agreement", default=0.999, show_default=True, type=float),
    click.option("--max-dice-drop", default=0.01, show_default=True, type=float),
)
@section("Outputs", click.option("--out", default="bench_parity", show_default=True, type=click.Path(file_okay=False)))
def parity(ckpt, config, models, inputs, labels, out, provider, min_agreement, max_dice_drop) -> None:
    """Masks of every backend vs PyTorch/MMSeg and vs ground truth; exits 1 below the gates."""
    from bcdeploy.bench.parity import run_parity
    from bcdeploy.bench.report import parity_markdown, plot_parity

    specs = _specs(models, provider=provider)
    _refuse_overlap(out, specs, *inputs, labels, ckpt, config)
    with progress("parity") as tick:
        report = run_parity(ckpt, specs, _images(inputs), labels=labels, config=config, min_agreement=min_agreement,
                            max_dice_drop=max_dice_drop, on_progress=tick)
    _write_report(out, "parity", report, parity_markdown, plot_parity)
    if not report["passed"]:
        raise SystemExit(1)


@bench.command("latency", cls=cloup.Command)
@section(
    "Models",
    click.option("--models", required=True, multiple=True, help="Exported models; repeat or list (path[#bf16])."),
    click.option("--ckpt", type=click.Path(dir_okay=False), help="Also time PyTorch eager (and the MMSeg baseline)."),
    click.option("--config", type=click.Path(dir_okay=False)),
    *backend_option_list("threads", "provider"),
)
@section(
    "Workload",
    click.option("--sizes", multiple=True, default=("640x640",), show_default=True, help="HxW, repeatable."),
    click.option("--batch-sizes", multiple=True, type=int, default=(1,), show_default=True),
    click.option("--images", type=click.Path(file_okay=False), help="Images for end-to-end timing."),
    click.option("--mmseg-baseline", is_flag=True, help="Time MMSeg's inference_model on --images (needs --ckpt)."),
    click.option("--min-seconds", default=2.0, show_default=True, type=float, help="Minimum timing per entry."),
)
@section("Outputs", click.option("--out", default="bench_latency", show_default=True, type=click.Path(file_okay=False)))
def latency(models, ckpt, config, sizes, batch_sizes, images, mmseg_baseline, min_seconds, threads, provider, out) -> None:
    """Latency (mean/std/p50/p90/p95/p99, throughput) per backend, precision, batch and size."""
    from bcdeploy.bench.latency import run_latency
    from bcdeploy.bench.report import latency_markdown, plot_latency
    from bcdeploy.errors import InputError

    if mmseg_baseline and not (ckpt and images):
        raise InputError("--mmseg-baseline needs --ckpt and --images")
    specs = _specs(models, threads=threads, provider=provider)
    _refuse_overlap(out, specs, images, ckpt, config)
    sizes = [parse_hw(s) for item in sizes for s in item.split()]
    image_paths = _images([images]) if images else []
    with progress("latency") as tick:
        report = run_latency(specs, sizes, batch_sizes, checkpoint=ckpt, config=config, images=image_paths,
                             mmseg_baseline=mmseg_baseline, min_seconds=min_seconds, threads=threads or 0,
                             on_progress=tick)
    _write_report(out, "latency", report, latency_markdown, plot_latency)


@bench.command("cpu")
@click.argument("export_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--runs", default=5, show_default=True, type=click.IntRange(1, 100), help="Timed runs per model.")
def cpu(export_dir, runs) -> None:
    """Time each CPU variant of EXPORT_DIR on this machine and store it there: `infer`'s cpu: line quotes it."""
    from bcdeploy.bench.cpu_speed import measure_export
    from bcdeploy.runtime.model.cpu import cpu_line
    from bcdeploy.runtime.model.speed_record import save_measurement

    folder = Path(export_dir)
    with progress("bench cpu") as tick:
        times, skipped = measure_export(folder, runs=runs, on_progress=tick)
    click.echo(cpu_line())
    base = times.get("model.onnx")
    for name, ms in sorted(times.items(), key=lambda item: item[1]):
        ratio = f"  {base / ms:.2f}x model.onnx" if base else ""
        click.echo(f"{name:<24} {ms:9.1f} ms{ratio}")
    for name, why in skipped.items():
        click.echo(f"{name:<24} skipped: {why}")
    if times:
        path = save_measurement(folder, times, runs=runs)
        click.echo(f"stored in {path}: infer's cpu: line quotes these on this machine")


@bench.command("timeline")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--run", "run_id", type=click.IntRange(min=1), help="Which run of the folder's ledger  [default: the last]")
@click.option("--png", default="timeline.png", show_default=True, type=click.Path(dir_okay=False),
              help="The Gantt chart; its figures go beside it as .json. Never inside OUT_DIR.")
def timeline(out_dir, run_id, png) -> None:
    """Per-stage Gantt chart of a `bcdeploy infer` run, from OUT_DIR's ledger (read only: OUT_DIR is left
    as it is): which stages overlapped, each stage's median ms, each thread's busy share, images/s."""
    from bcdeploy.bench.run_timeline import draw_run_timeline, timeline_markdown

    report = draw_run_timeline(out_dir, png, run_id)
    click.echo(timeline_markdown(report))
    click.echo(f"wrote {png}, {Path(png).with_suffix('.json')}")
