"""What a driver of the run pipeline is, what it is given, and what it returns.

loop.execute does what makes a run trustworthy whatever runs the images: the inputs and their names,
the ledger's run row, input failures, Ctrl-C, the closing row and the reports. A driver only moves
`Work` records through the reader, the model and the writer, and commits each record's row:
- the local threads (loop.LocalDriver): a reader thread, the model on a thread per stream, a writer
  thread that commits each row;
- Ray Data (scale/ray_infer.RayDriver): reader and writer tasks, model actors; the driver process
  commits the rows that come back.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bcdeploy.errors import OutputError
from bcdeploy.runtime.model.predictor import Predictor
from bcdeploy.runtime.run.ledger import Ledger
from bcdeploy.runtime.run.reader import Reader, Resume
from bcdeploy.runtime.run.work import Status, Work
from bcdeploy.runtime.run.writer import Writer

if TYPE_CHECKING:
    from bcdeploy.runtime.results.dicom.codes import Algorithm


@dataclass
class RunSummary:
    processed: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)
    results_path: Path | None = None
    ledger_path: Path | None = None
    seconds: float = 0.0
    interrupted: bool = False
    notes: tuple[str, ...] = ()  # the model's information lines (OpenedModel.notes)
    highest_case: tuple[str, float] | None = None  # (image name, case score) of the most suspicious image

    @property
    def ok(self) -> bool:
        """Exit status 0: nothing failed and something was found (a run that processed nothing fails)."""
        return not self.failed and not self.interrupted and self.processed + self.skipped > 0


def count(work: Work, summary: RunSummary, fatal: list[OutputError]) -> None:
    if work.status is Status.OK:
        summary.processed += 1
    elif work.status is Status.SKIPPED:
        summary.skipped += 1
    elif work.status is Status.FATAL and not fatal:
        fatal.append(OutputError(work.error or "outputs cannot be written"))


class Interrupts:
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

    def __enter__(self) -> "Interrupts":
        try:
            self.previous = signal.signal(signal.SIGINT, self.handler)
        except ValueError:  # not the main thread: signals are the caller's business
            self.previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


@dataclass(frozen=True)
class OpenedModel:
    """What a run learns from the model once it is open: what results are bound to (`description`,
    the predictor's describe()), what the writer draws with, and lines for the user (the `cpu:` line)."""

    description: dict[str, Any]
    classes: list[str]
    palette: list[list[int]]
    algorithm: Algorithm  # names the model in DICOM outputs
    notes: tuple[str, ...] = ()
    operating_points: dict[str, Any] = field(default_factory=dict)  # the sidecar's (a CAD SR's default threshold)

    @classmethod
    def of(cls, predictor: Predictor) -> OpenedModel:
        description = predictor.describe()
        meta = getattr(predictor, "meta", None)
        return cls(description, list(predictor.classes), [list(c) for c in predictor.palette],
                   seg_algorithm(predictor, description), _notes(predictor),
                   dict(getattr(meta, "operating_points", None) or {}))


def seg_algorithm(predictor: Any, description: dict[str, Any] | None = None) -> Algorithm:
    """Model name, version and checkpoint hash: from the exported model's sidecar when the predictor
    has one (Segmenter.meta), else from describe() (a PyTorch checkpoint is its own checkpoint)."""
    from bcdeploy.runtime.results.dicom.codes import Algorithm

    description = description if description is not None else predictor.describe()
    meta = getattr(predictor, "meta", None)
    if meta is not None:
        return Algorithm.from_model(meta, description["model"])
    name = Path(str(description.get("config") or description.get("model") or "model")).stem
    version = f"{Path(str(description.get('model', '?'))).name} {description.get('backend', '?')}"
    return Algorithm(name, version, str(description.get("sha256") or "unknown"))


def _notes(predictor: Predictor) -> tuple[str, ...]:
    """The `cpu:` line for an exported model: what this CPU runs fast, and a faster variant of the same
    export beside it (named only: the model asked for is the model that runs)."""
    runner = getattr(predictor, "runner", None)
    if runner is None:
        return ()
    from bcdeploy.runtime.model.variants import start_line

    return (start_line(predictor.model_path, predictor.meta, runner.options),)


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """What a driver is given once the model is open and the ledger's run row exists."""

    works: list[Work]  # every image of the run, named, in order
    reader: Reader
    resume: Resume
    writer: Writer
    ledger: Ledger
    batch_size: int
    on_progress: Callable[[str, int], None] | None = None
    on_settled: Callable[[dict[str, Any]], None] | None = None  # RunOptions.on_settled


def commit(work: Work, plan: RunPlan, summary: RunSummary, fatal: list[OutputError]) -> None:
    """One record's end, the same in every driver: its row committed (with the results it queues for
    delivery: outbox.py), counted, and handed to the run's `on_settled` hook: the row committed now, or
    for an image the resume rule skipped, the row that still holds. A caller (the DICOM node) learns
    what the run settled from the run itself, never by reading the ledger back."""
    if work.row is not None:
        plan.ledger.save(work.row)
    count(work, summary, fatal)
    settled = work.row if work.row is not None else work.previous if work.status is Status.SKIPPED else None
    if settled is not None and plan.on_settled is not None:
        plan.on_settled(settled)


class Driver(Protocol):
    def open(self, reader: Reader, works: list[Work]) -> OpenedModel:
        """Open (or describe) the model; may start reading `works` first, without a resume rule."""

    def process(self, plan: RunPlan, summary: RunSummary, interrupts: Interrupts) -> OutputError | None:
        """Every record through reader, model and writer; each row committed. Returns what stopped it."""

    def close(self) -> None:
        """Release what open() started (threads, a cluster connection), whatever happened."""
