"""A file name with a newline (legal on POSIX) split its failure line in two, and the second half can
forge a line of ours ("processed 5, ..."): each failure must stay one line, with control characters
shown escaped."""

from __future__ import annotations

from click.testing import CliRunner

from bcdeploy.cli import cli


def test_a_newline_in_a_file_name_stays_inside_one_failure_line(tmp_path, tiny_model):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a\nprocessed 5, skipped 0 (done earlier), failed 0.png").write_bytes(b"not an image")
    result = CliRunner().invoke(cli, ["infer", "--engine", str(tiny_model), str(images), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert not any(line.startswith("processed 5") for line in lines), result.stderr
    assert sum("failed:" in line and "a\\nprocessed 5" in line for line in lines) == 1, result.stderr
