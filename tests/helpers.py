"""Test helpers that write images in the formats real scanners give."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom(path: Path, pixels: np.ndarray, window: tuple[float, float] | None = None,
                monochrome1: bool = False, bits_stored: int = 12) -> Path:
    """An uncompressed single-frame DICOM mammogram (MG) with optional VOI window."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def gray_to_scanner_formats(gray: np.ndarray, folder: Path, stem: str) -> dict[str, Path]:
    """Write one 8-bit gray picture as 8-bit RGBA TIFF, 16-bit gray TIFF, PNG, JPEG and DICOM."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = {  # distinct stems: outputs are named by stem
        "tiff_rgba8": folder / f"{stem}_rgba8.tif",
        "tiff_gray16": folder / f"{stem}_gray16.tif",
        "png": folder / f"{stem}_png.png",
        "jpeg": folder / f"{stem}_jpeg.jpg",
        "dicom": folder / f"{stem}_dicom.dcm",
    }
    cv2.imwrite(str(paths["tiff_rgba8"]), np.dstack([gray, gray, gray, np.full_like(gray, 255)]),
                [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    cv2.imwrite(str(paths["tiff_gray16"]), (gray.astype(np.uint16) * 16))  # 12-bit data in 16-bit words
    cv2.imwrite(str(paths["png"]), gray)
    cv2.imwrite(str(paths["jpeg"]), gray, [cv2.IMWRITE_JPEG_QUALITY, 95])
    write_dicom(paths["dicom"], gray.astype(np.uint16) * 16, window=(2048, 4096))
    return paths


def gray_with_lesion(seed: int, min_size: int = 420, max_size: int = 480) -> np.ndarray:
    """The first generated mammogram of `seed` that has a lesion (grayscale uint8)."""
    from bcdeploy.data.synth import render_case

    for index in range(40):
        _, gray, mask = render_case(seed, index, min_size, max_size)
        if mask is not None:
            return gray
    raise AssertionError(f"no generated case with a lesion for seed {seed}")


def interrupt_after_first_image(cmd: list[str], ledger: Path, timeout: float = 120) -> tuple[int, str, str]:
    """Run `cmd` (an `infer`), send Ctrl-C (SIGINT) once its run ledger holds a row, and return its
    (exit status, stdout, stderr): a run stopped part-way, as a user stops one."""
    import signal
    import sqlite3
    import subprocess
    import time
    from contextlib import closing

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
                if db.execute("SELECT count(*) FROM images").fetchone()[0] >= 1:
                    break
        except sqlite3.Error:
            pass  # the ledger is not made yet
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout, stderr
