"""An input whose name is near the file-system limit (255 bytes) must still get its outputs: the final
names (masks/<stem>.png) fit, but the temporary name beside them (`.<stem>.<random>.part.png`) did not."""

from __future__ import annotations

from bcdeploy.fileio import write_bytes
from tests.redteam.conftest import infer, write_png


def test_atomic_write_of_a_name_at_the_limit(tmp_path):
    target = tmp_path / ("x" * 251 + ".png")  # 255 bytes: the longest name most file systems allow
    write_bytes(target, b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    wide = tmp_path / ("é" * 125 + ".png")  # 254 bytes in UTF-8
    write_bytes(wide, b"data")
    assert wide.read_bytes() == b"data"


def test_infer_writes_outputs_for_a_long_input_name(tmp_path, tiny_model):
    images, out = tmp_path / "images", tmp_path / "out"
    name = "x" * 245
    write_png(images / f"{name}.png")
    code, output = infer(tiny_model, images, "--out", out)
    assert code == 0, output
    assert (out / "masks" / f"{name}.png").is_file() and (out / "vis" / f"{name}.jpg").is_file()
