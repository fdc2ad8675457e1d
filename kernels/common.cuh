// common.cuh: helpers shared by every kernel family (included textually by tlx-cuda's loader,
// which replaces `#include "common.cuh"` with this file before NVRTC sees the source).
//
// NVRTC has no standard headers here (no <cuda_fp16.h>, no <math.h>): everything below uses
// built-in device functions and inline PTX only. All tensors are dense row-major unless a
// kernel takes strides; element indices are 64-bit (`i64`), shape dimensions 32-bit.

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define TLX_MAX_RANK 8

// A grid-stride loop over `n` elements: `i` takes every index once across the whole grid.
#define GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

__device__ __forceinline__ float tlx_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float tlx_nan() { return __int_as_float(0x7fffffff); }
__device__ __forceinline__ bool tlx_isnan(float x) { return x != x; }
__device__ __forceinline__ bool tlx_isfinite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }

// max/min that propagate NaN from either side (NumPy, tf.maximum).
__device__ __forceinline__ float max_nan(float a, float b) { return (a > b || tlx_isnan(a)) ? a : b; }
__device__ __forceinline__ float min_nan(float a, float b) { return (a < b || tlx_isnan(a)) ? a : b; }

// Strided layout of up to TLX_MAX_RANK axes, passed by value: element `i` of the row-major
// walk over `dims` lives at `offset + Σ idx[k]·strides[k]` (strides in elements, 0 = broadcast).
struct Strided {
    int rank;
    i64 dims[TLX_MAX_RANK];
    i64 strides[TLX_MAX_RANK];
    i64 offset;
};

__device__ __forceinline__ i64 strided_offset(const Strided& l, i64 i) {
    i64 off = l.offset;
    for (int k = l.rank - 1; k >= 0; --k) {
        i64 d = l.dims[k];
        off += (i % d) * l.strides[k];
        i /= d;
    }
    return off;
}

// Two layouts over one shared shape (a broadcast binary op's inputs), walked together.
struct Strided2 {
    int rank;
    i64 dims[TLX_MAX_RANK];
    i64 sa[TLX_MAX_RANK];
    i64 sb[TLX_MAX_RANK];
    i64 off_a;
    i64 off_b;
};

__device__ __forceinline__ void strided2_offsets(const Strided2& l, i64 i, i64* oa, i64* ob) {
    i64 a = l.off_a, b = l.off_b;
    for (int k = l.rank - 1; k >= 0; --k) {
        i64 d = l.dims[k];
        i64 q = i % d;
        a += q * l.sa[k];
        b += q * l.sb[k];
        i /= d;
    }
    *oa = a;
    *ob = b;
}

// ---- warp and block reductions (blockDim.x a multiple of 32, at most 1024) ----

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_min(float v) {
    for (int o = 16; o > 0; o >>= 1) v = min_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Reduces `v` over the block; every thread gets the result. `scratch` holds 32 floats.
// op: 0 sum, 1 max, 2 min.
__device__ __forceinline__ float block_reduce(float v, int op, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = op == 0 ? warp_sum(v) : (op == 1 ? warp_max(v) : warp_min(v));
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float ident = op == 0 ? 0.0f : (op == 1 ? -tlx_inf() : tlx_inf());
    v = lane < warps ? scratch[lane] : ident;
    v = op == 0 ? warp_sum(v) : (op == 1 ? warp_max(v) : warp_min(v));
    return v;
}

// ---- f16 / bf16 as raw 16-bit patterns ----

// f32 → f16, round to nearest even (PTX cvt, any architecture).
__device__ __forceinline__ u16 f32_to_f16_bits(float x) {
    u16 r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
}
__device__ __forceinline__ float f16_bits_to_f32(u16 h) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
    return r;
}
// f32 → bf16, round to nearest even; NaN stays NaN (quiet bit set), as the `half` crate does.
__device__ __forceinline__ u16 f32_to_bf16_bits(float x) {
    u32 u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16)(u >> 16);
}
__device__ __forceinline__ float bf16_bits_to_f32(u16 b) { return __uint_as_float(((u32)b) << 16); }
