"""The batch run loop: inputs in; masks, overlays, ledger rows and reports out.

Three stages overlap: a reader thread reads, hashes and decodes the next batch (OpenCV and hashlib
release the GIL) while the main thread segments the current one, and a writer thread encodes and
writes outputs and commits each image's ledger row. Any exception while reading, segmenting or
writing one file becomes that file's failure line and ledger row; the run goes on. Only what makes
every later write fail too (no space, read-only file system, no permission) stops it, with one line.
Ctrl-C stops after the images in flight: the ledger is consistent and the reports list every image
finished so far.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcdeploy.errors import OutputError
from bcdeploy.fileio import refuse_overlap
from bcdeploy.runtime.imageio import DEFAULT_MAX_PIXELS
from bcdeploy.runtime.outputs import ALL_OUTPUTS
from bcdeploy.runtime.predictor import Predictor
from bcdeploy.runtime.run.identity import ModelIdentity, canonical
from bcdeploy.runtime.run.inputs import assign_names
from bcdeploy.runtime.run.ledger import Ledger
from bcdeploy.runtime.run.reports import write_reports
from bcdeploy.runtime.run.scheduling import background_thread
from bcdeploy.runtime.run.sources import FileSource, InputSource
from bcdeploy.runtime.run.stages import Outcome, Stages

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RunOptions:
    out: Path
    batch_size: int = 1
    overwrite: bool = False  # recompute even what the resume rule would skip
    recursive: bool = False
    targets: Mapping[str, str] = field(default_factory=dict)  # image stem -> 'M'/'B'/'N' for overlay labels
    max_pixels: int = DEFAULT_MAX_PIXELS
    on_progress: Callable[[str, int], None] | None = None
    extra_inputs: Sequence[str | Path] = ()  # other files the run reads (the model): out must not overlap them
    frame: int | None = None  # frame of multi-frame DICOM objects (0-based); None refuses them
    dicom_seg: bool = False  # a DICOM SEG per DICOM input (seg/<name>.dcm)
    no_phi: bool = False  # reports without patient/study/series/instance identifiers (phi.py)
    save: frozenset[str] = ALL_OUTPUTS  # which pictures to write: mask, biner, vis (`--save`)
    prefetch: Any = None  # a prefetch.FirstImagePrefetch started before the model opened, or None


@dataclass
class RunSummary:
    processed: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)
    results_path: Path | None = None
    ledger_path: Path | None = None
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Exit status 0: nothing failed and something was found (a run that processed nothing fails)."""
        return not self.failed and not self.interrupted and self.processed + self.skipped > 0


def run(predictor: Predictor, inputs: Sequence[str] | InputSource, options: RunOptions) -> RunSummary:
    """Segment `inputs` (files, folders, globs; or any InputSource, e.g. a PACS) into `options.out`;
    raises OutputError when outputs cannot be written at all."""

    def threads(run: RunContext, summary: RunSummary, interrupts: _Interrupts) -> OutputError | None:
        stages = Stages(predictor, run.ledger, run.out, run.run_id, model_identity(run.model, options), run.rows,
                        options, run.source)
        return _run_pipeline(stages, run.named, summary, options, interrupts)

    return execute(predictor.describe, list(predictor.classes), inputs, options, threads)


@dataclass
class RunContext:
    """What a pipeline gets: the open ledger, this run's row id, the model's describe(), the ledger rows
    by source as they were before the run, the (item, output name) pairs to process and where they come from."""

    ledger: Ledger
    run_id: int
    model: dict
    rows: dict[str, dict]
    named: list
    out: Path
    source: InputSource


Pipeline = Callable[[RunContext, RunSummary, "_Interrupts"], "OutputError | None"]


def execute(describe: Callable[[], dict], classes: list[str], inputs: Sequence[str] | InputSource,
            options: RunOptions, pipeline: Pipeline) -> RunSummary:
    """The run around a pipeline (local threads here, Ray in bcdeploy/scale/ray_infer.py): inputs and
    names, the ledger's run row and input failures, Ctrl-C, then the closing row and the reports."""
    start = time.perf_counter()
    out = Path(options.out)
    source = inputs if isinstance(inputs, InputSource) else FileSource(inputs, options.recursive)
    refuse_overlap(out, [p for p in [*source.local_paths(), *options.extra_inputs] if _resolvable(p)])
    items, input_failures = source.find()
    ledger = Ledger(out)
    summary = RunSummary(ledger_path=ledger.path)
    try:
        model = describe()
        run_id = ledger.begin_run(model)
        for failure in input_failures:
            ledger.add_failure(run_id, failure.item, failure.error)
        if not items and not input_failures:
            ledger.add_failure(run_id, source.describe(), f"no images in {source.describe()}")
        rows = {r["source"]: r for r in ledger.rows()}
        named = assign_names(items, {key: r["name"] for key, r in rows.items()})
        with _Interrupts() as interrupts:
            fatal = pipeline(RunContext(ledger, run_id, model, rows, named, out, source), summary, interrupts)
            summary.interrupted = summary.interrupted or interrupts.hits > 0
            reports = {"no_phi": options.no_phi, "identifiers": source.identifiers() if options.no_phi else set()}
            return _close(ledger, run_id, summary, fatal, model, classes, out, start, reports)
    finally:
        ledger.close()


def model_identity(model: dict, options: RunOptions) -> ModelIdentity:
    """The model's identity, plus the run options that change what an image's outputs are: the frame
    decoded, whether a SEG belongs to them, which pictures are saved (each only when not the default,
    so older ledgers keep matching)."""
    identity = ModelIdentity.of(model)
    save = sorted(options.save) if options.save != ALL_OUTPUTS else None
    extra = {k: v for k, v in (("frame", options.frame), ("dicom_seg", options.dicom_seg), ("save", save))
             if v not in (None, False)}
    if not extra:
        return identity
    return ModelIdentity(identity.sha256, canonical({**model.get("mask_options", {}), "run": extra}))


def _close(ledger: Ledger, run_id: int, summary: RunSummary, fatal: OutputError | None, model: dict,
           classes: list[str], out: Path, start: float, reports: dict) -> RunSummary:
    """End the run's ledger row and regenerate the reports; raise the error that stopped the run."""
    status = "interrupted" if summary.interrupted else ("stopped" if fatal else "done")
    summary.seconds = time.perf_counter() - start
    counts = {"processed": summary.processed, "skipped": summary.skipped}
    with _keep_first(fatal) as first:
        summary.failed = ledger.run_failures(run_id)
        ledger.end_run(run_id, status, **counts, failed=len(summary.failed))
        summary.results_path = write_reports(out, ledger, run_id, {
            **counts, "failed": len(summary.failed), "seconds": round(summary.seconds, 2),
            "interrupted": summary.interrupted}, model, classes, **reports)
    if first.error:
        raise OutputError(f"{first.error}; {summary.processed} image(s) finished in this run are kept "
                          f"(ledger {ledger.path}); fix that and run the same command again")
    return summary


def _resolvable(path: str | Path) -> bool:
    """A symlink loop cannot overlap anything (it names no file); find_inputs reports it."""
    try:
        Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return False
    return True


def _run_pipeline(stages: Stages, named: list, summary: RunSummary, options: RunOptions,
                  interrupts: _Interrupts) -> OutputError | None:
    """Read ahead, segment, write behind; returns the error that stopped the run, if one did."""
    batches = [named[i:i + options.batch_size] for i in range(0, len(named), options.batch_size)]
    fatal: list[OutputError] = []
    pending: deque = deque()

    def collect(limit: int) -> None:
        while len(pending) > limit:
            count(pending.popleft().result(), summary, fatal)

    with ThreadPoolExecutor(1, "decode", background_thread) as reader, \
            ThreadPoolExecutor(1, "write", background_thread) as writer:
        next_batch = reader.submit(stages.load_batch, batches[0]) if batches else None
        interrupts.armed = True
        try:
            for index in range(len(batches)):
                loaded = next_batch.result()
                next_batch = reader.submit(stages.load_batch, batches[index + 1]) if index + 1 < len(batches) else None
                for work, prediction in stages.segment(loaded):
                    pending.append(writer.submit(stages.finish, work, prediction))
                collect(2 * options.batch_size)  # bounded write-behind: memory stays a few images
                if fatal:
                    break
                for work in loaded:
                    if options.on_progress:
                        options.on_progress(work.name, len(named))
            collect(0)
        except KeyboardInterrupt:
            pass
        finally:
            interrupts.armed = False
        if interrupts.hits:
            summary.interrupted = True
            if next_batch is not None:
                next_batch.cancel()
            collect(0)  # the images already segmented are finished and recorded
    return fatal[0] if fatal else None


def count(outcome: Outcome, summary: RunSummary, fatal: list[OutputError]) -> None:
    if outcome.status == "ok":
        summary.processed += 1
    elif outcome.status == "skipped":
        summary.skipped += 1
    elif outcome.status == "fatal" and not fatal:
        fatal.append(outcome.error)


class _Interrupts:
    """Ctrl-C while images flow raises KeyboardInterrupt in the main thread, once; any later Ctrl-C, or one
    outside the pipeline, only marks the run interrupted, so no ledger commit or report is cut in half."""

    def __init__(self) -> None:
        self.hits = 0
        self.armed = False
        self.previous = None

    def handler(self, signum, frame) -> None:
        self.hits += 1
        if self.hits == 1 and self.armed:
            raise KeyboardInterrupt

    def __enter__(self) -> "_Interrupts":
        try:
            self.previous = signal.signal(signal.SIGINT, self.handler)
        except ValueError:  # not the main thread: signals are the caller's business
            self.previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class _First:
    error: OutputError | None = None


@contextlib.contextmanager
def _keep_first(fatal: OutputError | None) -> Iterator[_First]:
    """Run the closing writes; when the run already stopped on an error, a second one (the report on
    the same full disk) is not news: keep the first."""
    first = _First()
    first.error = fatal
    try:
        yield first
    except OutputError as err:
        if fatal is None:
            raise
        log.debug("closing writes failed too: %s", err)

