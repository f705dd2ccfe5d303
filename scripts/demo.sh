#!/usr/bin/env bash
# The main job end to end on generated DMID-like data (no download needed):
#   synth data -> prepare (MMSeg layout) -> train the tiny model -> test (pixel + lesion metrics)
#   -> export (ONNX + FP16 ONNX, parity-checked) -> infer with the torch-free runtime
#   -> clinical outputs: the validation images as DICOM -> SEG, SR (TID 1500) and SC, checked by dciodvfy.
# Results land in demo_out/ (override with DEMO_OUT=...). DEMO_ITERS shortens training.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
OUT="${DEMO_OUT:-$ROOT/demo_out}"
ITERS="${DEMO_ITERS:-500}"
CONFIG=configs/unet/unet-tiny_deeplabv3_breast-cancer.py
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n== %s\n' "$*"; }

step "1/7 generate a DMID-like data set (60 images, figshare layout)"
bcdeploy data synth --out "$OUT/dmid" --count 60 --min-size 700 --max-size 1000 --seed 0

step "2/7 prepare it for MMSeg (classes from metadata, y origin detected, no-leak split)"
bcdeploy prepare --images-dir "$OUT/dmid/TIFF Images" --masks-dir "$OUT/dmid/ROI Masks" \
  --metadata "$OUT/dmid/Info.txt" --output-dir "$OUT/prepared"

step "3/7 train the tiny UNet-S5-D16 + ASPP for $ITERS iterations on the CPU"
bcdeploy train "$CONFIG" --data-root "$OUT/prepared" --work-dir "$OUT/work_dir" --max-iters "$ITERS" \
  > "$OUT/train.log" 2>&1 || { tail -30 "$OUT/train.log"; exit 1; }
grep -E "Iter\(val\)" "$OUT/train.log" | tail -1 || true
CKPT="$OUT/work_dir/iter_${ITERS}.pth"

step "4/7 test: MMSeg metrics and lesion-level metrics"
bcdeploy test "$CONFIG" "$CKPT" --data-root "$OUT/prepared" --out "$OUT/test" --cad-fp-per-image 1 \
  2> >(grep -v -i warn >&2)

step "5/7 export: dynamic ONNX + FP16 ONNX, checked against PyTorch"
bcdeploy export --ckpt "$CKPT" --out "$OUT/export" --fp16 --operating-points "$OUT/test/metrics.json" \
  2> >(grep -v -i warn >&2)

step "6/7 infer with the torch-free runtime on the validation mammograms"
VAL_IDS=$(python -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['splits']['val']))" "$OUT/prepared/manifest.json")
VAL_FILES=()
for id in $VAL_IDS; do VAL_FILES+=("$OUT/dmid/TIFF Images/$id.tif"); done
bcdeploy infer --model "$OUT/export/model.onnx" "${VAL_FILES[@]}" --out "$OUT/infer" --metadata "$OUT/dmid/Info.txt"
echo "-- the same command again: the ledger proves every image unchanged (file, model, options), nothing is recomputed"
bcdeploy infer --model "$OUT/export/model.onnx" "${VAL_FILES[@]}" --out "$OUT/infer" --metadata "$OUT/dmid/Info.txt"

step "7/7 clinical outputs: the validation mammograms as DICOM -> case scores, SEG, SR (TID 1500), SC, CAD SR"
bcdeploy data dicom "${VAL_FILES[@]}" --out "$OUT/dicom" --metadata "$OUT/dmid/Metadata.xlsx"
bcdeploy infer --model "$OUT/export/model.onnx" "$OUT/dicom" --out "$OUT/clinical" --save masks,vis,seg,sr,sc,cad
echo "-- do the case scores separate normal from malignant images?"
python scripts/case_separation.py "$OUT/clinical/cases.csv" "$OUT/dmid/Info.txt"
if command -v dciodvfy >/dev/null; then
  objects=0; errors=0
  for f in "$OUT"/clinical/{seg,sr,sc,cad}/*.dcm; do
    objects=$((objects + 1)); errors=$((errors + $(dciodvfy "$f" 2>&1 | grep -c '^Error' || true)))
  done
  echo "dciodvfy: $objects DICOM objects written, $errors Error lines"
else
  echo "dciodvfy not installed (Debian: dicom3tools): the DICOM objects are not validated here"
fi
if command -v dsrdump >/dev/null; then
  SR=$(ls "$OUT"/clinical/sr/*.dcm | head -1)
  echo "-- $SR as a viewer lists it (dsrdump, first lines):"
  dsrdump "$SR" | head -40 || true  # head closes the pipe early: SIGPIPE is not a failure
  CAD=$(ls -S "$OUT"/clinical/cad/*.dcm | head -1)  # the largest: the study with the most marks
  echo "-- a study's Mammography CAD SR (its marks, at the operating point bcdeploy test chose):"
  dsrdump "$CAD" 2>/dev/null | grep -E 'Single Image Finding|Rendering Intent|Certainty|Summary of Detections|Probability' \
    | head -12 || true
fi

printf '\nDone. Results in %s:\n' "$OUT"
printf '  metrics      %s\n' "$OUT/test/metrics.json"
printf '  models       %s\n' "$OUT/export/model.onnx (+ model.fp16.onnx, sidecars)"
printf '  overlays     %s\n' "$OUT/infer/vis/"
printf '  lesion list  %s\n' "$OUT/infer/lesions.csv"
printf '  run ledger   %s\n' "$OUT/infer/ledger.sqlite (every image: source hash, model hash, outputs, lesions)"
printf '  case scores  %s\n' "$OUT/clinical/cases.csv (image, breast, study)"
printf '  DICOM        %s\n' "$OUT/clinical/{seg,sr,sc}/ (SEG, TID 1500 SR, Secondary Capture per image), cad/ (per study)"
