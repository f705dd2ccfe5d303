"""`bcdeploy serve MODEL`: the torch-free runtime behind Ray Serve.

Why Ray Serve and not PyTriton: PyTriton's Python-backend stub embeds its own Python 3.11 build,
which does not match this platform's 3.11.7 standard library ("'_thread.RLock' object has no
attribute '_recursion_count'") and fails to start a model; there is no clean fix short of rebuilding
the stub. Ray Serve gives what we need from a real serving engine: HTTP ingress, replicas, and
dynamic batching (`@serve.batch` gathers concurrent requests into one backend call). For GPU
production, `bcdeploy export --triton` writes a Triton model repository instead.

Protocol (HTTP/JSON): `POST /segment` with the image file as the body (TIFF, PNG, JPEG or DICOM,
any of the runtime's formats) returns `{"width", "height", "classes", "mask_png_b64", "lesions"}`;
`GET /metadata` returns the model's sidecar. The mask is the same PNG `bcdeploy infer` writes.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def build_app(model_path: str, max_batch: int = 8, batch_wait_s: float = 0.005, provider: str | None = None, threads: int = 0):
    """The Ray Serve application (a bound deployment) for `model_path`."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment(name="bcdeploy_segmenter", ray_actor_options={"num_cpus": 0})
    class SegmenterDeployment:
        def __init__(self) -> None:
            from bcdeploy.runtime.backends import options_for
            from bcdeploy.runtime.segmenter import Segmenter

            # None/0: not given; an option the model's backend does not take is refused by the registry
            self.segmenter = Segmenter(model_path, options=options_for(model_path, provider=provider, threads=threads or None))
            self.segment_batch.set_max_batch_size(max_batch)
            self.segment_batch.set_batch_wait_timeout_s(batch_wait_s)

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
        async def segment_batch(self, images: list) -> list:
            # one backend call for every request that arrived within the batch window
            return self.segmenter.predict(images)

        async def __call__(self, request: Request):
            from bcdeploy.errors import BcDeployError
            from bcdeploy.runtime.imageio import decode_image
            from bcdeploy.runtime.lesions import extract_lesions
            from bcdeploy.runtime.outputs import encode

            if request.method == "GET" and request.url.path.rstrip("/").endswith("metadata"):
                return JSONResponse(self.segmenter.meta.to_dict())
            if request.method != "POST":
                return JSONResponse({"error": "POST an image file to /segment"}, status_code=405)
            name = request.headers.get("x-filename", "upload")
            try:
                image = decode_image(await request.body(), name)
            except BcDeployError as err:
                return JSONResponse({"error": str(err)}, status_code=400)
            prediction = await self.segment_batch(image.bgr)
            meta = self.segmenter.meta
            return JSONResponse({
                "width": image.shape[1], "height": image.shape[0], "classes": meta.classes,
                "mask_png_b64": base64.b64encode(encode(prediction.mask, ".png")).decode("ascii"),
                "lesions": extract_lesions(prediction.mask, meta.classes, prediction.probs),
                "timings_ms": {k: round(v, 2) for k, v in prediction.timings_ms.items()},
            })

    return SegmenterDeployment.bind()


def serve_forever(model_path: str, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 8,
                  provider: str | None = None, threads: int = 0, on_ready=None) -> None:
    """Start Ray (local, no dashboard), deploy, and block until interrupted; then shut everything down."""
    import signal
    import threading

    from bcdeploy._imports import require

    ray = require("ray", "bcdeploy serve")
    from ray import serve

    from bcdeploy.errors import InputError

    if not Path(model_path).is_file():
        raise InputError(f"{model_path}: model file not found")
    ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20, configure_logging=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(model_path, max_batch, provider=provider, threads=threads), name="bcdeploy",
                  route_prefix="/segment", blocking=False)
        if on_ready:
            on_ready(host, port)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
