#!/usr/bin/env python3
"""Generates the host build of kernels/*.cu for the emulated driver (see README.md).

usage: gen.py KERNELS_DIR OUT_DIR

For every kernels/X.cu it writes OUT_DIR/X.cpp: the kernel source (compiled as C++ with shim.h)
plus, per `extern "C" __global__` kernel, a wrapper that unpacks cuLaunchKernel's `void**`
arguments by the kernel's own parameter types and registers it by name, marked "threaded" when
the kernel synchronises (block/warp reductions, __syncthreads, shuffles). OUT_DIR/common.cuh is
common.cuh with the inline-PTX f16 conversions replaced by software ones.
"""
import pathlib
import re
import subprocess
import sys

kernels, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
common = (kernels / "common.cuh").read_text()
for fn, body in [
    ("u16 f32_to_f16_bits(float x)", "return emu_f32_to_f16(x);"),
    ("float f16_bits_to_f32(u16 h)", "return emu_f16_to_f32(h);"),
]:
    common, n = re.subn(r"__device__ __forceinline__ " + re.escape(fn) + r" \{.*?\n\}",
                        f"__device__ __forceinline__ {fn} {{ {body} }}", common, flags=re.S)
    assert n == 1, f"common.cuh: `{fn}` not found"
assert "asm(" not in common, "common.cuh: inline PTX left that the host cannot compile"
(out / "common.cuh").write_text(common)

SYNC = re.compile(r"block_reduce|__syncthreads|warp_sum|warp_max|warp_min|__shfl")
SIG = re.compile(r'extern "C" __global__ void (\w+)\s*\(([^)]*)\)')
for cu in sorted(kernels.glob("*.cu")):
    src = cu.read_text()
    # Preprocess (macro-generated kernels appear expanded) to find every kernel and its body.
    pre = subprocess.run(["g++", "-E", "-P", "-x", "c++", "-I", str(out), "-"], input=src,
                         capture_output=True, text=True, cwd=out, check=True).stdout
    found = list(SIG.finditer(pre))
    regs = []
    for i, m in enumerate(found):
        body = pre[m.end():found[i + 1].start() if i + 1 < len(found) else len(pre)]
        name = m.group(1)
        params = [p.strip() for p in m.group(2).split(",") if p.strip()]
        types = [re.sub(r"\s*\b\w+$", "", p) for p in params]  # drop the parameter name
        args = ", ".join(f"*({t}*)p[{j}]" for j, t in enumerate(types))
        threaded = "true" if SYNC.search(body) else "false"
        regs.append(f"static void wrap_{name}(void** p) {{ {name}({args}); }}\n"
                    f'static emu::Reg reg_{name}("{name}", wrap_{name}, {threaded});')
    (out / f"{cu.stem}.cpp").write_text('#include "shim.h"\n' + src + "\n" + "\n".join(regs) + "\n")
    print(f"{cu.name}: {len(regs)} kernels")
