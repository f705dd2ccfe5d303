"""`bcdeploy serve` argument checks, in-process: refused before any Ray starts."""

from click.testing import CliRunner

from bcdeploy.cli import cli


def test_replicas_must_be_n_or_min_max(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    for bad in ("3:1", "0:2", "0", "a:b"):
        result = CliRunner().invoke(cli, ["serve", str(model), "--replicas", bad])
        assert result.exit_code == 2 and "MIN:MAX" in result.output, (bad, result.output)


def test_resources_must_be_real_requests(tmp_path):
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "m.onnx"), "--cpus-per-replica", "0"])
    assert result.exit_code == 2 and "--cpus-per-replica" in result.output


def test_missing_model_is_one_error_line(tmp_path):
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "absent.onnx")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'absent.onnx'}: model file not found"]
