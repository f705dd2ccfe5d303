"""`bcdeploy infer` on the INT8 OpenVINO IR, and the CPU line it prints at start (stderr, never the reports)."""

import cv2
import numpy as np
import pytest

from bcdeploy.runtime.cpu import advise, cpu_flags
from tests.conftest import run_cli
from tests.helpers import gray_with_lesion

pytestmark = pytest.mark.mmseg  # needs the shared export (--int8 --openvino)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "IMG901.png"
    cv2.imwrite(str(path), gray_with_lesion(12))
    return path


def test_int8_ir_masks_agree_with_the_int8_onnx(exported, scan, tmp_path):
    pytest.importorskip("openvino")
    masks = {}
    for model in ("model.int8.onnx", "model.int8.xml"):
        out = tmp_path / model
        run_cli("infer", "--model", exported / model, scan, "--out", out)
        masks[model] = cv2.imread(str(out / "masks" / "IMG901.png"), cv2.IMREAD_UNCHANGED)
    assert masks["model.int8.xml"].shape == masks["model.int8.onnx"].shape
    assert np.mean(masks["model.int8.xml"] == masks["model.int8.onnx"]) >= 0.99


def test_infer_names_the_fastest_variant_on_stderr_and_runs_the_model_asked_for(exported, scan, tmp_path):
    pytest.importorskip("openvino")
    result = run_cli("infer", "--model", exported / "model.onnx", scan, "--out", tmp_path / "o")
    lines = [line for line in result.stderr.splitlines() if line.startswith("cpu: ")]
    assert len(lines) == 1 and "cpu:" not in result.stdout, result.stderr
    if advise(cpu_flags()).int8:  # this machine (AVX-512 VNNI) and any AVX2 CPU
        assert "; hint: model.int8.xml beside this model is the fastest variant" in lines[0]
    else:
        assert "hint" not in lines[0]
    report = (tmp_path / "o" / "results.json").read_text()
    assert "model.int8" not in report and "hint" not in report  # not in the reports; model.onnx ran
    fastest = run_cli("infer", "--model", exported / "model.int8.xml", scan, "--out", tmp_path / "x")
    assert "hint" not in fastest.stderr
