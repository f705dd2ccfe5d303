"""`bcdeploy serve MODEL`: three option sections, each parsed into its part of one ServeOptions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import click
import cloup

from bcdeploy.cli._options import backend_option_list, runner_options
from bcdeploy.cli._sections import CONNECT_TIMEOUT, MAX_PIXELS, OptionGroup, parsed_all, replica_options, replicas_of


class ServeModelArgs(OptionGroup):
    """Parses into the serve.options.ReplicaOptions of MODEL (its backend options checked against it)."""

    title: ClassVar[str] = "Model and backend"

    @classmethod
    def options(cls) -> list:
        return [click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 256),
                             help="Dynamic batching: most requests gathered into one backend call."),
                *backend_option_list("provider", "threads")]

    @classmethod
    def build(cls, *, max_batch: int, model: str, **backend: Any) -> Any:
        from bcdeploy.serve.options import ReplicaOptions

        return ReplicaOptions(backend=runner_options(model, **backend), max_batch=max_batch)


@dataclass(frozen=True, kw_only=True)
class HttpArgs(OptionGroup):
    title: ClassVar[str] = "HTTP"
    host: str
    port: int
    max_body_bytes: int
    max_pixels: int

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the HTTP proxy."),
            click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535)),
            click.option("--max-body-mb", default=128.0, show_default=True, type=click.FloatRange(0, min_open=True),
                         help="Larger uploads are refused with 413 before they are read."),
            MAX_PIXELS,
        ]

    @classmethod
    def build(cls, *, host: str, port: int, max_body_mb: float, max_pixels: int) -> HttpArgs:
        return cls(host=host, port=port, max_body_bytes=int(max_body_mb * 2**20), max_pixels=max_pixels)


@dataclass(frozen=True, kw_only=True)
class ServeScaleArgs(OptionGroup):
    title: ClassVar[str] = "Scale-out"
    address: str
    replicas: Any  # scale.cluster.Replicas
    drain_s: float
    connect_timeout_s: float

    @classmethod
    def options(cls) -> list:
        return [
            click.option("--address", default="local", show_default=True,
                         help="Ray to run on: 'local' (a private loopback-only Ray), 'auto', or a cluster address "
                              "(host:port of its GCS, or ray://host:port)."),
            *replica_options(),
            click.option("--drain-s", default=30.0, show_default=True, type=click.FloatRange(0),
                         help="On SIGTERM/Ctrl-C, how long replicas may finish the requests they hold."),
            CONNECT_TIMEOUT,
        ]

    @classmethod
    def build(cls, *, address: str, drain_s: float, connect_timeout_s: float, **replica: Any) -> ServeScaleArgs:
        from bcdeploy.scale.cluster import Replicas

        return cls(address=address, replicas=replicas_of(**replica) or Replicas(), drain_s=drain_s,
                   connect_timeout_s=connect_timeout_s)


@cloup.command()
@click.argument("model", type=click.Path(dir_okay=False))
@ServeModelArgs.section()
@HttpArgs.section()
@ServeScaleArgs.section()
def serve(model, **values) -> None:
    """Serve MODEL over HTTP with Ray Serve and dynamic batching (POST an image to /segment)."""
    from bcdeploy.serve.launch import serve_forever
    from bcdeploy.serve.options import ServeOptions

    replica = ServeModelArgs.parse(values, model=model)
    http = HttpArgs.parse(values)
    cluster = ServeScaleArgs.parse(values)
    parsed_all(values)
    options = ServeOptions(address=cluster.address, host=http.host, port=http.port, max_body_bytes=http.max_body_bytes,
                           drain_s=cluster.drain_s, connect_timeout_s=cluster.connect_timeout_s,
                           replica=replace(replica, max_pixels=http.max_pixels), replicas=cluster.replicas)

    def ready(h: str, p: int) -> None:
        click.echo(f"serving {model} at http://{h}:{p}/segment (POST an image; GET /segment/metadata, "
                   f"/-/healthz); Ctrl-C or SIGTERM drains and stops", err=False)

    serve_forever(model, options, on_ready=ready)
