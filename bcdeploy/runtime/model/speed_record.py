"""Measured model speeds on a machine, kept beside the models: what `infer`'s `cpu:` line may quote.

Which variant of an export (model.onnx, model.int8.onnx, model.xml, model.int8.xml) runs fastest is a
property of the CPU, the core count and the runtime versions together, and a table of instruction-set
flags guessed it wrong by a factor of 1.7 on an AVX2 machine (issue "Speed advice that matches
measurement"). So `bcdeploy bench cpu EXPORT_DIR` measures each variant's compute here and stores it
in EXPORT_DIR/bcdeploy-speed.json under this machine's key; `infer` quotes a ratio only from an entry
whose key equals this machine's, and otherwise says that nothing was measured and how to measure it.

The file is read as a file anyone could have edited: entries that do not fit the schema, or whose
numbers are not finite and positive, are ignored (the advice is then "not measured"), never trusted.
"""

from __future__ import annotations

import importlib.metadata
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from bcdeploy.errors import InputError
from bcdeploy.fileio import read_json, write_json
from bcdeploy.runtime.model.cpu import cpu_flags, cpu_model, read_cpuinfo
from bcdeploy.runtime.notices import say_once

log = logging.getLogger(__name__)
RECORD_NAME = "bcdeploy-speed.json"
MAX_RECORD_BYTES = 1 << 20  # a record of every CPU a team has measured on is a few KiB
_RUNTIMES = ("onnxruntime", "openvino")


def machine_key(cpuinfo: str | None = None) -> dict[str, Any]:
    """What a measurement holds for: CPU model, its flags, the cores this process sees, runtime versions."""
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = cpu_flags(text)
    return {"cpu": cpu_model(text), "flags": sorted(f for f, on in (flags or {}).items() if on),
            "cores": os.cpu_count(), "runtimes": {name: _version(name) for name in _RUNTIMES}}


def measured_here(folder: Path, cpuinfo: str | None = None) -> dict[str, float] | None:
    """{model file name: median compute ms} measured on this machine, or None."""
    key = machine_key(cpuinfo)
    for entry in _entries(folder):
        if entry.get("machine") == key:
            return entry["compute_ms"]
    return None


def save_measurement(folder: Path, compute_ms: dict[str, float], *, runs: int, cpuinfo: str | None = None) -> Path:
    """Store this machine's measurement beside the models (replacing an earlier one of the same key)."""
    key = machine_key(cpuinfo)
    others = [entry for entry in _entries(folder) if entry.get("machine") != key]
    entry = {"machine": key, "compute_ms": {name: round(ms, 3) for name, ms in compute_ms.items()},
             "runs": runs, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = Path(folder) / RECORD_NAME
    write_json(path, {"format": "bcdeploy-speed", "entries": [*others, entry]})
    return path


def _entries(folder: Path) -> list[dict[str, Any]]:
    """The record's valid entries; a record that is not what `bench cpu` writes (a pipe, a device, too
    large, too deep, another shape) is ignored with one line, said once per run."""
    path = Path(folder) / RECORD_NAME
    if not os.path.lexists(path):
        return []
    try:
        data = read_json(path, max_bytes=MAX_RECORD_BYTES)
    except InputError as err:
        return _ignored(path, str(err).removeprefix(f"{path}: "))
    if not isinstance(data, dict) or data.get("format") != "bcdeploy-speed" or not isinstance(data.get("entries"), list):
        return _ignored(path, "not a speed record of bench cpu")
    return [entry for entry in data["entries"] if _valid(entry)]


def _ignored(path: Path, why: str) -> list[dict[str, Any]]:
    say_once(log, ("speed record", str(path)), f"{path}: {why}; ignored (run `bcdeploy bench cpu` to measure again)")
    return []


def _valid(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("machine"), dict):
        return False
    times = entry.get("compute_ms")
    return isinstance(times, dict) and bool(times) and all(
        isinstance(name, str) and isinstance(ms, int | float) and not isinstance(ms, bool) and math.isfinite(ms) and ms > 0
        for name, ms in times.items())


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
