import numpy as np
import pytest

from bcdeploy.runtime.metadata import ModelMeta
from bcdeploy.runtime.postprocess import labels_to_mask, logits_to_mask, softmax
from bcdeploy.runtime.preprocess import PreprocessInfo, pad_to_divisor, preprocess

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
