"""Commands of the runtime: `infer` (torch-free) and `predict` (the same through PyTorch/MMSeg).

Each option section (cli/_sections.py) parses into one typed object; the body hands them to one
library call (scale.api.infer, runtime.run.run) and prints the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import click
import cloup

from bcdeploy.cli import _sections as args
from bcdeploy.cli._progress import progress


def _summary_and_exit(summary, out, sent=None) -> None:
    """The model's information lines (the `cpu:` line: only after a run that ran, so a refused command
    stays one `error:` line), the summary, what was sent, and the exit status (130 after Ctrl-C; 1 when
    an image failed or a result is left unsent)."""
    for note in summary.notes:
        click.echo(note, err=True)
    _report(summary, out, sent)


def _deliver(destination, out, summary):
    """After the run: the outbox's due results (this run's and any an earlier run left) to `destination`."""
    if destination is None or summary.interrupted:
        return None
    from bcdeploy.pacs.sender import send_due

    return destination.describe(), send_due(out, destination)


# A file name may hold a newline (POSIX allows it): escaped, so one failure is one line and cannot forge ours.
_CONTROL = {code: f"\\x{code:02x}" for code in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def _report(summary, out, sent=None) -> None:
    click.echo(f"processed {summary.processed}, skipped {summary.skipped} (done earlier), failed {len(summary.failed)} "
               f"in {summary.seconds:.1f} s")
    for failure in summary.failed:
        click.echo(f"  failed: {failure['error'].translate(_CONTROL)}", err=True)
    if summary.processed + summary.skipped == 0 and not summary.interrupted:
        click.echo("  failed: no image was processed", err=True)
    click.echo(f"masks: {out}/masks/  overlays: {out}/vis/  report: {summary.results_path}, {out}/lesions.csv, "
               f"{out}/cases.csv  ledger: {summary.ledger_path}")
    if summary.highest_case:
        name, score = summary.highest_case
        click.echo(f"highest case score {score:.3f} ({name}); every image's in {out}/cases.csv")
    unsent = False
    if sent is not None:
        where, drained = sent
        click.echo(f"sent {drained.sent} DICOM result(s) to {where}")
        if drained.refused:
            click.echo(f"  failed: {drained.refused} result(s) refused by {where} for good (see the lines above)", err=True)
        if drained.due:
            click.echo(f"  failed: {drained.due} result(s) not sent to {where} ({drained.error}); they wait in "
                       f"{out}: run the same command again to send them (nothing is segmented again)", err=True)
        unsent = bool(drained.due or drained.refused)
    if summary.interrupted:
        click.echo(f"interrupted: {summary.processed} image(s) finished in this run and recorded in "
                   f"{summary.ledger_path}; run the same command again to continue", err=True)
        raise SystemExit(130)
    if not summary.ok or unsent:
        raise SystemExit(1)


@cloup.command(show_constraints=True)
@args.INPUTS_ARGUMENT
@args.InputArgs.section()
@args.OutputArgs.section()
@args.ModelArgs.section()
@args.SlidingWindowArgs.section()
@args.PacsArgs.section()
@args.ScaleOutArgs.section()
def infer(inputs, **values) -> None:
    """Segment mammograms with an exported model (no torch, no MMSeg); INPUTS are files, folders and
    patterns, or --dicomweb URL reads them from a PACS and stores a DICOM SEG for each back."""
    from bcdeploy.scale.api import infer as infer_images

    pacs = args.PacsArgs.parse(values)
    outputs = args.OutputArgs.parse(values, pacs=pacs.destination is not None)
    source = pacs.source(inputs, no_phi=outputs.no_phi)
    if pacs.dry_run:
        _print_plan(source)
        return
    input_args = args.InputArgs.parse(values)
    model = args.ModelArgs.parse(values)
    sliding_window = args.SlidingWindowArgs.parse(values, batch_size=model.batch_size)
    ray = args.ScaleOutArgs.parse(values)
    if ray is not None and not isinstance(source, tuple):
        raise click.UsageError("--ray runs on files (INPUTS); --dicomweb runs without --ray for now")
    args.parsed_all(values)
    with progress("infer") as tick:
        options = args.run_options(input_args, outputs, batch_size=model.batch_size, extra_inputs=[model.model],
                                   on_progress=tick, deliver=pacs.destination is not None)
        summary = infer_images(model.model, source, options, backend=model.backend, sliding_window=sliding_window,
                               ray=ray)
    _summary_and_exit(summary, outputs.out, _deliver(pacs.destination, outputs.out, summary))


def _print_plan(source) -> None:
    """--dry-run: the instances a run would fetch, one per line, as `bcdeploy dicom list` prints them."""
    from bcdeploy.cli.dicom_cmds import echo_refs

    echo_refs(source.plan(), f"would be fetched from {source.url}; nothing fetched")


@dataclass(frozen=True, kw_only=True)
class TorchModelArgs(args.OptionGroup):
    """`predict`'s model: a checkpoint run by PyTorch/MMSeg, opened by `open(images)` on the run's call."""

    title: ClassVar[str] = "Model (PyTorch/MMSeg)"
    ckpt: str
    config: str | None
    device: str
    trust_checkpoint: bool
    batch_size: int

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--ckpt", required=True, type=click.Path(dir_okay=False),
                         help="MMEngine checkpoint (iter_N.pth)."),
            click.option("--config", type=click.Path(dir_okay=False), help="Default: the config beside the checkpoint."),
            click.option("--device", default="cpu", show_default=True),
            click.option("--trust-checkpoint", is_flag=True,
                         help="Allow arbitrary pickles in CKPT (only for files you trust)."),
            args.BATCH_SIZE,
        ]

    @classmethod
    def build(cls, **values: Any) -> TorchModelArgs:
        return cls(**values)

    @property
    def files(self) -> list[str]:
        """What the ledger binds the results to."""
        return [self.ckpt, *filter(None, [self.config])]

    def open(self, _images: int) -> Any:
        from bcdeploy.train.predict import TorchPredictor

        return TorchPredictor(self.config, self.ckpt, self.device, self.trust_checkpoint)


@cloup.command()
@args.INPUTS_ARGUMENT
@args.InputArgs.section()
@args.OutputArgs.section()
@TorchModelArgs.section()
def predict(inputs, **values) -> None:
    """Segment mammograms through PyTorch/MMSeg, writing the same files as `infer` (for comparison)."""
    from bcdeploy.runtime.run import run

    outputs = args.OutputArgs.parse(values)
    input_args = args.InputArgs.parse(values)
    model = TorchModelArgs.parse(values)
    args.parsed_all(values)
    source = args.no_pacs_source(inputs)
    with progress("predict") as tick:
        options = args.run_options(input_args, outputs, batch_size=model.batch_size, extra_inputs=model.files,
                                   on_progress=tick)
        summary = run(model.open, source, options)
    _summary_and_exit(summary, outputs.out)


COMMANDS = [infer, predict]
