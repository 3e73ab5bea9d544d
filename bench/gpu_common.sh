# Shared start of the one-command GPU session scripts (bench/gpu_*.sh), sourced after they set
# their defaults: the time budget and `left`, the output folder, offline runs of the project from
# this folder (no install needed), and a record of the machine and versions in $OUT/env.txt.
set -u
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then  # the calling script's own header is its usage
    sed -n '2,/^[^#]/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    exit 0
fi
[[ "${1:-600}" =~ ^[0-9]+$ ]] || { echo "error: the first argument is the time budget in seconds, not '$1'" >&2; exit 2; }
start=$(date +%s)
budget=${1:-600}
left() { echo $((budget - ($(date +%s) - start))); }
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 REPRO_OFFLINE=1
export REPRO_CACHE_DIR=${REPRO_CACHE_DIR:-/tmp/repro-cache} REPRO_RUNS_DIR=${REPRO_RUNS_DIR:-/tmp/repro-runs}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    python3 -c "import torch, lightning, engine, experiments; print('torch', torch.__version__, 'lightning', lightning.__version__)"
    echo "commit ${REPRO_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}"
} 2>&1 | tee "$OUT/env.txt"

# share_gpu: CUDA MPS, so that the small kernels of many training processes run on the GPU at the same
# time (without it, processes take turns by time slices), checked by a first CUDA call and abandoned if it
# fails; `nvidia-smi dmon` samples the GPU's use into $OUT/gpu-use.txt. unshare_gpu stops both.
share_gpu() {
    [ "${ACC:-gpu}" = gpu ] || return 0
    if command -v nvidia-cuda-mps-control >/dev/null; then
        export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
        mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
        if nvidia-cuda-mps-control -d && timeout 60 python3 -c "import torch; torch.ones(8, device='cuda').sum().item()"; then
            echo "MPS: on" | tee -a "$OUT/env.txt"
        else
            echo quit | timeout 10 nvidia-cuda-mps-control
            unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
            echo "MPS: failed to start, runs share the GPU by time slices" | tee -a "$OUT/env.txt"
        fi
    fi
    nvidia-smi dmon -s um -d 5 >"$OUT/gpu-use.txt" 2>&1 &
    smi=$!
}
unshare_gpu() {
    [ -n "${smi:-}" ] && kill "$smi"
    [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] && echo quit | timeout 10 nvidia-cuda-mps-control
    return 0
}

# pack_runs: every run's record, metrics CSV and log (no checkpoints) into $OUT/runs.tar.gz
pack_runs() {
    echo "== packing ($(left) s left)"
    tar czf "$OUT/runs.tar.gz" -C "$REPRO_RUNS_DIR" --exclude='*.ckpt' --exclude='wandb' .
    find "$REPRO_RUNS_DIR" -name record.json | sort
}
