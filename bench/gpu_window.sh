#!/usr/bin/env bash
# One window of GPU time toward the paper-scale profiles, in one command; windows add up. Each window trains
# the runs of PLAN that are not finished (resuming the interrupted ones from their checkpoints), as many at
# once as JOBS, stops them in time (SIGTERM: each run finishes its epoch, saves its checkpoint and exits), and
# packs what the next window and this machine need into $OUT/gpu-window.tar.gz: every finished run's record,
# every unfinished run's config and last checkpoint (bench/gpu_window.py; in parts of 15 MiB when larger, as a
# lent machine hands back files of at most 16 MiB: fewer JOBS, fewer unfinished checkpoints).
#
#   OUT=/tmp/out bash bench/gpu_window.sh [seconds]
#
# [seconds] (default 560) is the whole script's budget. PLAN (default: the image profiles of issue 16, then
# char-lm's) is a list of experiment:profile, trained in that order; JOBS (default 8) runs train at once,
# through CUDA MPS when it starts. The runs folder is $WINDOW/runs (default WINDOW=gpu-window, beside the
# code, ignored by git): carry it to the next window. After a window, on the machine that keeps the results:
#
#   rm -rf gpu-window && mkdir -p gpu-window/runs && cat <OUT>/gpu-window.tar.gz* | tar xz -C gpu-window/runs
#   REPRO_RUNS_DIR=gpu-window/runs repro report resnet-ablation --profile full   # once every run is finished
#
# Committed records (results/runs) count as finished, so a lost runs folder costs only the unfinished runs.
# Without a git folder, set REPRO_COMMIT=<sha> so the records name the code's commit.
# BENCH=<seconds> first measures the eager and compiled paths side by side (bench/compile_speed.py, BENCH_ARGS;
# its table in $OUT/compile_speed.txt) within that many seconds, then trains with the time left: the first
# window on a GPU should, before 164-epoch runs trust train.compile.
# Dry run on a CPU: ACC=cpu PREC=32-true PLAN="resnet-ablation:smoke augmentation:smoke" bash bench/gpu_window.sh 150
ACC=${ACC:-gpu}
PREC=${PREC:-bf16-mixed}
PLAN=${PLAN:-resnet-ablation:full augmentation:full char-lm:full}
JOBS=${JOBS:-8}
WINDOW=${WINDOW:-gpu-window}
STOP=${STOP:-75}  # seconds kept for the last epochs to end after SIGTERM, the final tests and the packing
BENCH=${BENCH:-0}
[[ "$BENCH" =~ ^[0-9]+$ ]] || { echo "error: BENCH must be a number of seconds, not '$BENCH'" >&2; exit 2; }
BENCH_ARGS=${BENCH_ARGS:---depth 56 --images 10000 --runs 1 8 --epochs 3}
[[ "$WINDOW" = /* ]] || WINDOW="$PWD/$WINDOW"  # a relative folder is beside the code
export REPRO_RUNS_DIR="$WINDOW/runs"

source "$(dirname "$0")/gpu_common.sh" "${1:-560}"
mkdir -p "$REPRO_RUNS_DIR"

# shellcheck disable=SC2086  # PLAN is a list of words
python3 bench/gpu_window.py seed $PLAN || exit 2  # an unknown experiment or profile: one line, exit 2
share_gpu
if [ "$BENCH" -gt 0 ]; then
    echo "== eager vs compiled, at most $BENCH s"
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
    timeout -k 10 "$BENCH" python3 bench/compile_speed.py --accelerator "$ACC" --precision "$PREC" $BENCH_ARGS 2>&1 |
        grep --line-buffered -v "━" | tee "$OUT/compile_speed.txt"
fi
for item in $PLAN; do
    name=${item%%:*} profile=${item#*:}
    [ "$(left)" -gt $((STOP + 30)) ] || break
    echo "== $item ($(left) s left)"
    prec=$PREC
    [ "$name" = char-lm ] && prec=32-true  # the recurrent nets train in float32 (cuDNN, TF32 inside)
    timeout -s TERM -k "$STOP" $(($(left) - STOP)) python3 -m engine run "$name" --profile "$profile" \
        --accelerator "$ACC" --precision "$prec" --wandb off --no-report --jobs "$JOBS" 2>&1 |
        grep --line-buffered -v "━" | tee -a "$OUT/window.log"
done
unshare_gpu
echo "== packing ($(left) s left)"
python3 bench/gpu_window.py pack "$OUT/gpu-window.tar.gz" $PLAN | tee -a "$OUT/window.log"
