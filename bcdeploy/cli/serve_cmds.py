"""`bcdeploy serve MODEL`."""

from __future__ import annotations

import click

from bcdeploy.cli._options import backend_options


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Dynamic batching: most requests gathered into one backend call.")
@backend_options("provider", "threads")
def serve(model, host, port, max_batch, provider, threads) -> None:
    """Serve MODEL over HTTP with Ray Serve and dynamic batching (POST an image to /segment)."""
    from bcdeploy.serve.ray_app import serve_forever

    def ready(h, p):
        click.echo(f"serving {model} at http://{h}:{p}/segment (POST an image; GET /segment/metadata); Ctrl-C stops",
                   err=False)

    serve_forever(model, host, port, max_batch, provider, threads, on_ready=ready)
