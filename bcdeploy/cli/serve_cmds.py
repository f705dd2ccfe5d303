"""`bcdeploy serve MODEL`."""

from __future__ import annotations

import click

from bcdeploy.cli._options import backend_options, runner_options
from bcdeploy.runtime.imageio import DEFAULT_MAX_PIXELS


def _min_max(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    low, sep, high = value.partition(":")
    if not (sep and low.isdigit() and high.isdigit() and 0 < int(low) <= int(high)):
        raise click.BadParameter(f"{value!r}: expected MIN:MAX with 1 <= MIN <= MAX, e.g. 1:4")
    return int(low), int(high)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--address", default="local", show_default=True,
              help="Ray to run on: 'local' (a private loopback-only Ray), 'auto', or a cluster address "
                   "(host:port of its GCS, or ray://host:port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the HTTP proxy.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(1),
              help="Model replicas (each opens the model once).")
@click.option("--autoscale", callback=_min_max, metavar="MIN:MAX",
              help="Autoscale between MIN and MAX replicas on ongoing requests (instead of --replicas).")
@click.option("--cpus-per-replica", default=1.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="CPUs each replica reserves from Ray.")
@click.option("--gpus-per-replica", default=0.0, show_default=True, type=click.FloatRange(0),
              help="GPUs each replica reserves from Ray (fractions share a GPU).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Dynamic batching: most requests gathered into one backend call.")
@click.option("--max-body-mb", default=128.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Larger uploads are refused with 413 before they are read.")
@click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, type=click.IntRange(1),
              help="Images with more pixels are refused with 400.")
@click.option("--drain-s", default=30.0, show_default=True, type=click.FloatRange(0),
              help="On SIGTERM/Ctrl-C, how long replicas may finish the requests they hold.")
@backend_options("provider", "threads")
def serve(model, address, host, port, replicas, autoscale, cpus_per_replica, gpus_per_replica, max_batch,
          max_body_mb, max_pixels, drain_s, provider, threads) -> None:
    """Serve MODEL over HTTP with Ray Serve and dynamic batching (POST an image to /segment)."""
    from bcdeploy.serve.launch import ReplicaOptions, ScaleOptions, ServeOptions, serve_forever

    options = ServeOptions(
        address=address, host=host, port=port, max_body_bytes=int(max_body_mb * 2**20),
        replica=ReplicaOptions(backend=runner_options(model, provider=provider, threads=threads), max_batch=max_batch,
                               max_pixels=max_pixels),
        scale=ScaleOptions(replicas=replicas, autoscale=autoscale, cpus_per_replica=cpus_per_replica,
                           gpus_per_replica=gpus_per_replica, drain_s=drain_s))

    def ready(h: str, p: int) -> None:
        click.echo(f"serving {model} at http://{h}:{p}/segment (POST an image; GET /segment/metadata, "
                   f"/-/healthz); Ctrl-C or SIGTERM drains and stops", err=False)

    serve_forever(model, options, on_ready=ready)
