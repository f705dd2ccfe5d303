"""The zoo table: every architecture folder of the installed MMSeg's configs, through bcdeploy end to end.

For each folder (one subprocess each, so one architecture's crash is one row): build the model from
MMSeg's own config with random weights (bcdeploy.export.zoo), export ONNX + FP16 ONNX + OpenVINO IR with
parity against PyTorch at three sizes (square, not square, not a multiple of 32; batch 2 in one), run
`bcdeploy infer` on a generated mammogram with the ONNX (onnxruntime) and the IR (OpenVINO), and time the
model alone at 512x512 (median of 5 after a warm-up) on both. Rows that fail say why in one line.

    python benchmarks/zoo.py OUT_DIR [ARCH ...]      # every folder, or the ones named
Writes OUT_DIR/zoo.json and OUT_DIR/zoo.md (the table the README shows), and prints the table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

PARITY_CASES = (((128, 128), 1), ((96, 160), 1), ((112, 200), 2))
TIMED_HW = (512, 512)
ROW_TIMEOUT_S = 900
# MMDeploy 1.3's supported-model table for mmseg (its docs, 04-supported-codebases/mmseg.md): ONNX Runtime column;
# "static" where it supports a static input shape only; absent rows are not in its table.
MMDEPLOY_ORT = {
    "fcn": "Y", "pspnet": "static", "deeplabv3": "Y", "deeplabv3plus": "Y", "fastscnn": "static", "unet": "Y",
    "ann": "static", "apcnet": "Y", "bisenetv1": "Y", "bisenetv2": "Y", "cgnet": "Y", "dmnet": "Y", "dnlnet": "Y",
    "emanet": "Y", "encnet": "Y", "erfnet": "Y", "fastfcn": "Y", "gcnet": "Y", "icnet": "static", "isanet": "static",
    "nonlocal_net": "Y", "ocrnet": "Y", "point_rend": "Y", "sem_fpn": "Y", "stdc": "Y", "upernet": "static",
    "danet": "Y", "segmenter": "static", "ccnet": "N", "psanet": "N", "dpt": "N", "segformer": "static",
    "knet": "Y", "mask2former": "Y", "maskformer": "Y", "hrnet": "Y", "mobilenet_v2": "Y", "resnest": "Y",
}


def one_row(arch: str, out: Path) -> dict:
    """Everything for one architecture, in this process; raises nothing (the failure is the row)."""
    import numpy as np

    row: dict = {"architecture": arch, "mmdeploy_ort": MMDEPLOY_ORT.get(arch, "-")}
    step = "build"
    try:
        from bcdeploy.export.api import ExportOptions, export
        from bcdeploy.export.zoo import make_zoo_model

        model = make_zoo_model(arch, out / "model")
        row["config"] = model.config.name
        step = "export"
        result = export(ExportOptions(checkpoint=str(model.checkpoint), config=str(model.config),
                                      out=str(out / "export"), fp16=True, openvino=True, cases=PARITY_CASES))
        row["parity"] = {a.name: "ok" for a in result.artifacts}
        step = "infer"
        image = _mammogram(out / "images")
        for name in ("model.onnx", "model.xml"):
            _infer(out / "export" / name, image, out / f"infer-{name}")
        row["infer"] = "ok"
        step = "timing"
        batch = np.random.default_rng(0).standard_normal((1, 3, *TIMED_HW)).astype(np.float32)
        row["ort_fp32_ms"] = _median_ms(out / "export" / "model.onnx", batch)
        row["openvino_fp32_ms"] = _median_ms(out / "export" / "model.xml", batch)
        row["status"] = "ok"
    except BaseException as err:  # noqa: BLE001 - the row says it
        if isinstance(err, KeyboardInterrupt):
            raise
        first = (str(err).strip().splitlines() or [""])[0][:300]
        row.update(status=f"{step} failed", error=f"{type(err).__name__}: {first}")
    return row


def _mammogram(folder: Path) -> Path:
    import cv2

    from bcdeploy.data.synth import render_case

    folder.mkdir(parents=True, exist_ok=True)
    _, gray, _ = render_case(0, 1, 700, 900)
    path = folder / "case.png"
    cv2.imwrite(str(path), gray)
    return path


def _infer(model: Path, image: Path, out: Path) -> None:
    from click.testing import CliRunner

    from bcdeploy.cli import cli

    result = CliRunner().invoke(cli, ["infer", "--engine", str(model), str(image), "--out", str(out), "--save",
                                      "masks"])
    if result.exit_code != 0:
        raise RuntimeError(f"infer --engine {model.name}: {(result.output.strip().splitlines() or ['?'])[-1]}")


def _median_ms(model: Path, batch) -> float:
    from bcdeploy.runtime.model.segmenter import Segmenter

    with Segmenter(model) as segmenter:
        segmenter.raw_logits(batch)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            segmenter.raw_logits(batch)
            times.append((time.perf_counter() - start) * 1000)
    return round(sorted(times)[2], 1)


def table(rows: list[dict]) -> str:
    lines = ["| architecture | config | export + parity (3 sizes, FP32/FP16/OpenVINO) | infer (ORT, OpenVINO) | "
             "ORT FP32 ms | OpenVINO FP32 ms | MMDeploy ORT |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = r.get("status") == "ok"
        exported = "ok" if r.get("parity") else (r.get("error", "") if r.get("status") in ("build failed",
                                                                                        "export failed") else "")
        lines.append(f"| {r['architecture']} | {r.get('config', '-')} | {exported or '-'} | "
                     f"{'ok' if r.get('infer') else r.get('error', '-') if r.get('parity') else '-'} | "
                     f"{r.get('ort_fp32_ms', '-') if ok else '-'} | {r.get('openvino_fp32_ms', '-') if ok else '-'} | "
                     f"{r['mmdeploy_ort']} |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--row":
        print(json.dumps(one_row(sys.argv[2], Path(sys.argv[3]))))
        return 0
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    from bcdeploy.bench.sysinfo import describe
    from bcdeploy.export.zoo import architectures

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    facts = describe()
    flags = " ".join(flag for flag, present in facts["cpu_flags"].items() if present)
    machine = {"python": platform.python_version(), "cpu": f"{facts['cpu']}, {facts['cores']} cores, flags {flags}"}
    rows = []
    for arch in sys.argv[2:] or architectures():
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, __file__, "--row", arch, str(out / arch)], capture_output=True,
                                  text=True, timeout=ROW_TIMEOUT_S, env={**os.environ, "BCDEPLOY_VERBOSE": ""})
            last = (done.stdout.strip().splitlines() or [""])[-1]
            row = json.loads(last) if last.startswith("{") else {
                "architecture": arch, "mmdeploy_ort": MMDEPLOY_ORT.get(arch, "-"), "status": "crashed",
                "error": f"exit {done.returncode}: {(done.stderr.strip().splitlines() or [''])[-1][:300]}"}
        except subprocess.TimeoutExpired:
            row = {"architecture": arch, "mmdeploy_ort": MMDEPLOY_ORT.get(arch, "-"), "status": "timed out",
                   "error": f"more than {ROW_TIMEOUT_S} s"}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(f"{arch}: {row['status']} {row.get('error', '')} ({row['seconds']} s)", flush=True)
        _write(out, machine, rows)  # after every row: a run stopped early still leaves its table
    print(table(rows))
    return 0


def _write(out: Path, machine: dict, rows: list[dict]) -> None:
    (out / "zoo.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    (out / "zoo.md").write_text(f"CPU: {machine['cpu']}\n\n{table(rows)}\n")


if __name__ == "__main__":
    sys.exit(main())
