"""Plain records shared by the generator, the metadata readers and preparation."""

from __future__ import annotations

from dataclasses import dataclass

CLASS_CODES = ("B", "M")  # DMID severity: benign, malignant
ABNORMALITY_CODES = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")


@dataclass(frozen=True)
class LesionRow:
    """One metadata row. Normal images have a row with abnormality NORM and no class.

    x, y and radius are in pixels of the original image, as written in the file: y's origin
    (top or bottom) is not known here, preparation detects it.
    """

    image_id: str
    abnormality: str
    severity: str | None
    x: float | None
    y: float | None
    radius: float | None
    background: str | None = None
    view: str | None = None
    source_line: int = 0  # line/row in the metadata file, for error messages

    @property
    def is_normal(self) -> bool:
        return self.abnormality == "NORM"

    @property
    def has_centre(self) -> bool:
        return self.x is not None and self.y is not None
