"""Which backend runs a model file, and which options it takes: the one place that knows.

A plain dict (after Model Navigator's runners/registry.py) that refuses duplicates; an unknown suffix
is an error that lists the known ones. Runner modules are imported lazily, so only the chosen backend
is loaded; the options classes are light and known up front, so the CLI can offer them.

Every caller (CLI, serve, bench, export) asks here:
- `backend_for(path)`: the `Backend` for a file (name, suffixes, runner, options class);
- `options_for(path, **values)`: that backend's options object; a value of None means "not given",
  and an option the backend does not take is a ConfigError naming the backend and what it takes;
- `option_choices(name)`: the values any backend accepts for an option (`--provider` choices);
- `model_files(path)`: the model and the files that belong to it (OpenVINO's .bin);
- `open_runner(path, options)`: the activated runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcdeploy.errors import ConfigError, InputError
from bcdeploy.runtime.model.backends.options import BackendOptions, OnnxRuntimeOptions, OpenVINOOptions, TensorRTOptions

if TYPE_CHECKING:
    from bcdeploy.runtime.model.backends.base import Runner


@dataclass(frozen=True)
class Backend:
    name: str
    suffixes: tuple[str, ...]
    runner: str  # "module:Class", imported on first use
    options: type[BackendOptions]
    companions: tuple[str, ...] = ()  # suffixes of files that belong to the model (OpenVINO weights)

    def runner_class(self) -> type[Runner]:
        module, cls = self.runner.split(":")
        runner = getattr(importlib.import_module(module), cls)
        if runner.options_type is not self.options:
            raise TypeError(f"{self.runner} declares {runner.options_type.__name__}, registered with {self.options.__name__}")
        return runner

    def option_names(self) -> tuple[str, ...]:
        return self.options.names()

    def make_options(self, model_path: str | Path = "", values: dict[str, Any] | None = None,
                     spell: Callable[[str], str] = str) -> BackendOptions:
        """This backend's options from `values`; None means not given (the backend's default).
        `spell` writes an option's name as the caller offers it (the CLI: `--device-id`)."""
        given = {k: v for k, v in (values or {}).items() if v is not None}
        refused = [k for k in given if k not in self.option_names()]
        if refused:
            where = f"{model_path}: " if str(model_path) else ""
            hints = [self.options.refusal_hints[k] for k in refused if k in self.options.refusal_hints]
            raise ConfigError(f"{where}{', '.join(map(spell, refused))} does not apply to the {self.name} backend "
                              f"(it takes {', '.join(map(spell, self.option_names()))})"
                              + "".join(f"; {h}" for h in hints))
        return self.options(**given)


_BACKENDS: dict[str, Backend] = {}
_BY_SUFFIX: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Add `backend`. A name or suffix registered twice is a programming error."""
    if backend.name in _BACKENDS:
        raise ValueError(f"backend {backend.name} is already registered")
    for suffix in map(str.lower, backend.suffixes):
        if suffix in _BY_SUFFIX:
            raise ValueError(f"suffix {suffix} is already registered to {_BY_SUFFIX[suffix].name}")
    _BACKENDS[backend.name] = backend
    _BY_SUFFIX.update({s.lower(): backend for s in backend.suffixes})


register(Backend("onnxruntime", (".onnx",), "bcdeploy.runtime.model.backends.onnxruntime:OnnxRuntimeRunner",
                 OnnxRuntimeOptions))
register(Backend("tensorrt", (".trt", ".engine", ".plan"), "bcdeploy.runtime.model.backends.tensorrt:TensorRTRunner",
                 TensorRTOptions))
register(Backend("openvino", (".xml",), "bcdeploy.runtime.model.backends.openvino:OpenVINORunner", OpenVINOOptions,
                 companions=(".bin",)))

SUFFIXES = tuple(_BY_SUFFIX)


def backends() -> tuple[Backend, ...]:
    return tuple(_BACKENDS.values())


def backend_for(model_path: str | Path) -> Backend:
    suffix = Path(model_path).suffix.lower()
    backend = _BY_SUFFIX.get(suffix)
    if backend is None:
        raise InputError(f"{model_path}: no backend for suffix {suffix or '(none)'!r}; "
                         f"known suffixes: {', '.join(sorted(_BY_SUFFIX))}")
    return backend


def runner_class_for(model_path: str | Path) -> type[Runner]:
    return backend_for(model_path).runner_class()


def options_for(model_path: str | Path, /, spell: Callable[[str], str] = str, **values: Any) -> BackendOptions:
    """The options object of `model_path`'s backend; None values are "not given"."""
    return backend_for(model_path).make_options(model_path, values, spell)


def option_choices(name: str) -> tuple[str, ...]:
    """Every value some backend accepts for option `name` (e.g. the `--provider` choices)."""
    found: list[str] = []
    for backend in _BACKENDS.values():
        if name in backend.option_names():
            found += [c for c in backend.options.describe_field(name).get("choices", ()) if c not in found]
    return tuple(found)


def backends_taking(name: str) -> tuple[str, ...]:
    return tuple(b.name for b in _BACKENDS.values() if name in b.option_names())


def model_files(model_path: str | Path) -> list[Path]:
    """The model file and the files that belong to it (for sizes and hashes)."""
    path = Path(model_path)
    return [path] + [path.with_suffix(s) for s in backend_for(path).companions]


def open_runner(model_path: str | Path, options: BackendOptions | None = None) -> Runner:
    """Create and activate the runner for `model_path` (its backend's defaults when `options` is None)."""
    return runner_class_for(model_path)(model_path, options).activate()
