#!/usr/bin/env bash
# The prepared GPU run: `python -m bench` on the GPU node, tables and log written to $OUT (default
# bench/results). Made for the project's device tool (one short call, ~10 minutes at most):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl jaxopt==0.8.5
#   run(command="bash bench/gpu.sh", carry=[".whl"], timeout_s=600)
# On a GPU node of your own, with nst_jax and torch (CUDA) installed, `bash bench/gpu.sh` is enough.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then  # carried wheels (jaxopt is not on the GPU image)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
# JAX and torch share the GPU in one process: JAX must not take 75 % of its memory up front.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, torch.cuda.get_device_name(0), 'cudnn tf32', torch.backends.cudnn.allow_tf32)"
} 2>&1 | tee "$OUT/gpu-env.txt"
timeout "${BENCH_TIMEOUT:-540}" python3 -m bench --device gpu --size "${BENCH_SIZES:-256,512}" \
    --iterations "${BENCH_ITERATIONS:-500}" --fuse 10 --results-dir "$OUT" 2>&1 | tee "$OUT/gpu-bench.log"
# float32 against bfloat16 (XLA/cuDNN bfloat16 convolutions on the tensor cores): nst_jax's value+grad
# in both precisions side by side (the torch half of bench.precision is the CPU autocast one: skipped).
timeout "${PRECISION_TIMEOUT:-240}" python3 -m bench.precision --sizes "${BENCH_SIZES:-256,512}" --no-torch \
    2>&1 | tee "$OUT/gpu-precision.log"
cp bench/results/precision-gpu-*.md "$OUT/" 2>/dev/null || true
