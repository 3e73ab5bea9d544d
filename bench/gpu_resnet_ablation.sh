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
set -u
start=$(date +%s)
budget=${1:-540}
left() { echo $((budget - ($(date +%s) - start))); }
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 REPRO_OFFLINE=1
export REPRO_CACHE_DIR=${REPRO_CACHE_DIR:-/tmp/repro-cache} REPRO_RUNS_DIR=${REPRO_RUNS_DIR:-/tmp/repro-runs}
ACC=${ACC:-gpu}
PREC=${PREC:-bf16-mixed}
PROFILE=${PROFILE:-short}
BENCH=${BENCH:---depth 56 --images 45000 --batch 128}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project from this folder, no install needed
run=(python3 -m experiments run resnet-ablation --profile "$PROFILE" --accelerator "$ACC" --precision "$PREC" --wandb off --no-report)

{
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    python3 -c "import torch, lightning, experiments; print('torch', torch.__version__, 'lightning', lightning.__version__)"
    echo "commit ${REPRO_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}"
} 2>&1 | tee "$OUT/env.txt"

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

echo "== packing ($(left) s left)"
tar czf "$OUT/runs.tar.gz" -C "$REPRO_RUNS_DIR" --exclude='*.ckpt' --exclude='wandb' .
find "$REPRO_RUNS_DIR" -name record.json | sort
