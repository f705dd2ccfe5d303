"""Find DMID images and masks on disk, whichever layout (figshare or the original project's) they come in."""

from __future__ import annotations

from pathlib import Path

from bcdeploy.errors import DataError
from bcdeploy.runtime.images.imageio import IMAGE_SUFFIXES


def index_files(directory: str | Path, what: str) -> dict[str, Path]:
    """Map image id (file stem) to path for every image file directly in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: {what} directory not found")
    found: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            if path.stem in found:
                raise DataError(f"{path}: two {what} files share the id {path.stem!r} ({found[path.stem].name})")
            found[path.stem] = path
    if not found:
        raise DataError(f"{directory}: no {what} files ({', '.join(IMAGE_SUFFIXES)})")
    return found
