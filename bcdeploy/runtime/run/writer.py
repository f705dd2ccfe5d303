"""The writer: one segmented image to its outputs and its ledger row (the driver commits the row).

Every output kind the run saves (runtime/results/outputs.py's table) is rendered in memory and written
atomically; only then is the row made, so a committed row always describes files that exist. Delivery
is not the writer's: DICOM results due for a PACS are queued in the outbox by the same transaction that
commits the row (outbox.py), and sent after it. A failed image's row replaces its earlier one, and
outputs left from an earlier success go: they described other bytes or another model (they are ours,
recorded in the ledger). Errors that make every later write fail too (no space, read-only, no
permission) make the record FATAL: the driver stops the run with one line instead of N failures.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcdeploy.errors import OutputError
from bcdeploy.fileio import strict_json, write_bytes
from bcdeploy.runtime.results.geometry import with_mm_sizes
from bcdeploy.runtime.images.imageio import DecodedImage
from bcdeploy.runtime.results.lesions import case_score, extract_lesions
from bcdeploy.runtime.results.outputs import OUTPUT_KINDS, OutputKind, Rendering, draws_image
from bcdeploy.runtime.run.identity import ModelIdentity, output_record
from bcdeploy.runtime.run.work import Status, Work, describe_error
from bcdeploy.runtime.spans import durations_ms, stage_span

if TYPE_CHECKING:
    from bcdeploy.runtime.results.dicom.codes import Algorithm

FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


@dataclass(frozen=True, kw_only=True)
class Writer:
    out: Path
    run_id: int
    model: ModelIdentity
    classes: list[str]
    palette: list[list[int]]
    kinds: frozenset[str]  # OUTPUT_KINDS keys to write
    max_pixels: int  # a SEG re-reads the source's dataset under the same budget
    algorithm: Algorithm | None = None
    series: Mapping[str, str] = field(default_factory=dict)  # DICOM kind -> this run's series UID

    @property
    def draws_image(self) -> bool:
        """Whether this run's outputs need the source's pixels after the model step (outputs.py)."""
        return draws_image(self.kinds)

    def _uids(self) -> dict[str, tuple[str, str]]:
        """(series, new SOP instance) UIDs for each DICOM kind this run writes: SR references the SEG's."""
        from bcdeploy.runtime.results.dicom.uids import new_uid

        return {kind: (series, new_uid()) for kind, series in self.series.items()}

    def write(self, work: Work) -> Work:
        """Outputs and `work.row` for a record the reader and the model step are done with."""
        if work.status is Status.SKIPPED:
            return work
        try:
            if work.pending and work.prediction is None:
                work.fail(work.error or f"{work.item.path}: no prediction")
            return self._failure(work) if work.status is Status.FAILED else self._outputs(work)
        except OutputError as err:
            work.status, work.error, work.row = Status.FATAL, str(err), None
            return work
        finally:
            work.release()

    def _outputs(self, work: Work) -> Work:
        prediction, image = work.prediction, work.image
        work.spans += prediction.spans
        target = self.out
        written: list[Path] = []  # this attempt's files: removed again when the image fails after all
        try:
            with stage_span("write", work.spans):
                lesions = _with_mm(extract_lesions(prediction.mask, self.classes, prediction.probs), image)
                score = case_score(prediction.probs, prediction.mask, self.classes)
                uids = self._uids()
                rendering = Rendering(prediction.mask, image, self.classes, self.palette, lesions, work.target,
                                      case_score=score, uids=uids,
                                      source=work.source_bytes, origin=str(work.item.path), algorithm=self.algorithm,
                                      max_pixels=self.max_pixels)
                outputs = {}
                for kind in OUTPUT_KINDS:
                    if kind.key not in self.kinds or (kind.dicom_only and work.source_bytes is None):
                        continue  # a picture nobody wants is not even drawn
                    relative = kind.relative(work.name)
                    data = _render(kind, rendering, work)
                    target = self.out / relative
                    write_bytes(target, data)
                    written.append(target)
                    outputs[kind.key] = output_record(relative, data, sop_uid=uids[kind.key][1] if kind.key in uids
                                                      else None)
        except OSError as err:
            if err.errno in FATAL_ERRNOS:
                raise OutputError(f"{target}: cannot write ({err.strerror})") from None
            return self._failure(work.fail(f"{work.item.path}: cannot write {target} ({err.strerror or err})"), written)
        except Exception as err:  # noqa: BLE001 - one odd image is one failure line
            line = str(err) if isinstance(err, _KindFailed) else describe_error(work.item.path, err, "writing outputs")
            return self._failure(work.fail(line), written)
        info = {**_image_info(image, work.node), "case_score": score}
        if "cad" in self.kinds and work.source_bytes is not None:
            info["study_header"] = _study_header(rendering)
        work.row = {**self._row(work, Status.OK), "image": strict_json(info),
                    "lesions": strict_json(lesions), "outputs": strict_json(outputs)}
        work.status = Status.OK
        return work

    def _failure(self, work: Work, written: list[Path] = ()) -> Work:
        """A failed image has no outputs: those of this attempt and those an earlier success left go
        (they are ours), so the folder holds exactly what the ledger lists."""
        work.row = {**self._row(work, Status.FAILED), "error": work.error}
        if "cad" in self.kinds:  # a failed view is part of its study's CAD SR, as a failed detection
            work.row["image"] = _failed_image_info(work)
        stale = [self.out / r["path"] for r in json.loads((work.previous or {}).get("outputs") or "{}").values()]
        for path in [*written, *stale]:
            path.unlink(missing_ok=True)
        return work

    def _row(self, work: Work, status: Status) -> dict[str, Any]:
        ident = work.identity
        return {"source": str(work.item.source), "name": work.name, "argument": work.item.argument,
                "path": str(work.item.path), "size": ident and ident.size, "mtime_ns": ident and ident.mtime_ns,
                "sha256": ident and ident.sha256, "model_sha256": self.model.sha256,
                "mask_options": self.model.mask_options, "target": work.target, "status": status.value,
                "run_id": self.run_id, "started": work.started, "finished": time.time(),
                "spans": json.dumps([span.to_dict() for span in work.spans]),
                **{f"{stage}_ms": ms for stage, ms in durations_ms(work.spans).items()}}


class _KindFailed(Exception):
    """One output kind could not be made: its line names the kind (the other kinds were fine)."""


def _render(kind: OutputKind, rendering: Rendering, work: Work) -> bytes:
    try:
        return kind.render(rendering)
    except OSError:
        raise  # a disk error is the writer's to judge (fatal or this image's)
    except Exception as err:  # noqa: BLE001 - named by kind, then one failure line
        raise _KindFailed(f"{describe_error(work.item.path, err, 'rendering')} [{kind.save_name} not written]") from err


def _image_info(image: DecodedImage, node: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {"size": [image.shape[1], image.shape[0]], "format": image.format,
                            "source_dtype": image.source_dtype, "intensity_map": image.intensity_map}
    if getattr(image, "tags", None):
        info["tags"] = image.tags
    if node:
        info["node"] = node
    return info


def _with_mm(lesions: list[dict[str, Any]], image: DecodedImage) -> list[dict[str, Any]]:
    """Lesion sizes in mm where the image says its pixel spacing; masks are at the original size (scale 1)."""
    spacing = (image.tags or {}).get("pixel_spacing_mm")
    if not spacing:
        return lesions
    return with_mm_sizes(lesions, spacing, (1.0, 1.0))


def _study_header(rendering: Rendering) -> dict[str, Any] | None:
    """The source's checked Patient/Study attributes, for its study's CAD SR (runtime/run/studies.py)."""
    from bcdeploy.runtime.results.dicom.source import study_header

    try:
        return study_header(rendering.dataset)
    except Exception:  # noqa: BLE001 - the image's outputs stand; its study's report says what it lacks
        return None


def _failed_image_info(work: Work) -> str | None:
    """What a study's CAD SR lists of an image that failed: its DICOM header's tags and study header,
    read again from the bytes or file it came from (the header only), or None when no header is
    readable there (then the image is known by its failure line alone)."""
    from bcdeploy.runtime.images.dicom import dicom_tags, header_of
    from bcdeploy.runtime.results.dicom.source import checked_source, study_header

    dataset = header_of(work.source_bytes if work.source_bytes is not None else work.item.path)
    if dataset is None:
        return None
    try:
        checked, _ = checked_source(dataset)
        info = {"tags": dicom_tags(dataset), "study_header": study_header(checked)}
    except Exception:  # noqa: BLE001 - a header too broken to describe the image
        return None
    return strict_json(info)
