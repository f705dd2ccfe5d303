"""`bcdeploy data dicom`: generated DMID images wrapped as valid DICOM mammograms (dciodvfy), laterality
and view from the metadata, pixels as read."""

from __future__ import annotations

import shutil
import subprocess

import pydicom

from bcdeploy.data.mammogram_dicom import dmid_view
from bcdeploy.runtime.images.imageio import read_image
from tests.conftest import run_cli


def test_dmid_view_codes():
    assert dmid_view("MLOLT") == ("L", "MLO") and dmid_view("CCRT") == ("R", "CC") and dmid_view(None) == ("U", "CC")


def test_wrapped_images_are_valid_mammograms_with_their_pixels(dmid, tmp_path):
    images = sorted((dmid / "TIFF Images").glob("*.tif"))[:2]
    from bcdeploy.data.metadata import read_metadata

    run_cli("data", "dicom", *images, "--out", tmp_path / "dicom", "--metadata", dmid / "Metadata.xlsx")
    views = {row.image_id: row.view for row in read_metadata(dmid / "Metadata.xlsx")}
    assert {views.get(image.stem) for image in images} - {None}, "the metadata must give views to compare"
    for image in images:
        ds = pydicom.dcmread(tmp_path / "dicom" / f"{image.stem}.dcm")
        assert (ds.Modality, ds.PresentationIntentType) == ("MG", "FOR PRESENTATION")
        assert (ds.ImageLaterality, ds.ViewPosition) == dmid_view(views.get(image.stem))
        assert (ds.pixel_array == read_image(image).bgr[..., 0]).all()
        if shutil.which("dciodvfy"):
            report = subprocess.run(["dciodvfy", str(tmp_path / "dicom" / f"{image.stem}.dcm")],
                                    capture_output=True, text=True)
            assert not [line for line in report.stderr.splitlines() if line.startswith("Error")], report.stderr


def test_output_inside_the_inputs_is_refused(dmid_copy):
    image = sorted((dmid_copy / "TIFF Images").glob("*.tif"))[0]
    result = run_cli("data", "dicom", image, "--out", image.parent, check=False)
    assert result.returncode == 1 and "error:" in result.stderr
    assert not list(image.parent.glob("*.dcm"))
