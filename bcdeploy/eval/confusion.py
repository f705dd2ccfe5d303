"""The `confusion-matrix` command's work: matrix from mask folders, saved as PNG, CSV and JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from bcdeploy.errors import InputError
from bcdeploy.eval.labels import read_label_png
from bcdeploy.eval.segmentation import ConfusionMatrix
from bcdeploy.fileio import atomic_path, write_json, write_text


def confusion_from_dirs(preds: str | Path, labels: str | Path, num_classes: int) -> np.ndarray:
    pred_files = sorted(Path(preds).glob("*.png"))
    if not pred_files:
        raise InputError(f"{preds}: no predicted masks (*.png)")
    matrix = ConfusionMatrix(num_classes)
    for pred_path in pred_files:
        gt_path = Path(labels) / pred_path.name
        if not gt_path.is_file():
            raise InputError(f"{gt_path}: no ground truth for prediction {pred_path.name}")
        pred, gt = read_label_png(pred_path), read_label_png(gt_path)
        if pred.shape != gt.shape:
            raise InputError(f"{pred_path}: {pred.shape[1]}x{pred.shape[0]}, but its label {gt_path} is "
                             f"{gt.shape[1]}x{gt.shape[0]}")
        matrix.update(pred, gt)
    return matrix.matrix


def save_confusion(matrix: np.ndarray, names: list[str], out: str | Path, title: str, rm_background: bool) -> list[Path]:
    out = Path(out)
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["gt\\pred"] + names)
    for name, row in zip(names, matrix):
        writer.writerow([name] + [int(v) for v in row])
    write_text(out / "confusion_matrix.csv", buf.getvalue())
    write_json(out / "confusion_matrix.json", {"classes": names, "counts": matrix.tolist(), "normalized": normalized.round(6).tolist()})
    keep = slice(1, None) if rm_background else slice(None)
    _plot(normalized[keep, keep], names[keep], title, out / "confusion_matrix.png")
    return [out / "confusion_matrix.png", out / "confusion_matrix.csv", out / "confusion_matrix.json"]


def _plot(normalized: np.ndarray, names: list[str], title: str, path: Path) -> None:
    from bcdeploy._imports import require

    matplotlib = require("matplotlib", "plotting the confusion matrix")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 1.4 * len(names) + 1.5))
    im = ax.imshow(normalized * 100, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(im, ax=ax, label="% of ground-truth pixels")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="Prediction", ylabel="Ground truth", title=title)
    for i in range(len(names)):
        for j in range(len(names)):
            value = normalized[i, j] * 100
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white" if value > 50 else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
