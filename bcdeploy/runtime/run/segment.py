"""The model step of a run: predictions for the records the reader decoded.

A function of a predictor and records, nothing else: the local loop calls it on a thread per model
stream, the Ray driver in each model actor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bcdeploy.runtime.imageio import DecodedImage
from bcdeploy.runtime.predictor import Prediction, Predictor
from bcdeploy.runtime.run.work import Work, describe_error
from bcdeploy.runtime.spans import StageSpan, stage_span


def segment(predictor: Predictor, works: list[Work], keep_pixels: bool = True) -> list[Work]:
    """Predict the decoded images as one batch; when that fails, one by one to find the culprit, whose
    record then carries the failure line. Without `keep_pixels` (no output is drawn over the image:
    outputs.draws_image) each record leaves with its image's description but not its pixels."""
    ready = [w for w in works if w.pending and w.image is not None]
    for work, prediction in zip(ready, _predict(predictor, ready)):
        work.prediction = prediction
    if not keep_pixels:
        for work in ready:
            work.image = work.image.without_pixels()
    return works


def to_model_view(works: list[Work], view: Callable[[DecodedImage], DecodedImage]) -> list[Work]:
    """The model's first step, run ahead where nothing is drawn over the images (the local loop's reader
    thread): each decoded image becomes what the model reads (Predictor.model_view), so an image queued
    for a model stream holds a model-size copy, not a 40 MiB mammogram. Timed as `preprocess`, which it
    is; a failure is that image's failure line."""
    for work in works:
        if work.pending and work.image is not None:
            try:
                with stage_span("preprocess", work.spans):
                    work.image = view(work.image)
            except Exception as err:  # noqa: BLE001 - one image's failure must not end the others
                work.fail(describe_error(work.item.path, err, "preprocessing"))
    return works


def _predict(predictor: Predictor, ready: list[Work]) -> list[Prediction | None]:
    if not ready:
        return []
    try:
        call: list[StageSpan] = []
        with stage_span("infer", call):
            predictions = predictor.predict([w.image for w in ready])
        if len(predictions) != len(ready):
            raise RuntimeError(f"the predictor returned {len(predictions)} results for {len(ready)} images")
        # A predictor that times no stage of its own is shown as one `infer` span over its call, shared
        # by the batch.
        return [p if p.spans else replace(p, spans=[call[0].for_batch(len(ready))]) for p in predictions]
    except Exception as err:  # noqa: BLE001 - one image's failure must not end the others
        if len(ready) > 1:
            return [_predict(predictor, [w])[0] for w in ready]
        ready[0].fail(describe_error(ready[0].item.path, err, "segmenting"))
        return [None]
