#!/bin/bash
# Codec queue (issues 16 and 17): one thread, nice 10, every run resumable; run it again after a stop.
#     nohup experiments/queues/codec.sh > /dev/null 2>&1 &
# It runs a copy of itself (safe to edit while it runs). Arguments: PIDs to wait for first.
# The MSE codecs (issue 16: each base, q3, to 33 000 steps, its other points fine-tuned from it; finished and
# shipped, so these return at once, from their run folders or, where those are gone, from the shipped files);
# then the perceptual runs of issue 17, fine-tuned from the shipped-or-run MSE hyperprior points. A run folder
# lives only as long as its machine: commit a finished run's weights in the session that finishes it.
if [ -z "$PERCEPTLAB_QUEUE_ROOT" ]; then
  export PERCEPTLAB_QUEUE_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
  copy=$(mktemp /tmp/perceptlab-queue.XXXXXX) && cp "$0" "$copy" && exec bash "$copy" "$@"
fi
source "$PERCEPTLAB_QUEUE_ROOT/experiments/queues/common.sh" "$@"
mkdir -p $R/compression $R/perceptual_compression $R/old/compression_prev $R/old/perceptual_prev
for arch in bls2017 hyperprior; do  # finished and shipped: returns at once where the run folders are gone
  for q in q3 q1 q2 q4; do py experiments/compression/run.py --train ${arch}_$q >> $R/compression/train.log 2>&1 || exit 1; done
done
py experiments/perceptual_compression/run.py --train-all >> $R/perceptual_compression/train.log 2>&1
