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


def test_entry_points_in_a_real_process(tmp_path):
    """Smoke test of what users run: the `bcdeploy` console script and `python -m bcdeploy.cli` (every
    other CLI test goes through click's runner in-process): version, and a user error as exit 1 with
    one `error:` line on stderr."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import run_cli_subprocess

    script = Path(sys.executable).with_name("bcdeploy")
    if not script.is_file():
        pytest.skip(f"no console script beside {sys.executable} (package not installed)")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("bcdeploy"), version.stderr
    model = tmp_path / "model.pt"
    model.write_bytes(b"x")
    proc = run_cli_subprocess("infer", "--engine", model, tmp_path, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


SECTIONS = {  # the titled option sections each command's --help shows (cloup option groups)
    ("infer",): ["Inputs", "Outputs", "Model and backend", "Sliding window", "DICOM and PACS", "Scale-out"],
    ("predict",): ["Inputs", "Outputs", "Model (PyTorch/MMSeg)"],
    ("serve",): ["Model and backend", "HTTP", "Scale-out"],
    ("gateway",): ["Node", "DICOM", "Model and backend", "Results", "Security and audit"],
    ("export",): ["Checkpoint", "Graph", "Variants", "Parity gates"],
    ("bench", "latency"): ["Models", "Workload", "Outputs"],
    ("bench", "parity"): ["Reference and contenders", "Gates", "Outputs"],
}


@pytest.mark.parametrize("command", sorted(SECTIONS), ids=" ".join)
def test_options_come_in_titled_sections(command):
    text = CliRunner().invoke(cli, [*command, "--help"]).output
    titles = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles[:len(SECTIONS[command])] == SECTIONS[command], text
    # nothing but --help is left outside the sections
    other = text.split("Other options:")[1] if "Other options:" in text else ""
    assert [line.split()[0] for line in other.splitlines() if line.strip().startswith("-")] in ([], ["-h,"]), text


def test_replaced_spellings_are_gone_and_engine_is_a_name_of_model():
    """No hidden alias while bcdeploy has no outside users (CHANGELOG.md); --engine, the product page's
    spelling, is a second name of --model, shown beside it."""
    for old in ("--workers", "--cpus-per-worker", "--gpus-per-worker"):
        result = CliRunner().invoke(cli, ["infer", "--model", "absent.onnx", "x.png", old, "2"])
        assert result.exit_code == 2 and "No such option" in result.output, (old, result.output)
    result = CliRunner().invoke(cli, ["serve", "absent.onnx", "--autoscale", "1:2"])
    assert result.exit_code == 2 and "No such option" in result.output
    assert "--model, --engine" in CliRunner().invoke(cli, ["infer", "--help"], terminal_width=200).output
    result = CliRunner().invoke(cli, ["infer", "--engine", "absent.onnx", "x.png"])
    assert result.exit_code == 1 and "absent.onnx" in result.output
