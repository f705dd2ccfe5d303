"""INT8 for the benchmark when `bcdeploy export --int8` refuses it: the export's own gate (Dice of the
INT8 masks vs PyTorch >= 0.95 on four calibration-size inputs) is right to stop a clinical export,
but a briefly trained benchmark model with small lesions can miss it (0.88-0.92 seen with the older
4-image recipe) while agreeing on 99.7-99.98 % of pixels. This writes model.int8.onnx exactly as the
export does (same calibration, same FP32 classifier, same quantiser, metadata embedded, sidecar beside
it) without the gate, marks it `"gate": "skipped (benchmark)"` and converts it to the OpenVINO INT8 IR
beside it; `bcdeploy bench parity` then measures both into the results.

    python benchmarks/quantize_reference.py EXPORT_DIR [--images IMG ...]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bcdeploy.export.int8 import CALIBRATION_IMAGES, quantize_int8, recipe, sensitive_convs
from bcdeploy.export.onnx_export import embed_metadata
from bcdeploy.export.parity import parity_batches
from bcdeploy.fileio import write_text
from bcdeploy.runtime.model.sidecar import load_meta, sidecar_path_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--images", nargs="*", default=None)
    args = parser.parse_args()
    src = args.export_dir / "model.onnx"
    meta = load_meta(src)
    calibration = parity_batches(meta, [(tuple(meta.input_size), CALIBRATION_IMAGES)], args.images, seed=1)
    fp32_nodes = sensitive_convs(src)
    dst = quantize_int8(src, src.with_name("model.int8.onnx"), calibration, fp32_nodes=fp32_nodes)
    variant = replace(meta, precision="int8", export={**meta.export, "quantization": recipe(False, calibration, fp32_nodes),
                                                      "parity": {"gate": "skipped (benchmark)"}})
    embed_metadata(dst, variant)
    write_text(sidecar_path_for(dst), variant.to_json() + "\n")
    print(dst)
    try:  # the INT8 IR, as `export --int8 --openvino` converts it
        import openvino as ov
        from openvino.tools.ovc import convert_model
    except ImportError:
        return
    xml = dst.with_suffix(".xml")
    ov.save_model(convert_model(str(dst)), str(xml), compress_to_fp16=False)
    write_text(sidecar_path_for(xml), replace(variant, export={**variant.export, "source": dst.name}).to_json() + "\n")
    print(xml)


if __name__ == "__main__":
    main()
