"""Each export rewrite is exact against the function it replaces, keeps the traced graph dynamic at sizes the
export never saw, and a layer that cannot be exported is one line naming it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from bcdeploy.errors import ExportError  # noqa: E402
from bcdeploy.export.rewrites import FUNCTION_PATCHES, _make_adaptive_avg_pool2d, traced_with_rewrites  # noqa: E402


@pytest.mark.parametrize("hw", [(1, 1), (4, 4), (5, 7), (17, 33), (64, 61), (100, 3)])
@pytest.mark.parametrize("bins", [(1, 2), (2, 2), (3, 3), (6, 6), (3, 5), (8, 8)])
def test_adaptive_pooling_is_exact_for_any_size(hw, bins):
    x = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(hw[0] * 100 + hw[1]))
    rewritten = _make_adaptive_avg_pool2d(F.adaptive_avg_pool2d)(x, bins)
    expected = F.adaptive_avg_pool2d(x, bins)
    assert rewritten.shape == expected.shape
    torch.testing.assert_close(rewritten, expected, rtol=1e-5, atol=1e-5)


class _Pyramid(nn.Module):
    """PSPNet's pyramid in miniature: pool to fixed grids, upsample back to the input's size, concatenate."""

    def __init__(self) -> None:
        super().__init__()
        self.pools = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in (1, 2, 3, 6))

    def forward(self, x):
        size = x.shape[2:]
        return torch.cat([x] + [F.interpolate(p(x), size=size, mode="bilinear") for p in self.pools], 1)


def _export(module, path, hw=(32, 32)):
    from bcdeploy.export.onnx_export import export_onnx

    return export_onnx(module.eval(), path, hw)


def test_a_pyramid_exported_at_one_size_runs_exactly_at_others(tmp_path):
    module = _Pyramid()
    path = _export(module, tmp_path / "pyramid.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for hw in [(32, 32), (45, 77), (100, 37), (6, 6)]:
        x = torch.randn(2, 3, *hw)
        got = session.run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    assert F.adaptive_avg_pool2d.__name__ == "adaptive_avg_pool2d" and F.adaptive_avg_pool2d.__module__ != __name__


def test_patches_hold_only_while_tracing():
    targets = [p.resolve() for p in FUNCTION_PATCHES if p.resolve() is not None]
    before = [getattr(*target) for target in targets]
    with traced_with_rewrites():
        assert all(getattr(*target) is not original for target, original in zip(targets, before))
    assert all(getattr(*target) is original for target, original in zip(targets, before))


class _CustomLayer(nn.Module):
    """A layer built on an operator ONNX has no conversion for (singular values, as a user's layer might)."""

    def forward(self, x):
        return torch.linalg.svdvals(x)


class _Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), _CustomLayer())

    def forward(self, x):
        return self.head(self.stem(x))


def test_an_unexportable_layer_is_one_line_naming_it(tmp_path, capfd):
    with pytest.raises(ExportError) as caught:
        _export(_Toy(), tmp_path / "toy.onnx")
    # torch's exporter logs the whole graph (hundreds of lines for a real model) at an exception; on stdout that
    # buried the one line a user reads, so it goes to stderr, which the CLI shows only with --verbose
    assert capfd.readouterr().out == ""
    message = str(caught.value)
    assert "\n" not in message, message
    assert "head.1" in message and "_CustomLayer" in message and "linalg_svdvals" in message, message
    assert "rewrite" in message
    assert not (tmp_path / "toy.onnx").exists()
