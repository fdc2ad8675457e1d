#!/usr/bin/env bash
# Measures tlx against its peers in one session, alternating back to back: our SGEMM bench,
# numpy/OpenBLAS SGEMM, our conv bench, TF-CPU conv, ONNX Runtime conv forward; ROUNDS times
# (default 2). Prints the `summary:` (ours) and `peer:` lines, plus the load average before
# each step, to stdout.
# Needs benches/peers/setup.sh to have been run once.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
PY=benches/peers/.venv/bin/python
cargo bench --bench gemm --bench conv --no-run >/dev/null 2>&1
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (before tlx sgemm)"
  cargo bench --bench gemm 2>/dev/null | grep '^summary:'
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (before numpy sgemm)"
  "$PY" benches/peers/gemm_numpy.py | grep '^peer:'
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (before tlx conv)"
  cargo bench --bench conv 2>/dev/null | grep '^summary:'
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (before tf conv)"
  "$PY" benches/peers/conv_tf.py 2>/dev/null | grep '^peer:'
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (before onnxruntime conv)"
  "$PY" benches/peers/ort.py --archs '' 2>/dev/null | grep '^peer:'
done
