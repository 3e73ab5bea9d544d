#!/usr/bin/env bash
# The GPU session of the recurrent experiments in one command (device time is short):
#   1. char-lm `full`, the LSTM alone on the GPU (issue 5's target: at most 1.50 nats, with a wall time and
#      characters/second that no other run shares);
#   2. the rest of char-lm `full` (RNN, GRU, MLP-3, bigram) beside learning-to-execute `gpu-short` (eight
#      runs of the full recipe, each stopped after `train.max_minutes`), all at once on the one GPU, through
#      CUDA MPS when it starts (small recurrent kernels from many processes then share the GPU at once).
# Run records and logs (no checkpoints) are packed into $OUT/runs.tar.gz; unpack them into a runs folder
# and run `repro report char-lm --profile full` and `repro report learning-to-execute --profile gpu-short`.
#
#   OUT=/tmp/out REPRO_DATA_DIR=/path/to/data bash bench/gpu_recurrent.sh [seconds]
#
# [seconds] (default 600) is the whole script's budget: each phase gets a deadline inside it.
# Without a git folder, set REPRO_COMMIT=<sha> so the records name the code's commit.
# Dry run on a CPU: ACC=cpu PROFILE=smoke L2E_PROFILE=smoke bash bench/gpu_recurrent.sh 300
ACC=${ACC:-gpu}
PREC=${PREC:-32-true}  # the LSTMs run in float32 (cuDNN, with TF32 inside); bf16 gains little at these sizes
PROFILE=${PROFILE:-full}
L2E_PROFILE=${L2E_PROFILE:-gpu-short}  # none: char-lm only
L2E_MINUTES=${L2E_MINUTES:-2}  # gpu-short's own cap; lowered below when less time is left
run=(python3 -m engine run)
opts=(--accelerator "$ACC" --precision "$PREC" --wandb off --no-report)

source "$(dirname "$0")/gpu_common.sh" "${1:-600}"

echo "== char-lm lstm, alone ($(left) s left)"
timeout -k 10 $(($(left) * 6 / 10)) "${run[@]}" char-lm --profile "$PROFILE" --variant lstm "${opts[@]}" 2>&1 |
    tee "$OUT/char-lm-lstm.log" | grep -v "━"

share_gpu

echo "== char-lm rnn, gru, mlp-3, bigram beside learning-to-execute $L2E_PROFILE ($(left) s left)"
rest=(--variant rnn --variant gru --variant mlp-3 --variant bigram)
timeout -k 10 $(($(left) - 25)) "${run[@]}" char-lm --profile "$PROFILE" "${rest[@]}" "${opts[@]}" --jobs 4 \
    >"$OUT/char-lm.log" 2>&1 &
charlm=$!
l2e=(--profile "$L2E_PROFILE")
if [ "$L2E_PROFILE" = gpu-short ]; then
    # each run's start, its final test and the record take about a minute beside its training time
    minutes=$(python3 -c "print(round(min($L2E_MINUTES, ($(left) - 90) / 60), 2))")
    [ "$minutes" != "$L2E_MINUTES" ] && l2e+=(--set "train.max_minutes=$minutes")
    echo "learning-to-execute: $minutes minutes of training per run"
fi
if [ "$L2E_PROFILE" != none ]; then
    timeout -k 10 $(($(left) - 25)) "${run[@]}" learning-to-execute "${l2e[@]}" "${opts[@]}" --jobs 8 2>&1 |
        tee "$OUT/learning-to-execute.log"
fi
wait $charlm
cat "$OUT/char-lm.log"
unshare_gpu
pack_runs
