"""The run around any driver, and the local driver: inputs in; masks, overlays, ledger rows and reports out.

Locally three stages overlap: a reader thread reads, hashes and decodes the next batch (OpenCV and
hashlib release the GIL) while the model segments the current one, and a writer thread encodes and
writes outputs and commits each image's ledger row. A model that serves several images at once
(OpenVINO's throughput streams: predictor.concurrency_of) segments that many batches together, on as
many threads; results are still written and counted in input order. The first batch is read while the
model opens (a one-image run waits for both otherwise). The reader thread also reduces each image to
what the model reads (model_view_of: resized to its input) and, where an overlay is drawn, to the
picture it is drawn on (drawing.picture_of, at most 2048 px), so the images waiting for the model or
the writer hold 1-9 MiB each instead of a 40 MiB mammogram. Any exception while reading, segmenting or
writing one file becomes that file's failure line and ledger row; the run goes on. Only what makes every
later write fail too (no space, read-only file system, no permission) stops it, with one line. Ctrl-C
stops after the images in flight: the ledger is consistent and the reports list every image finished so
far.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcdeploy.errors import OutputError
from bcdeploy.fileio import refuse_overlap
from bcdeploy.runtime.images.imageio import DEFAULT_MAX_PIXELS
from bcdeploy.runtime.notices import new_run
from bcdeploy.runtime.results.outputs import DEFAULT_OUTPUTS, dicom_kinds
from bcdeploy.runtime.model.predictor import Predictor, concurrency_of, model_view_of
from bcdeploy.runtime.run.driver import Driver, Interrupts, OpenedModel, RunPlan, RunSummary, commit
from bcdeploy.runtime.run.identity import ModelIdentity, canonical
from bcdeploy.runtime.run.inputs import assign_names
from bcdeploy.runtime.run.ledger import Ledger
from bcdeploy.runtime.run.memory import return_large_blocks
from bcdeploy.runtime.run.reader import Reader, Resume
from bcdeploy.runtime.run.reports import write_reports
from bcdeploy.runtime.run.scheduling import background_thread
from bcdeploy.runtime.run.segment import segment, to_model_view
from bcdeploy.runtime.run.sources import FileSource, InputSource
from bcdeploy.runtime.run.work import Work
from bcdeploy.runtime.run.writer import Writer

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
    no_phi: bool = False  # reports without patient/study/series/instance identifiers (phi.py)
    save: frozenset[str] = DEFAULT_OUTPUTS  # output kinds to write (runtime/results/outputs.py OUTPUT_KINDS keys)
    modalities: frozenset[str] | None = None  # DICOM modalities segmented (None: MG, DX, CR); others refused
    deliver: frozenset[str] = frozenset()  # DICOM output kinds queued in the outbox for a PACS (outbox.py)
    on_settled: Callable[[dict[str, Any]], None] | None = None  # each image's row once settled (driver.commit)
    cad_threshold: float | None = None  # the CAD SR's operating point (studies.OperatingPoint; None: the sidecar's)


def run(open_predictor: Callable[[int], Predictor], inputs: Sequence[str] | InputSource,
        options: RunOptions) -> RunSummary:
    """Segment `inputs` (files, folders, globs; or any InputSource, e.g. a PACS) into `options.out`;
    raises OutputError when outputs cannot be written at all. `open_predictor(images)` is called once, on
    this thread, after the first batch started reading, with the number of images the run has (a model
    may run several at once: backends' options.for_run); the caller owns what it opens (and closes it)."""
    return execute(inputs, options, LocalDriver(open_predictor, options.batch_size))


def execute(inputs: Sequence[str] | InputSource, options: RunOptions, driver: Driver) -> RunSummary:
    """The run around a driver: inputs and names, the ledger's run row and input failures, Ctrl-C, then
    the closing row and the reports."""
    start = time.perf_counter()
    new_run()  # a warning said once per run is said again in this one
    return_large_blocks()  # resident memory flat over a long run (run/memory.py)
    out = Path(options.out)
    source = inputs if isinstance(inputs, InputSource) else FileSource(inputs, options.recursive)
    refuse_overlap(out, [p for p in [*source.local_paths(), *options.extra_inputs] if _resolvable(p)])
    items, input_failures = source.find()
    works = [Work(item, target=options.targets.get(item.path.stem)) for item in items]
    reader = Reader(source=source, max_pixels=options.max_pixels, frame=options.frame,
                    keep_dicom=bool(dicom_kinds(options.save)), modalities=options.modalities)
    try:
        model = driver.open(reader, works)
        ledger = Ledger(out, deliver=options.deliver)
    except BaseException:
        driver.close()
        raise
    summary = RunSummary(ledger_path=ledger.path, notes=model.notes)
    try:
        run_id = ledger.begin_run(model.description)
        for failure in input_failures:
            ledger.add_failure(run_id, failure.item, failure.error)
        if not items and not input_failures:
            ledger.add_failure(run_id, source.describe(), f"no images in {source.describe()}")
        rows = {r["source"]: r for r in ledger.rows()}
        for work, (_, name) in zip(works, assign_names(items, {key: r["name"] for key, r in rows.items()})):
            work.name, work.previous = name, rows.get(str(work.item.source))
        identity = model_identity(model.description, options)
        writer = Writer(out=out, run_id=run_id, model=identity, classes=model.classes, palette=model.palette,
                        kinds=options.save, max_pixels=options.max_pixels, algorithm=model.algorithm,
                        series=_new_series(options.save))
        plan = RunPlan(works=works, reader=reader, resume=Resume(out=out, model=identity, overwrite=options.overwrite),
                       writer=writer, ledger=ledger, batch_size=options.batch_size, on_progress=options.on_progress,
                       on_settled=options.on_settled)
        with Interrupts() as interrupts:
            fatal = driver.process(plan, summary, interrupts)
            summary.interrupted = summary.interrupted or interrupts.hits > 0
            reports = {"no_phi": options.no_phi, "identifiers": source.identifiers() if options.no_phi else set()}
            studies = _study_outputs(options, model, writer, summary, works)
            return _close(ledger, run_id, summary, fatal, model=model.description, classes=model.classes, out=out,
                          start=start, reports=reports, studies=studies)
    finally:
        driver.close()
        ledger.close()


def _new_series(kinds: frozenset[str]) -> dict[str, str]:
    """A new DICOM series per DICOM output kind and run (results never mix with acquired images)."""
    from bcdeploy.runtime.results.dicom.uids import new_uid

    return {key: new_uid() for key in sorted(dicom_kinds(kinds))}


def model_identity(model: dict, options: RunOptions) -> ModelIdentity:
    """The model's identity, plus the run options that change what an image's outputs are: the frame
    decoded, whether a SEG belongs to them, which pictures are saved (each only when not the default,
    so older ledgers keep matching)."""
    identity = ModelIdentity.of(model)
    pictures = options.save - {"seg"}
    save = sorted(pictures) if pictures != DEFAULT_OUTPUTS else None
    extra = {k: v for k, v in (("frame", options.frame), ("dicom_seg", "seg" in options.save), ("save", save))
             if v not in (None, False)}
    if not extra:
        return identity
    return ModelIdentity(identity.sha256, canonical({**model.get("mask_options", {}), "run": extra}))


def _study_outputs(options: RunOptions, model: OpenedModel, writer: Writer, summary: RunSummary,
                   works: list[Work]) -> dict[str, Any] | None:
    """What the per-study outputs need (studies.py), when the run makes any: the CAD SR's operating
    point, said once on the terminal with where it came from."""
    if "cad" not in options.save:
        return None
    from bcdeploy.runtime.run.studies import OperatingPoint

    point = OperatingPoint.choose(options.cad_threshold, model.operating_points)
    summary.notes = (*summary.notes, f"CAD marks: 'Presentation Required' at lesion score >= {point.threshold:g} "
                                     f"({point.origin})")
    return {"algorithm": model.algorithm, "point": point, "series_uid": writer.series["cad"],
            "sources": {str(work.item.source) for work in works}}


def _close(ledger: Ledger, run_id: int, summary: RunSummary, fatal: OutputError | None, *, model: dict,
           classes: list[str], out: Path, start: float, reports: dict,
           studies: dict[str, Any] | None = None) -> RunSummary:
    """End the run's ledger row, write the per-study outputs and regenerate the reports; raise the error
    that stopped the run."""
    status = "interrupted" if summary.interrupted else ("stopped" if fatal else "done")
    summary.seconds = time.perf_counter() - start
    counts = {"processed": summary.processed, "skipped": summary.skipped}
    with _keep_first(fatal) as first:
        # A run that stopped part-way left studies part-done: their reports wait for the run that finishes
        # them (a CAD SR of 2 of 4 views would read as the study's whole result)
        if studies is not None and status == "done":
            from bcdeploy.runtime.run.studies import write_study_outputs

            write_study_outputs(out, ledger, run_id, **studies)
        summary.failed = ledger.run_failures(run_id)
        ledger.end_run(run_id, status, **counts, failed=len(summary.failed))
        written = write_reports(out, ledger, run_id, {
            **counts, "failed": len(summary.failed), "seconds": round(summary.seconds, 2),
            "interrupted": summary.interrupted}, model, classes, **reports)
        summary.results_path, summary.highest_case = written.results_path, written.highest_case
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


class LocalDriver:
    """Read ahead on one thread, segment as many batches at once as the model serves (its concurrency),
    write behind on another thread (module docstring)."""

    def __init__(self, open_predictor: Callable[[int], Predictor], batch_size: int) -> None:
        self._open_predictor, self._batch_size = open_predictor, batch_size
        self._reader = ThreadPoolExecutor(1, "decode", background_thread)
        self._first: Future | None = None
        self.predictor: Predictor | None = None

    def open(self, reader: Reader, works: list[Work]) -> OpenedModel:
        if works:  # no resume rule yet (it needs the model): Resume.settle applies it afterwards
            self._first = self._reader.submit(reader.read_batch, works[:self._batch_size], None)
        self.predictor = self._open_predictor(len(works))
        return OpenedModel.of(self.predictor)

    def close(self) -> None:
        self._reader.shutdown(wait=True, cancel_futures=True)

    def process(self, plan: RunPlan, summary: RunSummary, interrupts: Interrupts) -> OutputError | None:
        """Returns the error that stopped the run, if one did. Batches are segmented, written and
        counted in input order, whatever order the model's streams finish them in."""
        assert self.predictor is not None, "open() first"
        return _Pipeline(self.predictor, self._reader, plan, summary).run(self._first, interrupts)


class _Pipeline:
    """One run's batches through three stages: read (one batch ahead, on the driver's reader thread),
    segment (as many batches at once as the model has streams), write and commit (one writer thread,
    in input order, write-behind bounded to a few images)."""

    def __init__(self, predictor: Predictor, reader: ThreadPoolExecutor, plan: RunPlan, summary: RunSummary) -> None:
        self.predictor, self.reader, self.plan, self.summary = predictor, reader, plan, summary
        size = plan.batch_size
        self.batches = [plan.works[i:i + size] for i in range(0, len(plan.works), size)]
        self.streams = concurrency_of(predictor)
        self.view, self.pictures = model_view_of(predictor), plan.writer.draws_image
        self.fatal: list[OutputError] = []
        self.reads: deque[Future] = deque()
        self.segmenting: deque[tuple[list[Work], Future]] = deque()
        self.pending: deque[Future] = deque()
        self.writer: ThreadPoolExecutor | None = None

    def read(self, batch: list[Work]) -> list[Work]:
        """On the reader thread: read, hash, decode and reduce the images to what the model reads and
        what overlays are drawn on (segment.to_model_view)."""
        loaded = self.plan.reader.read_batch(batch, self.plan.resume)
        return loaded if self.view is None else to_model_view(loaded, self.view, self.pictures)

    def finish(self, work: Work) -> Work:
        """On the writer thread, counting included: Ctrl-C (a KeyboardInterrupt in the main thread) can
        then never fall between a committed row and its count."""
        work = self.plan.writer.write(work)
        commit(work, self.plan, self.summary, self.fatal)
        return work

    def collect(self, limit: int) -> None:
        while len(self.pending) > limit:
            self.pending[0].result()
            self.pending.popleft()

    def hand_over(self, limit: int) -> None:
        """Segmented batches to the writer, in input order: every finished one at the head, and then
        the oldest until at most `limit` are left segmenting (or finished behind an unfinished one)."""
        assert self.writer is not None
        while self.segmenting and (self.segmenting[0][1].done() or len(self.segmenting) > limit):
            loaded, done = self.segmenting[0]
            segmented = done.result()  # Ctrl-C while waiting: the batch stays queued for the last hand-over
            self.segmenting.popleft()  # before the writes: a batch is never handed over twice
            for work in segmented:
                self.pending.append(self.writer.submit(self.finish, work))
            for work in loaded:
                if self.plan.on_progress:
                    self.plan.on_progress(work.name, len(self.plan.works))
            self.collect(2 * self.plan.batch_size * self.streams)  # bounded write-behind: memory stays a few images

    def free_stream(self) -> None:
        """Wait until fewer than `streams` batches are being segmented (a stream is free)."""
        running = [done for _, done in self.segmenting if not done.done()]
        if len(running) >= self.streams:
            wait(running, return_when=FIRST_COMPLETED)

    def run(self, first: Future | None, interrupts: Interrupts) -> OutputError | None:
        """`first`: the first batch, already being read while the model opened."""
        if self.batches:
            self.reads.append(first)
        with ThreadPoolExecutor(1, "write", background_thread) as self.writer, \
                ThreadPoolExecutor(self.streams, "segment") as model:
            interrupts.armed = True
            try:
                for index in range(len(self.batches)):
                    loaded = self.reads.popleft().result()
                    if index == 0:
                        loaded = [self.plan.resume.settle(work) for work in loaded]
                    if index + 1 < len(self.batches):  # one batch read ahead
                        self.reads.append(self.reader.submit(self.read, self.batches[index + 1]))
                    self.free_stream()
                    self.segmenting.append((loaded, model.submit(segment, self.predictor, loaded,
                                                                 pictures=self.pictures)))
                    self.hand_over(2 * self.streams - 1)
                    if self.fatal:
                        break
                self.hand_over(0)
                self.collect(0)
            except KeyboardInterrupt:
                pass
            finally:
                interrupts.armed = False
            if interrupts.hits:
                self.summary.interrupted = True
                for pending_read in self.reads:
                    pending_read.cancel()
                self.hand_over(0)  # the images already being segmented are finished and recorded
                self.collect(0)
        return self.fatal[0] if self.fatal else None


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

