"""Stage spans: when each stage of an image started and ended, and on which thread.

Why spans and not only durations: the run loop overlaps its stages (a reader thread reads, hashes and
decodes the next image while a segment thread per model stream segments this one and a writer
thread encodes the last), and only start and end stamps on one clock show what overlapped and where a
thread sat idle (`bcdeploy bench timeline` draws them). Every stage is timed through `stage_span`, so
a duration in the ledger's `<stage>_ms` columns and the bar in the Gantt chart come from the same
measurement.

The clock is the epoch (time.time(), as the ledger's `started`/`finished`), so spans from the reader,
segment and writer threads, and the rows of one run, line up; the length comes from time.perf_counter(),
which never jumps, so `end >= start` always holds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageSpan:
    """One stage: [start, end] in epoch seconds. `shared` images had it in common (a batch's inference):
    each image's `<stage>_ms` is its share, (end - start) / shared."""

    stage: str
    start: float
    end: float
    thread: str
    shared: int = 1

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000 / self.shared

    def to_dict(self) -> dict[str, Any]:
        data = {"stage": self.stage, "start": self.start, "end": self.end, "thread": self.thread}
        return data if self.shared == 1 else {**data, "shared": self.shared}

    def for_batch(self, images: int) -> StageSpan:
        """The same span, shared by `images` images."""
        return StageSpan(self.stage, self.start, self.end, self.thread, images)


def thread_label() -> str:
    """'main' for the main thread; a one-worker pool's thread by its pool's name (ThreadPoolExecutor
    names its first worker `<prefix>_0`), any other thread by its own name."""
    thread = threading.current_thread()
    if thread is threading.main_thread():
        return "main"
    name = thread.name
    return name[:-2] if name.endswith("_0") else name


@contextlib.contextmanager
def stage_span(stage: str, spans: list[StageSpan]) -> Iterator[None]:
    """Time the block as `stage` and append its span to `spans`; a block that raises records nothing (a
    failed stage has no duration, as before)."""
    start, begin = time.time(), time.perf_counter()
    yield
    spans.append(StageSpan(stage, start, start + (time.perf_counter() - begin), thread_label()))


def durations_ms(spans: Iterable[StageSpan]) -> dict[str, float]:
    """Milliseconds per stage (each image's share of a shared span; a stage timed twice is summed)."""
    out: dict[str, float] = {}
    for span in spans:
        out[span.stage] = out.get(span.stage, 0.0) + span.ms
    return out
