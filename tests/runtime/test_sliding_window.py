import numpy as np
import pytest

from bcdeploy.runtime.model.sliding_window import importance_map, sliding_window_inference, window_starts


def image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).standard_normal((1, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("shape", [(100, 150), (64, 64), (40, 50)])
def test_identity_predictor_returns_the_input(mode, shape):
    """Any blend of windows of an identity map is the identity (MONAI's known-predictor test)."""
    x = image(*shape)
    out = sliding_window_inference(x, (64, 64), lambda t: t, overlap=0.5, mode=mode, batch_size=3)
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-5)


def test_plus_one_predictor_and_channel_change():
    x = image(96, 130, c=3)
    out = sliding_window_inference(x, (32, 48), lambda t: np.concatenate([t + 1, t[:, :1] * 0], axis=1), overlap=0.25)
    assert out.shape == (1, 4, 96, 130)
    np.testing.assert_allclose(out[:, :3], x + 1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 3], 0, atol=1e-6)


def test_predictor_sees_windows_of_the_right_size_and_all_of_the_image():
    seen = []

    def predictor(tiles):
        seen.append(tiles.shape)
        return np.ones((tiles.shape[0], 1, *tiles.shape[2:]), np.float32)

    out = sliding_window_inference(image(100, 170), (64, 64), predictor, overlap=0.25, batch_size=4)
    assert all(s[2:] == (64, 64) and s[0] <= 4 for s in seen)
    assert sum(s[0] for s in seen) == len(window_starts(100, 64, 0.25)) * len(window_starts(170, 64, 0.25))
    np.testing.assert_allclose(out, 1.0)


def test_window_starts_cover_and_end_flush():
    starts = window_starts(170, 64, 0.25)
    assert starts[0] == 0 and starts[-1] == 170 - 64
    assert all(b - a <= 48 for a, b in zip(starts, starts[1:]))
    assert window_starts(50, 64, 0.25) == [0]


def test_gaussian_weights_peak_in_the_centre():
    w = importance_map((33, 33), "gaussian")
    assert w[16, 16] == w.max() == 1.0 and w[0, 0] < 0.01 and w.min() > 0
    with pytest.raises(ValueError):
        importance_map((8, 8), "cosine")
