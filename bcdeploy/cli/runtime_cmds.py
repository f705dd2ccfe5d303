"""Commands of the runtime: `infer` (torch-free) and `predict` (the same through PyTorch/MMSeg)."""

from __future__ import annotations

import click

from bcdeploy.cli._dicom_run import dicom_options, input_source, pop_dicom_values, print_plan
from bcdeploy.cli._options import backend_options, model_help, parse_hw, runner_options
from bcdeploy.cli._progress import progress

_COMMON = [
    click.argument("inputs", nargs=-1),  # required unless --dicomweb (cli/_dicom_run.py checks)
    click.option("--out", default="infer_out", show_default=True, type=click.Path(file_okay=False),
                 help="Output folder: masks/, biner/, vis/ mirroring the inputs, ledger.sqlite, results.json, lesions.csv."),
    click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 256)),
    click.option("--metadata", type=click.Path(dir_okay=False), help="DMID metadata: overlays show `| Target: B`."),
    click.option("--recursive", "-r", is_flag=True, help="Descend into sub-folders of INPUTS."),
    click.option("--overwrite", is_flag=True, help="Recompute images the ledger says are done and unchanged."),
    click.option("--save", default=None, metavar="masks,biner,vis",
                 help="Which pictures to write per image (comma-separated) [default: all]; reports always."),
    click.option("--max-pixels", default=None, type=click.IntRange(1),
                 help="Refuse images larger than this many pixels before decoding them [default: 80000000]."),
]


def _common(fn):
    for decorator in reversed(_COMMON):
        fn = decorator(fn)
    return fn


def _run(predictor, inputs, out, batch_size, metadata, recursive, overwrite, max_pixels, save, label, extra_inputs,
         dicom=None, on_ray=None, notes=None, prefetch=None) -> None:
    """Forward to the run loop (or, with `on_ray(inputs, options)`, to Ray), print its summary and set
    the exit status (130 after Ctrl-C). `notes()` prints information lines just before the summary: only
    after a run that ran, so a refused command stays one `error:` line."""
    from pathlib import Path

    from bcdeploy.runtime.imageio import DEFAULT_MAX_PIXELS
    from bcdeploy.runtime.outputs import parse_save
    from bcdeploy.runtime.run import RunOptions, run

    targets = {}
    if metadata:
        from bcdeploy.data.metadata import image_targets

        targets = image_targets(metadata)
    with progress(label) as tick:
        options = RunOptions(
            out=Path(out), batch_size=batch_size, overwrite=overwrite, recursive=recursive, targets=targets,
            max_pixels=max_pixels or DEFAULT_MAX_PIXELS, save=parse_save(save), on_progress=tick, extra_inputs=extra_inputs,
            prefetch=prefetch,
            **(dicom.run_options() if dicom else {}))
        summary = on_ray(inputs, options) if on_ray else run(predictor, inputs, options)
    if notes:
        notes()
    _report(summary, out)


# A file name may hold a newline (POSIX allows it): escaped, so one failure is one line and cannot forge ours.
_CONTROL = {code: f"\\x{code:02x}" for code in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def _report(summary, out) -> None:
    click.echo(f"processed {summary.processed}, skipped {summary.skipped} (done earlier), failed {len(summary.failed)} "
               f"in {summary.seconds:.1f} s")
    for failure in summary.failed:
        click.echo(f"  failed: {failure['error'].translate(_CONTROL)}", err=True)
    if summary.processed + summary.skipped == 0 and not summary.interrupted:
        click.echo("  failed: no image was processed", err=True)
    click.echo(f"masks: {out}/masks/  overlays: {out}/vis/  report: {summary.results_path}, {out}/lesions.csv  "
               f"ledger: {summary.ledger_path}")
    if summary.interrupted:
        click.echo(f"interrupted: {summary.processed} image(s) finished in this run and recorded in "
                   f"{summary.ledger_path}; run the same command again to continue", err=True)
        raise SystemExit(130)
    if not summary.ok:
        raise SystemExit(1)


@click.command()
@click.option("--model", "--engine", "model", required=True, type=click.Path(dir_okay=False),
              help=model_help() + " --engine is the older name of --model.")
@_common
@backend_options()
@click.option("--sliding-window", is_flag=True, help="Tile the full-resolution image instead of resizing it.")
@click.option("--window", default=None, help="Sliding-window tile HxW (default: the model's input size).")
@click.option("--overlap", default=0.25, show_default=True, type=click.FloatRange(0.0, 0.95))
@click.option("--blend", type=click.Choice(["gaussian", "constant"]), default="gaussian", show_default=True)
@dicom_options(pacs=True)
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run on Ray: 'local' (a private loopback-only Ray), 'auto' or a cluster address. --out and "
                   "INPUTS must be shared storage at the same paths on every node (README 'Scale out').")
@click.option("--workers", default="1", show_default=True, metavar="N|MIN:MAX",
              help="With --ray: model actors, N or MIN:MAX (autoscaling).")
@click.option("--cpus-per-worker", default=1.0, show_default=True, type=click.FloatRange(0, min_open=True))
@click.option("--gpus-per-worker", default=0.0, show_default=True, type=click.FloatRange(0))
def infer(model, inputs, out, batch_size, metadata, recursive, overwrite, save, max_pixels, sliding_window, window, overlap,
          blend, ray_address, workers, cpus_per_worker, gpus_per_worker, **backend_values) -> None:
    """Segment mammograms with an exported model (no torch, no MMSeg); INPUTS are files, folders and
    patterns, or --dicomweb URL reads them from a PACS and stores a DICOM SEG for each back."""
    from pathlib import Path

    from bcdeploy.runtime.outputs import parse_save
    from bcdeploy.runtime.segmenter import Segmenter, SlidingWindow

    parse_save(save)  # a bad --save is one error line before the model loads (and before the cpu: line)
    dicom = pop_dicom_values(backend_values)
    source = input_source(inputs, dicom)
    if dicom.dry_run:
        print_plan(source)
        return
    options = runner_options(model, **backend_values)
    sw = SlidingWindow(parse_hw(window), overlap, blend, batch_size) if sliding_window else None
    if not ray_address and (workers, cpus_per_worker, gpus_per_worker) != ("1", 1.0, 0.0):
        raise click.UsageError("--workers, --cpus-per-worker and --gpus-per-worker need --ray ADDRESS")
    if ray_address:
        if not isinstance(source, tuple) or dicom.dicom_seg:
            raise click.UsageError("--ray runs on files (INPUTS); --dicomweb and --dicom-seg run without --ray for now")
        from bcdeploy.scale.ray_infer import RayOptions, parse_workers, run_on_ray

        scale = RayOptions(address=ray_address, workers=parse_workers(workers), cpus_per_worker=cpus_per_worker,
                           gpus_per_worker=gpus_per_worker, backend=options, sliding_window=sw)
        _run(None, inputs, out, batch_size, metadata, recursive, overwrite, max_pixels, save, "infer", [model], dicom,
             on_ray=lambda paths, run_options: run_on_ray(Path(model), paths, run_options, scale))
        return
    prefetch = None
    if isinstance(source, tuple):  # files: decode the first one while the model opens (runtime/run/prefetch.py)
        from bcdeploy.runtime.imageio import DEFAULT_MAX_PIXELS
        from bcdeploy.runtime.run.prefetch import FirstImagePrefetch

        prefetch = FirstImagePrefetch(source, recursive=recursive, max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                                      frame=dicom.frame)
    with Segmenter(model, sw, options=options) as segmenter:
        _run(segmenter, source, out, batch_size, metadata, recursive, overwrite, max_pixels, save, "infer", [model], dicom,
             notes=lambda: _cpu_line(segmenter), prefetch=prefetch)


def _cpu_line(segmenter) -> None:
    """One stderr line: what this CPU runs fast, and a faster variant of the same export beside the model
    if there is one. Named only: the model asked for is the model that runs. Not in the reports."""
    from bcdeploy.runtime.variants import start_line

    click.echo(start_line(segmenter.model_path, segmenter.meta, segmenter.runner.options), err=True)


@click.command()
@click.option("--config", type=click.Path(dir_okay=False), help="Default: the config beside the checkpoint.")
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False))
@_common
@click.option("--device", default="cpu", show_default=True)
@click.option("--trust-checkpoint", is_flag=True)
@dicom_options(pacs=False)
def predict(config, ckpt, inputs, out, batch_size, metadata, recursive, overwrite, save, max_pixels, device,
            trust_checkpoint, **dicom_values) -> None:
    """Segment mammograms through PyTorch/MMSeg, writing the same files as `infer` (for comparison)."""
    from bcdeploy.train.predict import TorchPredictor

    dicom = pop_dicom_values(dicom_values)
    inputs = input_source(inputs, dicom)
    predictor = TorchPredictor(config, ckpt, device, trust_checkpoint)
    _run(predictor, inputs, out, batch_size, metadata, recursive, overwrite, max_pixels, save, "predict",
         [ckpt, predictor.config], dicom)


COMMANDS = [infer, predict]
