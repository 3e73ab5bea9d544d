# Shared start of the one-command GPU session scripts (bench/gpu_*.sh), sourced after they set
# their defaults: the time budget and `left`, the output folder, offline runs of the project from
# this folder (no install needed), and a record of the machine and versions in $OUT/env.txt.
set -u
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
    python3 -c "import torch, lightning, experiments; print('torch', torch.__version__, 'lightning', lightning.__version__)"
    echo "commit ${REPRO_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}"
} 2>&1 | tee "$OUT/env.txt"
