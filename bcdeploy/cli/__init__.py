"""The `bcdeploy` command. Commands only parse options and call the library function of the same
job; they own printing, progress bars and tables. A BcDeployError becomes one line on stderr and
exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from bcdeploy import __version__, _quiet
from bcdeploy.cli import bench_cmds, data_cmds, dicom_cmds, gateway_cmds, inspect_cmds, model_cmds, runtime_cmds, serve_cmds
from bcdeploy.errors import BcDeployError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # noqa: D401 - click API
        try:
            return super().invoke(ctx)
        except BcDeployError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bcdeploy")
@click.option("-v", "--verbose", count=True,
              help="More log output (-vv for debug), and the libraries' own lines (OpenCV, libpng, onnxruntime, "
                   f"OpenVINO, mmcv warnings), hidden by default. Same as {_quiet.VERBOSE_ENV}=1.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Deploy MMSegmentation breast-cancer segmentation models: data, training, export, inference."""
    if not _quiet.verbose_requested(verbose):
        ctx.call_on_close(_quiet.silence_libraries())  # before logging binds its handler to sys.stderr
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(data_cmds.data)
cli.add_command(data_cmds.prepare)
cli.add_command(bench_cmds.bench)
cli.add_command(inspect_cmds.inspect_cmd)
cli.add_command(serve_cmds.serve)
cli.add_command(gateway_cmds.gateway)
cli.add_command(dicom_cmds.dicom)
for command in model_cmds.COMMANDS + runtime_cmds.COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="bcdeploy")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
