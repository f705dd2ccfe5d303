import cv2
import numpy as np
import pytest

from bcdeploy.errors import InputError
from bcdeploy.runtime.imageio import effective_bit_depth, read_image, read_mask, sniff_format
from tests.helpers import write_dicom


@pytest.fixture
def gray():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (120, 90), dtype=np.uint8), (5, 5), 2)


def test_8bit_formats_decode_exactly_as_mmseg(tmp_path, gray):
    """MMSeg's LoadImageFromFile: cv2.imdecode(IMREAD_COLOR) -> BGR uint8, alpha dropped."""
    rgba = np.dstack([gray, gray // 2, gray // 3, np.full_like(gray, 7)])
    files = {"rgba.tif": rgba, "lzw.tif": rgba, "gray.png": gray, "photo.jpg": rgba[..., :3]}
    for name, arr in files.items():
        params = [cv2.IMWRITE_TIFF_COMPRESSION, 5] if name == "lzw.tif" else []
        cv2.imwrite(str(tmp_path / name), arr, params)
        expected = cv2.imdecode(np.fromfile(tmp_path / name, np.uint8), cv2.IMREAD_COLOR)
        decoded = read_image(tmp_path / name)
        assert decoded.bgr.dtype == np.uint8 and decoded.bgr.shape == expected.shape
        np.testing.assert_array_equal(decoded.bgr, expected, err_msg=name)


def test_16bit_tiff_and_png_use_effective_bit_depth(tmp_path, gray):
    twelve_bit = gray.astype(np.uint16) * 16 + 15  # max 4095
    for name in ("g16.tif", "g16.png"):
        cv2.imwrite(str(tmp_path / name), twelve_bit)
        decoded = read_image(tmp_path / name)
        expected = np.clip(np.rint(twelve_bit.astype(np.float32) * (255 / 4095)), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(decoded.bgr[..., 0], expected)
        assert decoded.source_dtype == "uint16" and "12-bit" in decoded.intensity_map
    assert effective_bit_depth(255) == 8 and effective_bit_depth(1023) == 10 and effective_bit_depth(40000) == 16


def test_dicom_window_and_monochrome1(tmp_path, gray):
    pixels = gray.astype(np.uint16) * 16
    plain = read_image(write_dicom(tmp_path / "a.dcm", pixels, window=(2048, 4096)))
    inverted = read_image(write_dicom(tmp_path / "b.dcm", pixels, window=(2048, 4096), monochrome1=True))
    assert plain.format == "dicom" and plain.bgr.shape == (120, 90, 3)
    np.testing.assert_array_equal(inverted.bgr, 255 - plain.bgr)
    # brighter pixels stay brighter through the window
    assert np.corrcoef(plain.bgr[..., 0].ravel(), gray.ravel())[0, 1] > 0.99
    narrow = read_image(write_dicom(tmp_path / "c.dcm", pixels, window=(2048, 512)))
    assert (narrow.bgr == 0).mean() > (plain.bgr == 0).mean()  # a narrow window clips more


def test_dicom_without_suffix_is_recognised(tmp_path, gray):
    path = write_dicom(tmp_path / "scan", gray.astype(np.uint16))
    assert read_image(path).format == "dicom"


def test_mask_reading_any_channel(tmp_path):
    mask = np.zeros((40, 40), np.uint8)
    mask[5:10, 5:10] = 255
    cv2.imwrite(str(tmp_path / "m.tif"), np.dstack([mask] * 4), [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), mask)


def _truncated_png(path, gray):
    cv2.imwrite(str(path), gray)
    path.write_bytes(path.read_bytes()[:200])


def _five_channels(path, gray):
    import tifffile

    tifffile.imwrite(path, np.dstack([gray] * 5), photometric="minisblack", planarconfig="contig")


@pytest.mark.parametrize("make, message", [
    (lambda p, g: p.write_bytes(b""), "empty"),
    (_truncated_png, "cannot decode"),
    (lambda p, g: p.write_text("hello"), "not a TIFF, PNG, JPEG or DICOM"),
    (_five_channels, "5 channels"),
    (lambda p, g: cv2.imwrite(str(p), np.zeros((8, 5000), np.uint8)), "implausible image size"),
])
def test_bad_files_get_one_line_errors_naming_the_file(tmp_path, gray, make, message):
    path = tmp_path / "bad.png"
    if make is _five_channels:
        path = tmp_path / "bad.tif"
    make(path, gray)
    with pytest.raises(InputError, match=message) as err:
        read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="directory"):
        read_image(tmp_path)


def test_sniff():
    assert sniff_format(b"\x89PNG\r\n\x1a\n" + b"\0" * 10) == "png"
    assert sniff_format(b"II*\x00") == "tiff" and sniff_format(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff_format(b"\0" * 128 + b"DICM") == "dicom" and sniff_format(b"GIF89a") is None
