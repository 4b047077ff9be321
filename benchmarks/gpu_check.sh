#!/usr/bin/env bash
# The GPU check of BUILD.md "Performance": one command, under 5 minutes on one GPU (CI has none).
#
#   bash benchmarks/gpu_check.sh            # from the repository root, with the project's Python on PATH or .venv
#
# 1. Numerics on the GPU: XLA and mixed_float16 against float32 / the float64 references (the CPU tests, rerun
#    where cuDNN and XLA:GPU choose other kernels).
# 2. Memory and speed: ST-attn training at the authors' batch (B = 30, n = 25), float32 vs XLA vs mixed_float16,
#    and STPA IRv2 testing at K = 30, float32 vs mixed_float16; peaks from the GPU allocator
#    (tf.config.experimental.get_memory_info) next to the arithmetic bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
export TF_CPP_MIN_LOG_LEVEL=3
"$PYTHON" -c "import tensorflow as tf, sys; gpus = tf.config.list_physical_devices('GPU'); print('GPUs:', gpus); \
sys.exit(0 if gpus else 'no GPU visible: this check is for a GPU machine')"
# Each step has its own limit; together they stay under 5 minutes.
timeout 90 "$PYTHON" -m pytest tests/st_attn/test_precision.py tests/stpa/test_precision.py -q -p no:randomly -n 0
timeout 150 "$PYTHON" benchmarks/memory.py --parts=st_attn_b30 --variants=base,xla,mixed_float16 \
    --repeats=1 --steps=3 --threads=8
timeout 60 "$PYTHON" benchmarks/memory.py --parts=stpa_test --stpa_test_frames=30 --variants=base,mixed_float16 \
    --repeats=1 --steps=3 --threads=8
