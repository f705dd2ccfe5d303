"""`bcdeploy serve MODEL`: options in sections, each parsed into its part of one ServeOptions."""

from __future__ import annotations

import click
import cloup

from bcdeploy.cli._options import backend_option_list, runner_options
from bcdeploy.cli._run_args import CONNECT_TIMEOUT, MAX_PIXELS, pop_replicas, replica_options, section


@cloup.command()
@click.argument("model", type=click.Path(dir_okay=False))
@section(
    "Model and backend",
    click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 256),
                 help="Dynamic batching: most requests gathered into one backend call."),
    *backend_option_list("provider", "threads"),
)
@section(
    "HTTP",
    click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the HTTP proxy."),
    click.option("--port", default=8000, show_default=True, type=int),
    click.option("--max-body-mb", default=128.0, show_default=True, type=click.FloatRange(0, min_open=True),
                 help="Larger uploads are refused with 413 before they are read."),
    MAX_PIXELS,
)
@section(
    "Scale-out",
    click.option("--address", default="local", show_default=True,
                 help="Ray to run on: 'local' (a private loopback-only Ray), 'auto', or a cluster address "
                      "(host:port of its GCS, or ray://host:port)."),
    *replica_options(),
    click.option("--drain-s", default=30.0, show_default=True, type=click.FloatRange(0),
                 help="On SIGTERM/Ctrl-C, how long replicas may finish the requests they hold."),
    CONNECT_TIMEOUT,
)
def serve(model, max_batch, provider, threads, host, port, max_body_mb, max_pixels, address, drain_s,
          connect_timeout_s, **values) -> None:
    """Serve MODEL over HTTP with Ray Serve and dynamic batching (POST an image to /segment)."""
    from bcdeploy.scale.cluster import Replicas
    from bcdeploy.serve.launch import serve_forever
    from bcdeploy.serve.options import ReplicaOptions, ServeOptions

    replicas = pop_replicas(values) or Replicas()
    options = ServeOptions(
        address=address, host=host, port=port, max_body_bytes=int(max_body_mb * 2**20), drain_s=drain_s,
        connect_timeout_s=connect_timeout_s,
        replica=ReplicaOptions(backend=runner_options(model, provider=provider, threads=threads), max_batch=max_batch,
                               max_pixels=max_pixels),
        replicas=replicas)

    def ready(h: str, p: int) -> None:
        click.echo(f"serving {model} at http://{h}:{p}/segment (POST an image; GET /segment/metadata, "
                   f"/-/healthz); Ctrl-C or SIGTERM drains and stops", err=False)

    serve_forever(model, options, on_ready=ready)
