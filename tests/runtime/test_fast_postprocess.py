"""logits_to_mask's fast path (argmax at model resolution, interpolation only where classes meet)
against the full resize-then-argmax reference, on seeded lesion-like logits."""

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.model import postprocess
from bcdeploy.runtime.model.postprocess import _logits_to_mask_full, logits_to_mask, resize_bilinear
from bcdeploy.runtime.model.preprocess import PreprocessInfo
from tests import peak_memory


@pytest.fixture
def always_fast(monkeypatch):
    """Noisy small cases have more than FALLBACK_FRACTION undecided: check the fast path on them too."""
    monkeypatch.setattr(postprocess, "FALLBACK_FRACTION", 1.0)


def blob_logits(classes: int, hw: tuple[int, int], seed: int, noise: float = 0.05) -> np.ndarray:
    """Background near 0, each lesion class a few Gaussian bumps reaching ~+2, plus noise."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    logits = np.zeros((classes, h, w), np.float32)
    for c in range(1, classes):
        logits[c] = -1.0
        for _ in range(3):
            cy, cx, sigma = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, max(3, min(h, w) / 5))
            logits[c] += 3.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return logits + noise * rng.standard_normal(logits.shape).astype(np.float32)


def fast_mask(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    return logits_to_mask(logits, PreprocessInfo(out_hw, logits.shape[1:], logits.shape[1:]))


def full_planes(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    return np.stack([resize_bilinear(plane, *out_hw) for plane in logits])


def assert_same_as_reference(logits: np.ndarray, out_hw: tuple[int, int], agreement: float = 0.99999) -> None:
    """Same mask wherever the interpolated top-2 margin is clear of float rounding, and (on logits
    without planted near-ties) on all but 1e-5 of the pixels; through the fast path, not its fallback."""
    assert postprocess._logits_to_mask_fast(logits, *out_hw) is not None
    ours = fast_mask(logits, out_hw)
    ref = _logits_to_mask_full(logits, *out_hw)
    assert ours.shape == ref.shape == out_hw and ours.dtype == ref.dtype == np.uint8
    top2 = np.sort(full_planes(logits, out_hw), axis=0)[-2:]
    clear = (top2[1] - top2[0]) > 1e-4
    assert (ours[clear] == ref[clear]).all()
    assert (ours == ref).mean() >= agreement


@pytest.mark.parametrize("classes,in_hw,out_hw", [
    (2, (40, 32), (283, 201)),   # non-integer upscale
    (3, (33, 47), (99, 141)),    # integer upscale (3x)
    (3, (40, 30), (40, 97)),     # 1x along one axis
    (5, (31, 29), (157, 211)),   # odd sizes, 5 classes
    (3, (64, 48), (37, 29)),     # downscale (source cells without output pixels)
    (3, (48, 64), (100, 50)),    # up one axis, down the other
    (3, (1, 40), (4, 131)),      # a single source row
])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_mask_is_the_full_resize_mask(always_fast, classes, in_hw, out_hw, seed):
    assert_same_as_reference(blob_logits(classes, in_hw, seed), out_hw)


@pytest.mark.parametrize("chunk", [1, 97, 1 << 20])
def test_fast_mask_is_chunk_independent(always_fast, monkeypatch, chunk):
    """Undecided pixels are interpolated in bounded chunks; the chunk size changes nothing."""
    monkeypatch.setattr(postprocess, "CHUNK_PIXELS", chunk)
    logits = blob_logits(3, (37, 41), seed=3, noise=0.2)
    assert_same_as_reference(logits, (230, 171))


def test_exact_ties_keep_the_lower_class(always_fast):
    """Where two classes' logits are equal (bit for bit) the lower class wins, as argmax does;
    near-ties (1e-6 apart, below float32 rounding of the interpolation) follow the reference wherever
    the margin is clear of rounding, and the planted winner wins."""
    logits = blob_logits(3, (30, 30), seed=5)
    logits[2, :15] = logits[1, :15]  # exact ties over the top half
    logits[2, 15:] = logits[1, 15:] + 1e-6  # near-ties over the bottom half
    assert_same_as_reference(logits, (211, 187), agreement=0.999)
    ours, ref = fast_mask(logits, (211, 187)), _logits_to_mask_full(logits, 211, 187)
    planes = full_planes(logits, (211, 187))
    clear = np.abs(planes[1] - planes[0]) > 1e-4  # only classes 1 and 2 tie, not with background
    top, bottom = slice(0, 90), slice(125, None)  # output rows whose taps are all in one half
    assert (ours[top][clear[top]] == ref[top][clear[top]]).all()
    assert (ours[top] == 1).any() and not (ours[top] == 2).any()
    assert (ours[bottom] == 2).any() and not (ours[bottom] == 1).any()


def test_matches_torch_bilinear_then_argmax_on_lesion_like_logits(always_fast):
    torch = pytest.importorskip("torch")
    logits = blob_logits(3, (64, 48), seed=5)
    ours = fast_mask(logits, (443, 316))
    up = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=(443, 316), mode="bilinear",
                                         align_corners=False)[0]
    top2 = up.topk(2, dim=0).values.numpy()
    clear = (top2[0] - top2[1]) > 1e-4
    assert (ours[clear] == up.argmax(0).numpy()[clear]).all()


def test_decided_pixels_are_not_resized(monkeypatch):
    """Lesion-like logits: no class plane is resized to full size (the work the fast path saves)."""
    resized = []

    def counting(plane, height, width, align_corners=False, rows_per_chunk=1024):
        resized.append((height, width))
        return cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)

    monkeypatch.setattr(postprocess, "resize_bilinear", counting)
    mask = fast_mask(blob_logits(3, (64, 64), seed=6), (446, 316))
    assert resized == [] and mask.shape == (446, 316) and len(np.unique(mask)) == 3


def test_noise_like_logits_fall_back_to_the_full_resize():
    logits = np.random.default_rng(7).standard_normal((3, 20, 20)).astype(np.float32)
    assert (fast_mask(logits, (77, 61)) == _logits_to_mask_full(logits, 77, 61)).all()


@pytest.mark.parametrize("size_in,size_out", [(640, 4463), (640, 3162), (33, 99), (64, 37), (7, 7), (1, 5)])
def test_half_pixel_taps_are_cv2s(size_in, size_out):
    """The tap mapping the fast path relies on is cv2.resize's, weights to float32 precision:
    interpolating alternating 0/1 source pixels reads each output pixel's weight back."""
    first, second, weight = postprocess._half_pixel_taps(size_in, size_out)
    alternating = (np.arange(size_in) % 2).astype(np.float32)[None].repeat(2, axis=0)
    cv = cv2.resize(alternating, (size_out, 2), interpolation=cv2.INTER_LINEAR)[0]
    assert (np.diff(first) >= 0).all() and (second - first <= 1).all() and (weight >= 0).all()
    ours = alternating[0, first] * (1 - weight) + alternating[0, second] * weight
    np.testing.assert_allclose(ours, cv, atol=1e-6)


PEAK_SETUP = """
import numpy as np, cv2
from bcdeploy.runtime.model.postprocess import logits_to_mask
from bcdeploy.runtime.model.preprocess import PreprocessInfo
from tests import peak_memory
rng = np.random.default_rng(0)  # smooth random logits: many class boundaries, many undecided cells
logits = np.ascontiguousarray(cv2.resize(rng.standard_normal((40, 40, 3)).astype(np.float32), (640, 640),
                                         interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1) * 4)
info = PreprocessInfo((4400, 3300), (640, 640), (640, 640))
logits_to_mask(logits, info)
"""


@pytest.mark.skipif(not peak_memory.AVAILABLE, reason="peak resident size is reset through Linux's /proc")
def test_peak_memory_of_a_dmid_size_mask_is_bounded():
    """The mask (1 byte per output pixel) and at most 1.5 more: the interpolation chunks' temporaries
    used to add 3 (42 MiB beside a 14.5-Mpx mask), on the segment thread, beside the model's memory."""
    shape, peak = peak_memory.peak_above_base(PEAK_SETUP, "logits_to_mask(logits, info).shape")
    assert shape == "(4400, 3300)"
    assert peak / (4400 * 3300) <= 2.5, f"{peak / (4400 * 3300):.2f} bytes per pixel above the base"
