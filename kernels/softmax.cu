// softmax.cu: softmax and log-softmax along one axis of x seen as [outer, len, inner], their
// backward passes, and the fused softmax cross-entropy (dense or sparse labels) that gives the
// per-row loss and the logits' gradient in one pass.
//
// `*_rows_*` kernels handle inner == 1 (one block per row, rows grid-strided); `*_lines_*`
// kernels handle inner > 1 (one thread per line, neighbouring threads on neighbouring inner
// positions, so reads coalesce). Max-subtracted for stability, like tlx_cpu::softmax.

#include "common.cuh"

// out[r, :] = softmax(x[r, :]) (or log_softmax when `log`); x, out [rows, len].
extern "C" __global__ void softmax_rows_f32(const float* x, float* out, i64 rows, i64 len, int log) {
    __shared__ float scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * len;
        float* orow = out + r * len;
        float m = -tlx_inf();
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) m = max_nan(m, xr[j]);
        m = block_reduce(m, 1, scratch);
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) s += expf(xr[j] - m);
        s = block_reduce(s, 0, scratch);
        if (log) {
            float lse = m + logf(s);
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) orow[j] = xr[j] - lse;
        } else {
            float inv = 1.0f / s;
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) orow[j] = expf(xr[j] - m) * inv;
        }
    }
}

// Same along the middle axis of [outer, len, inner]: thread t handles line (t / inner, t % inner).
extern "C" __global__ void softmax_lines_f32(const float* x, float* out, i64 outer, i64 len, i64 inner, int log) {
    GRID_LOOP(t, outer * inner) {
        i64 base = (t / inner) * len * inner + t % inner;
        float m = -tlx_inf();
        for (i64 j = 0; j < len; ++j) m = max_nan(m, x[base + j * inner]);
        float s = 0.0f;
        for (i64 j = 0; j < len; ++j) s += expf(x[base + j * inner] - m);
        if (log) {
            float lse = m + logf(s);
            for (i64 j = 0; j < len; ++j) out[base + j * inner] = x[base + j * inner] - lse;
        } else {
            float inv = 1.0f / s;
            for (i64 j = 0; j < len; ++j) out[base + j * inner] = expf(x[base + j * inner] - m) * inv;
        }
    }
}

// Backward given the forward output y: softmax dx = y·(g − Σ g·y); log-softmax
// dx = g − exp(y)·Σ g. y, g, dx [rows, len].
extern "C" __global__ void softmax_backward_rows_f32(const float* y, const float* g, float* dx, i64 rows, i64 len,
                                                    int log) {
    __shared__ float scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* yr = y + r * len;
        const float* gr = g + r * len;
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < len; j += blockDim.x) s += log ? gr[j] : gr[j] * yr[j];
        s = block_reduce(s, 0, scratch);
        for (i64 j = threadIdx.x; j < len; j += blockDim.x)
            dx[r * len + j] = log ? gr[j] - expf(yr[j]) * s : yr[j] * (gr[j] - s);
    }
}

// The same along the middle axis: y, g, dx [outer, len, inner], one thread per line.
extern "C" __global__ void softmax_backward_lines_f32(const float* y, const float* g, float* dx, i64 outer, i64 len,
                                                     i64 inner, int log) {
    GRID_LOOP(t, outer * inner) {
        i64 base = (t / inner) * len * inner + t % inner;
        float s = 0.0f;
        for (i64 j = 0; j < len; ++j) {
            i64 k = base + j * inner;
            s += log ? g[k] : g[k] * y[k];
        }
        for (i64 j = 0; j < len; ++j) {
            i64 k = base + j * inner;
            dx[k] = log ? g[k] - expf(y[k]) * s : y[k] * (g[k] - s);
        }
    }
}

// Fused softmax cross-entropy with dense labels (one-hot or probabilities), optional label
// smoothing `ls` (y' = y·(1 − ls) + ls/k):
//   loss[r] = −Σ_j y'_j·(x_j − lse),   grad[r, j] = scale·(softmax_j·Σ y' − y'_j).
// logits, labels, grad [rows, k]; loss [rows]; grad may be null.
extern "C" __global__ void softmax_xent_dense_f32(const float* logits, const float* labels, float* loss, float* grad,
                                                 i64 rows, i64 k, float ls, float scale) {
    __shared__ float scratch[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = logits + r * k;
        const float* yr = labels + r * k;
        float m = -tlx_inf();
        for (i64 j = threadIdx.x; j < k; j += blockDim.x) m = max_nan(m, xr[j]);
        m = block_reduce(m, 1, scratch);
        float s = 0.0f;
        for (i64 j = threadIdx.x; j < k; j += blockDim.x) s += expf(xr[j] - m);
        s = block_reduce(s, 0, scratch);
        float lse = m + logf(s);
        float dot = 0.0f, ysum = 0.0f;
        for (i64 j = threadIdx.x; j < k; j += blockDim.x) {
            float y = yr[j] * (1.0f - ls) + ls / (float)k;
            dot += y * (xr[j] - lse);
            ysum += y;
        }
        dot = block_reduce(dot, 0, scratch);
        ysum = block_reduce(ysum, 0, scratch);
        if (threadIdx.x == 0) loss[r] = -dot;
        if (grad) {
            for (i64 j = threadIdx.x; j < k; j += blockDim.x) {
                float y = yr[j] * (1.0f - ls) + ls / (float)k;
                grad[r * k + j] = scale * (expf(xr[j] - lse) * ysum - y);
            }
        }
    }
}

// Fused softmax cross-entropy with integer labels [rows]: loss[r] = lse − x[label],
// grad[r, j] = scale·(softmax_j − [j == label]). Rows whose label equals `ignore` (when
// has_ignore) get loss 0 and gradient 0; a label outside [0, k) gives NaN loss and gradient.
// logits, grad [rows, k] (grad may be null); labels, loss [rows].
#define SPARSE_XENT(NAME, LABEL_T)                                                                          \
    extern "C" __global__ void NAME(const float* logits, const LABEL_T* labels, float* loss, float* grad,   \
                                    i64 rows, i64 k, float scale, i64 ignore, int has_ignore) {             \
        __shared__ float scratch[32];                                                                        \
        for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {                                                 \
            const float* xr = logits + r * k;                                                                \
            i64 label = (i64)labels[r];                                                                      \
            if (has_ignore && label == ignore) {                                                             \
                if (threadIdx.x == 0) loss[r] = 0.0f;                                                        \
                if (grad)                                                                                    \
                    for (i64 j = threadIdx.x; j < k; j += blockDim.x) grad[r * k + j] = 0.0f;               \
                continue;                                                                                    \
            }                                                                                                \
            bool bad = label < 0 || label >= k;                                                              \
            float m = -tlx_inf();                                                                            \
            for (i64 j = threadIdx.x; j < k; j += blockDim.x) m = max_nan(m, xr[j]);                         \
            m = block_reduce(m, 1, scratch);                                                                 \
            float s = 0.0f;                                                                                  \
            for (i64 j = threadIdx.x; j < k; j += blockDim.x) s += expf(xr[j] - m);                          \
            s = block_reduce(s, 0, scratch);                                                                 \
            float lse = m + logf(s);                                                                         \
            if (threadIdx.x == 0) loss[r] = bad ? tlx_nan() : lse - xr[label];                               \
            if (grad)                                                                                        \
                for (i64 j = threadIdx.x; j < k; j += blockDim.x)                                            \
                    grad[r * k + j] = bad ? tlx_nan() : scale * (expf(xr[j] - lse) - (j == label ? 1.0f : 0.0f)); \
        }                                                                                                    \
    }

SPARSE_XENT(softmax_xent_sparse_i64_f32, i64)
SPARSE_XENT(softmax_xent_sparse_i32_f32, int)
