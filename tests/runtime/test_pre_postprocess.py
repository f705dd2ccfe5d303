import numpy as np
import pytest

from bcdeploy.runtime.model.sidecar import ModelMeta
from bcdeploy.runtime.model.postprocess import labels_to_mask, logits_to_mask, softmax
from bcdeploy.runtime.model.preprocess import PreprocessInfo, pad_to_divisor, preprocess

META = ModelMeta(classes=["background", "benign", "malignant"], palette=[[0, 0, 0], [0, 255, 0], [255, 0, 0]],
                 mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], input_size=[64, 96])


def test_preprocess_resizes_swaps_channels_and_normalises():
    bgr = np.zeros((30, 40, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 10, 200  # B=10, R=200
    chw, info = preprocess(bgr, META)
    assert chw.shape == (3, 64, 96) and chw.dtype == np.float32
    assert info == PreprocessInfo((30, 40), (64, 96), (64, 96))
    np.testing.assert_allclose(chw[0], (200 - 123.675) / 58.395, rtol=1e-6)  # R first: RGB
    np.testing.assert_allclose(chw[2], (10 - 103.53) / 57.375, rtol=1e-6)


def test_padding_to_divisor():
    chw = np.ones((3, 30, 33), np.float32)
    padded = pad_to_divisor(chw, 16, 0.0)
    assert padded.shape == (3, 32, 48) and padded[:, 30:].sum() == 0 and padded[:, :30, :33].min() == 1


def test_logits_to_mask_matches_torch_bilinear_then_argmax():
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(1).standard_normal((3, 16, 24)).astype(np.float32)
    info = PreprocessInfo((50, 70), (16, 24), (16, 24))
    ours = logits_to_mask(logits, info)
    ref = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=(50, 70), mode="bilinear",
                                          align_corners=False)[0].argmax(0).numpy()
    assert ours.shape == (50, 70)
    assert (ours == ref).mean() >= 0.999


def test_padding_is_cropped_before_resize():
    logits = np.zeros((2, 32, 32), np.float32)
    logits[1, :20, :20] = 1.0  # class 1 over the real image, padding says background
    mask = logits_to_mask(logits, PreprocessInfo((40, 40), (20, 20), (32, 32)))
    assert mask.shape == (40, 40) and (mask == 1).all()


def test_argmax_models_fall_back_to_nearest():
    labels = np.zeros((1, 4, 4), np.uint8)
    labels[0, :2, :2] = 2
    mask = labels_to_mask(labels, PreprocessInfo((8, 8), (4, 4), (4, 4)))
    assert (mask[:4, :4] == 2).all() and (mask[4:] == 0).all()


def test_softmax_sums_to_one():
    p = softmax(np.random.default_rng(0).standard_normal((3, 5, 5)).astype(np.float32))
    np.testing.assert_allclose(p.sum(0), 1.0, rtol=1e-5)


@pytest.mark.parametrize("size_in,size_out", [((16, 24), (50, 70)), ((40, 30), (13, 17)), ((1, 5), (4, 9))])
@pytest.mark.parametrize("align_corners", [False, True])
def test_logit_resize_is_torch_bilinear(size_in, size_out, align_corners):
    """Both corner conventions, up and down, in small row chunks (the 6000-row path)."""
    torch = pytest.importorskip("torch")
    from bcdeploy.runtime.model.postprocess import resize_bilinear

    plane = np.random.default_rng(2).standard_normal(size_in).astype(np.float32)
    ours = resize_bilinear(plane, *size_out, align_corners=align_corners, rows_per_chunk=3)
    ref = torch.nn.functional.interpolate(torch.from_numpy(plane)[None, None], size=size_out, mode="bilinear",
                                          align_corners=align_corners)[0, 0].numpy()
    assert ours.shape == size_out and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_align_corners_is_not_the_half_pixel_resize():
    """The two conventions really differ (so a model's flag must reach the postprocessing)."""
    from bcdeploy.runtime.model.postprocess import resize_bilinear

    ramp = np.arange(8, dtype=np.float32).reshape(1, 8).repeat(2, axis=0)
    corners = resize_bilinear(ramp, 2, 15, align_corners=True)
    assert corners[0, 0] == 0 and corners[0, -1] == 7 and np.allclose(np.diff(corners[0]), 0.5)
    assert not np.allclose(resize_bilinear(ramp, 2, 15), corners)


@pytest.mark.parametrize("hw", [(6000, 4660), (4660, 6000), (640, 640), (333, 999), (101, 37)])
def test_keep_ratio_size_is_mmcv_rescale_size(hw):
    mmcv_geometric = pytest.importorskip("mmcv.image.geometric")
    from dataclasses import replace

    from bcdeploy.runtime.model.preprocess import resized_size

    meta = replace(META, input_size=[512, 1024], keep_ratio=True)
    w, h = mmcv_geometric.rescale_size((hw[1], hw[0]), (1024, 512))
    assert resized_size(hw, meta) == (h, w)
    assert resized_size(hw, replace(meta, keep_ratio=False)) == (512, 1024)


def test_keep_ratio_preprocess_is_bit_identical_to_mmcv_resize():
    processing = pytest.importorskip("mmcv.transforms.processing")
    from dataclasses import replace

    bgr = np.random.default_rng(3).integers(0, 256, (300, 217, 3), dtype=np.uint8)
    meta = replace(META, input_size=[128, 96], keep_ratio=True, size_divisor=16)
    chw, info = preprocess(bgr, meta)
    resized = processing.Resize(scale=(96, 128), keep_ratio=True)({"img": bgr})["img"]
    assert info.resized_hw == resized.shape[:2] == (128, 93) and info.padded_hw == (128, 96)
    rgb = resized[..., ::-1].astype(np.float32)
    expected = ((rgb - np.float32(META.mean)) / np.float32(META.std)).transpose(2, 0, 1)
    assert np.array_equal(chw[:, :, :93], expected) and (chw[:, :, 93:] == 0).all()
