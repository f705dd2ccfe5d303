"""Property tests of every reader that takes bytes or values from outside (issue "Reliability round 3"):
whatever it is given, a reader returns a valid result or raises one clear BcDeployError, never another
exception, and never puts a non-finite number into what it returns. Seeded by hypothesis; the fuzz
target in tests/fuzz/ drives the same readers with coverage feedback (`scripts/test.sh --fuzz`)."""

from __future__ import annotations

import functools
import io
import json
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcdeploy.errors import BcDeployError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAGICS = [b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"\xff\xd8\xff", b"\x00" * 128 + b"DICM"]


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


@SETTINGS
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=4096))
def test_image_bytes_decode_or_one_clear_error(magic, tail):
    from bcdeploy.runtime.images.imageio import decode_image

    try:
        image = decode_image(magic + tail, "fuzz.bin", max_pixels=4_000_000)
    except BcDeployError:
        return
    assert image.bgr.ndim == 3 and image.bgr.dtype == np.uint8 and _finite(image.tags or {})


def _text_values() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["NaN", "inf", "-inf", "1e300", "-1", "0", "abc", "", "0.07", "1\\2\\3",
                                      "CC", "A\\R", "L", "U", "MG", "CT"]),
                     st.text(alphabet="0123456789.-eE\\ AZaz^", max_size=24))


ATTRIBUTES = ("ImagerPixelSpacing", "PixelSpacing", "EstimatedRadiographicMagnificationFactor", "WindowCenter",
              "WindowWidth", "RescaleSlope", "RescaleIntercept", "PatientOrientation", "ImageLaterality",
              "ViewPosition", "Modality", "PresentationIntentType", "PhotometricInterpretation", "PatientName",
              "StudyDate", "PatientID")


@functools.lru_cache(maxsize=1)
def dicom_base() -> bytes:
    from tests.dicom_samples import mammogram_dataset, mammogram_pixels

    ds = mammogram_dataset(mammogram_pixels((64, 48), seed=1))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(ATTRIBUTES), _text_values(), min_size=1, max_size=5))
def test_dicom_attributes_the_runtime_uses_give_a_result_or_one_clear_error(changes):
    """Values as a file holds them (text, whatever it says; the VR of each element is kept as LO so
    pydicom stores anything), read by the decoder, the header description and the source checker."""
    import pydicom

    from bcdeploy.runtime.images.dicom import describe_dicom, read_dataset
    from bcdeploy.runtime.results.dicom.source import checked_source
    from bcdeploy.runtime.images.imageio import decode_image

    ds = pydicom.dcmread(io.BytesIO(dicom_base()))
    for keyword, value in changes.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        if tag in ds:
            del ds[tag]
        ds.add_new(tag, "LO", value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    for read in (lambda: decode_image(data, "x.dcm", max_pixels=10**6).tags,
                 lambda: describe_dicom(data, "x.dcm", max_pixels=10**6),
                 lambda: checked_source(read_dataset(data, "x.dcm", max_pixels=10**6), "x.dcm")[1]):
        try:
            result = read()
        except BcDeployError:
            continue
        assert _finite(result if isinstance(result, dict) else {})
        if isinstance(result, dict) and result.get("pixel_spacing_mm"):
            assert all(0.001 <= v <= 5.0 for v in result["pixel_spacing_mm"])


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12)),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
                    max_leaves=12)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(["classes", "palette", "mean", "std", "input_size", "size_divisor",
                                                "output_kind", "format", "schema_version", "pad_value", "keep_ratio"]),
                               JSON, min_size=1, max_size=4))
def test_sidecars_validate_or_one_clear_error(changes):
    from bcdeploy.runtime.model.sidecar import ModelMeta
    from tests.tiny_models import description

    data = {**description(), **changes}
    try:
        meta = ModelMeta.from_dict(json.loads(json.dumps(data)), "fuzz.bcdeploy.json")
    except BcDeployError:
        return
    assert _finite(meta.to_dict()) and len(meta.classes) == len(meta.palette) >= 2


@SETTINGS
@given(lines=st.lists(st.lists(st.sampled_from(["IMG001", "IMG002", "B", "M", "NORM", "CIRC", "CALC", "G", "F",
                                                "12", "-3", "nan", "1e400", "abc", "", "0"]), max_size=8), max_size=6))
def test_metadata_files_give_rows_or_one_clear_error(tmp_path_factory, lines):
    from bcdeploy.data.metadata import read_metadata

    path = tmp_path_factory.mktemp("meta") / "Info.txt"
    path.write_text("\n".join(" ".join(line) for line in lines))
    try:
        rows = read_metadata(path)
    except BcDeployError:
        return
    for row in rows:
        assert all(v is None or math.isfinite(v) for v in (row.x, row.y, row.radius))
