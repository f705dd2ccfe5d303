"""Read DMID metadata in any of its three forms: Info.txt (MIAS style), Metadata.xlsx, metadata.csv.

Every reader yields the same `LesionRow`s; `-` and empty cells mean missing. Unknown codes are
errors naming the file and line, because a silently misread class would poison a training set.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from bcdeploy.data.records import ABNORMALITY_CODES, CLASS_CODES, LesionRow
from bcdeploy.errors import DataError

# Header keywords for the xlsx/csv columns, matched case-insensitively on the start of the header.
_COLUMN_KEYS = {
    "image_id": ("image", "filename", "refnum", "id"),
    "view": ("view", "mammogram_view"),
    "background": ("background",),
    "abnormality": ("abnormality",),
    "severity": ("class", "severity", "class_abnormality"),
    "x": ("x",),
    "y": ("y",),
    "radius": ("radius",),
}


def read_metadata(path: str | Path) -> list[LesionRow]:
    """Read Info.txt, .xlsx or .csv into rows, whichever `path` is."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        rows = _read_xlsx(path)
    elif suffix == ".csv":
        rows = _rows_from_table(path, list(csv.reader(io.StringIO(_read_text(path)))))
    else:
        rows = _read_info_txt(path, _read_text(path))
    if not rows:
        raise DataError(f"{path}: no metadata rows (an empty or header-only file): every image needs a row, "
                        "NORM for a normal one")
    return rows


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); re-save the file as UTF-8") from None


def _read_info_txt(path: Path, text: str) -> list[LesionRow]:
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) < 3:
            raise DataError(f"{path}:{line_no}: expected 'ID TISSUE ABNORMALITY [CLASS X Y RADIUS]', got {line.strip()!r}")
        parts += ["-"] * (7 - len(parts))
        image_id, background, abnormality, severity, x, y, radius = parts[:7]
        rows.append(_make_row(path, line_no, (image_id, abnormality, severity, x, y, radius, background, None)))
    return rows


def _read_xlsx(path: Path) -> list[LesionRow]:
    from bcdeploy._imports import require

    openpyxl = require("openpyxl", "reading Metadata.xlsx")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises zip, xml and key errors for bad files
        raise DataError(f"{path}: cannot read as an Excel workbook ({type(err).__name__})") from None
    table = [["" if v is None else str(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    return _rows_from_table(path, table)


def _rows_from_table(path: Path, table: list[list[str]]) -> list[LesionRow]:
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise DataError(f"{path}: no rows")
    columns = _match_columns(path, table[0])
    rows = []
    keys = ("image_id", "abnormality", "severity", "x", "y", "radius", "background", "view")
    for line_no, cells in enumerate(table[1:], 2):
        rows.append(_make_row(path, line_no, [_cell(cells, columns.get(key)) for key in keys]))
    return rows


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else "-"


def _match_columns(path: Path, header: list[str]) -> dict[str, int | None]:
    names = [h.strip().lower().replace(" ", "_") for h in header]
    found: dict[str, int | None] = {}
    for key, prefixes in _COLUMN_KEYS.items():
        exact = [i for i, n in enumerate(names) if n in prefixes]
        loose = [i for i, n in enumerate(names) if any(n.startswith(p) for p in prefixes if len(p) > 1)]
        found[key] = (exact or loose or [None])[0]
    missing = [k for k in ("image_id", "abnormality", "severity", "x", "y") if found[k] is None]
    if missing:
        raise DataError(f"{path}: header {header} lacks column(s) for {', '.join(missing)}")
    return found


def _missing(value: str | None) -> bool:
    return value is None or value.strip() in ("", "-", "nan", "None")


def _number(path: Path, line_no: int, name: str, value: str) -> float | None:
    if _missing(value):
        return None
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path}:{line_no}: {name} {value!r} is not a number") from None


def _make_row(path, line_no, values: Sequence) -> LesionRow:
    """`values`: image id, abnormality, severity, x, y, radius, background tissue, view (the columns, in order)."""
    image_id, abnormality, severity, x, y, radius, background, view = values
    image_id = Path(image_id.strip()).stem
    if _missing(image_id):
        raise DataError(f"{path}:{line_no}: missing image id")
    abnormality = abnormality.strip().upper()
    codes = abnormality.split("+")
    if any(code not in ABNORMALITY_CODES for code in codes):
        raise DataError(f"{path}:{line_no}: unknown abnormality code {abnormality!r} (known: {', '.join(ABNORMALITY_CODES)})")
    sev = None if _missing(severity) else severity.strip().upper()
    if abnormality != "NORM":
        if sev not in CLASS_CODES:
            raise DataError(f"{path}:{line_no}: unknown class code {severity!r} for {image_id} (expected B or M)")
    return LesionRow(
        image_id=image_id,
        abnormality=abnormality,
        severity=sev if abnormality != "NORM" else None,
        x=_number(path, line_no, "x", x),
        y=_number(path, line_no, "y", y),
        radius=_number(path, line_no, "radius", radius),
        background=None if _missing(background) else background.strip().upper(),
        view=None if _missing(view) else view.strip(),
        source_line=line_no,
    )


def group_by_image(rows: Iterable[LesionRow]) -> dict[str, list[LesionRow]]:
    grouped: dict[str, list[LesionRow]] = {}
    for row in rows:
        grouped.setdefault(row.image_id, []).append(row)
    return grouped


def worst_severity(rows: Iterable[LesionRow]) -> str:
    """'M', 'B' or 'N' (normal): the worst severity among an image's lesion rows (malignant over benign
    over none). The one rule for the overlays' target label and the split's strata."""
    severities = {r.severity for r in rows if r.severity and not r.is_normal}
    return "M" if "M" in severities else ("B" if "B" in severities else "N")


def image_targets(path: str | Path) -> dict[str, str]:
    """Image id -> worst_severity of its rows, for the overlays' `Target:` label (the runtime gets this
    mapping passed in; it never reads DMID metadata itself)."""
    return {image_id: worst_severity(rows) for image_id, rows in group_by_image(read_metadata(path)).items()}
