#!/usr/bin/env bash
# learning-to-execute on one GPU in one command (device time is short): every run of a profile at once,
# through CUDA MPS when it starts (each run is a small LSTM: alone it leaves most of the GPU idle). Run
# records and logs (no checkpoints) are packed into $OUT/runs.tar.gz; unpack them into a runs folder and
# run `repro report learning-to-execute --profile <profile>` there.
#
#   OUT=/tmp/out bash bench/gpu_execute.sh [seconds] [profile] [more `repro run` options]
#
# [seconds] (default 590) is the whole script's budget, [profile] defaults to full. The full profile (72 runs,
# about 60 GPU-minutes to the end of training) is run a part per session: choose its runs with --variant and
# --seed; JOBS=N caps how many train at once (default: all the profile's). Each run's training
# stops at the profile's own `train.max_minutes`, or earlier (a --set, which the report names) where the
# budget leaves less. Without a git folder, set REPRO_COMMIT=<sha> so the records name the code's commit.
# Dry run on a CPU: ACC=cpu bash bench/gpu_execute.sh 240 smoke
ACC=${ACC:-gpu}
PROFILE=${2:-full}
source "$(dirname "$0")/gpu_common.sh" "${1:-590}"
shift $(($# < 2 ? $# : 2))

python3 -m engine show learning-to-execute --profile "$PROFILE" >/dev/null || exit 2  # one-line error
read -r runs cap < <(python3 -c "
from engine.registry import get
p = get('learning-to-execute').profile('$PROFILE')
print(len(p.variants) * p.seeds, p.overrides.get('train.max_minutes', 0))")
sets=()
# starting $runs processes, their final tests and the packing take about 90 s beside the training
room=$(python3 -c "print(round(($(left) - 90) / 60, 2))")
if python3 -c "import sys; sys.exit(not ($cap == 0 or $room < $cap))"; then
    sets=(--set "train.max_minutes=$room")
    cap=$room
fi
echo "learning-to-execute $PROFILE: $runs runs at once, training capped at $cap minutes ($(left) s left)"

share_gpu
timeout -k 10 $(($(left) - 20)) python3 -m engine run learning-to-execute --profile "$PROFILE" \
    --accelerator "$ACC" --precision 32-true --wandb off --no-report --jobs "${JOBS:-$runs}" "${sets[@]}" "$@" 2>&1 |
    tee "$OUT/learning-to-execute.log"
unshare_gpu
pack_runs
