#!/usr/bin/env bash
# Reproduces benchmarks/results/cpu.md on this machine (about 15 minutes on 2 cores):
#  1. the reference model (random init) exported to ONNX FP32/FP16/INT8 and OpenVINO IR, with parity;
#  2. model latency at 640x640, batch 1 and 2: onnxruntime FP32/FP16/INT8, OpenVINO FP32/BF16, PyTorch eager;
#  3. end to end on DMID-size mammograms (2800-4500 px): bcdeploy runtime vs MMSeg inference_model;
#  4. parity of every backend vs PyTorch/MMSeg on the demo's trained tiny model (run scripts/demo.sh first).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
W="${BENCH_WORK:-$ROOT/bench_work}"
R="$ROOT/benchmarks/results"
mkdir -p "$W" "$R"

python benchmarks/make_reference_checkpoint.py "$W/reference"
# Random weights have near-zero logit margins, so INT8 masks of this checkpoint say nothing about a
# trained model's (the trained tiny model's INT8 parity is below); the gate is lifted for latency only.
bcdeploy export --ckpt "$W/reference/iter_0.pth" --out "$W/reference/export" --fp16 --int8 --int8-min-agreement 0 \
  --openvino 2> >(grep -v -i warn >&2) \
  | tee "$R/reference_export.txt"
bcdeploy inspect "$W/reference/export/model.onnx" --size 640x640 | tee -a "$R/reference_export.txt"

bcdeploy data synth --out "$W/dmid_size" --count 3 --min-size 4400 --max-size 4500 --seed 3
E="$W/reference/export"
bcdeploy bench latency --models "$E/model.onnx" --models "$E/model.fp16.onnx" --models "$E/model.int8.onnx" --models "$E/model.xml" \
  --models "$E/model.xml#bf16" --ckpt "$W/reference/iter_0.pth" --sizes 640x640 --batch-sizes 1 --batch-sizes 2 \
  --images "$W/dmid_size/TIFF Images" --mmseg-baseline --min-seconds 5 --out "$R/reference_latency"

if [[ -f demo_out/work_dir/iter_500.pth ]]; then
  D=demo_out
  bcdeploy export --ckpt "$D/work_dir/iter_500.pth" --out "$W/tiny" --fp16 --int8 --openvino 2> >(grep -v -i warn >&2) > /dev/null
  bcdeploy bench parity --ckpt "$D/work_dir/iter_500.pth" --models "$W/tiny/model.onnx" --models "$W/tiny/model.fp16.onnx" \
    --models "$W/tiny/model.int8.onnx" \
    --models "$W/tiny/model.xml" --models "$W/tiny/model.xml#bf16" --models "$W/tiny/model.trt" \
    "$D/prepared/images/val" --labels "$D/prepared/annotations/val" --out "$R/tiny_parity" || true
fi
echo "results in $R"
