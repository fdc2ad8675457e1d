// batchnorm.cu: batch normalization over the channel (last) axis of x seen as [rows, c]:
// training moments (two passes, f64 sums like tlx_cpu::norm::channel_moments), the
// per-channel affine map, the coefficient kernels of training and inference mode, the
// moving-statistics update, and the training-mode backward (tlx_cpu::norm::batch_norm_backward).
//
// Sums over rows are split: blockIdx.y picks a run of `split_rows` rows, threads pick channels
// (neighbouring threads read neighbouring channels of a row), and partial[split, ·] is added up
// in split order by the finish kernels (deterministic).

#include "common.cuh"

// partial[s, ch] = Σ_{r in split s} x[r, ch] (mean_d null) or (x[r, ch] − mean_d[ch])²;
// x [rows, c], mean_d [c] (f64), partial [splits, c] (f64); grid (⌈c/threads⌉, splits).
extern "C" __global__ void bn_partial_sums_f32(const float* x, const double* mean_d, double* partial, i64 rows, int c,
                                               i64 split_rows) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    i64 r0 = (i64)blockIdx.y * split_rows;
    i64 r1 = min(r0 + split_rows, rows);
    double acc = 0.0;
    if (mean_d) {
        double mu = mean_d[ch];
        for (i64 r = r0; r < r1; ++r) {
            double d = (double)x[r * c + ch] - mu;
            acc += d * d;
        }
    } else {
        for (i64 r = r0; r < r1; ++r) acc += (double)x[r * c + ch];
    }
    partial[(i64)blockIdx.y * c + ch] = acc;
}

// out_d[j] = (Σ_s partial[s, j]) / divisor in f64 (the CPU's `sum / rows`), out_f[j] =
// (float)out_d[j]; partial [splits, len], out_d, out_f [len]. Either output may be null.
extern "C" __global__ void bn_finish_f64(const double* partial, double* out_d, float* out_f, int len, int splits,
                                         double divisor) {
    GRID_LOOP(j, len) {
        double acc = 0.0;
        for (int s = 0; s < splits; ++s) acc += partial[(i64)s * len + j];
        acc /= divisor;
        if (out_d) out_d[j] = acc;
        if (out_f) out_f[j] = (float)acc;
    }
}

// out[r, ch] = x[r, ch]·scale[ch] + shift[ch] (not fused, like the CPU kernel); x, out [n]
// seen as [n / c, c], scale, shift [c].
extern "C" __global__ void channel_affine_f32(const float* x, const float* scale, const float* shift, float* out,
                                              i64 n, int c) {
    GRID_LOOP(i, n) {
        int ch = (int)(i % c);
        out[i] = __fadd_rn(__fmul_rn(x[i], scale[ch]), shift[ch]);
    }
}

// Training mode: inv_std = 1/√(var + eps) (in f64, rounded once), scale = γ·inv_std,
// shift = β − mean·scale. gamma/beta may be null (γ = 1, β = 0). Every array [c].
extern "C" __global__ void bn_train_coeffs_f32(const float* mean, const float* var, const float* gamma,
                                               const float* beta, double eps, float* inv_std, float* scale,
                                               float* shift, int c) {
    GRID_LOOP(ch, c) {
        float s = (float)(1.0 / sqrt((double)var[ch] + eps));
        float sc = __fmul_rn(gamma ? gamma[ch] : 1.0f, s);
        inv_std[ch] = s;
        scale[ch] = sc;
        shift[ch] = __fsub_rn(beta ? beta[ch] : 0.0f, __fmul_rn(mean[ch], sc));
    }
}

// Inference mode (TensorFlow's arrangement, in f32): s = γ/√(σ² + ε) as rsqrt(σ² + ε)·γ,
// scale = s, shift = β − μ·s. Every array [c]; gamma/beta may be null.
extern "C" __global__ void bn_inference_coeffs_f32(const float* mean, const float* var, const float* gamma,
                                                   const float* beta, float eps, float* scale, float* shift, int c) {
    GRID_LOOP(ch, c) {
        float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(var[ch], eps)));
        float s = gamma ? __fmul_rn(inv, gamma[ch]) : inv;
        scale[ch] = s;
        float sh = -__fmul_rn(mean[ch], s);
        shift[ch] = beta ? __fadd_rn(sh, beta[ch]) : sh;
    }
}

// moving ← moving·momentum + stat·one_minus_momentum (Keras's update), [c].
extern "C" __global__ void bn_update_moving_f32(float* moving, const float* stat, float momentum,
                                                float one_minus_momentum, int c) {
    GRID_LOOP(ch, c) moving[ch] = __fadd_rn(__fmul_rn(moving[ch], momentum), __fmul_rn(stat[ch], one_minus_momentum));
}

// Backward partial sums: partial[s, ch] = Σ dy, partial[s, c + ch] = Σ dy·x̂ over split s,
// x̂ = (x − mean)·inv_std; x, dy [rows, c], mean, inv_std [c], partial [splits, 2c] (f64).
extern "C" __global__ void bn_backward_partial_f32(const float* x, const float* dy, const float* mean,
                                                   const float* inv_std, double* partial, i64 rows, int c,
                                                   i64 split_rows) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    i64 r0 = (i64)blockIdx.y * split_rows;
    i64 r1 = min(r0 + split_rows, rows);
    float mu = mean[ch], s = inv_std[ch];
    double sdy = 0.0, sdyx = 0.0;
    for (i64 r = r0; r < r1; ++r) {
        float xh = __fmul_rn(__fsub_rn(x[r * c + ch], mu), s);
        double d = (double)dy[r * c + ch];
        sdy += d;
        sdyx += d * (double)xh;
    }
    partial[(i64)blockIdx.y * 2 * c + ch] = sdy;
    partial[(i64)blockIdx.y * 2 * c + c + ch] = sdyx;
}

// dx = k·(m·dy − Σdy − x̂·Σdy·x̂), k = γ·inv_std/m, m = rows; x, dy, dx [n] seen as [rows, c];
// mean, inv_std, gamma (may be null) [c]; sums [2c] = [Σdy | Σdy·x̂] in f32.
extern "C" __global__ void bn_backward_dx_f32(const float* x, const float* dy, const float* mean, const float* inv_std,
                                              const float* gamma, const float* sums, float* dx, i64 n, int c,
                                              float m) {
    GRID_LOOP(i, n) {
        int ch = (int)(i % c);
        float s = inv_std[ch];
        float k = __fdiv_rn(__fmul_rn(gamma ? gamma[ch] : 1.0f, s), m);
        float xh = __fmul_rn(__fsub_rn(x[i], mean[ch]), s);
        float inner = __fsub_rn(__fsub_rn(__fmul_rn(m, dy[i]), sums[ch]), __fmul_rn(xh, sums[c + ch]));
        dx[i] = __fmul_rn(k, inner);
    }
}
