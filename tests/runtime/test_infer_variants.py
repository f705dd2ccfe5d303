"""`bcdeploy infer` on the INT8 OpenVINO IR, and the CPU line it prints at start (stderr, never the reports)."""

import cv2
import numpy as np
import pytest

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


def test_infer_quotes_only_what_bench_cpu_measured_here_and_runs_the_model_asked_for(exported, scan, tmp_path):
    """Issue "Speed advice that matches measurement": without a measurement on this machine the cpu: line says
    how to measure; `bench cpu` times every variant here and stores it beside them; then the line quotes it."""
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(exported, folder)  # the session's export stays as it was
    result = run_cli("infer", "--model", folder / "model.onnx", scan, "--out", tmp_path / "o")
    lines = [line for line in result.stderr.splitlines() if line.startswith("cpu: ")]
    assert len(lines) == 1 and "cpu:" not in result.stdout, result.stderr
    assert lines[0].endswith(f"its variants are not measured on this CPU: bcdeploy bench cpu {folder}")
    measured = run_cli("bench", "cpu", folder, "--runs", "2")
    assert "model.onnx" in measured.stdout and (folder / "bcdeploy-speed.json").is_file(), measured.stdout
    assert "model.xml#bf16 " in measured.stdout, measured.stdout  # the FP32 IR at BF16, timed as its own variant
    bf16 = run_cli("infer", "--model", folder / "model.xml", "--precision", "bf16", scan, "--out", tmp_path / "b")
    line = next(line for line in bf16.stderr.splitlines() if line.startswith("cpu: "))
    assert "model.xml#bf16" in line and "; measured here: " in line, line
    again = run_cli("infer", "--model", folder / "model.onnx", scan, "--out", tmp_path / "o")
    line = next(line for line in again.stderr.splitlines() if line.startswith("cpu: "))
    assert "; measured here: " in line and "~" not in line, line
    report = (tmp_path / "o" / "results.json").read_text()
    assert "measured here" not in report and '"model": "' + str(folder / "model.onnx") in report  # model.onnx ran
