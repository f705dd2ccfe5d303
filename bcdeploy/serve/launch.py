"""Start or join Ray, deploy the serve application, drain it on SIGTERM/Ctrl-C.

Local mode (`--address local`, the default) starts a private single-node Ray whose every service
listens on 127.0.0.1 only: `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` plus an explicit node address keep
GCS, raylet, object manager and agents on loopback (Ray on Linux otherwise binds them to all
interfaces), and `bind_replica_grpc_to_loopback` does the same for Serve's replica gRPC servers.
Only the HTTP proxy follows `--host`. Cluster mode joins an existing Ray cluster as a driver; what
listens there is the cluster's own configuration (see README "Serving").
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bcdeploy.errors import InputError
from bcdeploy.runtime.backends import BackendOptions
from bcdeploy.runtime.imageio import DEFAULT_MAX_PIXELS

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, kw_only=True)
class ReplicaOptions:
    """How each segmenter replica runs and what it accepts."""

    backend: BackendOptions | None = None  # from the registry, checked against the model before Ray starts
    max_batch: int = 8
    batch_wait_s: float = 0.005
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True, kw_only=True)
class ScaleOptions:
    """How many replicas, and what each one asks of the cluster (real resource requests)."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max): Serve scales on ongoing requests
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    drain_s: float = 30.0  # graceful shutdown: how long a replica may finish its requests


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """Everything `bcdeploy serve` needs besides the model (see cli/serve_cmds.py for the flags)."""

    address: str = "local"  # local | auto | ray://host:port | host:port (GCS of a running cluster)
    host: str = LOOPBACK
    port: int = 8000
    max_body_bytes: int = 128 * 2**20
    replica: ReplicaOptions = field(default_factory=ReplicaOptions)
    scale: ScaleOptions = field(default_factory=ScaleOptions)


def connect(address: str, object_store_bytes: int, purpose: str = "bcdeploy serve") -> None:
    """Start a loopback-only local Ray, or join the cluster at `address` (also `infer --ray`)."""
    if address == "local":
        # must be set before ray is imported: Ray reads it once, into a module constant
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from bcdeploy._imports import require

    ray = require("ray", purpose)
    if address == "local":
        ray.init(address="local", _node_ip_address=LOOPBACK, include_dashboard=False, log_to_driver=False,
                 object_store_memory=object_store_bytes, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)


def deploy(model_path: Path, options: ServeOptions) -> object:
    """Deploy on the Ray this process is connected to; returns the ModelBlob (keep it alive: the
    driver owns the model bytes in the object store)."""
    import ray
    from ray import serve

    from bcdeploy.serve.ray_app import APP_NAME, ROUTE, ModelBlob, build_app

    replica, scale = options.replica, options.scale
    wanted = (scale.autoscale[0] if scale.autoscale else scale.replicas) * scale.cpus_per_replica
    available = ray.cluster_resources().get("CPU", 0)
    if options.address == "local" and wanted > available:
        raise InputError(f"{wanted:g} CPUs asked (replicas x --cpus-per-replica) but the local Ray has "
                         f"{available:g}; lower --replicas/--cpus-per-replica or join a cluster with --address")
    blob = ModelBlob.put(model_path)
    # HeadOnly: one proxy, on the head node; every node's proxy would want the same host:port
    serve.start(http_options={"host": options.host, "port": options.port, "location": "HeadOnly"})
    serve.run(build_app(blob, replica, scale, options.max_body_bytes), name=APP_NAME, route_prefix=ROUTE,
              blocking=False)
    return blob


def serve_forever(model_path: str | Path, options: ServeOptions,
                  on_ready: Callable[[str, int], None] | None = None) -> None:
    """Connect, deploy, block until SIGTERM or Ctrl-C, then drain: the application is deleted (each
    replica finishes its requests, up to the drain time) before Ray is left or shut down."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise InputError(f"{model_path}: model file not found")
    connect(options.address, max(256 * 2**20, 3 * model_path.stat().st_size))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which installs its own SIGTERM exit
        signal.signal(sig, lambda *_: stop.set())
    import ray
    from ray import serve

    from bcdeploy.serve.ray_app import APP_NAME

    try:
        blob = deploy(model_path, options)
        if on_ready:
            on_ready(options.host, options.port)
        while not stop.wait(0.5):
            pass
        serve.delete(APP_NAME)
        del blob
    finally:
        if options.address == "local":
            serve.shutdown()
        ray.shutdown()
