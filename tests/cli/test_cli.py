import click
import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli


def _walk(group: click.Group, prefix: list[str]) -> list[list[str]]:
    """Every command path under `group`, read from the CLI itself so a new command is never missed."""
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        paths += _walk(command, [*prefix, name]) if isinstance(command, click.Group) else [[*prefix, name]]
    return paths


COMMANDS = _walk(cli, [])


def test_every_command_is_walked():
    # the walk must reach nested groups (bench, data) and the top-level jobs users run
    for expected in (["infer"], ["export"], ["prepare"], ["data", "synth"], ["bench", "parity"], ["serve"]):
        assert expected in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "bcdeploy")
def test_help(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_user_error_is_one_line_and_exit_1(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    result = CliRunner().invoke(cli, ["infer", "--engine", str(model), str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "known suffixes" in result.output and ".onnx" in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "bcdeploy" in result.output
