#!/usr/bin/env bash
# Creates benches/peers/.venv and installs the peer engines from PyPI (numpy with its bundled
# OpenBLAS, tensorflow-cpu, onnxruntime with onnx and tf2onnx to convert the Keras models).
# Never part of the test suite.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --upgrade pip >/dev/null
.venv/bin/python -m pip install numpy tensorflow-cpu onnxruntime onnx tf2onnx
.venv/bin/python -c "import numpy, tensorflow as tf, onnxruntime as ort; print('numpy', numpy.__version__, '| tensorflow', tf.__version__, '| onnxruntime', ort.__version__)"
