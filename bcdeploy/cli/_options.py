"""Option parsing shared by several commands."""

from __future__ import annotations

import click


def parse_hw(text: str | None) -> tuple[int, int] | None:
    """'640x512' -> (640, 512) (height x width); None stays None."""
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 640x640, got {text!r}") from None
    if h < 1 or w < 1:
        raise click.BadParameter(f"height and width must be positive, got {text!r}")
    return h, w
