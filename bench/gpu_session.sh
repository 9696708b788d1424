#!/usr/bin/env bash
# Everything a lent GPU machine should run, as one command from the repo root, with logs in
# LOGDIR: the machine and versions, bench/gpu_check.py, the CUDA tests on the real GPU (not
# the simulator), the demo on cuda and on auto placement, and bench/gpu_layers.py. Each
# step has its own time limit so that one hang cannot eat the lease; on an H100 the whole
# script took 60 s (145 s while batch 32 was still slow), compilation included.
#
#     bash bench/gpu_session.sh [LOGDIR]        # LOGDIR defaults to gpu-logs
set -u
out=${1:-gpu-logs}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 NUMBA_ENABLE_CUDASIM=0  # tests/conftest.py defaults to the simulator

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to LOGDIR/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "### $name"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    echo "### $name: exit ${PIPESTATUS[0]}"
}

step machine 30 bash -c "nvidia-smi -L; $py -c 'import sys, numpy, numba, numba_cuda, h5py; \
print(\"python\", sys.version.split()[0], \"numpy\", numpy.__version__, \"numba\", numba.__version__, \
\"numba-cuda\", numba_cuda.__version__, \"h5py\", h5py.__version__)'"
step gpu_check 240 "$py" bench/gpu_check.py
step cuda_tests 150 env PYPRUNE_REQUIRE_CUDA_TESTS=1 "$py" -m pytest tests/kernels/cuda tests/test_devices.py \
    -q -p no:cacheprovider
step demo_cuda 60 "$py" -m pyprune demo --device cuda
step demo_auto 60 "$py" -m pyprune demo --device auto
step layers 90 "$py" bench/gpu_layers.py --batches 1 32 --rounds 3
