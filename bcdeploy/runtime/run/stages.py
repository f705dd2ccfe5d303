"""The three stages of one image: load (read, hash, resume check, decode), segment, finish (write the
outputs and commit the ledger row). Each turns any exception into that image's failure."""

from __future__ import annotations

import errno
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bcdeploy.errors import BcDeployError, OutputError
from bcdeploy.fileio import write_bytes
from bcdeploy.runtime.imageio import DecodedImage, decode_image
from bcdeploy.runtime.lesions import extract_lesions
from bcdeploy.runtime.outputs import encode
from bcdeploy.runtime.predictor import Predictor
from bcdeploy.runtime.run.identity import ModelIdentity, SourceIdentity, can_skip, output_record
from bcdeploy.runtime.run.inputs import InputItem
from bcdeploy.runtime.run.ledger import Ledger
from bcdeploy.runtime.run.sources import InputSource
from bcdeploy.runtime.segmenter import Prediction
from bcdeploy.runtime.spans import StageSpan, durations_ms, stage_span
from bcdeploy.runtime.visualize import biner, overlay

log = logging.getLogger(__name__)
# Errors that make every later write fail as well: stop the run with one line instead of N failures.
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
OUTPUTS = (("mask", "masks", ".png"), ("biner", "biner", ".png"), ("vis", "vis", ".jpg"))


@dataclass
class Work:
    item: InputItem
    name: str
    started: float = field(default_factory=time.time)
    identity: SourceIdentity | None = None
    image: DecodedImage | None = None
    data: bytes | None = None  # kept only when an output needs the source itself (--dicom-seg)
    skipped: bool = False
    error: str | None = None
    spans: list[StageSpan] = field(default_factory=list)  # read, hash, decode; then segment's and write's


@dataclass
class Outcome:
    status: str  # ok | skipped | failed | fatal
    error: OutputError | None = None


def describe_error(path: Path, err: BaseException, doing: str) -> str:
    """One line: our own errors say it all; anything else is named with its type (the traceback goes to
    the debug log, as it may be a bug)."""
    if isinstance(err, BcDeployError):
        text = str(err)
        return text if str(path) in text else f"{path}: {text}"
    log.debug("%s while %s %s", type(err).__name__, doing, path, exc_info=err)
    return f"{path}: {doing} failed ({type(err).__name__}: {err})"


def segment(predictor: Predictor, loaded: list[Work]) -> list[tuple[Work, Prediction | None]]:
    """Predict the decodable images as one batch; when it fails, one by one to find the culprit.
    (A function: `infer --ray` calls it in its model actors, which hold a predictor but no ledger.)"""
    ready = [w for w in loaded if w.image is not None and not w.error and not w.skipped]
    predictions = dict(zip(map(id, ready), _predict(predictor, ready)))
    return [(w, predictions.get(id(w))) for w in loaded]


def _predict(predictor: Predictor, ready: list[Work]) -> list[Prediction | None]:
    if not ready:
        return []
    try:
        call: list[StageSpan] = []
        with stage_span("infer", call):
            predictions = predictor.predict([w.image for w in ready])
        if len(predictions) != len(ready):
            raise RuntimeError(f"the predictor returned {len(predictions)} results for {len(ready)} images")
        # A predictor that times no stage of its own (PyTorch's inference_model does all in one call) is
        # shown as one `infer` span over its call, shared by the batch.
        return [p if p.spans else replace(p, spans=[call[0].for_batch(len(ready))]) for p in predictions]
    except Exception as err:  # noqa: BLE001 - see segment()
        if len(ready) > 1:
            return [_predict(predictor, [w])[0] for w in ready]
        ready[0].error = describe_error(ready[0].item.path, err, "segmenting")
        return [None]


class Stages:
    def __init__(self, predictor: Predictor, ledger: Ledger, out: Path, run_id: int, model: ModelIdentity,
                 rows: dict[str, dict[str, Any]], options: Any, source: InputSource) -> None:
        self.predictor, self.ledger, self.out, self.run_id, self.model = predictor, ledger, out, run_id, model
        self.rows, self.options, self.source = rows, options, source
        self.classes, self.palette = list(predictor.classes), list(predictor.palette)
        self.seg_algorithm = None
        if options.dicom_seg:
            from bcdeploy.runtime.run.seg_output import seg_algorithm

            self.seg_algorithm = seg_algorithm(predictor)

    # --- reader thread ------------------------------------------------------------------------------
    def load_batch(self, batch: list[tuple[InputItem, str]]) -> list[Work]:
        return [self.load(item, name) for item, name in batch]

    def load(self, item: InputItem, name: str) -> Work:
        work = Work(item, name)
        try:
            data, work.identity, work.spans = self.source.read(item)
            row = self.rows.get(str(item.source))
            if not self.options.overwrite and can_skip(row, work.identity, self.model, self.target(item), self.out):
                work.skipped = True
                return work
            with stage_span("decode", work.spans):
                prefetch = self.options.prefetch
                work.image = (prefetch and prefetch.take(item, work.identity)) or \
                    decode_image(data, item.path, max_pixels=self.options.max_pixels, frame=self.options.frame)
            if self.seg_algorithm is not None and work.image.format == "dicom":
                work.data = data
        except Exception as err:  # noqa: BLE001 - one odd file is one failure line, whatever it raised
            work.error = describe_error(item.path, err, "reading")
        return work

    def target(self, item: InputItem) -> str | None:
        return self.options.targets.get(item.path.stem)

    # --- main thread ----------------------------------------------------------------------------------
    def segment(self, loaded: list[Work]) -> list[tuple[Work, Prediction | None]]:
        return segment(self.predictor, loaded)

    # --- writer thread ---------------------------------------------------------------------------------
    def finish(self, work: Work, prediction: Prediction | None) -> Outcome:
        if work.skipped:
            return Outcome("skipped")
        try:
            if prediction is None or work.error:
                self._record_failure(work, work.error or f"{work.item.path}: no prediction")
                return Outcome("failed")
            return self._write(work, prediction)
        except OutputError as err:
            return Outcome("fatal", err)

    def _write(self, work: Work, prediction: Prediction) -> Outcome:
        work.spans += prediction.spans
        target = self.out
        try:
            with stage_span("write", work.spans):
                lesions = _with_mm(extract_lesions(prediction.mask, self.classes, prediction.probs), work.image)
                pictures = {"mask": lambda: prediction.mask, "biner": lambda: biner(prediction.mask, len(self.classes)),
                            "vis": lambda: overlay(work.image.bgr, prediction.mask, self.palette, self.classes, lesions,
                                                   self.target(work.item))}
                outputs = {}
                for kind, folder, suffix in OUTPUTS:
                    if kind not in self.options.save:  # `--save`: a picture nobody wants is not even drawn
                        continue
                    relative = f"{folder}/{work.name}{suffix}"
                    data = encode(pictures[kind](), suffix)
                    target = self.out / relative
                    write_bytes(target, data)
                    outputs[kind] = output_record(relative, data)
                if work.data is not None:
                    outputs["seg"] = self._write_seg(work, prediction)
                self.source.deliver(work.item, {kind: self.out / record["path"] for kind, record in outputs.items()})
        except OSError as err:
            if err.errno in FATAL_ERRNOS:
                raise OutputError(f"{target}: cannot write ({err.strerror})") from None
            self._record_failure(work, f"{work.item.path}: cannot write {target} ({err.strerror or err})")
            return Outcome("failed")
        except Exception as err:  # noqa: BLE001 - one odd image is one failure line
            self._record_failure(work, describe_error(work.item.path, err, "writing outputs"))
            return Outcome("failed")
        image = work.image
        info = {"size": [image.shape[1], image.shape[0]], "format": image.format, "source_dtype": image.source_dtype,
                "intensity_map": image.intensity_map}
        if getattr(image, "tags", None):
            info["tags"] = image.tags
        self.ledger.save({**self._row(work, "ok"), "image": json.dumps(info, default=str),
                          "lesions": json.dumps(lesions), "outputs": json.dumps(outputs)})
        return Outcome("ok")

    def _write_seg(self, work: Work, prediction: Prediction) -> dict[str, Any]:
        from bcdeploy.runtime.run.seg_output import write_seg_output

        relative = write_seg_output(self.out, work.name, work.data, str(work.item.path), prediction.mask,
                                    self.classes, algorithm=self.seg_algorithm, max_pixels=self.options.max_pixels)
        work.data = None  # the writer keeps a few images in flight: free the source bytes now
        return output_record(relative, (self.out / relative).read_bytes())

    def _row(self, work: Work, status: str) -> dict[str, Any]:
        ident = work.identity
        return {"source": str(work.item.source), "name": work.name, "argument": work.item.argument,
                "path": str(work.item.path), "size": ident and ident.size, "mtime_ns": ident and ident.mtime_ns,
                "sha256": ident and ident.sha256, "model_sha256": self.model.sha256,
                "mask_options": self.model.mask_options, "target": self.target(work.item), "status": status,
                "run_id": self.run_id, "started": work.started, "finished": time.time(),
                "spans": json.dumps([span.to_dict() for span in work.spans]),
                **{f"{stage}_ms": ms for stage, ms in durations_ms(work.spans).items()}}

    def _record_failure(self, work: Work, error: str) -> None:
        """A failed image's row; outputs left from an earlier success described other bytes or another
        model, so they go (they are ours: recorded in the ledger)."""
        previous = self.rows.get(str(work.item.source))
        self.ledger.save({**self._row(work, "failed"), "error": error})
        if previous and previous.get("outputs"):
            for record in json.loads(previous["outputs"]).values():
                (self.out / record["path"]).unlink(missing_ok=True)


def _with_mm(lesions: list[dict[str, Any]], image: DecodedImage) -> list[dict[str, Any]]:
    """Lesion sizes in mm where the image says its pixel spacing; masks are at the original size (scale 1)."""
    spacing = (image.tags or {}).get("pixel_spacing_mm")
    if not spacing:
        return lesions
    from bcdeploy.runtime.dicom import with_mm_sizes

    return with_mm_sizes(lesions, spacing, (1.0, 1.0))
