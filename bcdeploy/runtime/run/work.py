"""One image's way through a run, as one plain record.

Every driver (the local threads in loop.py, Ray Data in scale/ray_infer.py, and any later one) moves
`Work` records through the same three steps: the reader (reader.py) fills identity and image, the
model step (segment.py) the prediction, the writer (writer.py) the outputs and the ledger row. The
record holds data only (no model, no ledger, no open file), so it can cross threads and processes as
it is; the driver commits `row` to the ledger, and nothing else does.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcdeploy.errors import BcDeployError
from bcdeploy.runtime.images.imageio import DecodedImage
from bcdeploy.runtime.model.predictor import Prediction
from bcdeploy.runtime.run.identity import SourceIdentity
from bcdeploy.runtime.run.inputs import InputItem
from bcdeploy.runtime.spans import StageSpan

log = logging.getLogger(__name__)


class Status(str, enum.Enum):
    """How one image ended (a str, so it compares and stores as the ledger's words)."""

    OK = "ok"
    SKIPPED = "skipped"  # the resume rule: done earlier with the same bytes, model and options
    FAILED = "failed"  # this image only; the run goes on
    FATAL = "fatal"  # no output can be written any more (disk full, read-only): the run stops


@dataclass
class Work:
    item: InputItem
    name: str = ""  # output name (inputs.assign_names); set by the driver before the writer runs
    target: str | None = None  # the overlay's `| Target:` label (DMID metadata), part of the identity
    previous: dict[str, Any] | None = None  # this source's ledger row before the run (resume; stale outputs)
    started: float = field(default_factory=time.time)
    identity: SourceIdentity | None = None
    image: DecodedImage | None = None
    source_bytes: bytes | None = None  # kept only for DICOM inputs when an output is built from the dataset
    prediction: Prediction | None = None
    status: Status | None = None  # None while in flight
    error: str | None = None
    spans: list[StageSpan] = field(default_factory=list)  # read, hash, decode; then the model's and write
    node: str | None = None  # the Ray node that segmented it (recorded in the row's image info)
    row: dict[str, Any] | None = None  # the ledger row the writer made, for the driver to commit

    @property
    def pending(self) -> bool:
        return self.status is None

    def fail(self, error: str) -> Work:
        self.status, self.error = Status.FAILED, error
        return self

    def release(self) -> None:
        """Drop the pixels once the outputs are written: a driver keeps a few records in flight."""
        self.image = self.prediction = self.source_bytes = None


def describe_error(path: Path, err: BaseException, doing: str) -> str:
    """One line: our own errors say it all; anything else is named with its type (the traceback goes to
    the debug log, as it may be a bug)."""
    if isinstance(err, BcDeployError):
        text = str(err)
        return text if str(path) in text else f"{path}: {text}"
    log.debug("%s while %s %s", type(err).__name__, doing, path, exc_info=err)
    return f"{path}: {doing} failed ({type(err).__name__}: {err})"
