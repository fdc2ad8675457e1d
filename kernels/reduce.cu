// reduce.cu: reductions over any set of axes (sum, max, min; mean is a sum with a scale),
// argmax/argmin along one axis, and the f64 sum of squares used by gradient clipping.
//
// An axes reduction is two launches: a partial pass writes `partial [splits, outputs]`, each
// split folding a run of the reduced elements, then `reduce_finish_f32` folds the splits in
// order (deterministic: no atomics). Input layouts are strided, so views reduce without a copy.

#include "common.cuh"

// The input seen as (kept axes) × (reduced axes), each with its own dims and input strides.
// Output o (row-major over the kept dims) folds the `red_len` elements of the reduced dims.
struct ReduceArgs {
    int kept_rank;
    int red_rank;
    i64 kept_dims[TLX_MAX_RANK];
    i64 kept_strides[TLX_MAX_RANK];
    i64 red_dims[TLX_MAX_RANK];
    i64 red_strides[TLX_MAX_RANK];
    i64 offset;
    i64 outputs;
    i64 red_len;
};

__device__ __forceinline__ i64 walk(const i64* dims, const i64* strides, int rank, i64 i) {
    i64 off = 0;
    for (int k = rank - 1; k >= 0; --k) {
        off += (i % dims[k]) * strides[k];
        i /= dims[k];
    }
    return off;
}

__device__ __forceinline__ float fold(int op, float acc, float v) {
    if (op == 0) return acc + v;
    if (op == 1) return (v > acc || tlx_isnan(v)) ? v : acc;  // max, NaN wins
    return (v < acc || tlx_isnan(v)) ? v : acc;               // min, NaN wins
}
__device__ __forceinline__ float identity(int op) { return op == 0 ? 0.0f : (op == 1 ? -tlx_inf() : tlx_inf()); }

// One thread per output, blockIdx.y = split: partial[split, o] folds reduced elements
// [split·split_len, (split+1)·split_len). Good when consecutive outputs are close in memory.
// x: the strided view described by a (kept × reduced axes); partial [splits, outputs].
extern "C" __global__ void reduce_partial_f32(const float* x, float* partial, ReduceArgs a, int op, i64 split_len) {
    i64 o = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= a.outputs) return;
    i64 base = a.offset + walk(a.kept_dims, a.kept_strides, a.kept_rank, o);
    i64 r0 = (i64)blockIdx.y * split_len;
    i64 r1 = min(r0 + split_len, a.red_len);
    float acc = identity(op);
    for (i64 r = r0; r < r1; ++r) acc = fold(op, acc, x[base + walk(a.red_dims, a.red_strides, a.red_rank, r)]);
    partial[(i64)blockIdx.y * a.outputs + o] = acc;
}

// One warp per output (8 per 256-thread block), blockIdx.y = split: for reductions whose
// innermost reduced axis is contiguous, lanes read neighbouring elements. Shapes as above.
extern "C" __global__ void reduce_warp_f32(const float* x, float* partial, ReduceArgs a, int op, i64 split_len) {
    i64 o = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (o >= a.outputs) return;  // whole warps exit together
    i64 base = a.offset + walk(a.kept_dims, a.kept_strides, a.kept_rank, o);
    i64 r0 = (i64)blockIdx.y * split_len;
    i64 r1 = min(r0 + split_len, a.red_len);
    float acc = identity(op);
    for (i64 r = r0 + lane; r < r1; r += 32) acc = fold(op, acc, x[base + walk(a.red_dims, a.red_strides, a.red_rank, r)]);
    acc = op == 0 ? warp_sum(acc) : (op == 1 ? warp_max(acc) : warp_min(acc));
    if (lane == 0) partial[(i64)blockIdx.y * a.outputs + o] = acc;
}

// out[o] = scale · fold over s of partial[s, o]; partial [splits, outputs], out [outputs].
extern "C" __global__ void reduce_finish_f32(const float* partial, float* out, i64 outputs, int splits, int op,
                                             float scale) {
    GRID_LOOP(o, outputs) {
        float acc = identity(op);
        for (int s = 0; s < splits; ++s) acc = fold(op, acc, partial[(i64)s * outputs + o]);
        out[o] = op == 0 ? acc * scale : acc;
    }
}

// Index of the largest (is_max) or smallest element along the middle axis of x seen as
// [outer, len, inner]; out [outer, inner]. The first extreme wins ties; NaN counts as the
// extreme (the first NaN is returned), as tlx_cpu::reduce::arg_extreme.
extern "C" __global__ void arg_extreme_f32(const float* x, i64* out, i64 outer, i64 len, i64 inner, int is_max) {
    GRID_LOOP(t, outer * inner) {
        i64 o = t / inner, i = t % inner;
        const float* p = x + o * len * inner + i;
        i64 best = 0;
        float bv = p[0];
        if (!tlx_isnan(bv)) {
            for (i64 j = 1; j < len; ++j) {
                float v = p[j * inner];
                bool nan = tlx_isnan(v);
                if (nan || (is_max && v > bv) || (!is_max && v < bv)) {
                    best = j;
                    bv = v;
                    if (nan) break;
                }
            }
        }
        out[t] = best;
    }
}

// partial[block] = Σ x[i]² in f64 over the block's grid-stride share; x [n], partial
// [gridDim.x]. The host
// adds the per-block partials in order (the clipnorm / global_clipnorm norm).
extern "C" __global__ void sum_squares_partial_f32(const float* x, double* partial, i64 n) {
    __shared__ double scratch[32];
    double acc = 0.0;
    GRID_LOOP(i, n) {
        double v = (double)x[i];
        acc += v * v;
    }
    acc = warp_sum_d(acc);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < (int)(blockDim.x >> 5) ? scratch[lane] : 0.0;
        acc = warp_sum_d(acc);
        if (lane == 0) partial[blockIdx.x] = acc;
    }
}
