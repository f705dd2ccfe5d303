"""Where a run's images come from: files on disk, or a PACS (bcdeploy.pacs.source).

The run loop knows only this protocol, so the stages, the ledger, the resume rule and the reports are
the same whatever the origin:
- `find()` lists the images (each with a stable output name before disambiguation) and one failure
  per argument that gives nothing;
- `read(item)` returns the bytes to decode, their identity (what a result is bound to) and the
  spans of its `read` and `hash` stages (runtime/spans.py);
- `local_paths()` are the files the run reads (the output folder must not overlap them);
- `identifiers()` are identifying strings the source knows beyond the images' DICOM tags (a PACS
  names instances by UID): `--no-phi` removes them from the reports as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from bcdeploy.runtime.run.identity import SourceIdentity, read_source
from bcdeploy.runtime.run.inputs import InputFailure, InputItem, find_inputs
from bcdeploy.runtime.spans import StageSpan


@runtime_checkable
class InputSource(Protocol):
    def find(self) -> tuple[list[InputItem], list[InputFailure]]: ...

    def read(self, item: InputItem) -> tuple[bytes, SourceIdentity, list[StageSpan]]: ...

    def local_paths(self) -> Sequence[str | Path]: ...

    def identifiers(self) -> set[str]: ...

    def describe(self) -> str: ...


class FileSource:
    """Files, folders and glob patterns given on the command line (inputs.py says how they are named)."""

    def __init__(self, arguments: Sequence[str | Path], recursive: bool = False, *, base: Path | None = None) -> None:
        """`base`: the folder relative paths are read against when the reader runs elsewhere (a Ray
        worker has its own working folder); messages keep the paths as given."""
        self.arguments, self.recursive, self.base = [str(a) for a in arguments], recursive, base

    def find(self) -> tuple[list[InputItem], list[InputFailure]]:
        return find_inputs(self.arguments, self.recursive)

    def read(self, item: InputItem) -> tuple[bytes, SourceIdentity, list[StageSpan]]:
        path = item.path if self.base is None or item.path.is_absolute() else self.base / item.path
        return read_source(path, Path(item.source))

    def local_paths(self) -> Sequence[str | Path]:
        return self.arguments

    def identifiers(self) -> set[str]:
        return set()

    def describe(self) -> str:
        return " ".join(self.arguments)
