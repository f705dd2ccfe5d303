"""Commands of the runtime: `infer` (torch-free) and `predict` (the same through PyTorch/MMSeg)."""

from __future__ import annotations

import click

from bcdeploy.cli._options import backend_options, model_help, parse_hw, runner_options
from bcdeploy.cli._progress import progress

_COMMON = [
    click.argument("inputs", nargs=-1, required=True),
    click.option("--out", default="infer_out", show_default=True, type=click.Path(file_okay=False)),
    click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 256)),
    click.option("--metadata", type=click.Path(dir_okay=False), help="DMID metadata: overlays show `| Target: B`."),
    click.option("--recursive", "-r", is_flag=True, help="Descend into sub-directories of INPUTS."),
    click.option("--overwrite", is_flag=True, help="Redo images whose outputs exist."),
]


def _common(fn):
    for decorator in reversed(_COMMON):
        fn = decorator(fn)
    return fn


def _report(summary, out) -> None:
    click.echo(f"processed {summary.processed}, skipped {summary.skipped} (done earlier), failed {len(summary.failed)} "
               f"in {summary.seconds:.1f} s")
    for failure in summary.failed:
        click.echo(f"  failed: {failure['error']}", err=True)
    click.echo(f"masks: {out}/masks/  overlays: {out}/vis/  report: {summary.results_path}, {out}/lesions.csv")
    if summary.failed:
        raise SystemExit(1)


@click.command()
@click.option("--engine", "model", required=True, type=click.Path(dir_okay=False),
              help=model_help())
@_common
@backend_options()
@click.option("--sliding-window", is_flag=True, help="Tile the full-resolution image instead of resizing it.")
@click.option("--window", default=None, help="Sliding-window tile HxW (default: the model's input size).")
@click.option("--overlap", default=0.25, show_default=True, type=click.FloatRange(0.0, 0.95))
@click.option("--blend", type=click.Choice(["gaussian", "constant"]), default="gaussian", show_default=True)
def infer(model, inputs, out, batch_size, metadata, recursive, overwrite, sliding_window, window, overlap, blend,
          **backend_values) -> None:
    """Segment mammograms with an exported model (no torch, no MMSeg)."""
    from pathlib import Path

    from bcdeploy.runtime import batch
    from bcdeploy.runtime.segmenter import Segmenter, SlidingWindow

    options = runner_options(model, **backend_values)
    sw = SlidingWindow(parse_hw(window), overlap, blend, batch_size) if sliding_window else None
    with Segmenter(model, sw, options=options) as segmenter:
        def predict(images, _paths):
            return segmenter.predict([img.bgr for img in images])

        info = {"path": str(model), **segmenter.runner.describe(), "precision": segmenter.meta.precision,
                "sliding_window": vars(sw) if sw else None}
        with progress("infer") as tick:
            summary = batch.run(predict, info, segmenter.meta.classes, segmenter.meta.palette, inputs,
                                batch.RunOptions(Path(out), batch_size, overwrite, recursive, metadata), tick)
    _report(summary, out)


@click.command()
@click.option("--config", type=click.Path(dir_okay=False), help="Default: the config beside the checkpoint.")
@click.option("--ckpt", required=True, type=click.Path(dir_okay=False))
@_common
@click.option("--device", default="cpu", show_default=True)
@click.option("--trust-checkpoint", is_flag=True)
def predict(config, ckpt, inputs, out, batch_size, metadata, recursive, overwrite, device, trust_checkpoint) -> None:
    """Segment mammograms through PyTorch/MMSeg, writing the same files as `infer` (for comparison)."""
    from pathlib import Path

    from bcdeploy.runtime import batch
    from bcdeploy.train.predict import TorchPredictor

    predictor = TorchPredictor(config, ckpt, device, trust_checkpoint)
    with progress("predict") as tick:
        summary = batch.run(predictor, predictor.describe(), predictor.classes, predictor.palette, inputs,
                            batch.RunOptions(Path(out), batch_size, overwrite, recursive, metadata), tick)
    _report(summary, out)


COMMANDS = [infer, predict]
