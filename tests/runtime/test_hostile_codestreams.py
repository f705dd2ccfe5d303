"""A hostile codestream is one file's failure line, whatever its decoder raises: a Rust decoder's panic
(pyo3's PanicException derives from BaseException and passed every `except Exception`) ended the whole
`infer` run before the good image beside it was segmented, and no results.json was written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bcdeploy.cli import cli
from bcdeploy.errors import InputError
from bcdeploy.runtime.images.imageio import DEFAULT_MAX_PIXELS, decode_image
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax
from tests.hostile_codestreams import poison_dicom


def _poison(tmp_path, syntax: str, seed: int):
    path = poison_dicom(tmp_path / f"{syntax}-{seed}.dcm", syntax, seed)
    if path is None:
        pytest.skip(f"no encoder for {syntax} installed")
    return path


@pytest.mark.parametrize("syntax,seed", [("rle", s) for s in range(4)] + [("jpegls", 0), ("j2k_lossless", 0)])
def test_each_decoder_failure_is_one_input_error_naming_the_file(tmp_path, syntax, seed):
    path = _poison(tmp_path, syntax, seed)
    try:
        decode_image(path.read_bytes(), path, max_pixels=DEFAULT_MAX_PIXELS)
    except InputError as err:
        assert str(path) in str(err) and "\n" not in str(err)
    # a decoder may also read random bytes as some picture: then there is nothing to refuse


def test_a_panicking_decoder_is_named_in_the_line(tmp_path):
    path = _poison(tmp_path, "rle", 0)
    with pytest.raises(InputError, match="PanicException"):
        decode_image(path.read_bytes(), path, max_pixels=DEFAULT_MAX_PIXELS)


def test_infer_segments_the_good_image_beside_a_poison_one(tmp_path, tiny_onnx):
    images = tmp_path / "in"
    poison = _poison(images, "rle", 0)
    good = write_syntax(mammogram_dataset(mammogram_pixels((256, 192)), patient_id="GOOD", laterality="R",
                                          view="CC", seed=3), "rle", images / "good.dcm")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["infer", "--engine", str(tiny_onnx), str(poison), str(good), "--out", str(out),
                                      "--save", "masks"], catch_exceptions=False)
    assert result.exit_code == 1, result.output  # one image failed: the exit status says so
    failures = [line for line in result.stderr.splitlines() if "failed:" in line]
    assert len(failures) == 1 and poison.name in failures[0] and "PanicException" in failures[0], result.stderr
    report = json.loads((out / "results.json").read_text())
    assert [(r["name"], r["status"]) for r in report["images"]] == [("good", "ok")]
    assert [f["file"] for f in report["failed"]] == [str(poison)] and "PanicException" in report["failed"][0]["error"]
    assert (out / "masks").is_dir() and len(list((out / "masks").iterdir())) == 1
