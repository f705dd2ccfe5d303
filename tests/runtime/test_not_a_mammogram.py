"""Not a mammogram (issue "Reliability round 3", defect 5): a CT (any modality but MG, DX, CR) is one
failure line naming its modality, unless `--modalities` asks for it. Real runs, tiny real ONNX model."""

from __future__ import annotations

from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import mammogram_dataset, mammogram_pixels, write_syntax


def test_a_ct_is_refused_by_name_and_can_be_allowed(tiny_onnx, tmp_path):
    ct = mammogram_dataset(mammogram_pixels((128, 128), seed=1), patient_id="CT1", seed=1)
    ct.Modality = "CT"
    write_syntax(ct, "explicit", tmp_path / "in" / "ct.dcm")
    write_syntax(mammogram_dataset(mammogram_pixels((128, 128), seed=2), seed=2), "explicit", tmp_path / "in" / "mg.dcm")
    result = CliRunner().invoke(cli, ["infer", "--model", str(tiny_onnx), str(tmp_path / "in"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and "processed 1," in result.output and "failed 1" in result.output, result.output
    failures = [line for line in result.output.splitlines() if line.strip().startswith("failed:")]
    assert len(failures) == 1 and "ct.dcm: modality CT" in failures[0] and "not a mammogram" in failures[0]
    allowed = CliRunner().invoke(cli, ["infer", "--model", str(tiny_onnx), str(tmp_path / "in"), "--out",
                                       str(tmp_path / "b"), "--modalities", "MG,CT"])
    assert allowed.exit_code == 0 and "processed 2," in allowed.output, allowed.output
