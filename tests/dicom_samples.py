"""Generated DICOM mammograms: one seeded 12-bit picture written in every transfer syntax a PACS sends.

Encoders: pydicom (RLE; JPEG-LS through pyjpegls; JPEG 2000 through pylibjpeg-openjpeg), DCMTK's
`dcmcjpeg` for the JPEG family (Debian `dcmtk`). A syntax whose encoder is missing is reported as None
so a test can skip with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bcdeploy.data.mammogram_dicom import MG_FOR_PRESENTATION, MG_FOR_PROCESSING, mammogram_dataset  # noqa: F401

BTO = "1.2.840.10008.5.1.4.1.1.13.1.3"  # Breast Tomosynthesis Image Storage


@dataclass(frozen=True)
class Syntax:
    name: str
    uid: str
    lossless: bool
    tool: str  # which encoder makes it: pydicom or dcmcjpeg


SYNTAXES = {s.name: s for s in (
    Syntax("explicit", "1.2.840.10008.1.2.1", True, "pydicom"),
    Syntax("implicit", "1.2.840.10008.1.2", True, "pydicom"),
    Syntax("deflated", "1.2.840.10008.1.2.1.99", True, "pydicom"),
    Syntax("rle", "1.2.840.10008.1.2.5", True, "pydicom"),
    Syntax("jpegls", "1.2.840.10008.1.2.4.80", True, "pydicom"),
    Syntax("jpegls_near", "1.2.840.10008.1.2.4.81", False, "pydicom"),
    Syntax("j2k_lossless", "1.2.840.10008.1.2.4.90", True, "pydicom"),
    Syntax("j2k", "1.2.840.10008.1.2.4.91", False, "pydicom"),
    Syntax("jpeg_lossless_sv1", "1.2.840.10008.1.2.4.70", True, "dcmcjpeg"),
    Syntax("jpeg_lossless", "1.2.840.10008.1.2.4.57", True, "dcmcjpeg"),
    Syntax("jpeg_extended", "1.2.840.10008.1.2.4.51", False, "dcmcjpeg"),
    Syntax("jpeg_baseline", "1.2.840.10008.1.2.4.50", False, "dcmcjpeg"),
)}
DCMCJPEG_FLAGS = {"jpeg_lossless_sv1": ["+e1"], "jpeg_lossless": ["+el", "+sv", "6"],
                  "jpeg_extended": ["+ee", "+q", "95"], "jpeg_baseline": ["+eb", "+q", "95"]}


def mammogram_pixels(shape: tuple[int, int] = (1024, 768), bits: int = 12, seed: int = 0) -> np.ndarray:
    """A DMID-like breast: dark background, a half-ellipse of textured tissue, a few dense blobs."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = ((yy - h / 2) / (0.46 * h)) ** 2 + (xx / (0.8 * w)) ** 2
    tissue = np.clip(1.0 - r, 0, 1) ** 0.4
    texture = rng.normal(0, 1, (h // 16 + 1, w // 16 + 1)).astype(np.float32)
    texture = np.kron(texture, np.ones((16, 16), np.float32))[:h, :w]
    img = tissue * (0.45 + 0.08 * texture)
    for _ in range(3):
        cy, cx, rad = rng.uniform(0.3 * h, 0.7 * h), rng.uniform(0.1 * w, 0.5 * w), rng.uniform(15, 40)
        img += 0.3 * np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rad**2)))
    img += rng.normal(0, 0.01, shape).astype(np.float32)
    top = (1 << bits) - 1
    return np.clip(img * top, 0, top).astype(np.uint16)


def write_syntax(ds, name: str, path: Path) -> Path | None:
    """Write `ds` (uncompressed) in transfer syntax `name`; None when its encoder is not installed."""
    import copy

    import pydicom
    from pydicom.uid import UID

    syntax = SYNTAXES[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = copy.deepcopy(ds)
    if syntax.tool == "dcmcjpeg":
        return _dcmcjpeg(ds, name, path)
    if name in ("explicit", "implicit", "deflated"):
        ds.file_meta.TransferSyntaxUID = UID(syntax.uid)
    else:
        options = {"jpegls_near": {"jls_error": 3}, "j2k": {"j2k_cr": [15]}}.get(name, {})
        try:
            ds.compress(UID(syntax.uid), **options)
        except RuntimeError:  # pydicom: no encoder plugin available
            return None
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _dcmcjpeg(ds, name: str, path: Path) -> Path | None:
    import pydicom

    tool = shutil.which("dcmcjpeg")
    if tool is None:
        return None
    if name == "jpeg_baseline":  # baseline holds 8 bits only: the same picture at 8 bits
        ds = to_8bit(ds)
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.dcm"
        pydicom.dcmwrite(plain, ds, enforce_file_format=True)
        subprocess.run([tool, *DCMCJPEG_FLAGS[name], str(plain), str(path)], check=True, capture_output=True)
    return path


def to_8bit(ds):
    """The same dataset with its 12-bit pixels shifted down to 8 bits."""
    import copy

    ds = copy.deepcopy(ds)
    shift = int(ds.BitsStored) - 8
    pixels = np.frombuffer(ds.PixelData, np.uint16) >> shift
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.WindowCenter, ds.WindowWidth = 128, 256
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    return ds


def write_study_tree(root: Path, *, patients: int = 2, syntax: str = "explicit",
                     shape: tuple[int, int] = (256, 192)) -> list[Path]:
    """A TCIA-style nested tree: root/<patient>/<study>/<series>/1-1.dcm, four views per patient."""
    paths = []
    for p in range(patients):
        patient = f"P{p + 1:03d}"
        study_uid = None
        for i, (lat, view) in enumerate((("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))):
            ds = mammogram_dataset(mammogram_pixels(shape, seed=p * 10 + i), patient_id=patient,
                                   study_uid=study_uid, laterality=lat, view=view, seed=i)
            study_uid = ds.StudyInstanceUID
            path = root / patient / f"study-{study_uid[-8:]}" / f"{i + 1}-{lat}{view}" / "1-1.dcm"
            written = write_syntax(ds, syntax, path)
            if written is not None:
                paths.append(written)
    return paths
