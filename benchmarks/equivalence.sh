#!/bin/bash
# Run the same three studies with the code of a checkout, for a bit-for-bit comparison of two
# versions (issue 21: a refactor must not change a result). Compare with equivalence_compare.py.
#
#   git worktree add /tmp/base <old commit>
#   bash benchmarks/equivalence.sh /tmp/base/src /tmp/eq-base [studies|baselines|all]
#   bash benchmarks/equivalence.sh src /tmp/eq-new [studies|baselines|all]
#   python benchmarks/equivalence_compare.py /tmp/eq-base /tmp/eq-new
#
# Studies: configs/small.yaml at 20 generations on local processes, the same on a Dask
# LocalCluster cut per fold, and the demo at a tiny budget (10 source, 5 destination
# generations). Sources are trained, never taken from the shared store.
# Baselines: every kind (MLP from scratch and fine-tuned, progressive nets, logistic
# regression, the path-sized CNN's four arms, the CIFAR CNN, MobileNetV2 head-only at 32 px)
# on configs/small.yaml at 640 samples per task, inline and on local processes.
set -euo pipefail
SRC=$(cd "$1" && pwd); OUT=$2; WHAT=${3:-all}; mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
export PYTHONPATH=$SRC PATHNET_FER_DATA=${PATHNET_FER_DATA:-$(cd "$HERE/../shared/data" && pwd)}
run() {
    local name=$1; shift
    if ! "$PY" -m pathnet_fer.cli experiment "$@" --out "$OUT/$name" --set logging.progress=false \
        --set protocol.reuse_sources=false > "$OUT/$name.log" 2>&1; then
        echo "FAILED $name (see $OUT/$name.log)"; return 1
    fi
}
baseline() {
    local name=$1; shift
    if ! "$PY" -m pathnet_fer.cli baseline small --models mlp,progressive,logreg,cnn,cifar,mobilenet_v2 \
        --max-samples 640 --input-size 32 --quiet "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1; then
        echo "FAILED $name (see $OUT/$name.log)"; return 1
    fi
}
if [ "$WHAT" = baselines ] || [ "$WHAT" = all ]; then
    baseline baselines-inline --set executor.kind=inline
    baseline baselines-local --set executor.kind=local
fi
[ "$WHAT" = baselines ] && { echo "done: $OUT"; exit 0; }
run small-local small --set evolution.generations=20 --set executor.kind=local
run small-dask small --set evolution.generations=20 --set executor.kind=dask \
    --set executor.cut=fold --set executor.workers=2
run demo-tiny demo --set protocol.source_generations=10 --set evolution.generations=5 \
    --set executor.kind=local
echo "done: $OUT"
