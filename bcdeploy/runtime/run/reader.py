"""The reader: one image from its source to decoded pixels, with the resume rule in between.

Read and hash first (the identity a result is bound to), then ask the resume rule, then decode: an
image done earlier with the same bytes, model and options is never decoded again. The resume rule
needs the model's identity, which is known only once the model is open; a read started before that
(the loop reads the first batch while the model opens) passes no rule and is settled afterwards
(`Resume.settle`), so the first file is still read and hashed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bcdeploy.runtime.images.decoder_guard import is_interrupt
from bcdeploy.runtime.images.imageio import decode_image
from bcdeploy.runtime.run.identity import ModelIdentity, can_skip
from bcdeploy.runtime.run.sources import InputSource
from bcdeploy.runtime.run.work import Status, Work, describe_error
from bcdeploy.runtime.spans import stage_span


@dataclass(frozen=True, kw_only=True)
class Resume:
    """This run's resume rule (identity.can_skip), or none at all with `overwrite`."""

    out: Path
    model: ModelIdentity
    overwrite: bool = False

    def done(self, work: Work) -> bool:
        return (not self.overwrite and work.identity is not None
                and can_skip(work.previous, work.identity, self.model, work.target, self.out))

    def settle(self, work: Work) -> Work:
        """Apply the rule to a record read before the model was known: a done image drops its pixels."""
        if work.pending and self.done(work):
            work.release()
            work.status = Status.SKIPPED
        return work


@dataclass(frozen=True, kw_only=True)
class Reader:
    source: InputSource
    max_pixels: int
    frame: int | None = None  # of multi-frame DICOM objects; None refuses them
    keep_dicom: bool = False  # keep a DICOM input's bytes: an output is built from its dataset (a SEG)
    modalities: frozenset[str] | None = None  # DICOM modalities accepted (None: mammography's)

    def read(self, work: Work, resume: Resume | None) -> Work:
        """Fill `work` (identity, spans, image); any exception is this image's failure line."""
        try:
            data, work.identity, spans = self.source.read(work.item)
            work.spans += spans
            if resume is not None and resume.done(work):
                work.status = Status.SKIPPED
                return work
            with stage_span("decode", work.spans):
                work.image = decode_image(data, work.item.path, max_pixels=self.max_pixels, frame=self.frame,
                                          modalities=self.modalities)
            if self.keep_dicom and work.image.format == "dicom":
                work.source_bytes = data
        except BaseException as err:  # one odd file is one failure line, whatever it raised (a panic too)
            if is_interrupt(err):
                raise
            work.fail(describe_error(work.item.path, err, "reading"))
        return work

    def read_batch(self, works: list[Work], resume: Resume | None) -> list[Work]:
        return [self.read(work, resume) for work in works]
