#!/usr/bin/env bash
# Make the shipped task-network weights from fixed seeds, then measure them: weights/gaze.* (the estimator every
# method is scored with), weights/segmenter.*, and the purifier's gaze guide, weights/gaze_guide.* (an image
# reader trained on other synthetic eyes, seed 1101) and weights/gaze_from_labels.* (gaze from label maps).
#
#   scripts/make_task_weights.sh
#
# 1. render 120k synthetic training eyes (seed 1001); 2. train the gaze estimator and the segmenter on them
# (synthetic only; both resume after a kill: rerun the script); 3. copy the final weights into weights/;
# 4. render fresh test sets (synthetic seed 2001, wild seed 2002; never used in training) and evaluate.
# Gaze: LeNet with batch norm, fc 256, 3000 steps x 128 on all 120k (and the label-map net, convolutions 12/32,
# which reads the gaze a mask implies: the "mask alone" control and the gaze guide's target); segmenter, in three
# stages: a U-Net (8/16/32/64 channels), 3000 steps x 32 on the first 30k, every batch through the project's
# randomised degradation model (maskpurify.degradation; never the wild preset); then 3000 steps of self-training
# on 12k unlabelled wild renders (seed 2001: images only, their labels are never read; the real-data rule); then
# 3000 more of the same with a quarter of the synthetic crops left clean (clean=0.25).
# Every setting of stage 1 is a config default (num_threads=1 only pins float summation order), so
# `maskpurify train-gaze` / `train-segmenter` alone give the same recipe; stages 2 and 3 are the --set lines below.
set -euo pipefail
cd "$(dirname "$0")/.."
MP=${MP:-.venv/bin/maskpurify}
RUN=${RUN:-runs/task}

$MP render --domain synthetic --n 120000 --size 36x60 --seed 1001 --out "$RUN/synthetic_train"
$MP train-gaze --data "$RUN/synthetic_train" --out "$RUN/gaze" --quiet --set num_threads=1
$MP train-segmenter --data "$RUN/synthetic_train" --out "$RUN/segmenter_synthetic" --quiet --set num_threads=1
$MP render --domain wild --n 12000 --size 36x60 --seed 2001 --out "$RUN/wild_unlabelled" --quiet
$MP train-segmenter --data "$RUN/synthetic_train" --out "$RUN/segmenter_self" --quiet --set num_threads=1 \
  --set init="$RUN/segmenter_synthetic/segmenter" --set steps=3000 --set self_training=1.0 \
  --set unlabelled.path="$RUN/wild_unlabelled"
$MP train-segmenter --data "$RUN/synthetic_train" --out "$RUN/segmenter" --quiet --set num_threads=1 \
  --set init="$RUN/segmenter_self/segmenter" --set steps=3000 --set self_training=1.0 \
  --set unlabelled.path="$RUN/wild_unlabelled" --set clean=0.25
mkdir -p weights/logs
cp "$RUN/gaze/gaze.safetensors" "$RUN/gaze/gaze.json" weights/
cp "$RUN/segmenter/segmenter.safetensors" "$RUN/segmenter/segmenter.json" weights/
cp "$RUN/segmenter/log.csv" weights/logs/segmenter.csv
cp "$RUN/segmenter_self/log.csv" weights/logs/segmenter_self.csv
cp "$RUN/segmenter_synthetic/log.csv" weights/logs/segmenter_synthetic.csv

# the gaze guide: never the scoring estimator (other eyes, other seed, a smaller network)
$MP render --domain synthetic --n 60000 --size 36x60 --seed 1101 --out "$RUN/synthetic_guide"
$MP train-gaze --data "$RUN/synthetic_guide" --out "$RUN/gaze_guide" --quiet --set num_threads=1 \
  --set model.hidden=128 --set model.conv_bn=false --set seed=1
$MP train-gaze --data "$RUN/synthetic_train" --out "$RUN/gaze_from_labels" --quiet --set num_threads=1 \
  --set model.inputs=labels --set steps=3000 --set 'model.conv_channels=[12,32]'
cp "$RUN/gaze_guide/gaze.safetensors" weights/gaze_guide.safetensors
cp "$RUN/gaze_guide/gaze.json" weights/gaze_guide.json
cp "$RUN/gaze_from_labels/gaze.safetensors" weights/gaze_from_labels.safetensors
cp "$RUN/gaze_from_labels/gaze.json" weights/gaze_from_labels.json

# the baseline a user would pick instead of purifying: the estimator's recipe, every batch through the project's
# randomised degradation model (never the wild preset); it reads raw real eyes
$MP train-gaze --data "$RUN/synthetic_train" --out "$RUN/gaze_randomised" --quiet --set num_threads=1 \
  --set degradation.strength=1.0
cp "$RUN/gaze_randomised/gaze.safetensors" weights/gaze_randomised.safetensors
cp "$RUN/gaze_randomised/gaze.json" weights/gaze_randomised.json

$MP render --domain synthetic --n 2000 --size 36x60 --seed 2001 --out "$RUN/synthetic_test"
$MP render --domain wild --n 2000 --size 36x60 --seed 2002 --out "$RUN/wild_test"
for domain in synthetic wild; do
  $MP evaluate-gaze --model weights/gaze --data "$RUN/${domain}_test" --out "$RUN/eval" --name "gaze_$domain" --overwrite
  $MP evaluate-segmenter --model weights/segmenter --data "$RUN/${domain}_test" --out "$RUN/eval" \
    --name "segmenter_$domain" --overwrite
done
