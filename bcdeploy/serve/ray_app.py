"""`bcdeploy serve MODEL`: the torch-free runtime behind Ray Serve, on a private local Ray or a cluster.

Why Ray Serve and not PyTriton: PyTriton's Python-backend stub embeds its own Python 3.11 build,
which does not match this platform's 3.11.7 standard library ("'_thread.RLock' object has no
attribute '_recursion_count'") and fails to start a model; there is no clean fix short of rebuilding
the stub. Ray Serve gives what we need from a real serving engine: HTTP ingress, replicas across
nodes, autoscaling and dynamic batching (`@serve.batch` gathers concurrent requests into one backend
call). For GPU production, `bcdeploy export --triton` writes a Triton model repository instead.

Protocol (HTTP/JSON): `POST /segment` with the image file as the body (TIFF, PNG, JPEG or DICOM,
any of the runtime's formats) returns `{"width", "height", "classes", "mask_png_b64", "lesions",
"timings_ms", "node"}`; `GET /segment/metadata` returns the model's sidecar, `GET /segment/metrics`
the application's counters for Prometheus (metrics.py); Ray Serve answers `GET /-/healthz`. Errors are `{"error": "<one line>"}` with 400 (bad image), 413 (body over the
limit), 503 (no replica could answer; retry) or 500 (a bug: the server log has the traceback).

Two deployments: `HttpIngress` (0 CPUs, on the head node beside Serve's HTTP proxy) reads the body
with a cap and turns replica failures into retries or a clean 503; `SegmenterReplica` (the CPUs and
GPUs asked for) decodes, segments and encodes in threads, so its event loop never blocks and a slow
image does not hold the small ones queued behind it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayActorError

from bcdeploy.scale.model_blob import ModelBlob
from bcdeploy.serve.options import ReplicaOptions, ServeOptions

log = logging.getLogger(__name__)

APP_NAME = "bcdeploy"
ROUTE = "/segment"
# A replica that died mid-request is retried on another one this many times before a 503: node loss
# takes Serve a moment to notice, so the waits grow (seconds).
RETRY_WAITS_S = (0.2, 0.5, 1.0, 2.0)
BODY_IDLE_S = 30.0  # longest silence between two chunks of an upload: a live client, however slow, keeps sending


def bind_replica_grpc_to_loopback() -> None:
    """Ray Serve (2.60) starts each replica's inter-deployment gRPC server on "[::]:0", i.e. on every
    interface, whatever the node's address. On a loopback-only node nothing outside can use it, so
    bind it to 127.0.0.1 like the node's other services."""
    from ray.serve._private import replica as replica_module

    if ray.util.get_node_ip_address() != "127.0.0.1":
        return
    original = getattr(replica_module, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "_bcdeploy_loopback", False):
        return

    def add_port(server: Any, address: str) -> int:
        return original(server, "127.0.0.1:" + address[len("[::]:"):] if address.startswith("[::]:") else address)

    add_port._bcdeploy_loopback = True  # type: ignore[attr-defined]
    replica_module.add_port_to_grpc_server = add_port


class SegmenterReplica:
    """One model instance: decode, segment (batched) and encode, each in a worker thread."""

    def __init__(self, blob: ModelBlob, options: ReplicaOptions) -> None:
        from bcdeploy.runtime.model.segmenter import Segmenter

        bind_replica_grpc_to_loopback()
        self._folder = tempfile.TemporaryDirectory(prefix="bcdeploy-replica-")
        model_path = blob.materialize(Path(self._folder.name))
        self.segmenter = Segmenter(model_path, options=options.backend)
        self.options = options
        self.node = ray.get_runtime_context().get_node_id()
        self._predict.set_max_batch_size(options.max_batch)
        self._predict.set_batch_wait_timeout_s(options.batch_wait_s)

    def metadata(self) -> dict:
        return self.segmenter.meta.to_dict()

    async def segment(self, data: bytes, name: str) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one uploaded file."""
        from bcdeploy.errors import BcDeployError
        from bcdeploy.runtime.images.imageio import decode_image

        try:
            image = await asyncio.to_thread(decode_image, data, name, max_pixels=self.options.max_pixels)
        except BcDeployError as err:
            return 400, {"error": str(err)}
        except Exception as err:  # noqa: BLE001 - any decoder failure is a bad upload, not a server error
            log.warning("%s: decoder failed", name, exc_info=True)
            detail = str(err).strip().splitlines()[-1:] or [type(err).__name__]
            return 400, {"error": f"{name}: cannot decode image ({type(err).__name__}: {detail[0][:200]})"}
        prediction = await self._predict(image.bgr)
        return 200, await asyncio.to_thread(self._reply, image, prediction)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005, max_concurrent_batches=2)
    async def _predict(self, images: list) -> list:
        # one backend call for every request that arrived within the batch window; two windows may
        # run at once, so a large image in one does not hold a small one in the next
        return await asyncio.to_thread(self.segmenter.predict, images)

    def _reply(self, image: Any, prediction: Any) -> dict:
        from bcdeploy.runtime.results.lesions import extract_lesions
        from bcdeploy.runtime.results.outputs import encode

        meta = self.segmenter.meta
        return {
            "width": image.shape[1], "height": image.shape[0], "classes": meta.classes,
            "mask_png_b64": base64.b64encode(encode(prediction.mask, ".png")).decode("ascii"),
            "lesions": extract_lesions(prediction.mask, meta.classes, prediction.probs),
            "timings_ms": {k: round(v, 2) for k, v in prediction.timings_ms.items()},
            "node": self.node,
        }


class HttpIngress:
    """HTTP in front of the replicas: routes, the body cap, retries on lost replicas, clean errors."""

    def __init__(self, segmenter: Any, max_body_bytes: int) -> None:
        from bcdeploy.serve.metrics import ServeMetrics

        bind_replica_grpc_to_loopback()
        self.segmenter = segmenter
        self.max_body_bytes = max_body_bytes
        self.metrics = ServeMetrics()

    async def __call__(self, request: Any) -> Any:
        import time

        from starlette.responses import Response

        path = request.url.path.rstrip("/")
        if request.method == "GET" and path.endswith("/metrics"):
            body, content_type = self.metrics.exposition()
            return Response(body, media_type=content_type)
        route = "metadata" if path.endswith("/metadata") else "segment"
        started = time.perf_counter()
        response = await self._answer(request, route)
        self.metrics.answered(route, response.status_code, time.perf_counter() - started)
        return response

    async def _answer(self, request: Any, route: str) -> Any:
        from starlette.responses import JSONResponse

        if request.method == "GET" and route == "metadata":
            try:
                return JSONResponse(await self._call("metadata"))
            except ReplicasUnavailable as err:
                return JSONResponse({"error": str(err)}, status_code=503)
        if request.method != "POST":
            return JSONResponse({"error": f"POST an image file to {ROUTE}"}, status_code=405)
        try:
            body = await read_capped(request, self.max_body_bytes)
        except BodyTooLarge as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        name = upload_name(request.headers.get("x-filename"))
        try:
            status, reply = await self._call("segment", body, name)
        except ReplicasUnavailable as err:
            return JSONResponse({"error": str(err)}, status_code=503)
        return JSONResponse(reply, status_code=status)

    async def _call(self, method: str, *args: Any) -> Any:
        """Call a replica; one that died (with its node) is retried on another, then 503."""
        last: Exception | None = None
        for wait in (0.0, *RETRY_WAITS_S):
            await asyncio.sleep(wait)
            try:
                return await getattr(self.segmenter, method).remote(*args)
            except RayActorError as err:
                last = err
                log.warning("replica lost during %s (%s); retrying", method, type(err).__name__)
        raise ReplicasUnavailable(f"no segmenter replica could answer ({type(last).__name__} after "
                                  f"{len(RETRY_WAITS_S) + 1} tries); try again shortly")


class ReplicasUnavailable(Exception):
    """Every try hit a dead replica: the client gets 503 and may retry."""


class BodyTooLarge(Exception):
    status = 413


class BodyStalled(BodyTooLarge):
    """A body whose next bytes do not come within BODY_IDLE_S (a slowloris client): refused like an
    oversized one, so its request slot and connection are freed."""

    status = 408


def upload_name(header: str | None, most: int = 120) -> str:
    """The client's X-Filename as it may appear in an error line and the server log: printable characters
    only (no control character can forge or break a line), at most `most` of them; 'upload' if none."""
    text = "".join(c for c in (header or "") if c.isprintable()).strip()
    return (text[:most - 3] + "..." if len(text) > most else text) or "upload"


async def read_capped(request: Any, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes: by its
    Content-Length before a byte is read, else while streaming, never after buffering it whole."""
    declared = request.headers.get("content-length")
    advice = f"this server accepts at most {limit} bytes (bcdeploy serve --max-body-mb)"
    # ASCII digits only: str.isdigit() also takes '²' (latin-1 superscript two), which int() refuses
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is {int(declared)} bytes; {advice}")
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), BODY_IDLE_S)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise BodyStalled(f"request body stalled: no bytes for {BODY_IDLE_S:g} s after {size} bytes; "
                              "send the whole file at once") from None
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes; {advice}")
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(blob: ModelBlob, options: ServeOptions) -> Any:
    """The Ray Serve application: HttpIngress -> SegmenterReplica (bound deployments)."""
    replica, replicas, drain_s = options.replica, options.replicas, options.drain_s
    scaling: dict[str, Any] = {"num_replicas": replicas.count[0]}
    if replicas.autoscaled:
        low, high = replicas.count
        # a replica is "busy" when it holds a full batch: scale out before requests queue behind it
        scaling = {"autoscaling_config": {"min_replicas": low, "max_replicas": high,
                                          "target_ongoing_requests": replica.max_batch}}
    segmenter_deployment = serve.deployment(
        SegmenterReplica, name="bcdeploy_segmenter",
        ray_actor_options={"num_cpus": replicas.cpus, "num_gpus": replicas.gpus},
        max_ongoing_requests=2 * replica.max_batch + 2, graceful_shutdown_timeout_s=drain_s,
        health_check_period_s=2, health_check_timeout_s=10, **scaling)
    ingress = serve.deployment(
        HttpIngress, name="bcdeploy_http", max_ongoing_requests=1000, graceful_shutdown_timeout_s=drain_s,
        # the ingress is light; keeping it on the head node (beside the HTTP proxy) means a lost
        # worker node takes replicas with it, never the front door
        ray_actor_options={"num_cpus": 0, "resources": {"node:__internal_head__": 0.001}})
    return ingress.bind(segmenter_deployment.bind(blob, replica), options.max_body_bytes)
