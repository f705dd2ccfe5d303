"""A per-stage Gantt timeline of a directory run: where each image spent its time and which stages
overlapped, so a scheduling change (decode and write filling the gaps around inference) can be seen,
not only summed.

Input is what the run loop's ledger records per image and stage (its `spans` column, see
runtime/spans.py; bench/run_timeline.py reads it): start and end timestamps on any one clock, optionally
the thread that ran it. One row per stage and thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bcdeploy.errors import InputError
from bcdeploy.fileio import atomic_path
from bcdeploy.runtime.run.ledger import STAGES as STAGE_ORDER

COLOURS = {"read": "#64B5CD", "hash": "#8C8C8C", "decode": "#4C72B0", "preprocess": "#8172B2", "infer": "#C44E52",
           "postprocess": "#CCB974", "write": "#55A868"}


@dataclass(frozen=True)
class Span:
    """One stage of one image: [start, end] in seconds on one clock."""

    image: str
    stage: str
    start: float
    end: float
    thread: str | None = None

    @property
    def row(self) -> str:
        return f"{self.stage} ({self.thread})" if self.thread else self.stage


def to_spans(records: Iterable[Span | Mapping]) -> list[Span]:
    """Spans from Span objects or mappings with image, stage, start, end (and optional thread)."""
    spans = []
    for rec in records:
        span = rec if isinstance(rec, Span) else Span(str(rec["image"]), str(rec["stage"]), float(rec["start"]),
                                                      float(rec["end"]), rec.get("thread"))
        if not span.end >= span.start:
            raise InputError(f"timeline: {span.image} {span.stage} ends ({span.end}) before it starts ({span.start})")
        spans.append(span)
    return spans


def rows(spans: list[Span]) -> list[str]:
    """Row labels, pipeline order first (decode ... write), then any other stage by name."""
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    return sorted({s.row for s in spans}, key=lambda r: (rank.get(r.split(" (")[0], len(rank)), r))


def summarize(spans: list[Span]) -> dict:
    """Wall time covered, busy seconds per row and per thread and their share of the wall time (1.0: never
    idle; a thread's share says how much of the run it worked, whichever of its stages it ran)."""
    if not spans:
        return {"wall_s": 0.0, "rows": {}, "threads": {}}
    t0, t1 = min(s.start for s in spans), max(s.end for s in spans)
    wall = t1 - t0

    def busy(mine: list[Span]) -> dict:
        seconds = _union_length([(s.start, s.end) for s in mine])
        return {"busy_s": round(seconds, 4), "share": round(seconds / wall, 4) if wall > 0 else None}

    threads = sorted({s.thread for s in spans if s.thread})
    return {"wall_s": round(wall, 4), "rows": {row: busy([s for s in spans if s.row == row]) for row in rows(spans)},
            "threads": {t: busy([s for s in spans if s.thread == t]) for t in threads}}


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def plot_timeline(records: Iterable[Span | Mapping], path: str | Path, title: str = "Per-stage timeline") -> dict:
    """Draw the Gantt chart as a PNG at `path` (written atomically); returns summarize()'s figures."""
    from bcdeploy.bench.report import _pyplot

    spans = to_spans(records)
    if not spans:
        raise InputError("timeline: no stage timestamps to plot")
    labels = rows(spans)
    t0 = min(s.start for s in spans)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 0.6 * len(labels) + 1.6))
    images = sorted({s.image for s in spans}, key=lambda name: min(s.start for s in spans if s.image == name))
    shade = {name: 0.55 + 0.45 * (i % 2) for i, name in enumerate(images)}  # neighbours alternate in tone
    for y, label in enumerate(labels):
        mine = [s for s in spans if s.row == label]
        ax.broken_barh([(s.start - t0, s.end - s.start) for s in mine], (y - 0.38, 0.76),
                       facecolors=[COLOURS.get(s.stage, "#777777") for s in mine],
                       alpha=None, edgecolor="black", linewidth=0.3)
        for s in mine:
            ax.broken_barh([(s.start - t0, s.end - s.start)], (y - 0.38, 0.76), facecolors="white",
                           alpha=1.0 - shade[s.image], linewidth=0)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    stats = summarize(spans)
    ax.set_xlabel("seconds since the first stage began")
    ax.set_title(f"{title}: {len(images)} images in {stats['wall_s']:.2f} s")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return stats
