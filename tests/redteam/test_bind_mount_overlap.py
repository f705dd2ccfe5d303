"""The output folder and an input can be one folder under two paths that resolve() cannot relate: a bind
mount (common in containers: the data set mounted at /data and at /mnt/data). `prepare --overwrite`
with the output on the other path replaced the data set; `infer` wrote its outputs into the input
folder. Overlap must be decided on the folders themselves (device and inode), not only on paths."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.fileio import sha256_file
from tests.redteam.conftest import infer, write_png


@pytest.fixture
def bind(tmp_path):
    mounts = []

    def mount(source, target):
        target.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode != 0:
            pytest.skip("needs permission to bind-mount (root)")
        mounts.append(target)
        return target

    yield mount
    for target in reversed(mounts):
        subprocess.run(["umount", str(target)], check=False)


def _hashes(root):
    return {p.relative_to(root): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_prepare_refuses_the_data_set_under_another_path(dmid, tmp_path, bind):
    root = tmp_path / "dmid"
    shutil.copytree(dmid, root)
    before = _hashes(root)
    mounted = bind(root, tmp_path / "mnt")
    for out in [mounted / "ROI Masks", mounted / "TIFF Images", mounted]:
        args = ["prepare", "--images-dir", root / "TIFF Images", "--masks-dir", root / "ROI Masks",
                "--metadata", root / "Info.txt", "--output-dir", out, "--workers", "1", "--overwrite"]
        result = CliRunner().invoke(cli, [str(a) for a in args])
        assert result.exit_code == 1, result.output
        assert str(out) in result.output and "error:" in result.output
        assert _hashes(root) == before


def test_infer_refuses_an_output_folder_that_is_the_input_folder(tmp_path, tiny_model, bind):
    images = tmp_path / "images"
    write_png(images / "a.png")
    out = bind(images, tmp_path / "mnt")
    code, output = infer(tiny_model, images, "--out", out)
    assert code == 1 and "error:" in output, output
    assert sorted(p.name for p in images.iterdir()) == ["a.png"]
