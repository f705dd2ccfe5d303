"""`bcdeploy dicom info`: header facts per file, one line per refused file, exit code 1 if any."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bcdeploy.cli import cli
from tests.dicom_samples import MG_FOR_PROCESSING, mammogram_dataset, mammogram_pixels, write_syntax


def test_info_lists_good_files_and_one_line_per_refused_file(tmp_path):
    good = write_syntax(mammogram_dataset(mammogram_pixels((256, 192))), "rle", tmp_path / "good.dcm")
    raw = write_syntax(mammogram_dataset(mammogram_pixels((256, 192)), sop_class=MG_FOR_PROCESSING), "explicit",
                       tmp_path / "raw.dcm")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 50)
    result = CliRunner().invoke(cli, ["dicom", "info", str(good), str(raw), str(junk)])
    assert result.exit_code == 1
    assert result.stdout.strip() == f"{good}: 192x256 12-bit, 1 frame(s), RLE Lossless; L CC; spacing 0.07x0.07 mm"
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "FOR PROCESSING" in errors[0] and str(junk) in errors[1]


def test_info_no_phi_and_budget(tmp_path):
    path = write_syntax(mammogram_dataset(mammogram_pixels((256, 192))), "explicit", tmp_path / "a.dcm")
    result = CliRunner().invoke(cli, ["dicom", "info", "--json", "--no-phi", str(path)])
    facts = json.loads(result.stdout)
    assert result.exit_code == 0 and facts["laterality"] == "L"
    assert "patient_id" not in facts and "sop_instance_uid" not in facts and "P001" not in result.stdout
    small = CliRunner().invoke(cli, ["dicom", "info", "--max-pixels", "1000", str(path)])
    assert small.exit_code == 1 and "exceeds the budget of 1,000 pixels" in small.stderr
