"""PNG/JPEG encoding of the run's outputs and the `--save` selection."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from bcdeploy.errors import InputError
from bcdeploy.runtime.results.outputs import encode, encode_opencv, parse_save, write_png
from bcdeploy.runtime.results.drawing import biner


def _mask(h=613, w=411, seed=0) -> np.ndarray:
    """Class indices 0..2 in blobs, as a segmentation mask looks (odd sizes: no row-width luck)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for _ in range(6):
        cv2.circle(mask, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(5, 60)), int(rng.integers(1, 3)), -1)
    return mask


def _arrays():
    rng = np.random.default_rng(1)
    mask = _mask()
    return {
        "mask": mask,
        "biner": biner(mask, 3),
        "noise_gray": rng.integers(0, 256, (97, 131), dtype=np.uint8),
        "bgr": rng.integers(0, 256, (64, 80, 3), dtype=np.uint8),
        "bgra": rng.integers(0, 256, (33, 47, 4), dtype=np.uint8),
        "gray16": rng.integers(0, 65536, (40, 30), dtype=np.uint16),
        "one_row": np.arange(256, dtype=np.uint8)[None, :],
    }


@pytest.mark.parametrize("name", list(_arrays()))
def test_png_decodes_to_the_exact_array_in_opencv_and_pillow(name):
    array = _arrays()[name]
    data = encode(array, ".png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == array.dtype and np.array_equal(back, array)  # OpenCV's BGR(A) order kept
    pil = np.asarray(Image.open(io.BytesIO(data)))
    rgb = array[..., [2, 1, 0, 3][: array.shape[2]]] if array.ndim == 3 else array
    assert np.array_equal(pil, rgb)
    # whichever encoder wrote it, the pixels are OpenCV's own PNG's pixels
    assert np.array_equal(cv2.imdecode(np.frombuffer(encode_opencv(array, ".png"), np.uint8), cv2.IMREAD_UNCHANGED), back)


def _row_filters(data: bytes) -> set[int]:
    """The filter byte of every row of an 8-bit gray PNG."""
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(raw) == height * (width + 1)
    return {raw[row * (width + 1)] for row in range(height)}


def test_mask_png_is_written_without_row_filters():
    """The chosen setting (measured in benchmarks/encode_bench.py): deflate alone, no row filters,
    which cost 4x the encode time on masks and do not make them smaller."""
    assert _row_filters(encode(_mask(), ".png")) == {0}


def test_write_png_is_atomic_and_readable(tmp_path):
    mask = _mask(50, 70)
    write_png(tmp_path / "masks" / "a.png", mask)
    assert np.array_equal(cv2.imread(str(tmp_path / "masks" / "a.png"), cv2.IMREAD_UNCHANGED), mask)
    assert [p.name for p in (tmp_path / "masks").iterdir()] == ["a.png"]


def test_arrays_png_cannot_hold_are_refused():
    with pytest.raises(InputError, match="cannot encode"):
        encode(np.zeros((4, 4), np.float64), ".png")


def test_jpeg_still_comes_from_opencv():
    bgr = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert encode(bgr, ".jpg", 85) == encode_opencv(bgr, ".jpg", 85)


@pytest.mark.parametrize("value, expected", [
    (None, {"mask", "biner", "vis"}),
    ("all", {"mask", "biner", "vis"}),
    ("masks,vis,biner", {"mask", "biner", "vis"}),
    ("masks", {"mask"}),
    (" VIS , masks ", {"mask", "vis"}),
    (("masks", "biner,masks"), {"mask", "biner"}),
])
def test_save_selection(value, expected):
    assert parse_save(value) == expected


@pytest.mark.parametrize("value, needle", [("masks,overlay", "overlay"), ("", "empty"), (",", "empty"),
                                           ("all,masks", "all")])
def test_save_selection_refuses_unknown_or_empty(value, needle):
    with pytest.raises(InputError, match=needle) as err:
        parse_save(value)
    assert "masks,biner,vis" in str(err.value)


@pytest.mark.parametrize("shape, size", [((4432, 2864, 3), (1323, 2048)), ((1001, 777, 3), (500, 644)),
                                         ((300, 200, 3), (150, 100)), ((3000, 2000), (1000, 1500))])
def test_overlay_downscale_matches_area_resize(shape, size):
    """The fast downscale stays within a few grey levels of OpenCV's INTER_AREA (what it replaces)."""
    from bcdeploy.runtime.results.drawing import downscale

    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (0, 0), 2)
    fast, area = downscale(image, size), cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    assert fast.shape == area.shape and fast.dtype == np.uint8
    diff = np.abs(fast.astype(np.int16) - area)
    assert diff.max() <= 6 and diff.mean() < 1.0
