"""Start or join Ray (scale/cluster.py), deploy the serve application, drain it on SIGTERM/Ctrl-C.

On the private local Ray every service listens on 127.0.0.1 (scale/cluster.py says how), and
`ray_app.bind_replica_grpc_to_loopback` does the same for Serve's replica gRPC servers. Only the HTTP
proxy follows `--host`. Cluster mode joins an existing Ray cluster as a driver; what listens there is
the cluster's own configuration (see README "Serving").
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

from bcdeploy.errors import InputError
from bcdeploy.scale.cluster import check_fits, connect
from bcdeploy.serve.options import ServeOptions


def deploy(model_path: Path, options: ServeOptions) -> object:
    """Deploy on the Ray this process is connected to; returns the ModelBlob (keep it alive: the
    driver owns the model bytes in the object store)."""
    from ray import serve

    from bcdeploy.serve.ray_app import APP_NAME, ROUTE, ModelBlob, build_app

    if options.address == "local":
        check_fits(options.replicas)
    blob = ModelBlob.put(model_path)
    # HeadOnly: one proxy, on the head node; every node's proxy would want the same host:port
    serve.start(http_options={"host": options.host, "port": options.port, "location": "HeadOnly"})
    serve.run(build_app(blob, options), name=APP_NAME, route_prefix=ROUTE, blocking=False)
    return blob


def serve_forever(model_path: str | Path, options: ServeOptions,
                  on_ready: Callable[[str, int], None] | None = None) -> None:
    """Connect, deploy, block until SIGTERM or Ctrl-C, then drain: the application is deleted (each
    replica finishes its requests, up to the drain time) before Ray is left or shut down."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise InputError(f"{model_path}: model file not found")
    connect(options.address, max(256 * 2**20, 3 * model_path.stat().st_size), purpose="bcdeploy serve",
            timeout_s=options.connect_timeout_s)
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
