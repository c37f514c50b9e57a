#!/usr/bin/env bash
# Make every shipped network in weights/ from fixed seeds, two jobs at a time (one CPU thread each).
#
#   scripts/make_weights.sh            # all of it (about an hour on 2 cores)
#   scripts/make_weights.sh purifiers  # only the purifier family (full, no-mask, one run per removed loss term)
#
# Every run resumes after a kill: run the same command again. Each network's sidecar JSON records the exact
# command that trained it; its training log is copied to weights/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
MP=${MP:-.venv/bin/maskpurify}
RUN=${RUN:-runs/weights}
WHAT=${1:-all}
T="--quiet --set num_threads=1"

ship() {  # ship RUN_DIR/NAME TARGET: copy weights + sidecar + training log into weights/
  local src=$1 dst=$2
  mkdir -p "$(dirname "weights/$dst")" weights/logs
  cp "$src.safetensors" "weights/$dst.safetensors"
  cp "$src.json" "weights/$dst.json"
  cp "$(dirname "$src")/log.csv" "weights/logs/$(basename "$dst").csv"
}

if [ "$WHAT" = all ]; then
  scripts/make_task_weights.sh
fi

if [ "$WHAT" = all ] || [ "$WHAT" = purifiers ]; then
  # the shared training sets are rendered once, up front, so parallel jobs never render the same folder
  $MP render --domain wild --n 12000 --seed 2001 --out "$RUN/data/wild_n12000_seed2001" --quiet
  $MP render --domain synthetic --n 12000 --seed 3001 --out "$RUN/data/synthetic_n12000_seed3001" --quiet
  D="--content $RUN/data/wild_n12000_seed2001 --style $RUN/data/synthetic_n12000_seed3001"
  $MP train-purifier $D --out "$RUN/purifier" $T &
  $MP train-purifier $D --out "$RUN/purifier_nomask" --no-mask $T &
  wait
  ship "$RUN/purifier/purifier" purifier
  ship "$RUN/purifier_nomask/purifier" purifier_nomask
  read -ra terms <<< "$(${PY:-.venv/bin/python} -c 'from maskpurify.losses import TERMS; print(*TERMS)')"
  for ((i = 0; i < ${#terms[@]}; i += 2)); do
    for term in "${terms[@]:i:2}"; do
      $MP train-purifier $D --out "$RUN/ablations/no_$term" --set "loss.$term=0" $T &
    done
    wait
  done
  for term in "${terms[@]}"; do ship "$RUN/ablations/no_$term/purifier" "ablations/purifier_no_$term"; done
fi

if [ "$WHAT" = all ] || [ "$WHAT" = simgan ]; then
  $MP train-simgan --direction syn2real --out "$RUN/simgan_s2r" --train-gaze $T &
  $MP train-simgan --direction real2syn --out "$RUN/simgan_r2s" $T &
  wait
  ship "$RUN/simgan_s2r/gaze/gaze" simgan_gaze
  ship "$RUN/simgan_r2s/refiner" simgan_real2syn
fi

# the engine's default backend (auto) runs the shipped segmenter and purifier from these ONNX exports when ONNX
# Runtime is installed; re-exported whenever either network was made again
if [ "$WHAT" = all ] || [ "$WHAT" = purifiers ]; then
  $MP export --format onnx --out weights/onnx --gaze none --overwrite
fi
