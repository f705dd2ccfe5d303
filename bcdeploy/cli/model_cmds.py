"""Commands that need torch + MMSeg (the `export`/`train` extras): train, test, confusion-matrix,
export, build-engine, predict. Heavy imports happen inside each command."""

from __future__ import annotations

import click
import cloup

from bcdeploy.cli._progress import progress
from bcdeploy.cli._sections import section


@click.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--data-root", type=click.Path(file_okay=False), help="Prepared data set (bcdeploy prepare).")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Default: work_dirs/<config name>.")
@click.option("--max-iters", type=click.IntRange(1), help="Shorten the schedule (Poly decays to the new end).")
@click.option("--cfg-options", multiple=True, metavar="KEY=VALUE", help="Override config keys (repeatable).")
@click.option("--resume", is_flag=True, help="Resume from the work dir's last checkpoint.")
def train(config, data_root, work_dir, max_iters, cfg_options, resume) -> None:
    """Train CONFIG with MMEngine's Runner (CPU or CUDA)."""
    from bcdeploy.train.config import parse_cfg_options
    from bcdeploy.train.runner import train as run_train

    out = run_train(config, data_root, work_dir, max_iters, parse_cfg_options(cfg_options), resume)
    last = (out / "last_checkpoint").read_text().strip() if (out / "last_checkpoint").exists() else "?"
    click.echo(f"work dir: {out}\nlast checkpoint: {last}")


@click.command("test")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("ckpt", type=click.Path(dir_okay=False))
@click.option("--data-root", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="test_out", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--iou-threshold", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="IoU at which a lesion counts as detected.")
@click.option("--cad-fp-per-image", type=click.FloatRange(0.0, min_open=True), default=None,
              help="Choose the CAD operating point for this many false marks per image (FROC); it is written to "
                   "OUT/metrics.json, and `bcdeploy export --operating-points OUT/metrics.json` puts it in the sidecar.")
@click.option("--trust-checkpoint", is_flag=True, help="Allow arbitrary pickles in CKPT (only for files you trust).")
def test_cmd(config, ckpt, data_root, out, device, iou_threshold, cad_fp_per_image, trust_checkpoint) -> None:
    """Evaluate CKPT: aAcc/mDice/mAcc, per-class table, lesion metrics, FROC and case AUC -> OUT/metrics.json."""
    from bcdeploy.train.evaluate import evaluate, format_table

    with progress("test") as tick:
        metrics = evaluate(config, ckpt, data_root=data_root, out=out, device=device, iou_threshold=iou_threshold,
                           cad_fp_per_image=cad_fp_per_image, trust=trust_checkpoint, on_progress=tick)
    click.echo(format_table(metrics))
    click.echo(f"metrics: {out}/metrics.json, predictions: {out}/preds/")


@click.command("confusion-matrix")
@click.option("--preds", required=True, type=click.Path(file_okay=False), help="Predicted masks (PNG class indices).")
@click.option("--labels", required=True, type=click.Path(file_okay=False), help="Ground-truth annotations.")
@click.option("--classes", default="background,benign,malignant", show_default=True)
@click.option("--out", default="confusion", show_default=True, type=click.Path(file_okay=False))
@click.option("--title", default="Normalized confusion matrix", show_default=True)
@click.option("--rm-background", is_flag=True, help="Leave the background class out of the plot.")
def confusion_matrix(preds, labels, classes, out, title, rm_background) -> None:
    """Pixel confusion matrix of saved predictions: PNG plot, CSV and JSON."""
    from bcdeploy.eval.confusion import confusion_from_dirs, save_confusion
    from bcdeploy.fileio import refuse_overlap

    refuse_overlap(out, [preds, labels], "--out")
    names = [c.strip() for c in classes.split(",") if c.strip()]
    matrix = confusion_from_dirs(preds, labels, len(names))
    paths = save_confusion(matrix, names, out, title, rm_background)
    click.echo("wrote " + ", ".join(str(p) for p in paths))


COMMANDS = [train, test_cmd, confusion_matrix]


@cloup.command()
@section(
    "Checkpoint",
    click.option("--ckpt", required=True, type=click.Path(dir_okay=False), help="MMEngine checkpoint (iter_N.pth)."),
    click.option("--config", type=click.Path(dir_okay=False), help="Default: the config beside the checkpoint."),
    click.option("--trust-checkpoint", is_flag=True, help="Allow arbitrary pickles in CKPT (only for files you trust)."),
    click.option("--out", default="export", show_default=True, type=click.Path(file_okay=False)),
)
@section(
    "Graph",
    click.option("--deploy-config", type=click.Path(dir_okay=False), help="MMDeploy-format deploy config (deploy_configs/)."),
    click.option("--argmax", is_flag=True, help="Put the argmax in the graph (uint8 labels instead of logits)."),
    click.option("--simplify", is_flag=True, help="Simplify the graph with onnxslim (parity-checked like the rest)."),
)
@section(
    "Variants",
    click.option("--fp16", is_flag=True, help="Also write model.fp16.onnx (FP16 with an FP32 tail), parity-checked."),
    click.option("--int8", is_flag=True, help="Also write model.int8.onnx (static QDQ quantisation, calibrated on --images "
                  "or generated mammograms), parity-checked."),
    click.option("--openvino", is_flag=True, help="Also write OpenVINO IR (model.xml/.bin; with --int8 also the INT8 IR "
                  "model.int8.xml/.bin), parity-checked; which runs fastest here: bcdeploy bench cpu OUT."),
    click.option("--engine", is_flag=True, help="Also build model.trt with TensorRT (needs a GPU)."),
    click.option("--precision", type=click.Choice(["fp16", "fp32", "int8"]),
                  help="TensorRT engine precision, built from model.onnx / model.fp16.onnx / model.int8.onnx (int8 implies "
                       "--int8, quantised for TensorRT). Default: the deploy config's fp16_mode/int8_mode, else fp16."),
    click.option("--timing-cache", type=click.Path(dir_okay=False), help="TensorRT timing cache file to reuse."),
    click.option("--triton", type=click.Path(file_okay=False), help="Also write a Triton model repository here."),
)
@section(
    "Parity gates",
    click.option("--images", multiple=True, type=click.Path(exists=True),
                  help="Real images (files or folders) for the parity check and INT8 calibration."),
    click.option("--atol", default=5e-4, show_default=True, type=float,
                  help="Logit tolerance vs PyTorch (plus 1e-3 relative); at most 0.01% of logits may exceed it, none by 10x."),
    click.option("--min-agreement", default=0.999, show_default=True, type=click.FloatRange(0, 1),
                  help="Min pixel agreement vs PyTorch."),
    click.option("--int8-min-agreement", default=0.98, show_default=True, type=click.FloatRange(0, 1),
                  help="Min pixel agreement of the INT8 model vs PyTorch (0 only for untrained benchmark weights)."),
    click.option("--operating-points", type=click.Path(dir_okay=False, exists=True),
                 help="metrics.json of `bcdeploy test --cad-fp-per-image`: its CAD operating point goes into the "
                      "sidecar (the default of `infer --save cad`)."),
)
def export(ckpt, config, out, deploy_config, argmax, fp16, int8, engine, precision, simplify, openvino, images, atol,
           min_agreement, int8_min_agreement, timing_cache, triton, trust_checkpoint, operating_points) -> None:
    """Export CKPT to dynamic-shape ONNX (+ FP16/INT8 ONNX, OpenVINO, TensorRT), each checked against PyTorch.

    OUT's model files are the export's: model files of an earlier export that this one does not write
    are removed when it commits; nothing else in OUT is touched."""
    from bcdeploy.export.api import ExportOptions
    from bcdeploy.export.api import export as run_export
    from bcdeploy.export.model_meta import read_operating_points

    options = ExportOptions(checkpoint=ckpt, config=config, out=out, deploy_config=deploy_config, argmax=argmax,
                            fp16=fp16, int8=int8, engine=engine, simplify=simplify, openvino=openvino, images=images,
                            tolerances=_fp32_tolerances(atol, min_agreement),
                            int8_tolerances=_int8_tolerances(int8_min_agreement),
                            trust_checkpoint=trust_checkpoint, timing_cache=timing_cache, precision=precision,
                            triton=triton, operating_points=read_operating_points(operating_points))
    result = run_export(options)
    click.echo(result.table())
    for path in result.removed:
        click.echo(f"removed stale {path.name} (an earlier export's)")
    for folder in result.triton:
        click.echo(f"triton: {folder}")
    click.echo(f"export took {result.seconds:.1f} s")


def _fp32_tolerances(atol: float, min_agreement: float):
    from dataclasses import replace

    from bcdeploy.export.parity import FP32_TOLERANCES

    return replace(FP32_TOLERANCES, max_abs_logit=atol, min_agreement=min_agreement)


def _int8_tolerances(min_agreement: float):
    """A gate of 0 (untrained benchmark weights) lifts the Dice gate too."""
    from dataclasses import replace

    from bcdeploy.export.parity import INT8_TOLERANCES

    dice = INT8_TOLERANCES.max_dice_drop if min_agreement else 1.0
    return replace(INT8_TOLERANCES, min_agreement=min_agreement, max_dice_drop=dice)


@click.command("build-engine")
@click.argument("onnx_model", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Default: model.trt beside the ONNX.")
@click.option("--deploy-config", type=click.Path(dir_okay=False), help="Profile min/opt/max, workspace, fp16_mode.")
@click.option("--precision", type=click.Choice(["fp16", "fp32", "int8"]),
              help="Must match the ONNX (model.fp16.onnx -> fp16, model.int8.onnx -> int8); default: the ONNX's.")
@click.option("--timing-cache", type=click.Path(dir_okay=False))
def build_engine(onnx_model, out, deploy_config, precision, timing_cache) -> None:
    """Build a TensorRT engine from an exported ONNX, in that ONNX's precision."""
    from bcdeploy.export.api import build_engine_from_onnx

    path = build_engine_from_onnx(onnx_model, out, deploy_config, precision, timing_cache)
    click.echo(f"engine: {path}")


COMMANDS += [export, build_engine]
