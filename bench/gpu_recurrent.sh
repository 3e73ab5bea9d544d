#!/usr/bin/env bash
# The GPU session of the recurrent experiments in one command (device time is short): char-lm's `full`
# profile first (issue 5's target: the LSTM at most 1.50 nats, with wall time and characters/second; the
# RNN, GRU and the two memoryless baselines beside it), then as much of learning-to-execute's `full` profile
# as the budget allows (addition of 9-digit numbers first, then programs of length 4, nesting 2), several
# runs at once on the one GPU. Run records and logs (no checkpoints) are packed into $OUT/runs.tar.gz;
# unpack them into a runs folder and run `repro report char-lm --profile full` (and learning-to-execute).
#
#   OUT=/tmp/out REPRO_DATA_DIR=/path/to/data bash bench/gpu_recurrent.sh [seconds]
#
# [seconds] (default 600) is the whole script's budget: each phase gets a deadline inside it.
# Without a git folder, set REPRO_COMMIT=<sha> so the records name the code's commit.
# Dry run on a CPU: ACC=cpu PREC=32-true PROFILE=smoke bash bench/gpu_recurrent.sh 300
ACC=${ACC:-gpu}
PREC=${PREC:-32-true}  # the LSTMs run in float32 (cuDNN); bf16 gains little for these sizes
PROFILE=${PROFILE:-full}
run=(python3 -m experiments run)
opts=(--profile "$PROFILE" --accelerator "$ACC" --precision "$PREC" --wandb off --no-report)

source "$(dirname "$0")/gpu_common.sh" "${1:-600}"

echo "== char-lm ($(left) s left)"
timeout -k 10 $(($(left) * 6 / 10)) "${run[@]}" char-lm "${opts[@]}" --jobs 5 2>&1 | tee "$OUT/char-lm.log"

echo "== learning-to-execute ($(left) s left)"
l2e=(--variant addition-9-baseline --variant addition-9-naive --variant addition-9-mix --variant addition-9-combined)
if [ "$PROFILE" = full ]; then
    l2e+=(--variant program-4x2-baseline --variant program-4x2-naive --variant program-4x2-mix --variant program-4x2-combined)
else
    l2e=()  # other profiles: their own variants
fi
timeout -k 10 $(($(left) - 25)) "${run[@]}" learning-to-execute "${opts[@]}" --jobs 8 "${l2e[@]}" 2>&1 |
    tee "$OUT/learning-to-execute.log"

echo "== packing ($(left) s left)"
tar czf "$OUT/runs.tar.gz" -C "$REPRO_RUNS_DIR" --exclude='*.ckpt' --exclude='wandb' .
find "$REPRO_RUNS_DIR" -name record.json | sort
