#!/bin/bash
# Codec queue (issues 16 and 17): one thread, nice 10, every run resumable; run it again after a stop.
#     nohup experiments/queues/codec.sh > /dev/null 2>&1 &
# It runs a copy of itself (safe to edit while it runs). Arguments: PIDs to wait for first.
# Each base (q3) to 33 000 steps (lr tenfold lower after 30 000), then its other points fine-tuned from it (a
# point's folder made from an earlier base is moved to $R/old/compression_prev first); bls2017, then the
# hyperprior; then the perceptual runs of issue 17 from the new MSE models (older ones moved likewise).
if [ -z "$PERCEPTLAB_QUEUE_ROOT" ]; then
  export PERCEPTLAB_QUEUE_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
  copy=$(mktemp /tmp/perceptlab-queue.XXXXXX) && cp "$0" "$copy" && exec bash "$copy" "$@"
fi
source "$PERCEPTLAB_QUEUE_ROOT/experiments/queues/common.sh" "$@"
mkdir -p $R/compression $R/perceptual_compression $R/old/compression_prev $R/old/perceptual_prev
stale() {  # $1: run folder, $2: the model it starts from; true when the folder was made from an earlier one
  [ -d "$1" ] && [ "$1/checkpoint.pt" -ot "$2" ] && [ "$1/model.safetensors" -ot "$2" ]
}
for arch in bls2017 hyperprior; do
  py experiments/compression/run.py --train ${arch}_q3 >> $R/compression/train.log 2>&1 || exit 1
  for q in q1 q2 q4; do
    d=$R/compression/${arch}_$q
    if stale $d $R/compression/${arch}_q3/model.safetensors; then mv $d $R/old/compression_prev/${arch}_${q}_$(date +%s); fi
    py experiments/compression/run.py --train ${arch}_$q >> $R/compression/train.log 2>&1 || exit 1
  done
done
for q in q1 q2 q3 q4; do
  for kind in frozen alternate vmaf alternategrid vmaflpips; do
    d=$R/perceptual_compression/${kind}_$q
    if stale $d $R/compression/hyperprior_$q/model.safetensors; then mv $d $R/old/perceptual_prev/${kind}_${q}_$(date +%s); fi
  done
done
py experiments/perceptual_compression/run.py --train-all >> $R/perceptual_compression/train.log 2>&1
