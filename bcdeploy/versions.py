"""Which versions of which packages are installed: the one lister behind every record of it.

A model sidecar, a benchmark's machine description and a DICOM SEG's software versions each say what
made them; they used to list packages each with its own loop. Names are distribution names (as pip
knows them); a package that is not installed is left out rather than guessed. Standard library only,
so the torch-free runtime may use it.
"""

from __future__ import annotations

from importlib import metadata


def package_versions(*names: str) -> dict[str, str]:
    """{name: version} for each installed distribution in `names`, in the order given."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
