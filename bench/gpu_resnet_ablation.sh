#!/usr/bin/env bash
# The GPU session of the ResNet ablation in one command (device time is short): check the imports,
# measure the suite's loop against a hand-written one (ResNet-56, bf16, channels_last, data on the GPU),
# then train the `short` profile of resnet-ablation, several runs at once on the one GPU. Run records
# and logs (no checkpoints) are packed into $OUT/runs.tar.gz; unpack them into a runs folder and run
# `repro report resnet-ablation --profile short` there.
#
#   OUT=/tmp/out REPRO_DATA_DIR=/path/to/data bash bench/gpu_resnet_ablation.sh [seconds]
#
# [seconds] (default 540) is the whole script's budget: each phase gets a deadline inside it.
# Without a git folder, set REPRO_COMMIT=<sha> so the records name the code's commit.
# Dry run on a CPU: ACC=cpu PREC=32-true PROFILE=smoke BENCH="--depth 8 --images 512" bash bench/...
ACC=${ACC:-gpu}
PREC=${PREC:-bf16-mixed}
PROFILE=${PROFILE:-short}
BENCH=${BENCH:---depth 56 --images 45000 --batch 128}
run=(python3 -m engine run resnet-ablation --profile "$PROFILE" --accelerator "$ACC" --precision "$PREC" --wandb off --no-report)

source "$(dirname "$0")/gpu_common.sh" "${1:-540}"

echo "== bench ($(left) s left)"
timeout $(($(left) > 450 ? 110 : 30)) python3 bench/loop_overhead.py --accelerator "$ACC" --precision "$PREC" \
    $BENCH --epochs 3 --repeats 2 2>&1 | grep -v -i warn | tee "$OUT/bench.log"

echo "== depths 20 and 56 ($(left) s left)"
timeout -k 10 $(($(left) - 40)) "${run[@]}" --jobs 5 --variant plain-20 --variant residual-20 \
    --variant plain-56 --variant residual-56 --variant residual-56-zero 2>&1 | tee "$OUT/runs-20-56.log"

if [ "$(left)" -gt 150 ]; then
    echo "== depth 110 ($(left) s left)"
    timeout -k 10 $(($(left) - 25)) "${run[@]}" --jobs 2 --variant plain-110 --variant residual-110 2>&1 |
        tee "$OUT/runs-110.log"
fi

pack_runs
