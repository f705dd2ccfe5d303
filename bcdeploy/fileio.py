"""Atomic writes: an output file either exists whole or not at all.

Every writer in bcdeploy goes through `atomic_path`, so an interrupted run never leaves a
half-written mask, model or manifest that a re-run would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bcdeploy.errors import OutputError

# mkstemp creates 0600 files; outputs should get the usual permissions (0666 less the umask).
# Read once at import, while the process is still single-threaded (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def tighten_umask(bits: int) -> None:
    """Add `bits` to the process's umask (never loosening it) for every file made after, atomic ones too:
    a service that keeps patient data private whatever umask it was started with (the DICOM node)."""
    global _UMASK
    _UMASK |= bits
    os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    The temporary name keeps the suffix so writers that choose a format by suffix (cv2, onnx) work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The stem is cut (32 characters, at most 128 bytes) so the temporary name fits the 255-byte name limit.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem[:32]}.", suffix=f".part{target.suffix[:16]}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def staged_dir(target_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder inside `target_dir`; move what it holds into `target_dir` only if the
    block succeeds, else delete it.

    For outputs that are a set of files which only make sense together (a model and its sidecar, the
    FP32 graph an FP16 variant was checked against): a failure leaves `target_dir` as it was, never
    a new model beside an old sidecar.
    """
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=target_dir))
    try:
        yield stage
        for entry in sorted(stage.iterdir()):
            destination = target_dir / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            os.replace(entry, destination)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def replaced_dir(target_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder beside `target_dir`; if the block succeeds the staging folder
    becomes `target_dir` as a whole, else it is deleted.

    For a folder that is one product (a prepared data set and its manifest): readers never see half
    of it, and a failure leaves the previous one as it was. Unlike `staged_dir`, nothing of the old
    folder survives. A non-empty `target_dir` is replaced only with `overwrite` (InputError otherwise).
    """
    target = Path(target_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp's 0700 would become the product's mode
    try:
        yield stage
        _swap_in(stage, target, overwrite)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _swap_in(stage: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        os.replace(stage, target)
        return
    if any(target.iterdir()) and not overwrite:
        from bcdeploy.errors import InputError

        raise InputError(f"{target}: output directory is not empty; pass --overwrite to replace it")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)  # two renames: the target is missing only between them, never half-written
    os.replace(stage, target)
    shutil.rmtree(old)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def copy_atomic(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Copy `source` to `target`, which then holds either its old content or the whole copy."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, strict_json(obj, indent=2) + "\n")


def strict_json(obj: Any, indent: int | None = None) -> str:
    """JSON that strict parsers accept: a non-finite number (NaN, inf) is written as null, never as the
    NaN/Infinity tokens Python's json module writes by default."""
    return json.dumps(_finite(obj), indent=indent, default=_json_default, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):  # numpy scalars
        return _finite(obj.item())
    return obj


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in reports; convert without importing numpy here.
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_input(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> tuple[bytes, os.stat_result]:
    """An input file's bytes and the stat of the open file they were read from (so size and mtime
    describe these bytes even if the file is replaced meanwhile); InputError naming the file if it
    cannot be read, or holds more than `max_bytes`. The one place input reads turn OS errors into a
    user's line."""
    from bcdeploy.errors import InputError

    try:
        # O_NONBLOCK: opening a FIFO named like an image must not wait for a writer (it would hang the
        # run); only a regular file is read, never a pipe or a device such as /dev/zero (endless bytes).
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{path}: not a regular file (a pipe, socket or device); not read")
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
            if max_bytes is not None and len(data) > max_bytes:
                raise InputError(f"{path}: larger than {max_bytes} bytes; not read")
            return data, st
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected an image file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None


def read_json(path: str | os.PathLike[str], *, max_bytes: int = 1 << 20) -> Any:
    """A small JSON file someone else may have written (a sidecar, a speed record): read as a regular file
    of at most `max_bytes`, parsed without trusting its shape (nesting too deep for the parser is one
    line, not a RecursionError). InputError naming the file otherwise."""
    import json

    from bcdeploy.errors import InputError

    data, _ = read_input(path, max_bytes=max_bytes)
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be ours; not read") from None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def refuse_overlap(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
                   what: str = "output folder") -> None:
    """Raise InputError when `output` equals, contains or lies inside any of `inputs`.

    Why: a command that replaces or fills its output folder must never touch what it was given to read
    (`prepare --overwrite` with the output set to the data set's own root once deleted it). Paths are
    compared after resolving symlinks, so a link to the data set is caught as well. `None` inputs are
    ignored, so callers can pass optional arguments as they are.
    """
    from bcdeploy.errors import InputError

    out = Path(output).expanduser().resolve()
    out_ids = _folder_ids(out)
    for item in inputs:
        if item is None:
            continue
        src = Path(item).expanduser().resolve()
        src_ids = _folder_ids(src)
        same = out == src or (out.exists() and src.exists() and out_ids[0] == src_ids[0])
        contains = out in src.parents or (out.exists() and out_ids[0] in src_ids[1:])
        inside = src in out.parents or (src.exists() and src_ids[0] in out_ids[1:])
        if same or contains or inside:
            relation = "is" if same else ("contains" if contains else "lies inside")
            raise InputError(f"{what} {output} {relation} the input {item}: refusing to write where inputs are read "
                             f"(resolved: {out} vs {src}); choose another output folder")


def _folder_ids(path: Path) -> list[tuple[int, int]]:
    """(device, inode) of `path` and of each existing folder above it: one folder reached by two paths
    that resolve() cannot relate (a bind mount of the data set) has the same ids under both."""
    ids = []
    for candidate in (path, *path.parents):
        try:
            st = os.stat(candidate)
        except OSError:
            ids.append((-1, -1))  # does not exist (yet): matches nothing
            continue
        ids.append((st.st_dev, st.st_ino))
    return ids


def exclusive_lock(lock: str | os.PathLike[str], busy: str) -> int:
    """Hold `lock` (created if missing) for as long as this process keeps the returned descriptor open;
    OutputError(`busy`) when another process holds it. The kernel's flock: it goes with the process, so
    a crashed holder never leaves it held."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise OutputError(f"{lock}: cannot create the lock ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutputError(busy) from None
    return fd
