"""Which files a run reads, and the output name each one gets.

An output name mirrors the input's path below the argument it came from (a directory argument: the
path below it; a glob: the path below its fixed leading folders; a file argument: its name), without
the suffix: `scans/p1/L_CC.tif` given as `scans/` becomes `p1/L_CC`, so `-r` over a nested archive
gives the same tree under masks/, biner/ and vis/.

Names never collide: a name already bound to another source (earlier in this run, or in the ledger
from an earlier run) gets `~2`, `~3`... appended, in argument order, then path order. A source keeps
the name the ledger bound it to, so re-runs write to the same place whatever else they are given.

Every argument that gives nothing is a failure line: no such file, a pattern that matches nothing, a
folder that cannot be listed or holds no image, a dangling symlink, a symlink loop.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bcdeploy.runtime.images.imageio import IMAGE_SUFFIXES

DISAMBIGUATION = "~"


@dataclass(frozen=True)
class InputItem:
    path: Path  # as found (what messages show)
    source: Path | str  # resolved path, or another source's key (a PACS: dicomweb:<SOP UID>): the ledger key
    relative: PurePosixPath  # below its argument, suffix dropped: the output name before disambiguation
    argument: str


@dataclass(frozen=True)
class InputFailure:
    item: str
    error: str


def find_inputs(arguments: Sequence[str], recursive: bool = False) -> tuple[list[InputItem], list[InputFailure]]:
    """Expand files, folders and glob patterns; returns the images (first occurrence of each source
    wins) and one failure per argument or entry that gives nothing."""
    items: list[InputItem] = []
    failures: list[InputFailure] = []
    for argument in arguments:
        path = Path(argument)
        if os.path.lexists(path) or not glob.has_magic(argument):
            _expand_path(path, argument, recursive, items, failures)
            continue
        base = _glob_base(argument)
        matches = sorted(glob.glob(argument, recursive=recursive))
        if not matches:
            failures.append(InputFailure(argument, f"{argument}: pattern matches no file"))
        for match in matches:
            if not Path(match).is_dir():
                _add_file(Path(match), Path(match).relative_to(base), argument, items, failures)
    unique = {}
    for item in items:
        unique.setdefault(item.source, item)
    return list(unique.values()), failures


def assign_names(items: Sequence[InputItem], bound: Mapping[str, str]) -> list[tuple[InputItem, str]]:
    """Each item's output name: the one the ledger bound its source to, else its relative path, made
    unique against every bound name and every name given earlier in this run."""
    taken = set(bound.values())
    named = []
    for item in items:
        name = bound.get(str(item.source))
        if name is None:
            name = candidate = str(item.relative)
            number = 1
            while name in taken:
                number += 1
                name = f"{candidate}{DISAMBIGUATION}{number}"
            taken.add(name)
        named.append((item, name))
    return named


def _expand_path(path: Path, argument: str, recursive: bool, items: list, failures: list) -> None:
    problem = _link_problem(path)
    if problem:
        failures.append(InputFailure(argument, f"{path}: {problem}"))
    elif path.is_dir():
        before = len(items)
        _walk(path, path, argument, recursive, {_key(path)}, items, failures)
        if len(items) == before:
            hint = "" if recursive else " (use -r to descend into sub-folders)"
            failures.append(InputFailure(argument, f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) found{hint}"))
    elif path.exists():
        _add_file(path, Path(path.name), argument, items, failures)
    else:
        failures.append(InputFailure(argument, f"{argument}: no such file or directory"))


def _walk(folder: Path, base: Path, argument: str, recursive: bool, ancestors: set, items: list, failures: list) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        failures.append(InputFailure(argument, f"{folder}: cannot list this folder ({err.strerror})"))
        return
    if not entries and folder != base:
        failures.append(InputFailure(argument, f"{folder}: empty folder"))
    for entry in entries:
        path = Path(entry.path)
        problem = _link_problem(path) if entry.is_symlink() else None
        if problem:
            if path.suffix.lower() in IMAGE_SUFFIXES or recursive:
                failures.append(InputFailure(argument, f"{path}: {problem}"))
        elif path.is_dir():
            if not recursive:
                continue
            key = _key(path)
            if key in ancestors:  # a folder link back up the tree: following it would never end
                failures.append(InputFailure(argument, f"{path}: symlink loop (leads back to a folder above it)"))
                continue
            _walk(path, base, argument, recursive, ancestors | {key}, items, failures)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            _add_file(path, path.relative_to(base), argument, items, failures)


def _add_file(path: Path, relative: Path, argument: str, items: list, failures: list) -> None:
    problem = _link_problem(path)
    if problem:
        failures.append(InputFailure(argument, f"{path}: {problem}"))
        return
    if ".." in relative.parts:  # a glob such as `*/../../x/*.tif`: a name with `..` would write outside --out
        relative = Path(path.name)
    name = relative.with_suffix("") if relative.stem not in (".", "..") else relative  # `..png`: stem `.`
    items.append(InputItem(path, path.resolve(), PurePosixPath(name.as_posix()), argument))


def _link_problem(path: Path) -> str | None:
    """Why a path that exists as a name cannot be followed, or None."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop"
        if err.errno == errno.ENOENT and os.path.islink(path):
            return f"dangling symlink (to {os.readlink(path)}, which does not exist)"
        if err.errno != errno.ENOENT:
            return f"cannot read ({err.strerror})"
    return None


def _key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _glob_base(pattern: str) -> Path:
    """The fixed leading folders of a glob pattern: `scans/*/L_CC.tif` -> `scans`."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")
