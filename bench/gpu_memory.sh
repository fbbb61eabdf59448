#!/usr/bin/env bash
# The prepared print-size check for a GPU node: the memory plan against the device's measured peak
# (`python -m bench.memory`, 5 iterations per size and way), then 8190 px (its height, 5448 px, divides
# by 8) split across 8 GPUs when the node has them. Tables and logs go to $OUT (default bench/results). For the project's device tool:
#   run(command="bash bench/gpu_memory.sh", timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee "$OUT/gpu-memory-env.txt"
python3 -m nst_jax.run nst_jax/samples/chelsea.png nst_jax/samples/the_scream.jpg --size 4096 --plan 2>&1 | tee "$OUT/gpu-plan-4096.txt"
timeout "${BENCH_TIMEOUT:-420}" python3 -m bench.memory --sizes "${BENCH_SIZES:-1024,2048,4096}" \
    --out "$OUT/memory-gpu-$(date +%F)" 2>&1 | tee "$OUT/gpu-memory.log"
if [ "$(nvidia-smi -L | wc -l)" -ge 8 ]; then
    timeout 300 python3 -m nst_jax.run nst_jax/samples/chelsea.png nst_jax/samples/the_scream.jpg --size 8190 \
        --iterations 5 --devices 8 --checkpoint-every 0 -o "$OUT/print-8190.png" 2>&1 | tee "$OUT/gpu-8190.log"
fi
