"""A seeded generator of the inputs a real archive throws at `bcdeploy infer`, for any test to reuse.

`make_tree(root, seed)` writes per-patient folders where every image has the same few names
(`1-1.tif` as CBIS-DDSM, `L_CC.tif` as PACS exports), plus the files and links that break naive
loops: 0-byte and truncated files, a 4 KB TIFF whose header declares 100000 x 100000 pixels,
dangling symlinks, symlink loops, an unlistable directory and an empty one. Pixel content comes
from the seed, so two patients' `L_CC.tif` differ and a test can tell whose result it got.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NAMES = ("1-1.tif", "L_CC.tif")


@dataclass
class BadTree:
    root: Path
    good: list[Path] = field(default_factory=list)  # decodable images, in sorted order
    bad: dict[str, Path] = field(default_factory=dict)  # case -> the file or link that must fail
    empty_dir: Path | None = None
    unlistable_dir: Path | None = None  # None where this user can list everything (see unlistable())


def mammogram(rng: np.random.Generator, height: int = 160, width: int = 128) -> np.ndarray:
    """An 8-bit gray picture with a bright blob (a 'lesion') at a random place: each seed its own."""
    gray = (rng.random((height, width)) * 60).astype(np.uint8) + 40
    cy, cx = int(rng.integers(20, height - 20)), int(rng.integers(20, width - 20))
    yy, xx = np.ogrid[:height, :width]
    gray[(yy - cy) ** 2 + (xx - cx) ** 2 < int(rng.integers(36, 200))] = 250
    return gray


def write_tiff(path: Path, gray: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.dstack([gray, gray, gray, np.full_like(gray, 255)]), [cv2.IMWRITE_TIFF_COMPRESSION, 5]):
        raise OSError(f"cannot write {path}")
    return path


def huge_header_tiff(path: Path, width: int = 100_000, height: int = 100_000, size: int = 4096) -> Path:
    """A `size`-byte little-endian TIFF whose one strip claims `width` x `height` 8-bit gray pixels."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, min(width * height, 0xFFFFFFFF))]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, count, value) if kind == 4 else struct.pack("<HHIHH", tag, kind, count, value, 0)
        for tag, kind, count, value in entries) + struct.pack("<I", 0)
    data = b"II*\x00" + struct.pack("<I", 8) + ifd
    path.write_bytes(data + b"\x00" * (size - len(data)))
    return path


def unlistable(root: Path) -> Path | None:
    """A directory this process cannot list: mode 000 for a normal user; root ignores modes, so then a
    kernel directory that refuses even root (another process's map_files), or None."""
    locked = root / "locked"
    locked.mkdir(exist_ok=True)
    (locked / "L_CC.tif").write_bytes(b"never read")
    locked.chmod(0)
    for candidate in (locked, Path("/proc/1/map_files")):
        try:
            os.listdir(candidate)
        except OSError:
            return candidate
    return None


def make_tree(root: Path, seed: int = 0, patients: int = 3) -> BadTree:
    """Per-patient folders with same-named images, plus every bad case; returns what is where."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    tree = BadTree(root)
    for index in range(patients):
        for name in NAMES:
            tree.good.append(write_tiff(root / f"patient_{seed:02d}_{index:03d}" / name, mammogram(rng)))
    bad = root / "zz_bad"
    bad.mkdir()
    (bad / "empty.tif").write_bytes(b"")
    tree.bad["empty"] = bad / "empty.tif"
    truncated = tree.good[0].read_bytes()
    (bad / "truncated.tif").write_bytes(truncated[: len(truncated) // 3])
    tree.bad["truncated"] = bad / "truncated.tif"
    tree.bad["huge_header"] = huge_header_tiff(bad / "huge.tif")
    (bad / "dangling.tif").symlink_to(bad / "gone.tif")
    tree.bad["dangling"] = bad / "dangling.tif"
    (bad / "loop_a.tif").symlink_to(bad / "loop_b.tif")
    (bad / "loop_b.tif").symlink_to(bad / "loop_a.tif")
    tree.bad["loop"] = bad / "loop_a.tif"
    (bad / "cycle").symlink_to(root, target_is_directory=True)  # a folder link back to the top: `-r` must not spin
    tree.bad["dir_loop"] = bad / "cycle"
    tree.empty_dir = root / "zz_empty"
    tree.empty_dir.mkdir()
    tree.good.sort()
    return tree
