"""Progress bars on stderr for library loops that report `(done_item, total)`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import click


@contextlib.contextmanager
def progress(label: str) -> Iterator[Callable[[Any, int], None]]:
    """Yield a callback `tick(item, total)`; the bar is created on the first tick, when total is known.
    It shows done/total, the rate (images/min) and the ETA."""
    state: dict[str, Any] = {"start": time.perf_counter(), "done": 0}

    def rate(_: Any) -> str:
        return f"{60 * state['done'] / max(time.perf_counter() - state['start'], 1e-9):.1f}/min"

    def tick(_item: Any, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=click.get_text_stream("stderr"),
                                             show_pos=True, item_show_func=rate)
            state["bar"].__enter__()
        state["done"] += 1
        state["bar"].update(1, current_item=True)

    try:
        yield tick
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
