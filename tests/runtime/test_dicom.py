"""DICOM reading: every transfer syntax from the same pixels, header checks before decoding, tags, mm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bcdeploy.errors import InputError
from bcdeploy.runtime.images.dicom import decode_dicom, pixel_spacing_mm
from bcdeploy.runtime.results.geometry import lesion_size_mm
from bcdeploy.runtime.images.imageio import read_image
from bcdeploy.runtime.run.phi import strip_identifiers
from tests.dicom_samples import MG_FOR_PROCESSING, SYNTAXES, mammogram_dataset, mammogram_pixels, to_8bit, write_study_tree, write_syntax

BUDGET = 80_000_000
LOSSLESS = [n for n, s in SYNTAXES.items() if s.lossless and n != "explicit"]


@pytest.fixture(scope="module")
def source():
    return mammogram_dataset(mammogram_pixels((1024, 768), bits=12, seed=3))


@pytest.fixture(scope="module")
def files(source, tmp_path_factory) -> dict[str, Path | None]:
    folder = tmp_path_factory.mktemp("syntaxes")
    return {name: write_syntax(source, name, folder / f"{name}.dcm") for name in SYNTAXES}


def _need(files, name) -> Path:
    if files[name] is None:
        tool = SYNTAXES[name].tool
        pytest.skip(f"no encoder for {name}: install DCMTK (apt-get install dcmtk)" if tool == "dcmcjpeg"
                    else f"no pydicom encoder plugin for {name}: pip install 'bcdeploy[dicom]'")
    return files[name]


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_syntax_decodes_to_the_uncompressed_pixels(files, name):
    path = _need(files, name)
    reference = read_image(files["explicit"])
    image = read_image(path)
    raw = decode_dicom(path.read_bytes(), path, max_pixels=BUDGET).raw
    assert np.array_equal(raw, decode_dicom(files["explicit"].read_bytes(), max_pixels=BUDGET).raw)
    assert np.array_equal(image.bgr, reference.bgr)
    assert image.tags["transfer_syntax"] == SYNTAXES[name].uid


@pytest.mark.parametrize("name,min_psnr", [("jpegls_near", 45.0), ("j2k", 35.0), ("jpeg_baseline", 35.0)])
def test_lossy_syntax_stays_close(files, source, name, min_psnr, capsys):
    path = _need(files, name)
    reference = to_8bit(source) if name == "jpeg_baseline" else source
    expected = np.frombuffer(reference.PixelData, reference.pixel_array.dtype).reshape(1024, 768)
    decoded = decode_dicom(path.read_bytes(), path, max_pixels=BUDGET).raw
    psnr = _psnr(decoded, expected, (1 << int(reference.BitsStored)) - 1)
    with capsys.disabled():
        print(f"\n{name}: PSNR {psnr:.1f} dB, identical raw pixels {np.mean(decoded == expected):.2%}")
    assert psnr >= min_psnr


def test_12bit_jpeg_extended_names_the_decoder_it_needs(files):
    path = _need(files, "jpeg_extended")
    pytest.importorskip("pydicom")
    if __import__("importlib").util.find_spec("libjpeg") is not None:
        assert decode_dicom(path.read_bytes(), path, max_pixels=BUDGET).raw.shape == (1024, 768)
        return
    with pytest.raises(InputError, match=r"JPEG Extended.*1\.2\.840\.10008\.1\.2\.4\.51.*pylibjpeg-libjpeg"):
        decode_dicom(path.read_bytes(), path, max_pixels=BUDGET)


def test_missing_decoder_is_one_line_naming_syntax_and_extra(files):
    """An environment without the dicom extra's decoders (their imports blocked) reading JPEG-LS."""
    path = _need(files, "jpegls")
    code = (
        "import sys\n"
        "for m in ('gdcm', 'jpeg_ls', 'openjpeg', 'rle', 'pylibjpeg', 'libjpeg', 'PIL'): sys.modules[m] = None\n"
        "from pathlib import Path\nfrom bcdeploy.runtime.images.dicom import decode_dicom\n"
        f"p = Path({str(path)!r})\n"
        "try:\n    decode_dicom(p.read_bytes(), p, max_pixels=10**8)\nexcept Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out.count("\n") == 0
    assert out.startswith("InputError") and "JPEG-LS Lossless" in out and "1.2.840.10008.1.2.4.80" in out
    assert "pip install 'bcdeploy[dicom]'" in out


def test_pixel_budget_is_checked_before_decoding(source, tmp_path):
    """The header claims 12000x9000; the pixel data is garbage: the budget error comes first."""
    ds = mammogram_dataset(mammogram_pixels((64, 48)))
    ds.Rows, ds.Columns = 12000, 9000
    path = write_syntax(ds, "explicit", tmp_path / "huge.dcm")
    with pytest.raises(InputError, match=r"9000x12000 = 108,000,000 pixels exceeds the budget of 80,000,000.*--max-pixels"):
        decode_dicom(path.read_bytes(), path, max_pixels=BUDGET)
    # within budget, the header check finds the pixel data shorter than the header says before any decoder runs
    with pytest.raises(InputError, match=r"pixel data holds 6,144 bytes, its header describes 216,000,000.*truncated"):
        decode_dicom(path.read_bytes(), path, max_pixels=200_000_000)


def test_for_processing_is_refused(tmp_path):
    ds = mammogram_dataset(mammogram_pixels((128, 96)), sop_class=MG_FOR_PROCESSING)
    path = write_syntax(ds, "explicit", tmp_path / "raw.dcm")
    with pytest.raises(InputError, match="'FOR PROCESSING'.*FOR PRESENTATION series"):
        read_image(path)


def test_multiframe_needs_a_frame(tmp_path):
    pixels = np.minimum(mammogram_pixels((128, 96)), 4000)  # room for +2 within 12 bits
    ds = mammogram_dataset(pixels, frames=3)
    frames = np.stack([pixels, pixels + 1, pixels + 2]).astype(np.uint16)
    ds.PixelData = frames.tobytes()
    path = write_syntax(ds, "rle", tmp_path / "tomo.dcm") or write_syntax(ds, "explicit", tmp_path / "tomo.dcm")
    with pytest.raises(InputError, match=r"multi-frame DICOM \(3 frames.*0\.\.2"):
        decode_dicom(path.read_bytes(), path, max_pixels=BUDGET)
    one = decode_dicom(path.read_bytes(), path, max_pixels=BUDGET, frame=2)
    assert np.array_equal(one.raw, frames[2]) and one.tags["frame"] == 2
    with pytest.raises(InputError, match="frame 3 asked for, the file has 3"):
        decode_dicom(path.read_bytes(), path, max_pixels=BUDGET, frame=3)


def test_tags_collected_and_stripped(files, source):
    tags = read_image(files["explicit"]).tags
    assert tags["laterality"] == "L" and tags["view_position"] == "CC"
    assert tags["patient_id"] == "P001" and tags["sop_instance_uid"] == source.SOPInstanceUID
    assert tags["study_instance_uid"] == source.StudyInstanceUID
    assert tags["frame_of_reference_uid"] == source.FrameOfReferenceUID
    assert tags["pixel_spacing_mm"] == [0.07, 0.07] and tags["pixel_spacing_source"] == "ImagerPixelSpacing"
    clean = strip_identifiers(tags)
    # no identifier is left; a SOP Class UID names a kind of object (MG image), no one
    assert not any("uid" in k and k not in ("transfer_syntax", "sop_class_uid") for k in clean) and "patient_id" not in clean
    assert clean["laterality"] == "L" and clean["pixel_spacing_mm"] == [0.07, 0.07]
    assert "patient_id" in tags  # the original is not changed


def test_spacing_rules():
    ds = mammogram_dataset(mammogram_pixels((64, 48)))
    ds.EstimatedRadiographicMagnificationFactor = 1.1
    spacing, source = pixel_spacing_mm(ds)
    assert spacing == pytest.approx([0.07 / 1.1, 0.07 / 1.1]) and "Magnification" in source
    del ds.ImagerPixelSpacing
    ds.PixelSpacing = [0.1, 0.05]
    assert pixel_spacing_mm(ds) == ([0.1, 0.05], "PixelSpacing")
    del ds.PixelSpacing
    assert pixel_spacing_mm(ds) == (None, None)


def test_lesion_size_in_mm():
    assert lesion_size_mm(100, [10, 20, 10, 10], [0.1, 0.05]) == {"area_mm2": 0.5, "bbox_mm": [0.5, 2.0, 0.5, 1.0]}
    # a mask at half the original size: each mask pixel covers 2x2 original pixels
    assert lesion_size_mm(100, [10, 20, 10, 10], [0.1, 0.05], scale=(2.0, 2.0))["area_mm2"] == 2.0
    assert lesion_size_mm(100, [0, 0, 10, 10], None) == {"area_mm2": None, "bbox_mm": None}


def test_lesion_records_get_mm_columns():
    from bcdeploy.runtime.results.geometry import with_mm_sizes
    from bcdeploy.runtime.results.lesions import extract_lesions

    mask = np.zeros((100, 80), np.uint8)
    mask[10:30, 5:15] = 2  # 20 rows x 10 cols
    records = extract_lesions(mask, ["background", "benign", "malignant"])
    sized = with_mm_sizes(records, [0.1, 0.05])
    assert sized[0]["area_mm2"] == 200 * 0.1 * 0.05 and sized[0]["bbox_mm"] == [0.25, 1.0, 0.5, 2.0]
    assert "area_mm2" not in records[0]  # the caller's records are not changed


def test_study_tree_of_1_1_files(tmp_path):
    paths = write_study_tree(tmp_path, patients=2)
    assert len(paths) == 8 and all(p.name == "1-1.dcm" for p in paths)
    tags = [read_image(p).tags for p in paths]
    assert len({t["study_instance_uid"] for t in tags}) == 2 and len({t["sop_instance_uid"] for t in tags}) == 8
    assert {(t["laterality"], t["view_position"]) for t in tags} == {("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")}


def _direct_window(ds, pixels):
    """The full-image arithmetic the lookup table must reproduce exactly."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from bcdeploy.runtime.images.intensity import scale_to_uint8

    values = apply_modality_lut(pixels, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds, index=0)
    return scale_to_uint8(values, float(values.min()), float(values.max()))


@pytest.mark.parametrize("case", ["window", "narrow_window", "no_window", "signed_rescaled", "sigmoid", "voi_lut"])
def test_lookup_table_windowing_equals_full_image_arithmetic(case):
    from pydicom.dataset import Dataset

    from bcdeploy.runtime.images.dicom import window_to_uint8

    pixels = mammogram_pixels((300, 200), seed=7)
    ds = mammogram_dataset(pixels)
    if case == "narrow_window":
        ds.WindowCenter, ds.WindowWidth = 1500, 301
    elif case == "no_window":
        del ds.WindowCenter, ds.WindowWidth
    elif case == "signed_rescaled":
        pixels = (pixels.astype(np.int16) - 2048)
        ds.PixelRepresentation, ds.RescaleSlope, ds.RescaleIntercept = 1, 0.5, -100
        ds.WindowCenter, ds.WindowWidth = -400, 1500
    elif case == "sigmoid":
        ds.VOILUTFunction = "SIGMOID"
    elif case == "voi_lut":
        del ds.WindowCenter, ds.WindowWidth
        item = Dataset()
        item.LUTDescriptor = [4096, 0, 16]
        item.LUTData = (np.sqrt(np.arange(4096) / 4095) * 65535).astype(np.uint16).tolist()
        ds.VOILUTSequence = [item]
    gray, _ = window_to_uint8(ds, pixels)
    assert np.array_equal(gray, _direct_window(ds, pixels))


@pytest.mark.mmseg
def test_masks_per_syntax_with_the_exported_model(files, exported, capsys):
    """Lossless syntaxes give the uncompressed file's mask exactly; lossy ones report their agreement."""
    from bcdeploy.runtime.model.segmenter import Segmenter

    with Segmenter(exported / "model.onnx") as segmenter:
        def mask(path):
            return segmenter.predict([read_image(path).bgr])[0].mask

        reference = mask(files["explicit"])
        for name in SYNTAXES:
            if files[name] is None or name == "jpeg_extended":
                continue
            got = mask(files[name])
            if SYNTAXES[name].lossless:
                assert np.array_equal(got, reference), name
            else:
                with capsys.disabled():
                    print(f"\n{name}: mask agreement with uncompressed {np.mean(got == reference):.4%}")


def test_deflated_bomb_is_refused_before_it_inflates(tmp_path):
    """A 64x48 header over 8 MB of zeros, deflated to a few KB: refused at the pixel budget's byte bound."""
    ds = mammogram_dataset(mammogram_pixels((64, 48)))
    ds.PixelData = bytes(8 << 20)
    path = write_syntax(ds, "deflated", tmp_path / "bomb.dcm")
    assert path.stat().st_size < 100_000
    with pytest.raises(InputError, match=r"deflated DICOM inflates to more than 1,088,576 bytes.*--max-pixels"):
        decode_dicom(path.read_bytes(), path, max_pixels=10_000)
    ok = write_syntax(mammogram_dataset(mammogram_pixels((64, 48))), "deflated", tmp_path / "ok.dcm")
    assert decode_dicom(ok.read_bytes(), ok, max_pixels=10_000).tags["transfer_syntax"] == "1.2.840.10008.1.2.1.99"
