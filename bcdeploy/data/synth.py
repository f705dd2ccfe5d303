"""A DMID-like data set generator, for tests, the demo and benchmarks.

No DMID image can be downloaded where bcdeploy is developed, so we make data of the same form and
scale: 8-bit RGBA TIFFs with R=G=B, a bright half-ellipse breast against the chest wall, a pectoral
triangle on MLO views, a dark film background with burned-in label rectangles; 0/255 RGBA LZW masks
only for abnormal images; MIAS-style Info.txt + Metadata.xlsx (figshare layout) or the original
project's ground_truth/ + metadata.csv. Lesions are drawn so that a small model can learn them:
benign masses are round or oval with a sharp (circumscribed) margin and fat-containing or of low
density inside a thin capsule, malignant ones irregular, spiculated, of high density and larger;
benign calcifications are a few coarse specks, malignant ones many fine specks along a line
(calcification centres are sometimes missing, as in DMID).

Same seed, same bytes: every random draw comes from a per-image generator seeded by (seed, index),
and the xlsx is written with fixed timestamps.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bcdeploy.data.records import LesionRow
from bcdeploy.errors import InputError
from bcdeploy.fileio import atomic_path, write_bytes, write_text

LAYOUTS = ("figshare", "original")
LAYOUT_ALIASES = {"seed": "original"}  # the name `--layout` had before "seed" only meant the random seed
FIGSHARE_DIRS = ("TIFF Images", "ROI Masks")
ORIGINAL_DIRS = ("tiff_images", "ground_truth")
XLSX_COLUMNS = ("Image", "View", "Background Tissue", "Abnormality", "Class", "X", "Y", "Radius")
CSV_COLUMNS = ("filename", "mammogram_view", "background", "abnormality", "class_abnormality", "x", "y", "radius")


@dataclass
class SynthCase:
    """What was drawn for one image (y counted from the top, as in the pixel array)."""

    image_id: str
    width: int
    height: int
    view: str
    background: str
    rows: list[LesionRow] = field(default_factory=list)


def synthesize(
    out: str | Path,
    count: int = 20,
    *,
    min_size: int = 1000,
    max_size: int = 1400,
    layout: str = "figshare",
    seed: int = 0,
    y_origin: str = "bottom",
    workers: int = 2,
    on_image: Callable[[SynthCase], None] | None = None,
) -> list[SynthCase]:
    """Write a DMID-like data set of `count` images whose long side lies in [min_size, max_size]."""
    layout = LAYOUT_ALIASES.get(layout, layout)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if y_origin not in ("top", "bottom"):
        raise InputError(f"y_origin must be 'top' or 'bottom', not {y_origin!r}")
    if count < 1 or min_size < 256 or max_size < min_size:
        raise InputError(f"need count >= 1 and 256 <= min_size <= max_size (got {count}, {min_size}, {max_size})")
    out = Path(out)
    image_dir, mask_dir = (out / d for d in (FIGSHARE_DIRS if layout == "figshare" else ORIGINAL_DIRS))
    mask_suffix = ".tif" if layout == "figshare" else ".png"
    jobs = [(seed, i, min_size, max_size, image_dir, mask_dir, mask_suffix) for i in range(count)]
    cases: list[SynthCase] = []
    for case in _run_jobs(jobs, workers):
        cases.append(case)
        if on_image:
            on_image(case)
    cases.sort(key=lambda c: c.image_id)
    if layout == "figshare":
        write_text(out / "Info.txt", info_txt(cases, y_origin))
        write_bytes(out / "Metadata.xlsx", metadata_xlsx(cases, y_origin))
    else:
        write_text(out / "metadata" / "metadata.csv", metadata_csv(cases, y_origin))
    return cases


def _run_jobs(jobs: list[tuple], workers: int) -> Iterator[SynthCase]:
    if workers <= 1 or len(jobs) == 1:
        yield from map(_make_and_write, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_make_and_write, jobs)


def _make_and_write(job: tuple) -> SynthCase:
    import cv2

    seed, index, min_size, max_size, image_dir, mask_dir, mask_suffix = job
    case, gray, mask = render_case(seed, index, min_size, max_size)
    with atomic_path(image_dir / f"{case.image_id}.tif") as tmp:
        rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
        cv2.imwrite(str(tmp), rgba, [cv2.IMWRITE_TIFF_COMPRESSION, 1])
    if mask is not None:  # DMID: normal images have no mask file
        with atomic_path(mask_dir / f"{case.image_id}{mask_suffix}") as tmp:
            if mask_suffix == ".tif":
                cv2.imwrite(str(tmp), np.dstack([mask] * 4), [cv2.IMWRITE_TIFF_COMPRESSION, 5])
            else:
                cv2.imwrite(str(tmp), mask)
    return case


def render_case(seed: int, index: int, min_size: int, max_size: int) -> tuple[SynthCase, np.ndarray, np.ndarray | None]:
    """Draw image `index`: (case, gray uint8 image, 0/255 mask or None for a normal image)."""
    rng = np.random.default_rng([seed, index])
    height = int(rng.integers(min_size, max_size + 1))
    width = int(round(height * rng.uniform(0.68, 0.8)))
    chest_left = bool(rng.random() < 0.5)
    mlo = bool(rng.random() < 0.6)
    view = ("MLO" if mlo else "CC") + ("LT" if chest_left else "RT")
    background = str(rng.choice(["F", "G", "D"]))
    case = SynthCase(f"IMG{index + 1:03d}", width, height, view, background)

    breast, tissue = _draw_breast(rng, width, height, chest_left, mlo, background)
    image = np.float32(0.06) + 0.02 * _smooth_noise(rng, height, width, 8)
    image = np.where(breast, tissue, image)
    _burn_label(rng, image, chest_left)

    mask = None
    if rng.random() >= 0.5:
        mask = np.zeros((height, width), np.uint8)
        for _ in range(int(rng.choice([1, 1, 1, 2, 2, 3]))):
            case.rows.append(_draw_lesion(rng, image, mask, breast, case))
    else:
        case.rows.append(LesionRow(case.image_id, "NORM", None, None, None, None, background, view))
    image += rng.standard_normal((height, width), dtype=np.float32) * np.float32(0.015)
    gray = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return case, gray, mask


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    import cv2

    grid = rng.uniform(-1, 1, (cells, max(2, int(cells * width / height)))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _draw_breast(rng, width, height, chest_left, mlo, background):
    yy, xx = np.ogrid[:height, :width]
    a = width * rng.uniform(0.5, 0.72)
    b = height * rng.uniform(0.36, 0.46)
    cy = height * rng.uniform(0.45, 0.55)
    cx = 0 if chest_left else width - 1
    r = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2).astype(np.float32)
    breast = r < 1.0
    density = {"F": 0.45, "G": 0.55, "D": 0.65}[background]
    skin = np.clip((1.0 - r) * 6.0, 0.0, 1.0)  # fades to the skin line like a compressed breast
    tissue = (density + 0.08 * _smooth_noise(rng, height, width, 12) + 0.04 * _smooth_noise(rng, height, width, 40)) * (0.55 + 0.45 * skin)
    if mlo:  # pectoral muscle: a bright triangle in the upper chest-wall corner
        depth, drop = width * rng.uniform(0.2, 0.3), height * rng.uniform(0.3, 0.45)
        dist = xx if chest_left else (width - 1 - xx)
        pect = (dist / depth + yy / drop) < 1.0
        tissue = np.where(pect, np.float32(0.82), tissue)
        breast = breast | pect
    return breast, tissue.astype(np.float32)


def _burn_label(rng, image, chest_left) -> None:
    """A bright label rectangle with dark 'text' bars, in a corner away from the breast."""
    height, width = image.shape
    lh, lw = int(height * rng.uniform(0.04, 0.06)), int(width * rng.uniform(0.15, 0.22))
    y0 = int(height * rng.uniform(0.03, 0.1))
    x0 = width - lw - int(width * 0.04) if chest_left else int(width * 0.04)
    image[y0:y0 + lh, x0:x0 + lw] = 0.92
    for k in range(3):
        bar_y = y0 + int(lh * (0.2 + 0.25 * k))
        image[bar_y:bar_y + max(2, lh // 10), x0 + lw // 10:x0 + int(lw * rng.uniform(0.5, 0.9))] = 0.15


def _draw_lesion(rng, image, mask, breast, case: SynthCase) -> LesionRow:
    import cv2

    height, width = image.shape
    ys, xs = np.nonzero(breast[:: max(1, height // 256), :: max(1, height // 256)])
    pick = int(rng.integers(len(ys)))
    step = max(1, height // 256)
    cy, cx = int(ys[pick] * step), int(xs[pick] * step)
    severity = "M" if rng.random() < 0.45 else "B"
    kind = rng.choice(["mass", "mass", "calc"])
    # drawn as radiologists describe them (BI-RADS): benign masses round or oval and circumscribed,
    # malignant ones irregular, spiculated, denser and larger; calcifications coarse and scattered
    # (benign) or fine and clustered along a line (malignant): what a small model can learn from
    if kind == "mass":
        radius = int(height * (rng.uniform(0.07, 0.11) if severity == "M" else rng.uniform(0.04, 0.065)))
    else:
        radius = int(height * rng.uniform(0.035, 0.05))
    cy = int(np.clip(cy, radius + 2, height - radius - 3))
    cx = int(np.clip(cx, radius + 2, width - radius - 3))
    ys0, xs0 = slice(cy - radius - 2, cy + radius + 3), slice(cx - radius - 2, cx + radius + 3)
    yy, xx = np.ogrid[-radius - 2:radius + 3, -radius - 2:radius + 3]
    dist = np.sqrt(xx * xx + yy * yy).astype(np.float32) / radius
    if kind == "calc":
        local = np.zeros(dist.shape, np.uint8)
        # benign calcifications are few, coarse and round, scattered; malignant ones many, fine and
        # pleomorphic, clustered along a line (a duct): BI-RADS' "coarse" versus "fine linear branching"
        specks = int(rng.integers(3, 7)) if severity == "B" else int(rng.integers(15, 30))
        angle = rng.uniform(0, math.pi)
        for _ in range(specks):
            if severity == "B":
                ang, rad = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.8) * radius
                size = max(3, radius // 5)
            else:  # along a line through the centre, jittered
                ang, rad = angle + rng.normal(0, 0.25), rng.uniform(-0.8, 0.8) * radius
                size = max(1, radius // 16)
            centre = (radius + 2 + int(rad * math.cos(ang)), radius + 2 + int(rad * math.sin(ang)))
            cv2.circle(local, centre, size, 255, -1)
        image[ys0, xs0] += (cv2.GaussianBlur(local, (0, 0), max(1.0, radius / 30)) / 255.0 * 0.4).astype(np.float32)
        # the cluster is one finding: its region is the hull of its specks (with the centre), as a
        # radiologist outlines a cluster, not one island per speck
        points = np.vstack([np.argwhere(local)[:, ::-1], [[radius + 2, radius + 2]]]).astype(np.int32)
        region = np.zeros_like(local)
        cv2.fillConvexPoly(region, cv2.convexHull(points), 255)
        region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, radius // 6) | 1,) * 2))
        abnormality = "CALC" if rng.random() < 0.7 else "MISC+CALC"
        with_centre = rng.random() < 0.5
    elif severity == "B":
        # benign: round or oval, circumscribed (a sharp margin), moderately and evenly dense
        ratio, tilt = rng.uniform(0.65, 1.0), rng.uniform(0, math.pi)
        rx = (xx * math.cos(tilt) + yy * math.sin(tilt)) / radius
        ry = (-xx * math.sin(tilt) + yy * math.cos(tilt)) / (radius * ratio)
        oval = np.sqrt(rx * rx + ry * ry).astype(np.float32)
        region = (oval < 0.85).astype(np.uint8) * 255
        core = np.clip((0.85 - oval) * 25.0, 0.0, 1.0)  # a sharp edge: one or two pixels of transition
        # BI-RADS density: fat-containing (lucent, always benign: oil cyst, lipoma) or low density, each
        # inside a thin dense capsule; high density is the malignant descriptor, drawn below
        capsule = core * np.clip((oval - 0.7) * 8.0, 0.0, 1.0)
        inside = -0.18 if rng.random() < 0.6 else 0.06
        image[ys0, xs0] += (core * inside + capsule * 0.25).astype(np.float32)
        abnormality = "CIRC" if rng.random() < 0.7 else "MISC"
        with_centre = True
    else:
        # malignant: irregular (a lobulated outline), spiculated, denser towards its centre, larger
        angles = np.arctan2(yy, xx)
        lobes = 1.0 + sum(rng.uniform(0.06, 0.16) * np.cos(k * angles + rng.uniform(0, 2 * math.pi))
                          for k in (3, 5, 7))
        region = (dist < 0.8 * lobes).astype(np.uint8) * 255
        for _ in range(int(rng.integers(8, 14))):
            ang = rng.uniform(0, 2 * math.pi)
            end = (radius + 2 + int(1.0 * radius * math.cos(ang)), radius + 2 + int(1.0 * radius * math.sin(ang)))
            cv2.line(region, (radius + 2, radius + 2), end, 255, max(2, radius // 8))
        core = np.maximum(np.clip((1.0 - dist) * 2.0, 0.0, 1.0), cv2.GaussianBlur(region, (0, 0), radius / 20) / 255.0)
        image[ys0, xs0] += (core * 0.5).astype(np.float32)
        abnormality = "SPIC" if rng.random() < 0.7 else "MISC"
        with_centre = True
    mask[ys0, xs0] = np.maximum(mask[ys0, xs0], region)
    if not with_centre:
        return LesionRow(case.image_id, abnormality, severity, None, None, None, case.background, case.view)
    return LesionRow(case.image_id, abnormality, severity, float(cx), float(cy), float(radius), case.background, case.view)


def _file_coords(row: LesionRow, height: int, y_origin: str) -> tuple[str, str, str]:
    if not row.has_centre:
        return "-", "-", "-"
    y = row.y if y_origin == "top" else (height - 1 - row.y)
    return str(int(row.x)), str(int(y)), str(int(row.radius))


def _rows(cases: list[SynthCase], y_origin: str) -> Iterator[tuple[SynthCase, LesionRow, tuple[str, str, str]]]:
    for case in cases:
        for row in case.rows:
            yield case, row, _file_coords(row, case.height, y_origin)


def info_txt(cases: list[SynthCase], y_origin: str) -> str:
    """MIAS-style Info.txt: `IMG001 G MISC M 1567 3644 295`; NORM rows stop after the code."""
    lines = []
    for case, row, (x, y, r) in _rows(cases, y_origin):
        if row.is_normal:
            lines.append(f"{case.image_id} {case.background} NORM")
        else:
            lines.append(f"{case.image_id} {case.background} {row.abnormality} {row.severity} {x} {y} {r}")
    return "\n".join(lines) + "\n"


def metadata_csv(cases: list[SynthCase], y_origin: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for case, row, (x, y, r) in _rows(cases, y_origin):
        writer.writerow([f"{case.image_id}.tif", case.view, case.background, row.abnormality, row.severity or "-", x, y, r])
    return buf.getvalue()


def metadata_xlsx(cases: list[SynthCase], y_origin: str) -> bytes:
    """Metadata.xlsx as DMID ships it, with fixed timestamps so the bytes depend on the seed only."""
    import datetime

    from bcdeploy._imports import require

    openpyxl = require("openpyxl", "writing Metadata.xlsx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Metadata"
    sheet.append(list(XLSX_COLUMNS))
    for case, row, (x, y, r) in _rows(cases, y_origin):
        values = [case.image_id, case.view, case.background, row.abnormality, row.severity or "-", x, y, r]
        sheet.append([int(v) if v.isdigit() else v for v in values])
    book.properties.created = datetime.datetime(2024, 1, 1)
    raw = io.BytesIO()
    book.save(raw)
    return _zip_with_fixed_dates(raw.getvalue())


# openpyxl stamps docProps/core.xml's `modified` with the time of saving, whatever the workbook says.
_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def _zip_with_fixed_dates(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = _MODIFIED.sub(rb"\g<1>2024-01-01T00:00:00Z\g<2>", content)
            dst.writestr(fixed, content)
    return out.getvalue()
