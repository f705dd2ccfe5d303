"""MMSeg's own architectures deploy: built from the installed package's configs with random weights, exported
with dynamic batch/height/width, checked against PyTorch at sizes the trace never saw (not square, not a
multiple of 32, batch 2), and segmented by the torch-free runtime. The subset covers every export rewrite
and head kind (export/rewrites.py, export/graph.py::decode); the whole table is benchmarks/zoo.py."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.mmseg, pytest.mark.slow]

# architecture -> what it exercises
SUBSET = {
    "pspnet": "adaptive pooling to 1/2/3/6 bins (nn.AdaptiveAvgPool2d)",
    "apcnet": "adaptive pooling through F.adaptive_avg_pool2d, per-sample dynamic filters",
    "upernet": "pyramid pooling in a UPerHead",
    "ccnet": "criss-cross attention (mmcv's pure-PyTorch op, rewritten diagonal mask)",
    "ocrnet": "a cascade of two decode heads (HRNet backbone)",
    "danet": "a head that returns three maps",
    "unet": "mmseg's Upsample (swapped for a scale-factor interpolation)",
    "fcn": "the plain ResNet + FCN path",
    "bisenetv2": "a two-branch real-time network",
    "cgnet": "context-guided blocks with global pooling",
    "stdc": "STDC backbone with its attention refinement",
    "deeplabv3plus": "ASPP with image pooling, separable convolutions",
    "segmenter": "a ViT with a mask transformer head",
    "fastscnn": "Fast-SCNN's pyramid pooling",
    "erfnet": "factorised convolutions, transposed-convolution decoder",
}
CASES = (((64, 64), 1), ((48, 80), 1), ((56, 104), 2))


@pytest.mark.parametrize("arch", sorted(SUBSET))
def test_an_mmseg_architecture_exports_dynamic_and_runs_torch_free(arch, tmp_path):
    from click.testing import CliRunner

    from bcdeploy.cli import cli
    from bcdeploy.export.api import ExportOptions, export
    from bcdeploy.export.zoo import make_zoo_model
    from tests.redteam.conftest import write_png

    model = make_zoo_model(arch, tmp_path / "model", test_hw=(64, 128))
    result = export(ExportOptions(checkpoint=str(model.checkpoint), config=str(model.config),
                                  out=str(tmp_path / "export"), cases=CASES))
    [onnx] = [a for a in result.artifacts if a.name == "onnx"]
    assert onnx.path.is_file()
    image = write_png(tmp_path / "in" / "case.png", size=90)  # neither the trace's size nor a multiple of 32
    ran = CliRunner().invoke(cli, ["infer", "--engine", str(tmp_path / "export" / "model.onnx"), str(image),
                                   "--out", str(tmp_path / "out"), "--save", "masks"])
    assert ran.exit_code == 0, ran.output
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 1
