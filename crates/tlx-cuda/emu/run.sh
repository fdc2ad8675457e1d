#!/usr/bin/env bash
# Builds the host emulation of libcuda and libcublas (see README.md) and runs tlx-cuda's tests
# on it: `crates/tlx-cuda/emu/run.sh [cargo test arguments]`; `run.sh --tensor [arguments]` runs
# tlx-tensor's CUDA parity tests (crates/tlx-tensor/tests/cuda_parity.rs) instead. Needs g++
# (C++20), python3 and libnvrtc (TLX_CUDA_LIB_DIR or LD_LIBRARY_PATH, as for the NVRTC test).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${TLX_EMU_DIR:-${CARGO_TARGET_DIR:-$root/target}/tlx-cuda-emu}"
mkdir -p "$out/gen" "$out/lib"
python3 "$here/gen.py" "$root/kernels" "$out/gen"
flags=(-std=c++20 -O2 -fPIC -shared -fvisibility=hidden -fvisibility-inlines-hidden -Wl,-Bsymbolic -ffp-contract=off -I"$here")
g++ "${flags[@]}" -I"$out/gen" -o "$out/lib/libcuda.so.1" -Wl,-soname,libcuda.so.1 "$here/driver.cpp" "$out/gen"/*.cpp -lpthread
g++ "${flags[@]}" -o "$out/lib/libcublas.so.12" -Wl,-soname,libcublas.so.12 "$here/cublas.cpp"
export TLX_CUDA_LIB_DIR="$out/lib${TLX_CUDA_LIB_DIR:+:$TLX_CUDA_LIB_DIR}"
export TLX_REQUIRE_GPU=1
cd "$root"
if [[ "${1:-}" == "--tensor" ]]; then
    shift
    cargo test -p tlx-tensor --features cuda --test cuda_parity "$@"
else
    cargo test -p tlx-cuda --features cuda "$@"
fi
