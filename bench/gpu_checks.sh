#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the `gpu`-marked tests, then the fine-tuning
# cost of AuroraSmall and Aurora (1.3 B) at 0.25° with 13 levels (full, LoRA, decoder online
# and from the cache). Each step has its own time limit, so one slow step cannot starve the
# rest; logs and JSON go to the folder given as the first argument.
#
#   bash bench/gpu_checks.sh results/gpu
set -uo pipefail
out=${1:-results/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
LEVELS=(50 100 150 200 250 300 400 500 600 700 850 925 1000)

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    | tee -a "$out/gpu.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $out/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local started=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - started)) s"
    tail -n 40 "$out/$name.log"
}

step gpu_tests 150 python3 -m pytest -p no:cacheprovider -m gpu -q tests/train
step cost_small 200 python3 bench/finetune_cost.py --models aurora --size small \
    --nlat 721 --nlon 1440 --levels "${LEVELS[@]}" --batch 1 --steps 5 \
    --out "$out/cost_aurora_small.json"
step cost_full 200 python3 bench/finetune_cost.py --models aurora --size full \
    --nlat 721 --nlon 1440 --levels "${LEVELS[@]}" --batch 1 --steps 3 \
    --out "$out/cost_aurora_full.json"
