"""Pictures for people: the original project's 'biner' mask and an overlay with contours and labels."""

from __future__ import annotations

import numpy as np

GREEN, RED, WHITE = (0, 200, 0), (0, 0, 255), (255, 255, 255)


def biner(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices scaled to be visible (0, 127, 255 for three classes), as the original tools wrote them."""
    import cv2

    step = 255 // max(1, num_classes - 1)
    table = (np.arange(256, dtype=np.uint16) * step).clip(0, 255).astype(np.uint8)
    return cv2.LUT(mask, table)  # one pass over a 14-Mpx mask (the uint16 arithmetic took four)


def short_name(name: str) -> str:
    """benign -> B, malignant -> M (DMID's codes); other classes keep their name."""
    return {"benign": "B", "malignant": "M"}.get(name, name)


PICTURE_MAX_SIDE = 2048  # an overlay's longer side at most: a full-size DMID overlay JPEG would be ~10 MB


def picture_scale(image_hw: tuple[int, int], max_side: int = PICTURE_MAX_SIDE) -> float:
    """How an image of `image_hw` is scaled for the picture drawn over it: no reader looks at it at 1:1."""
    return min(1.0, max_side / max(image_hw))


def picture_size(image_hw: tuple[int, int], max_side: int = PICTURE_MAX_SIDE) -> tuple[int, int]:
    """(W, H) of the picture drawn over an image of `image_hw`."""
    scale = picture_scale(image_hw, max_side)
    return round(image_hw[1] * scale), round(image_hw[0] * scale)


def picture_of(bgr: np.ndarray, image_hw: tuple[int, int] | None = None,
               max_side: int = PICTURE_MAX_SIDE) -> np.ndarray:
    """The pixels an overlay is drawn on: `bgr` (of an image of `image_hw`, default its own size)
    downscaled to picture_size, or `bgr` itself where it is that size already (made earlier by this
    call: a run makes it on its reader thread and drops the full-size pixels). Pixels of any other size
    are refused rather than scaled twice."""
    here = (int(bgr.shape[0]), int(bgr.shape[1]))
    image_hw = image_hw or here
    size = picture_size(image_hw, max_side)
    if (size[1], size[0]) == here:
        return bgr
    if here != tuple(image_hw):
        raise ValueError(f"pixels of {here[1]}x{here[0]} for an image of {image_hw[1]}x{image_hw[0]}: neither "
                         f"its size nor its picture's {size[0]}x{size[1]}")
    return downscale(bgr, size)


def overlay(bgr: np.ndarray, mask: np.ndarray, palette: list[list[int]], class_names: list[str],
            lesions: list[dict], target: str | None = None, max_side: int = PICTURE_MAX_SIDE) -> np.ndarray:
    """Contours per class (palette is RGB) and a `Pred: M 0.91 | Target: B` label per lesion (the
    lesion's score where the model gives probabilities), over a copy of the image's picture_of (`bgr`
    may be the full image or that picture already: the same overlay either way).
    """
    import cv2

    scale, size = picture_scale(mask.shape, max_side), picture_size(mask.shape, max_side)
    canvas = picture_of(bgr, mask.shape, max_side)
    if canvas is bgr:  # never draw on what the caller holds (one picture serves the overlay and the SC)
        canvas = bgr.copy()
    small = mask if size == (mask.shape[1], mask.shape[0]) else cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    thickness = max(2, round(max(canvas.shape[:2]) / 400))
    font = max(0.5, max(canvas.shape[:2]) / 1400)
    for cls in range(1, len(class_names)):
        contours, _ = cv2.findContours((small == cls).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        r, g, b = palette[cls] if cls < len(palette) else (255, 255, 0)
        cv2.drawContours(canvas, contours, -1, (int(b), int(g), int(r)), thickness)
    for lesion in lesions:
        x, y = (int(v * scale) for v in lesion["bbox"][:2])
        pred = short_name(lesion["class"])
        text = f"Pred: {pred}" + (f" {lesion['score']:.2f}" if lesion.get("score") is not None else "")
        _label(canvas, text, (x, max(0, y - 6)), WHITE, font)
        if target is not None:
            width = cv2.getTextSize(f"{text} ", cv2.FONT_HERSHEY_SIMPLEX, font, 2)[0][0]
            _label(canvas, f"| Target: {target}", (x + width, max(0, y - 6)), GREEN if target == pred else RED, font)
    if not lesions and target is not None:
        _label(canvas, f"Pred: none | Target: {target}", (10, int(40 * font)), GREEN if target == "N" else RED, font)
    return canvas


def downscale(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize down to `size` (W, H) as INTER_AREA would, ~10x faster on a DMID image.

    OpenCV's INTER_AREA is fast only for integer factors; at 2048/4432 it took ~300 ms of the write
    stage. Exact 2x area steps (every source pixel averaged, no aliasing) while the image is at least
    twice the target, then one bilinear step of less than 2x (which still reads every pixel): within
    3 grey levels of a direct INTER_AREA, fine for a picture people look at (masks are never resized here).
    """
    import cv2

    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _label(canvas: np.ndarray, text: str, origin: tuple[int, int], colour, font: float) -> None:
    import cv2

    x, y = origin
    y = max(y, int(20 * font))
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font, colour, 2, cv2.LINE_AA)
