#!/usr/bin/env bash
# Reproduces benchmarks/results/cpu/ on this machine's CPU (~30 minutes on 2 idle cores once the checkpoint
# exists, +15-35 to train it; run it alone: every figure is a same-run ratio, but other work on the machine
# widens the spread):
#  1. the reference model (UNet-S5-D16 + ASPP) trained briefly on generated data, so its masks are a
#     trained model's (few false lesions), not random weights (benchmarks/make_reference_checkpoint.py);
#  2. `bcdeploy export --int8 --openvino`: ONNX FP32, INT8 (16 calibration images, classifier FP32),
#     OpenVINO FP32 and INT8 IR, each parity-gated; then the parity table vs PyTorch on the validation split;
#  3. >= 8 DMID-size mammograms (2864x4432-ish 8-bit RGBA LZW TIFF);
#  4. model compute at 640x640 with GFLOP/s beside the measured FP32 matmul peak, every variant alternating;
#  5. the write stage's encoders on a full-size mask;
#  6. whole process per image on the DMID-size directory: MMSeg inference_model vs `bcdeploy infer`
#     onnxruntime FP32 / INT8 and OpenVINO INT8, alternating, repeated; then the per-stage Gantt chart of
#     each last run (timeline_*.png + .json/.md: stage medians, each thread's busy share, images/s);
#  7. the same for one image (start-up and model load included);
#  8. memory: resident memory against images done over a 200-image DMID-size directory (flat?), with
#     OpenVINO's streams (--hint auto) and with one (--hint latency), the latter also masks only (no
#     overlay: images wait for the model at its input size), and the 8-image one (FP32), against
#     3x the largest decoded image plus the model's working set;
#  9. the floor: the side work around the model (read, hash, decode, pre/postprocess, lesions, outputs,
#     ledger) in core-seconds per image, measured alone (benchmarks/side_work.py), and compute + side / cores.
# Every result file records the CPU model and flags (avx2, avx512f, avx512_vnni, avx512_bf16, amx).
#
# Knobs (environment): BENCH_WORK (default bench_work/), RESULTS (benchmarks/results/cpu), MEMORY_IMAGES (200),
# TRAIN_ITERS (400; 60 for a smoke run), TRAIN_BATCH (4), IMAGES (8), REPEAT (3), ROUNDS (5), PARITY (1; 0 skips
# the parity table of step 2, which is the model's, not the machine's: for a second machine's results). The committed
# results used the defaults (checkpoint trained on the CPU). A checkpoint trained elsewhere with the same
# command (e.g. `--iters 2000 --batch 8 --device cuda`) is reused from $BENCH_WORK/reference/work_dir/iter_N.pth
# with TRAIN_ITERS=N.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
W="${BENCH_WORK:-$ROOT/bench_work}"
R="${RESULTS:-$ROOT/benchmarks/results/cpu}"
IMAGES="${IMAGES:-8}"
mkdir -p "$W" "$R"
quiet() { "$@" 2> >(grep -v -i warn >&2); }

grep -o 'avx512[a-z_0-9]*\|avx2\|amx[a-z_]*' /proc/cpuinfo | sort -u | tr '\n' ' ' > "$R/cpu_flags.txt" || true
grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- >> "$R/cpu_flags.txt" || true
echo "CPU: $(cat "$R/cpu_flags.txt")"

# 1. trained reference checkpoint (skipped when it exists; delete $W/reference to retrain)
REF="$W/reference"
python benchmarks/make_reference_checkpoint.py "$REF" --iters "${TRAIN_ITERS:-400}" --batch "${TRAIN_BATCH:-4}" | tee "$R/reference_checkpoint.txt"
CKPT="$(tail -1 "$R/reference_checkpoint.txt")"
cp "$REF/reference_checkpoint.json" "$R/"

# 2. export + parity: FP32 ONNX, INT8 ONNX (16 calibration images, classifier kept FP32), OpenVINO FP32 and
# INT8 IR, each gated against PyTorch. If the INT8 gate refuses a briefly trained checkpoint (the 2000-iteration
# one did under the old 4-image recipe), quantize_reference.py writes it with the same recipe and no gate, and
# `bench parity` below measures it.
E="$REF/export"
CALIB=("$REF"/prepared/images/train/*.jpg)
CALIB_ARGS=()
for f in "${CALIB[@]:0:16}"; do CALIB_ARGS+=(--images "$f"); done
if [[ ! -f "$E/model.int8.xml" ]]; then
  quiet bcdeploy export --ckpt "$CKPT" --out "$E" --int8 --openvino "${CALIB_ARGS[@]}" | tee "$R/reference_export.txt" || {
    quiet bcdeploy export --ckpt "$CKPT" --out "$E" --openvino "${CALIB_ARGS[@]}" | tee "$R/reference_export.txt"
    python benchmarks/quantize_reference.py "$E" --images "${CALIB[@]:0:16}"; }
fi
bcdeploy inspect "$E/model.onnx" --size 640x640 | tee -a "$R/reference_export.txt"
[[ "${PARITY:-1}" == 0 ]] || quiet bcdeploy bench parity --ckpt "$CKPT" --models "$E/model.onnx" --models "$E/model.int8.onnx" \
  --models "$E/model.int8.xml" --models "$E/model.xml" --models "$E/model.xml#bf16" "$REF/prepared/images/val" \
  --labels "$REF/prepared/annotations/val" --out "$R/reference_parity" || echo "parity gate failed: see $R/reference_parity"

# 3. DMID-size images
D="$W/dmid_size_lzw"
python benchmarks/dmid_size_images.py "$D" --count "$IMAGES"

# 4. model compute: FP32 vs INT8 (vs OpenVINO) alternating, with GFLOP/s and the FP32 peak
python benchmarks/compute_bench.py "$E/model.onnx" "$E/model.int8.onnx" "$E/model.int8.xml" "$E/model.xml" "$E/model.xml#bf16" \
  --size 640x640 --rounds "${ROUNDS:-5}" --runs 2 --out "$R/compute"

# 5. encoders of the write stage
python benchmarks/encode_bench.py --rounds "${ROUNDS:-5}" --out "$R/encode"

# 6. whole process per image, alternating: MMSeg inference_model vs bcdeploy infer FP32 / INT8, each beside
# the plain loop a user writes instead and the model's compute alone (benchmarks/plain_loop.py), peak RSS too.
# Like for like: the plain loop writes the mask only, so the bcdeploy rows `--save masks` (their ledger, hashes
# and reports stay); ov-int8-default writes the default outputs (masks, binary masks, overlays) as users get them;
# ov-int8-latency is OpenVINO's one-stream mode (what --hint auto picks for one image) on the whole directory.
O="$W/infer_out"
PLAIN="python benchmarks/plain_loop.py"
python benchmarks/alternate.py --images "$IMAGES" --repeat "${REPEAT:-3}" --out "$R/end_to_end" \
  --run mmseg "python benchmarks/mmseg_baseline.py --ckpt $CKPT $D" \
  --run ort-fp32 "bcdeploy infer --engine $E/model.onnx $D --out $O/fp32 --overwrite --save masks" \
  --run plain-fp32 "$PLAIN $E/model.onnx $D $O/plain-fp32" \
  --run compute-fp32 "$PLAIN $E/model.onnx $D $O/plain-fp32 --compute-only" \
  --run ort-int8 "bcdeploy infer --engine $E/model.int8.onnx $D --out $O/int8 --overwrite --save masks" \
  --run ov-int8 "bcdeploy infer --engine $E/model.int8.xml $D --out $O/ov-int8 --overwrite --save masks" \
  --run ov-int8-latency "bcdeploy infer --engine $E/model.int8.xml $D --out $O/ov-int8-latency --overwrite --save masks --hint latency" \
  --run ov-int8-default "bcdeploy infer --engine $E/model.int8.xml $D --out $O/ov-int8-default --overwrite" \
  --run plain-ov-int8 "$PLAIN $E/model.int8.xml $D $O/plain-ov-int8" \
  --run compute-ov-int8 "$PLAIN $E/model.int8.xml $D $O/plain-ov-int8 --compute-only"
# the per-stage Gantt chart of the last runs (read from their ledgers; $O is left as it is)
for p in fp32 int8 ov-int8; do
  bcdeploy bench timeline "$O/$p" --png "$R/timeline_$p.png" | tee "$R/timeline_$p.md"
done

# 7. one image, whole process (start-up and model load included, as a user waits for it)
D1="$W/dmid_size_one"
mkdir -p "$D1" && cp -p "$(ls "$D"/*.tif | head -1)" "$D1/"
python benchmarks/alternate.py --images 1 --repeat "${REPEAT:-3}" --out "$R/single_image" \
  --run mmseg "python benchmarks/mmseg_baseline.py --ckpt $CKPT $D1" \
  --run ort-fp32 "bcdeploy infer --engine $E/model.onnx $D1 --out $O/one-fp32 --overwrite" \
  --run ort-int8 "bcdeploy infer --engine $E/model.int8.onnx $D1 --out $O/one-int8 --overwrite" \
  --run ov-int8 "bcdeploy infer --engine $E/model.int8.xml $D1 --out $O/one-ov-int8 --overwrite"
# 8. memory over a long directory: resident memory against images done, INT8 IR (the fast one, so 200
# DMID-size images take minutes); MEMORY_IMAGES=0 skips it
if [[ "${MEMORY_IMAGES:-200}" -gt 0 ]]; then
  DM="$W/dmid_size_${MEMORY_IMAGES:-200}"
  python benchmarks/dmid_size_images.py "$DM" --count "${MEMORY_IMAGES:-200}" > /dev/null
  python benchmarks/memory_flat.py "$E/model.int8.xml" "$DM" --out "$R/memory_${MEMORY_IMAGES:-200}" --work "$W/memory"
  python benchmarks/memory_flat.py "$E/model.int8.xml" "$DM" --out "$R/memory_${MEMORY_IMAGES:-200}_latency" \
    --work "$W/memory" --hint latency
  python benchmarks/memory_flat.py "$E/model.int8.xml" "$DM" --out "$R/memory_${MEMORY_IMAGES:-200}_masks_latency" \
    --work "$W/memory" --hint latency --save masks
  python benchmarks/memory_flat.py "$E/model.onnx" "$D" --out "$R/memory_${IMAGES}_fp32" --work "$W/memory"
fi
# 9. the floor per image: compute alone (the median of step 6's compute rows) + side work / cores
compute_s() { python -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][sys.argv[2]]; print(r['per_image_s']['median'])" \
  "$R/end_to_end.json" "$1"; }
{ python benchmarks/side_work.py "$E/model.onnx" "$D" --save masks --compute-s "$(compute_s compute-fp32)"
  python benchmarks/side_work.py "$E/model.int8.xml" "$D" --save masks --compute-s "$(compute_s compute-ov-int8)"
  python benchmarks/side_work.py "$E/model.int8.xml" "$D" --compute-s "$(compute_s compute-ov-int8)"
} 2> >(grep -v -i warn >&2) | tee "$R/floor.txt"
echo "results in $R"
