"""A DICOM whose Rescale Slope/Intercept give non-finite values (NaN, or overflow to inf) decoded to an
image of undefined pixels (NaN cast to uint8) that was segmented as if real: a report of no lesion for
an image nobody could see. It must be refused with one line naming the file."""

from __future__ import annotations

import io
import warnings

import pytest

from bcdeploy.errors import InputError
from bcdeploy.runtime.images.imageio import decode_image

pytest.importorskip("pydicom")


@pytest.mark.parametrize(("slope", "intercept"), [("nan", "0"), ("1e308", "1e308"), ("inf", "0")])
def test_non_finite_rescale_is_refused(slope, intercept):
    from tests.dicom_samples import mammogram_dataset, mammogram_pixels

    ds = mammogram_dataset(mammogram_pixels((64, 48)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that the DS value is invalid: that is the point
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        with pytest.raises(InputError) as err:
            decode_image(buffer.getvalue(), "scan.dcm")
    assert "scan.dcm" in str(err.value) and "\n" not in str(err.value)
