#!/bin/bash
# Main training queue (issues 13 and 14): one thread, nice 10, every run resumable; run it again after a stop (a
# finished run returns at once). Started at the beginning of a session, in the background:
#     nohup experiments/queues/main.sh > /dev/null 2>&1 &
# It runs a copy of itself, so that editing or pulling this file while it runs is safe. Arguments: PIDs to wait
# for first. Logs go to the run folders' parents under $PERCEPTLAB_RUNS (default ~/perceptlab-runs).
# Order: x2 (the scale users ask for most; its runs were lost with a machine, 2026-12-07, so both stages again,
# about 100 min); composition_vii (style weight 1e4) and The Scream (3e4), five styles for issue 14, about 95 min
# each with AMX; udnie again at style weight 3e4 (its 1e4 release keeps the photo but its style is weak); the SRCNN
# baseline's second stage (24 000 steps, 2.4 h); the sr_crop run whose weights were lost; x8; the x4 GAN stage
# (from the shipped perceptsr_x4 where its run folder is gone); every style to its recipe's 2000 steps.
# wave again at style weight 2e4 (its 1e4 release's style is a little weak). Done and shipped: wave 1000 at 1e4,
# udnie 1000 at 1e4, composition_vii 1000, perceptsr_x4 (x4 stage 2, 3000 steps), perceptsr_x2 (2026-12-08). A run folder lives only
# as long as its machine: commit a finished run's weights (shipped, or beside its recipe) in the session that
# finishes it.
if [ -z "$PERCEPTLAB_QUEUE_ROOT" ]; then
  export PERCEPTLAB_QUEUE_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
  copy=$(mktemp /tmp/perceptlab-queue.XXXXXX) && cp "$0" "$copy" && exec bash "$copy" "$@"
fi
source "$PERCEPTLAB_QUEUE_ROOT/experiments/queues/common.sh" "$@"
mkdir -p $R/style_models $R/sr_default $R/sr_losses $R/sr_crop
style() { py experiments/style_models/run.py --only $1 --steps $2 >> $R/style_models/train.log 2>&1; }
sr() { py experiments/sr_default/run.py --train "$@" >> $R/sr_default/$1.log 2>&1; }
sr perceptsr_x2_psnr || exit 1
sr perceptsr_x2_vgg_grid || exit 1
style composition_vii 1000 || exit 1
style the_scream 1000 || exit 1  # (its style weight 1e4 run: ~/perceptlab-runs/old/style_the_scream_w1e4)
style udnie 1000 || exit 1  # at style weight 3e4 (its 1e4 run, shipped: ~/perceptlab-runs/old/style_udnie_w1e4)
style wave 1000 || exit 1  # at style weight 2e4 (its shipped 1e4 release: style ratio up to 0.52 on 3 of 8 photos)
py experiments/sr_losses/run.py --only srcnn_x4_mse --train-only >> $R/sr_losses/train.log 2>&1 || exit 1
py experiments/sr_crop/run.py --only johnson_crop128 --train-only >> $R/sr_crop/train.log 2>&1 || exit 1
sr perceptsr_x8_psnr || exit 1
sr perceptsr_x8_vgg_grid || exit 1
sr perceptsr_x4_gan || exit 1
for s in the_scream wave udnie composition_vii starry_night; do style $s 2000 || exit 1; done
