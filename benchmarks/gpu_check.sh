#!/usr/bin/env bash
# The GPU measurements of the marginal generators (issue #4: MST <= 10 s, AIM <= 1 s per
# round, <= 1 ms per estimator call on Adult, each against the CPU) in one device call.
#
#   bash benchmarks/gpu_check.sh prepare    # here, once: Adult and the missing wheels -> .gpu/
#   bash benchmarks/gpu_check.sh run        # on the GPU machine, with .gpu carried:
#       run(command="bash benchmarks/gpu_check.sh run", carry=[".gpu"], timeout_s=540)
#
# `run` writes its logs and result JSON under $OUT (default: .gpu/out), each step's as soon as
# it ends, so a run cut short still returns what it measured. Estimated seven minutes on an
# H100/H200 host (2026-11-23 timings there): the GPU tests, the estimator per call on a small
# (MST-sized) and an 8 MB model on CUDA and on one CPU core, both belief-propagation engines
# on CUDA from 1e4 to 1e6 cells, MST and AIM at epsilon 1 over two seeds on CUDA, then one
# seed of each on the CPU. PY and DEVICE override python3 and cuda (a
# smoke test here: PY=.venv/bin/python DEVICE=cpu bash benchmarks/gpu_check.sh run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-.gpu/out}
ADULT=../shared/data/adult

prepare() {
    # The device image has torch, numpy, pandas, scikit-learn and pytest; not these. The
    # wheels are for its CPython 3.12 on x86-64 (opendp's alone is 47 MB of the 64 MB a call
    # may carry).
    mkdir -p .gpu/wheels .gpu/adult
    cp "$ADULT/adult.csv" "$ADULT/adult-domain.json" "$ADULT/PROVENANCE.md" .gpu/adult/
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .gpu/wheels \
        opendp==0.16.0 diffprivlib==0.6.6 opacus==1.6.0 rfc8785 jsonschema \
        jsonschema-specifications referencing rpds-py cryptography cffi pycparser
    du -sh .gpu
}

run() {
    mkdir -p "$OUT"
    if ! "$PY" -c "import opendp" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .gpu/wheels/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    if [ ! -f "$ADULT/adult.csv" ]; then  # ../shared does not travel; the copy in .gpu does
        mkdir -p "$(dirname "$ADULT")" && cp -r .gpu/adult "$ADULT"
    fi
    if [ "$DEVICE" = cuda ]; then
        nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/gpu.txt"
        "$PY" -m pytest -q -m gpu -p no:cacheprovider $(grep -rl "pytest.mark.gpu" tests) 2>&1 |
            tee "$OUT/pytest-gpu.txt" || echo "GPU tests FAILED (pytest-gpu.txt); measuring anyway"
    fi
    for cells in 1e4 1e6; do
        for dev in "$DEVICE" cpu; do
            echo "== estimator, $cells cells, $dev"
            "$PY" benchmarks/run_inference.py --calls 200 --cells "$cells" --device "$dev"
        done
    done 2>&1 | tee "$OUT/inference.txt"
    # Where the level-batched engine stops paying on this device (FLAT_MAX_CELLS was set on
    # one CPU core): both engines on the same models.
    for cells in 1e4 4e4 1e5 1e6; do
        for limit in 0 1e9; do
            echo "== estimator, $cells cells, $DEVICE, --flat-max-cells $limit"
            "$PY" benchmarks/run_inference.py --calls 200 --cells "$cells" --device "$DEVICE" \
                --flat-max-cells "$limit"
        done
    done 2>&1 | tee "$OUT/inference-engines.txt"
    "$PY" benchmarks/run_marginal.py --tools privsynth:mst privsynth:aim --epsilons 1 \
        --seeds 0 1 --device "$DEVICE" --out "$OUT/marginal-$DEVICE.json" 2>&1 |
        tee "$OUT/marginal-$DEVICE.txt"
    "$PY" benchmarks/run_marginal.py --tools privsynth:mst privsynth:aim --epsilons 1 \
        --seeds 0 --device cpu --out "$OUT/marginal-cpu.json" 2>&1 | tee "$OUT/marginal-cpu.txt"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
