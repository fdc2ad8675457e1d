// conv.cu: convolution helpers on NHWC input [n, h, w, c_in] and HWIO kernels
// [kh, kw, c_in/groups, c_out] (tlx_core::Conv2dGeometry, passed by value as ConvGeom).
//
// - im2col_f32: the column matrix of a tile of output rows for one group,
//   col [rows, K] with K = kh·kw·cig and column (a·kw + b)·cig + ci, zero in the padding —
//   exactly the row order of the kernel seen as [K, c_out], so col × W gives NHWC output
//   (the GEMM runs in cuBLAS).
// - col2im_f32: the input gradient of a tile of whole images from col = dY × Wᵀ, gathered per
//   input element (no atomics, deterministic).
// - depthwise_*: direct depthwise convolution (groups == c_in, multiplier c_out / c_in):
//   forward, input gradient (gathered) and kernel gradient (split partial sums, then
//   sum_columns_f32).

#include "common.cuh"

struct ConvGeom {
    int n, h, w, c_in;
    int kh, kw, c_out, groups;
    int stride_h, stride_w, dil_h, dil_w;
    int pad_top, pad_left, out_h, out_w;
};

// col[r, k] for output rows r0..r0+rows (flattened [n·out_h·out_w]), group grp;
// x [n, h, w, c_in], col [rows, K].
extern "C" __global__ void im2col_f32(const float* x, float* col, ConvGeom g, int grp, i64 r0, i64 rows) {
    int cig = g.c_in / g.groups;
    i64 K = (i64)g.kh * g.kw * cig;
    GRID_LOOP(e, rows * K) {
        i64 r = r0 + e / K;
        int k = (int)(e % K);
        int ci = k % cig, tap = k / cig;
        int a = tap / g.kw, b = tap % g.kw;
        int ox = (int)(r % g.out_w);
        i64 t = r / g.out_w;
        int oy = (int)(t % g.out_h);
        i64 img = t / g.out_h;
        int iy = oy * g.stride_h + a * g.dil_h - g.pad_top;
        int ix = ox * g.stride_w + b * g.dil_w - g.pad_left;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
            v = x[((img * g.h + iy) * g.w + ix) * g.c_in + grp * cig + ci];
        col[e] = v;
    }
}

// grad_in[img, iy, ix, grp·cig + ci] = Σ over taps (a, b) whose output (oy, ox) exists of
// col[(output row − r0), (a·kw + b)·cig + ci], for the images img0..img0+imgs whose output
// rows are exactly the tile [r0, r0 + imgs·out_h·out_w). Overwrites those elements.
// col [imgs·out_h·out_w, K], grad_in [n, h, w, c_in].
extern "C" __global__ void col2im_f32(const float* col, float* grad_in, ConvGeom g, int grp, i64 img0, i64 imgs) {
    int cig = g.c_in / g.groups;
    i64 K = (i64)g.kh * g.kw * cig;
    i64 r0 = img0 * g.out_h * g.out_w;
    GRID_LOOP(e, imgs * g.h * g.w * cig) {
        int ci = (int)(e % cig);
        i64 p = e / cig;
        int ix = (int)(p % g.w);
        i64 t = p / g.w;
        int iy = (int)(t % g.h);
        i64 img = img0 + t / g.h;
        float acc = 0.0f;
        for (int a = 0; a < g.kh; ++a) {
            int ty = iy + g.pad_top - a * g.dil_h;
            if (ty < 0 || ty % g.stride_h != 0) continue;
            int oy = ty / g.stride_h;
            if (oy >= g.out_h) continue;
            for (int b = 0; b < g.kw; ++b) {
                int tx = ix + g.pad_left - b * g.dil_w;
                if (tx < 0 || tx % g.stride_w != 0) continue;
                int ox = tx / g.stride_w;
                if (ox >= g.out_w) continue;
                i64 r = (img * g.out_h + oy) * g.out_w + ox;
                acc += col[(r - r0) * K + (a * g.kw + b) * cig + ci];
            }
        }
        grad_in[((img * g.h + iy) * g.w + ix) * g.c_in + grp * cig + ci] = acc;
    }
}

// Depthwise forward: out[n, oy, ox, o] = bias[o] + Σ_{a,b} x[n, iy, ix, o / mult]·k[a, b, o];
// x [n, h, w, c_in], kernel [kh, kw, 1, c_out], bias [c_out] (may be null),
// out [n, out_h, out_w, c_out].
extern "C" __global__ void depthwise_forward_f32(const float* x, const float* k, const float* bias, float* out,
                                                 ConvGeom g) {
    int mult = g.c_out / g.c_in;
    GRID_LOOP(e, (i64)g.n * g.out_h * g.out_w * g.c_out) {
        int o = (int)(e % g.c_out);
        i64 p = e / g.c_out;
        int ox = (int)(p % g.out_w);
        i64 t = p / g.out_w;
        int oy = (int)(t % g.out_h);
        i64 img = t / g.out_h;
        int c = o / mult;
        float acc = bias ? bias[o] : 0.0f;
        for (int a = 0; a < g.kh; ++a) {
            int iy = oy * g.stride_h + a * g.dil_h - g.pad_top;
            if (iy < 0 || iy >= g.h) continue;
            for (int b = 0; b < g.kw; ++b) {
                int ix = ox * g.stride_w + b * g.dil_w - g.pad_left;
                if (ix < 0 || ix >= g.w) continue;
                acc += x[((img * g.h + iy) * g.w + ix) * g.c_in + c] * k[(a * g.kw + b) * g.c_out + o];
            }
        }
        out[e] = acc;
    }
}

// Depthwise input gradient: grad_in[n, iy, ix, c] = Σ_{a,b,m} dY[n, oy, ox, c·mult + m]·k[a, b, c·mult + m]
// over the outputs that read (iy, ix). dy [n, out_h, out_w, c_out], k [kh, kw, 1, c_out];
// overwrites grad_in [n, h, w, c_in].
extern "C" __global__ void depthwise_backward_input_f32(const float* dy, const float* k, float* grad_in, ConvGeom g) {
    int mult = g.c_out / g.c_in;
    GRID_LOOP(e, (i64)g.n * g.h * g.w * g.c_in) {
        int c = (int)(e % g.c_in);
        i64 p = e / g.c_in;
        int ix = (int)(p % g.w);
        i64 t = p / g.w;
        int iy = (int)(t % g.h);
        i64 img = t / g.h;
        float acc = 0.0f;
        for (int a = 0; a < g.kh; ++a) {
            int ty = iy + g.pad_top - a * g.dil_h;
            if (ty < 0 || ty % g.stride_h != 0) continue;
            int oy = ty / g.stride_h;
            if (oy >= g.out_h) continue;
            for (int b = 0; b < g.kw; ++b) {
                int tx = ix + g.pad_left - b * g.dil_w;
                if (tx < 0 || tx % g.stride_w != 0) continue;
                int ox = tx / g.stride_w;
                if (ox >= g.out_w) continue;
                const float* d = dy + ((img * g.out_h + oy) * g.out_w + ox) * g.c_out + c * mult;
                const float* kk = k + (a * g.kw + b) * g.c_out + c * mult;
                for (int m = 0; m < mult; ++m) acc += d[m] * kk[m];
            }
        }
        grad_in[e] = acc;
    }
}

// Depthwise kernel gradient, partial sums: partial[s, (a·kw + b)·c_out + o] = Σ over output
// positions q in split s ([s·split_len, (s+1)·split_len) of n·out_h·out_w) of
// dY[q, o]·x[n, iy, ix, o / mult]. blockIdx.y = split; then sum_columns_f32 adds the splits.
// x [n, h, w, c_in], dy [n, out_h, out_w, c_out], partial [splits, kh·kw·c_out].
extern "C" __global__ void depthwise_backward_kernel_partial_f32(const float* x, const float* dy, float* partial,
                                                               ConvGeom g, i64 split_len) {
    i64 kn = (i64)g.kh * g.kw * g.c_out;
    i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= kn) return;
    int mult = g.c_out / g.c_in;
    int o = (int)(e % g.c_out);
    int tap = (int)(e / g.c_out);
    int a = tap / g.kw, b = tap % g.kw;
    int c = o / mult;
    i64 q_total = (i64)g.n * g.out_h * g.out_w;
    i64 q0 = (i64)blockIdx.y * split_len;
    i64 q1 = min(q0 + split_len, q_total);
    float acc = 0.0f;
    for (i64 q = q0; q < q1; ++q) {
        int ox = (int)(q % g.out_w);
        i64 t = q / g.out_w;
        int oy = (int)(t % g.out_h);
        i64 img = t / g.out_h;
        int iy = oy * g.stride_h + a * g.dil_h - g.pad_top;
        int ix = ox * g.stride_w + b * g.dil_w - g.pad_left;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
        acc += dy[q * g.c_out + o] * x[((img * g.h + iy) * g.w + ix) * g.c_in + c];
    }
    partial[(i64)blockIdx.y * kn + e] = acc;
}

// out[j] = Σ_s partial[s, j] in split order; partial [splits, len], out [len].
extern "C" __global__ void sum_columns_f32(const float* partial, float* out, i64 len, int splits) {
    GRID_LOOP(j, len) {
        float acc = 0.0f;
        for (int s = 0; s < splits; ++s) acc += partial[(i64)s * len + j];
        out[j] = acc;
    }
}
