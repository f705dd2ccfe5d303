"""`bcdeploy test`: MMSeg inference on the test split, pixel metrics as MMSeg reports them, and the
lesion-level metrics that its pixel means hide. Predictions come from `mmseg.apis.inference_model`,
the path a user of MMSeg would take, so these are the reference numbers deployment is judged by.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bcdeploy.errors import ConfigError
from bcdeploy.eval.froc import format_lines, marks_of, score_marks, summarise
from bcdeploy.eval.labels import read_label_png
from bcdeploy.eval.lesions import LesionMetrics
from bcdeploy.eval.segmentation import ConfusionMatrix
from bcdeploy.fileio import refuse_overlap, write_json


def split_files(cfg, loader: str = "test_dataloader") -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of a dataloader's dataset, in sorted order."""
    dataset = cfg[loader].dataset
    root = Path(dataset.data_root)
    img_dir = root / dataset.data_prefix.img_path
    ann_dir = root / dataset.data_prefix.seg_map_path
    suffix = dataset.get("img_suffix", ".jpg")
    seg_suffix = dataset.get("seg_map_suffix", ".png")
    if not img_dir.is_dir():
        raise ConfigError(f"{img_dir}: image folder of the {loader.split('_')[0]} split not found (check --data-root)")
    pairs = [(img, ann_dir / f"{img.name[: -len(suffix)]}{seg_suffix}") for img in sorted(img_dir.glob(f"*{suffix}"))]
    if not pairs:
        raise ConfigError(f"{img_dir}: no *{suffix} images")
    return pairs


def evaluate(
    config: str | Path,
    checkpoint: str | Path,
    *,
    data_root: str | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    iou_threshold: float = 0.3,
    cad_fp_per_image: float | None = None,
    trust: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> dict:
    from mmseg.apis import inference_model

    from bcdeploy.runtime.results.lesions import case_score
    from bcdeploy.train.config import load_config
    from bcdeploy.train.model import build_segmentor

    cfg = load_config(config, data_root)
    if out:  # predictions written into the data set would become its files
        refuse_overlap(out, [config, checkpoint, cfg.test_dataloader.dataset.get("data_root")], "--out")
    model = build_segmentor(config, checkpoint, device, trust)
    model.cfg = cfg  # with --data-root applied, for inference_model's pipeline
    classes = list(model.dataset_meta["classes"])
    confusion = ConfusionMatrix(len(classes))
    lesions = LesionMetrics(classes, iou_threshold=iou_threshold)
    pairs = split_files(cfg)
    pred_dir = Path(out) / "preds" if out else None
    marks = []
    malignant = next((i for i, name in enumerate(classes) if name.lower() == "malignant"), None)
    for img_path, ann_path in pairs:
        result = inference_model(model, str(img_path))
        pred = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
        probs = result.seg_logits.data.float().softmax(0).cpu().numpy()
        gt = read_label_png(ann_path)
        confusion.update(pred, gt)
        lesions.update(pred, gt, img_path.stem)
        marks.append(score_marks(marks_of(pred, probs), gt, malignant_index=malignant,
                                 case_score=case_score(probs, pred, classes)))
        if pred_dir is not None:
            from bcdeploy.runtime.results.outputs import write_png

            write_png(pred_dir / f"{img_path.stem}.png", pred)
        if on_progress:
            on_progress(img_path.stem, len(pairs))
    metrics = {
        "config": str(config),
        "checkpoint": str(checkpoint),
        "images": len(pairs),
        "classes": classes,
        **confusion.metrics(classes),
        "lesion": lesions.summary(),
        "cad": summarise(marks, target_fp=cad_fp_per_image),
        "confusion_matrix": confusion.matrix.tolist(),
    }
    if out:
        write_json(Path(out) / "metrics.json", metrics)
        write_json(Path(out) / "lesions.json", lesions.lesions)
    return metrics


def format_table(metrics: dict) -> str:
    """The per-class table as the original project's MMSeg log prints it, then the headline and lesion lines."""
    lines = ["+------------+--------+--------+--------+", "|   Class    |  Dice  |  Acc   |  IoU   |",
             "+------------+--------+--------+--------+"]
    for name, row in metrics["per_class"].items():
        cells = [f"{row[k]:6.2f}" if row[k] is not None else "   nan" for k in ("Dice", "Acc", "IoU")]
        lines.append(f"| {name:<10} | {' | '.join(cells)} |")
    lines.append(lines[0])
    fmt = lambda v: "nan" if v is None else f"{v:.2f}"  # noqa: E731
    lines.append(f"aAcc {fmt(metrics['aAcc'])}  mDice {fmt(metrics['mDice'])}  mAcc {fmt(metrics['mAcc'])}  "
                 f"(lesion classes only: mDice {fmt(metrics['mDice_lesion'])}, mAcc {fmt(metrics['mAcc_lesion'])})")
    les = metrics["lesion"]
    rate = "n/a" if les["detection_rate"] is None else f"{100 * les['detection_rate']:.1f}%"
    lines.append(f"lesions: {les['detected']}/{les['gt_lesions']} detected ({rate} at IoU>={les['iou_threshold']}), "
                 f"{les['false_positive_components']} false-positive components "
                 f"({les['false_positives_per_image']} per image), normal images with a false positive: "
                 f"{les['normal_images']['with_false_positive']}/{les['normal_images']['count']}")
    if metrics.get("cad"):
        lines += format_lines(metrics["cad"])
    return "\n".join(lines)
