"""One error family for everything a user can get wrong.

The library raises these; the CLI prints `str(err)` on one line and exits 1. Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations


class BcDeployError(Exception):
    """Base of every user-facing error: the message alone must tell what to fix."""


class InputError(BcDeployError):
    """A file given by the user cannot be read or has the wrong content."""


class DataError(InputError):
    """The DMID data set (images, masks, metadata) is inconsistent."""


class ConfigError(BcDeployError):
    """A config, deploy config or model sidecar is missing or malformed."""


class DependencyError(BcDeployError):
    """An optional dependency (an extra) needed for this job is not installed."""


class BackendError(BcDeployError):
    """An inference backend cannot run the model (missing provider, GPU, wrong engine)."""


class ParityError(BcDeployError):
    """A converted model disagrees with its reference beyond the tolerances."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class ExportError(BcDeployError):
    """A model (or one of its layers) cannot be exported as asked: the message names the module and the operation."""


class OutputError(BcDeployError):
    """An output cannot be written (read-only or full file system, a file where a folder must be)."""


class PacsError(BcDeployError):
    """A PACS (DICOMweb server) cannot be reached, refuses a request, or rejects what we store."""


class PacsRefused(PacsError):
    """The PACS answered and refused this object (a failure status): sending it again as it is will not help."""
