"""What an export owns in its output folder, and what it must never touch.

An export owns the model files of its `--out` folder: a variant left from an earlier export (another
checkpoint's `model.fp16.onnx` beside the new `model.onnx`) would run with the wrong weights, and its
sidecar would name another checkpoint. So when an export commits, every model file (and sidecar) in
`--out` that it did not write is removed. Nothing else in the folder is touched: checkpoints, configs,
logs and images stay, which is why exporting into a training work dir is fine. What the export reads
must survive: an input that the export would replace or remove is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bcdeploy.errors import InputError
from bcdeploy.fileio import refuse_overlap

MODEL_SUFFIXES = (".onnx", ".xml", ".trt", ".engine", ".plan")
SIDECAR_SUFFIX = ".bcdeploy.json"


def is_model_file(path: Path) -> bool:
    """A model, its sidecar, or OpenVINO weights (a .bin beside the .xml of the same stem)."""
    if path.name.startswith("."):
        return False
    if path.suffix in MODEL_SUFFIXES or path.name.endswith(SIDECAR_SUFFIX):
        return True
    return path.suffix == ".bin" and path.with_suffix(".xml").is_file()


def stale_model_files(folder: Path, written: Iterable[str]) -> list[Path]:
    """Model files in `folder` (top level) that are not among the names this export `written`."""
    if not folder.is_dir():
        return []
    keep = set(written)
    return [p for p in sorted(folder.iterdir()) if p.is_file() and p.name not in keep and is_model_file(p)]


def remove_stale(folder: Path, written: Iterable[str]) -> list[Path]:
    stale = stale_model_files(folder, written)
    for path in stale:
        path.unlink()
    return stale


def refuse_clobbering(out: str | Path, written: Iterable[str], *, files: Iterable[str | Path | None] = (),
                      folders: Iterable[str | Path | None] = ()) -> None:
    """InputError if writing `written` into `out` (and removing its stale model files) would replace or
    delete an input `file`, or if `out` overlaps an input folder."""
    refuse_overlap(out, list(folders), what="export folder")
    root, names = Path(out).expanduser().resolve(), set(written)
    if root.exists() and not root.is_dir():
        raise InputError(f"export folder {out} is a file, not a folder; choose another --out")
    for item in files:
        if item is None:
            continue
        path = Path(item).expanduser().resolve()
        if path.parent == root and (path.name in names or is_model_file(path)):
            raise InputError(f"export into {out} would replace or remove the input {item} (an export owns the model "
                             "files of its folder); move the input or choose another --out")
