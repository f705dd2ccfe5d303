"""Option parsing shared by several commands, and the backend options every model command offers.

The backend options are generated from the options each runner declares (runtime/model/backends/options.py
through the registry), so the CLI lists no suffix, provider or precision of its own. Every one
defaults to None, "not given": the registry can then refuse an option that does not apply to the
model's backend (`--threads` with a .trt engine) instead of dropping it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def flag(name: str) -> str:
    """An option's name as the CLI spells it: device_id -> --device-id."""
    return "--" + name.replace("_", "-")


def _declaration(name: str) -> Callable:
    from bcdeploy.runtime.model.backends.registry import backends, option_choices

    owners = [b for b in backends() if name in b.option_names()]
    field = owners[0].options.describe_field(name)
    where = f" [{', '.join(b.name for b in owners)}]"
    help_text = field.get("help", name.replace("_", " ")) + where
    default = field["default"]
    if isinstance(default, bool):
        return click.option(f"{flag(name)}/--no-{name.replace('_', '-')}", name, default=None, help=help_text)
    if field.get("choices"):
        kind: Any = click.Choice(option_choices(name))
        help_text += f" (default {default})"
    elif isinstance(default, int):
        kind = click.IntRange(min=field.get("min"))
        help_text += f" (default {default})"
    else:
        kind = str
        help_text += f" (default {default})" if default is not None else ""
    return click.option(flag(name), name, type=kind, default=None, help=help_text)


def model_help() -> str:
    """Help for a model-path option: the suffixes and backends the registry knows."""
    from bcdeploy.runtime.model.backends.registry import backends

    return "Exported model: " + ", ".join(f"{'/'.join(b.suffixes)} ({b.name})" for b in backends()) + "."


def backend_option_names() -> tuple[str, ...]:
    """Every option some backend takes, in declaration order."""
    from bcdeploy.runtime.model.backends.registry import backends

    names: list[str] = []
    for backend in backends():
        names += [n for n in backend.option_names() if n not in names]
    return tuple(names)


def backend_option_list(*names: str) -> list[Callable]:
    """The named backend options (default: all of them), as option decorators for a command's section."""
    return [_declaration(name) for name in names or backend_option_names()]


def backend_options(*names: str) -> Callable:
    """Decorator adding the named backend options (default: all of them) to a command."""
    def decorate(fn: Callable) -> Callable:
        for declaration in reversed(backend_option_list(*names)):
            fn = declaration(fn)
        return fn

    return decorate


def runner_options(model: str, **values: Any):
    """The options object for `model`'s backend from CLI values (None: not given). An option that does
    not apply to that backend is a ConfigError naming the backend and the options it takes."""
    from bcdeploy.runtime.model.backends.registry import options_for

    return options_for(model, spell=flag, **values)
