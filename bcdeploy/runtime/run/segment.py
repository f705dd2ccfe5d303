"""The model step of a run: predictions for the records the reader decoded.

A function of a predictor and records, nothing else: the local loop calls it on a thread per model
stream, the Ray driver in each model actor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bcdeploy.runtime.images.imageio import DecodedImage
from bcdeploy.runtime.model.predictor import Prediction, Predictor
from bcdeploy.runtime.run.work import Work, describe_error
from bcdeploy.runtime.spans import StageSpan, stage_span
from bcdeploy.runtime.results.drawing import picture_of


def segment(predictor: Predictor, works: list[Work], pictures: bool = True) -> list[Work]:
    """Predict the decoded images as one batch; when that fails, one by one to find the culprit, whose
    record then carries the failure line. Then each record leaves with its image's description and,
    where an output is drawn over the image (`pictures`: outputs.draws_image), the picture it is drawn
    on (drawing.picture_of), but not the pixels the model read: nothing after the model reads them,
    and a full-size mammogram is 40 MiB in the writer's queue (or shipped back from a Ray actor)."""
    ready = [w for w in works if w.pending and w.image is not None]
    for work, prediction in zip(ready, _predict(predictor, ready)):
        work.prediction = prediction
    for work in ready:
        if pictures and work.pending and work.image.picture is None:
            try:
                work.image = _with_picture(work.image)
            except Exception as err:  # noqa: BLE001 - one image's failure must not end the others
                work.fail(describe_error(work.item.path, err, "drawing"))
        work.image = work.image.without_pixels()
    return works


def _with_picture(image: DecodedImage) -> DecodedImage:
    return image.with_picture(picture_of(image.bgr, image.shape))


def to_model_view(works: list[Work], view: Callable[[DecodedImage], DecodedImage], pictures: bool) -> list[Work]:
    """The model's first step, run ahead (the local loop's reader thread): each decoded image becomes
    what the model reads (Predictor.model_view) and, where an output is drawn over it (`pictures`), the
    picture it is drawn on, so an image queued for a model stream holds ~1 MiB (or ~9 MiB with its
    picture), not a 40 MiB mammogram. Timed as `preprocess`, which it is; a failure is that image's
    failure line."""
    for work in works:
        if work.pending and work.image is not None:
            try:
                with stage_span("preprocess", work.spans):
                    work.image = view(_with_picture(work.image) if pictures else work.image)
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
