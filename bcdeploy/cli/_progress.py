"""Progress bars on stderr for library loops that report `(done_item, total)`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import click


@contextlib.contextmanager
def progress(label: str) -> Iterator[Callable[[Any, int], None]]:
    """Yield a callback `tick(item, total)`; the bar is created on the first tick, when total is known."""
    state: dict[str, Any] = {}

    def tick(_item: Any, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label=label, file=click.get_text_stream("stderr"))
            state["bar"].__enter__()
        state["bar"].update(1)

    try:
        yield tick
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
