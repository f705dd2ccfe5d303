"""MMSeg's postprocessing in numpy, shared by every backend.

MMSeg resizes the *logits* bilinearly (with the decode head's `align_corners`) to the original image
size, then takes the argmax. align_corners=False is cv2.resize INTER_LINEAR (same half-pixel centres
as torch); align_corners=True maps corner to corner, which cv2.resize cannot, so it is a separable
two-tap interpolation in numpy (cv2.warpAffine could, but quantises positions to 1/32 pixel).
Doing argmax first and resizing the mask with nearest neighbour (MMDeploy's SDK) moves
lesion boundaries, so that is only the fallback for argmax-only models, documented as such.

Speed (align_corners=False, every shipped model): resizing every class plane to 14 Mpx costs ~60 ms
per mammogram. `logits_to_mask` decides most pixels at model resolution instead (`_logits_to_mask_fast`
says why that is exact) and interpolates only near class boundaries.
`_logits_to_mask_full` is the plain resize-then-argmax, kept as the reference and for
align_corners=True: one class plane at a time with a running argmax, so its peak memory is two float32
planes plus the mask (~260 MB for 4750x6000), whatever the number of classes.
"""

from __future__ import annotations

import numpy as np

from bcdeploy.runtime.model.preprocess import PreprocessInfo


def crop_padding(chw: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    """Drop the padding the size divisor added (logits of shape (C, padded_h, padded_w))."""
    h, w = info.resized_hw
    return chw[:, :h, :w]


def _taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """align_corners=True source taps along one axis: index pairs and the weight of the second."""
    scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    src = np.arange(size_out, dtype=np.float64) * scale
    lo = np.minimum(np.floor(src).astype(np.intp), size_in - 1)
    hi = np.minimum(lo + 1, size_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(plane: np.ndarray, height: int, width: int, align_corners: bool = False,
                    rows_per_chunk: int = 1024) -> np.ndarray:
    """(h,w) float32 -> (height,width) as torch's bilinear interpolate with `align_corners`."""
    import cv2

    plane = np.ascontiguousarray(plane, np.float32)
    if not align_corners:
        return cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    c0, c1, cw = _taps(plane.shape[1], width)
    across = plane[:, c0] * (1 - cw) + plane[:, c1] * cw  # (h, width)
    r0, r1, rw = _taps(plane.shape[0], height)
    out = np.empty((height, width), np.float32)
    for start in range(0, height, rows_per_chunk):  # bounded temporaries on 6000-row mammograms
        rows = slice(start, start + rows_per_chunk)
        weight = rw[rows, None]
        out[rows] = across[r0[rows]] * (1 - weight) + across[r1[rows]] * weight
    return out


def logits_to_mask(logits: np.ndarray, info: PreprocessInfo, align_corners: bool = False) -> np.ndarray:
    """(C,h,w) logits at model resolution -> (H,W) uint8 class mask at the original size."""
    logits = crop_padding(logits, info)
    height, width = info.original_hw
    if logits.shape[1:] == (height, width):
        return logits.argmax(axis=0).astype(np.uint8)
    if align_corners or logits.shape[0] < 2:
        return _logits_to_mask_full(logits, height, width, align_corners)
    mask = _logits_to_mask_fast(np.ascontiguousarray(logits, np.float32), height, width)
    return _logits_to_mask_full(logits, height, width) if mask is None else mask


def _logits_to_mask_full(logits: np.ndarray, height: int, width: int, align_corners: bool = False) -> np.ndarray:
    """Reference: resize every class plane to (height, width), running argmax (ties: lower class)."""
    best = resize_bilinear(logits[0], height, width, align_corners)
    mask = np.zeros((height, width), np.uint8)
    for c in range(1, logits.shape[0]):
        plane = resize_bilinear(logits[c], height, width, align_corners)
        better = plane > best  # strict: ties keep the lower class, as argmax does
        mask[better] = c
        np.maximum(best, plane, out=best)
    return mask


MARGIN = 1e-3  # relative to max(1, max|logit|); `_logits_to_mask_fast` says why
# Undecided pixels interpolated at a time, which bounds the temporaries: 1 << 20 added up to 42 MiB beside
# a 14 MiB DMID-size mask on the segment thread and was no faster (78-84 vs 63-64 ms CPU per mask, 2 cores).
CHUNK_PIXELS = 1 << 17
FALLBACK_FRACTION = 0.1  # more undecided output (noise-like logits): the full resize is cheaper (~45 ns
# per undecided pixel against ~4 ns per output pixel for the full resize, measured on 2 EPYC cores)


def _half_pixel_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel source taps along one axis as cv2.resize INTER_LINEAR computes them: first tap,
    second tap (= first at the last source index) and the second tap's float32 weight. The source
    coordinate is in float64 as cv2's is (torch's is float32, ~3e-5 px off at 640 -> 4463)."""
    src = (np.arange(size_out) + 0.5) * (1.0 / (size_out / size_in)) - 0.5  # cv2: 1 / inv_scale
    lo = np.floor(src)
    weight = (src - lo).astype(np.float32)
    lo = lo.astype(np.intp)
    weight[lo < 0] = 0  # left border: clamp to the first pixel (torch clamps src at 0: same)
    weight[lo >= size_in - 1] = 0  # right border: the last pixel alone
    lo = np.clip(lo, 0, size_in - 1)
    return lo, np.minimum(lo + 1, size_in - 1), weight


def _logits_to_mask_fast(logits: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """(C,h,w) float32 logits, C >= 2 -> (height,width) uint8 mask, as `_logits_to_mask_full` with
    align_corners=False; None when more than FALLBACK_FRACTION of the output is undecided (noise-like
    logits), where the full resize is cheaper.

    Why it is exact. With align_corners=False (cv2.resize INTER_LINEAR, torch's bilinear interpolate)
    each output pixel is a convex combination (weights >= 0, summing to 1) of its 4 source taps, the same
    weights for every class. If at all 4 taps class k beats every other class by at least `eps`, then the
    interpolated logit of k beats every other interpolated logit by at least `eps` too (a convex
    combination of differences >= eps is >= eps), so the pixel's class is k without interpolating. We
    therefore compute, at model resolution, the argmax and its top-2 margin, mark each source *cell*
    (taps rows y0, y0+1 x cols x0, x0+1, clamped at the border) as decided when its 4 taps agree with
    margin >= eps, expand the cell classes to full size with np.repeat (the tap index is monotonic in the
    output coordinate, so per-cell repeat counts give the expansion exactly), and interpolate only the
    output pixels of undecided cells (lesion boundaries, near-ties) with cv2's weights in float32, a
    block per cell (all its output pixels share its 4 taps). Those agree with cv2 up to float32
    rounding, so only pixels whose top-2 interpolated logits are within ~1e-6 may differ (as cv2 and
    torch differ there); bit-equal class planes still give the lower class.

    eps = 1e-3 * max(1, max|logit|): float32 interpolation (in cv2, torch or here) is off by a few ulp
    of the largest logit (~1e-7 relative), and a reference implementation may floor a source coordinate
    that lands on an integer to the neighbouring cell with a weight of ~0 on the tap we did not check;
    both are far below eps. Pixels within eps of a tie sit on class boundaries, which are interpolated
    anyway, so the large safety factor costs nothing measurable.
    """
    _, h, w = logits.shape
    y0, _, wy = _half_pixel_taps(h, height)
    x0, _, wx = _half_pixel_taps(w, width)
    row_count, col_count = np.bincount(y0, minlength=h), np.bincount(x0, minlength=w)
    cls, decided = _decided_cells(logits)
    cells_r, cells_c = np.nonzero(~decided)
    if int((row_count[cells_r] * col_count[cells_c]).sum()) > FALLBACK_FRACTION * height * width:
        return None
    mask = np.repeat(np.repeat(cls, col_count, axis=1), row_count, axis=0)
    row_start, col_start = np.cumsum(row_count) - row_count, np.cumsum(col_count) - col_count
    for r, c in _cells_by_shape(cells_r, cells_c, row_count, col_count):
        rows = row_start[r][:, None] + np.arange(row_count[r[0]])  # (cells, output rows per cell)
        cols = col_start[c][:, None] + np.arange(col_count[c[0]])
        mask[rows[:, :, None], cols[:, None, :]] = _cell_argmax(logits, r, c, wy[rows], wx[cols])
    return mask


def _decided_cells(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per source pixel argmax (uint8) and per source cell: do its 4 taps agree with margin >= eps?"""
    cls, margin = _argmax_and_margin(logits)
    eps = MARGIN * max(1.0, float(np.abs(logits).max()))
    sure = margin >= eps  # a tie has margin 0: never sure (NaN: never sure)
    # a cell's taps are (r, c), (r, c+1), (r+1, c), (r+1, c+1); the last row/column pairs with itself
    across = np.concatenate([sure[:, :-1] & sure[:, 1:] & (cls[:, :-1] == cls[:, 1:]), sure[:, -1:]], axis=1)
    decided = np.concatenate([across[:-1] & across[1:] & (cls[:-1] == cls[1:]), across[-1:]], axis=0)
    return cls, decided


def _argmax_and_margin(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax over classes (ties: lower class) and top-1 minus top-2, one plane at a time (numpy's
    argmax/partition along axis 0 are several times slower on (C, 640, 640))."""
    top1 = logits[0].copy()
    top2 = np.full_like(top1, -np.inf)
    cls = np.zeros(top1.shape, np.uint8)
    for c in range(1, logits.shape[0]):
        plane = logits[c]
        better = plane > top1
        top2 = np.where(better, top1, np.maximum(top2, plane))
        np.maximum(top1, plane, out=top1)
        cls[better] = c
    return cls, top1 - top2


def _cells_by_shape(cells_r: np.ndarray, cells_c: np.ndarray, row_count: np.ndarray, col_count: np.ndarray):
    """Yield (r, c) index arrays of cells whose output blocks have one shape, ~CHUNK_PIXELS at a time
    (a few shapes: the floor and ceil of the scale, the border cells; downscaling leaves empty cells)."""
    n_rows, n_cols = row_count[cells_r], col_count[cells_c]
    key = n_rows * (int(col_count.max()) + 1) + n_cols
    for shape in np.unique(key[(n_rows > 0) & (n_cols > 0)]):
        group = np.flatnonzero(key == shape)
        step = max(1, CHUNK_PIXELS // int(n_rows[group[0]] * n_cols[group[0]]))
        for start in range(0, group.size, step):
            yield cells_r[group[start:start + step]], cells_c[group[start:start + step]]


def _cell_argmax(logits: np.ndarray, r: np.ndarray, c: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Bilinear logits over the output blocks (cells, rows, cols) of source cells (r, c) from their 4
    taps, along x then along y as cv2 does (equal to cv2's up to float32 rounding); running argmax.
    wy: (cells, rows) and wx: (cells, cols) second-tap weights."""
    _, h, w = logits.shape
    r1, c1 = np.minimum(r + 1, h - 1), np.minimum(c + 1, w - 1)
    b, a = wy[:, :, None], wx[:, None, :]
    b_, a_ = 1 - b, 1 - a
    best = mask = None
    for k, plane in enumerate(logits):
        top = a_ * plane[r, c][:, None, None] + a * plane[r, c1][:, None, None]  # (cells, 1, cols)
        bottom = a_ * plane[r1, c][:, None, None] + a * plane[r1, c1][:, None, None]
        value = b_ * top + b * bottom
        if best is None:
            best, mask = value, np.zeros(value.shape, np.uint8)
            continue
        better = value > best  # strict: ties keep the lower class, as argmax does
        mask[better] = k
        np.maximum(best, value, out=best)
    return mask


def labels_to_mask(labels: np.ndarray, info: PreprocessInfo) -> np.ndarray:
    """Argmax-only models: (1,h,w) or (h,w) class indices -> original size by nearest neighbour."""
    import cv2

    labels = labels.reshape(-1, *labels.shape[-2:])[:1]
    labels = crop_padding(labels, info)[0].astype(np.uint8)
    height, width = info.original_hw
    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted, dtype=np.float32)
    return exp / exp.sum(axis=axis, keepdims=True)
