import tracemalloc

import cv2
import numpy as np
import pytest
import tifffile

from bcdeploy.errors import InputError
from bcdeploy.runtime.images import imageio
from bcdeploy.runtime.images.imageio import (
    DEFAULT_MAX_PIXELS,
    decode_image,
    effective_bit_depth,
    read_image,
    read_mask,
    sniff_format,
)
from tests.helpers import write_dicom
from tests.runtime import hostile_images as hostile


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


HOSTILE = {  # name: (generator, file name, the size its header declares)
    "4 KB TIFF declaring 100000x100000": (hostile.tiny_tiff_declaring, "big.tif", "100000x100000"),
    "deflate TIFF of 15000x15000": (hostile.deflate_bomb_tiff, "bomb.tif", "15000x15000"),
    "4 KB PNG declaring 100000x100000": (hostile.tiny_png_declaring, "big.png", "100000x100000"),
    "JPEG declaring 65000x65000": (hostile.jpeg_declaring, "big.jpg", "65000x65000"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_header_over_pixel_budget_is_refused_before_decoding(tmp_path, name):
    make, filename, declared = HOSTILE[name]
    path = make(tmp_path / filename)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as err:
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert str(path) in message and declared in message and "\n" not in message
    assert f"{DEFAULT_MAX_PIXELS:,}" in message and "--max-pixels" in message
    # no pixel buffer was allocated: the 15000x15000 one alone would be 225 MB
    assert peak < 4 * path.stat().st_size + 4_000_000, f"{name}: peak {peak / 1e6:.1f} MB"


def test_pixel_budget_is_a_parameter(tmp_path, gray):
    for name in ("g.png", "g.tif", "g.jpg"):
        cv2.imwrite(str(tmp_path / name), gray)
        assert read_image(tmp_path / name, max_pixels=120 * 90).shape == (120, 90)
        with pytest.raises(InputError, match=r"declares 90x120 pixels .* budget of 10,799 "):
            read_image(tmp_path / name, max_pixels=120 * 90 - 1)
        with pytest.raises(InputError, match="--max-pixels 10800"):
            decode_image((tmp_path / name).read_bytes(), name, max_pixels=100)


def test_decoded_size_must_match_the_header(tmp_path, gray, monkeypatch):
    path = tmp_path / "g.png"
    cv2.imwrite(str(path), gray)
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: real(buf, flags)[:-1])  # a decoder that disagrees
    with pytest.raises(InputError, match=r"g.png: header declares 90x120 pixels but the data decodes to 90x119"):
        read_image(path)


def _tiff_8bit(path, channels, compression, seed, opaque=True, **extra):
    """Strips of 64 rows x 1100 px: big enough for bcdeploy's threaded tifffile decoding."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (150, 1100, channels), dtype=np.uint8).squeeze()
    if channels == 4 and opaque:
        arr[..., 3] = 255  # as in DMID
    tifffile.imwrite(path, arr, photometric="minisblack" if channels == 1 else "rgb", compression=compression,
                     predictor=compression is not None, rowsperstrip=64, **extra)
    return path


def _mmseg_decode(path):
    return cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)  # LoadImageFromFile's call


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("compression", [None, "lzw", "deflate"])
def test_8bit_tiff_decodes_without_opencv_to_opencvs_pixels(tmp_path, channels, compression, monkeypatch):
    monkeypatch.setattr(imageio, "TIFF_DECODE_WORKERS", 2)  # the default on machines with 2+ cores
    path = _tiff_8bit(tmp_path / "t.tif", channels, compression, seed=channels)
    expected = _mmseg_decode(path)
    unchanged = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    unchanged_to_bgr = cv2.cvtColor(unchanged, cv2.COLOR_GRAY2BGR) if channels == 1 else unchanged[..., :3]

    def opencv_not_needed(*args):
        raise AssertionError("decoded with OpenCV; expected tifffile with imagecodecs")

    monkeypatch.setattr(cv2, "imdecode", opencv_not_needed)
    decoded = read_image(path)
    assert decoded.bgr.flags.c_contiguous and decoded.source_channels == channels
    np.testing.assert_array_equal(decoded.bgr, expected)
    np.testing.assert_array_equal(decoded.bgr, unchanged_to_bgr)


@pytest.mark.parametrize("extra", [
    {"extrasamples": ["unassalpha"]},  # OpenCV premultiplies colour by alpha: OpenCV must decode it
    {"extrasamples": ["assocalpha"]},
    {"extratags": [(274, "H", 1, 3, True)]},  # Orientation: rotated 180 degrees
    {"extratags": [(274, "H", 1, 6, True)]},  # rotated 90 degrees: sides swap
])
def test_tiff_layouts_opencv_treats_specially_keep_opencvs_pixels(tmp_path, extra):
    path = _tiff_8bit(tmp_path / "t.tif", 4 if "extrasamples" in extra else 3, "lzw", seed=5, opaque=False, **extra)
    np.testing.assert_array_equal(read_image(path).bgr, _mmseg_decode(path))


@pytest.mark.parametrize("compression", ["lzw", "deflate"])
@pytest.mark.parametrize("damage", ["flip bytes", "truncate"])
def test_damaged_tiff_strip_gets_opencvs_verdict(tmp_path, monkeypatch, compression, damage):
    """tifffile must not turn a strip libtiff rejects into black rows: same pixels or same refusal."""
    monkeypatch.setattr(imageio, "TIFF_DECODE_WORKERS", 2)
    path = _tiff_8bit(tmp_path / "t.tif", 4, compression, seed=9)
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages.first.dataoffsets[1], tif.pages.first.databytecounts[1]
    if damage == "truncate":
        data = data[: offset + count // 2]
    else:
        data[offset + 100 : offset + 140] = bytes(255 - b for b in data[offset + 100 : offset + 140])
    path.write_bytes(bytes(data))
    expected = _mmseg_decode(path)
    if expected is None:
        with pytest.raises(InputError, match="cannot decode TIFF data"):
            read_image(path)
    else:
        np.testing.assert_array_equal(read_image(path).bgr, expected)
