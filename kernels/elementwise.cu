// elementwise.cu: the unary op table (forward and backward), binary ops with broadcasting,
// comparisons, `where`, strided gather (copy of a view into a dense buffer) and fill.
//
// Unary ops follow tlx_core::UnaryOp row for row: `op` is the row's code (UnaryCode in
// tlx-cuda's elementwise.rs), `p0..p3` its f32 parameters. Binary ops follow
// tlx_core::BinaryOp, comparisons tlx_core::CmpOp.

#include "common.cuh"

#define SELU_LAMBDA 1.0507009873554805
#define SELU_ALPHA 1.6732632423543772
#define SQRT_2_OVER_PI 0.7978845608028654    // sqrt(2/pi)
#define FRAC_1_SQRT_2 0.7071067811865476     // 1/sqrt(2)
#define SQRT_HALF_OVER_PI 0.3989422804014327 // sqrt(0.5/pi)

struct UnaryParams {
    int op;
    float p0, p1, p2, p3;
};

__device__ __forceinline__ float sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}
__device__ __forceinline__ float softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
__device__ __forceinline__ float signf(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x); }

// y = f(x) for one row of the table.
__device__ float unary_forward(const UnaryParams& u, float x) {
    switch (u.op) {
        case 0: return -x;                                   // neg
        case 1: return fabsf(x);                             // abs
        case 2: return expf(x);                              // exp
        case 3: return logf(x);                              // log
        case 4: return sqrtf(x);                             // sqrt
        case 5: return 1.0f / sqrtf(x);                      // rsqrt
        case 6: return x * x;                                // square
        case 7: return 1.0f / x;                             // reciprocal
        case 8: return sinf(x);                              // sin
        case 9: return cosf(x);                              // cos
        case 10: return tanhf(x);                            // tanh
        case 11: return sigmoidf(x);                         // sigmoid
        case 12: return x > 0.0f ? x : 0.0f;                 // relu
        case 13: return fminf(fmaxf(x, 0.0f), 6.0f);         // relu6
        case 14:                                             // relu(negative_slope=p0, max=p1 if p3, threshold=p2)
            if (u.p3 != 0.0f && x >= u.p1) return u.p1;
            return x >= u.p2 ? x : u.p0 * (x - u.p2);
        case 15: return x > 0.0f ? x : u.p0 * x;             // leaky_relu(alpha=p0)
        case 16: return x > 0.0f ? x : u.p0 * expm1f(x);     // elu(alpha=p0)
        case 17: return x > 0.0f ? (float)SELU_LAMBDA * x : (float)(SELU_LAMBDA * SELU_ALPHA) * expm1f(x);
        case 18: return 0.5f * x * (1.0f + erff(x * (float)FRAC_1_SQRT_2));  // gelu
        case 19: {                                                            // gelu (tanh)
            float k = (float)SQRT_2_OVER_PI;
            return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
        }
        case 20: return x * sigmoidf(x);                     // silu / swish
        case 21: return softplusf(x);                        // softplus
        case 22: return x / (1.0f + fabsf(x));               // softsign
        case 23: return x * tanhf(softplusf(x));             // mish
        case 24: return -softplusf(-x);                      // log_sigmoid
        case 25: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;       // hard_sigmoid
        case 26: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;   // hard_silu
        case 27: return signf(x);                            // sign (keeps 0 and NaN)
        case 28: return fminf(fmaxf(x, u.p0), u.p1);         // clamp(min=p0, max=p1)
        case 29: return powf(x, u.p0);                       // pow(p=p0)
        case 30: return x * u.p0 + u.p1;                     // affine(mul=p0, add=p1)
        default: return tlx_nan();
    }
}

// dy/dx given x and y = f(x); kinks follow TensorFlow (relu'(0) = 0).
__device__ float unary_derivative(const UnaryParams& u, float x, float y) {
    switch (u.op) {
        case 0: return -1.0f;
        case 1: return signf(x);
        case 2: return y;
        case 3: return 1.0f / x;
        case 4: return 0.5f / y;
        case 5: return -0.5f * y * y * y;
        case 6: return 2.0f * x;
        case 7: return -y * y;
        case 8: return cosf(x);
        case 9: return -sinf(x);
        case 10: return 1.0f - y * y;
        case 11: return y * (1.0f - y);
        case 12: return x > 0.0f ? 1.0f : 0.0f;
        case 13: return (x > 0.0f && x < 6.0f) ? 1.0f : 0.0f;
        case 14:
            if (u.p3 != 0.0f && x >= u.p1) return 0.0f;
            return x >= u.p2 ? 1.0f : u.p0;
        case 15: return x > 0.0f ? 1.0f : u.p0;
        case 16: return x > 0.0f ? 1.0f : y + u.p0;
        case 17: return x > 0.0f ? (float)SELU_LAMBDA : y + (float)(SELU_LAMBDA * SELU_ALPHA);
        case 18: {
            float cdf = 0.5f * (1.0f + erff(x * (float)FRAC_1_SQRT_2));
            float pdf = expf(-0.5f * x * x) * (float)SQRT_HALF_OVER_PI;
            return cdf + x * pdf;
        }
        case 19: {
            float k = (float)SQRT_2_OVER_PI, a = 0.044715f;
            float t = tanhf(k * (x + a * x * x * x));
            return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * a * x * x);
        }
        case 20: {
            float s = sigmoidf(x);
            return s * (1.0f + x * (1.0f - s));
        }
        case 21: return sigmoidf(x);
        case 22: {
            float d = 1.0f + fabsf(x);
            return 1.0f / (d * d);
        }
        case 23: {
            float t = tanhf(softplusf(x));
            return t + x * (1.0f - t * t) * sigmoidf(x);
        }
        case 24: return 1.0f - sigmoidf(x);
        case 25: return (x > -3.0f && x < 3.0f) ? 1.0f / 6.0f : 0.0f;
        case 26: return x <= -3.0f ? 0.0f : (x >= 3.0f ? 1.0f : (2.0f * x + 3.0f) / 6.0f);
        case 27: return 0.0f;
        case 28: return (x >= u.p0 && x <= u.p1) ? 1.0f : 0.0f;
        case 29: return u.p0 * powf(x, u.p1);                // p1 = p − 1 (rounded from f64 on the host)
        case 30: return u.p0;
        default: return tlx_nan();
    }
}

// out[i] = f(x[i]); x, out [n].
extern "C" __global__ void unary_f32(const float* x, float* out, i64 n, UnaryParams u) {
    GRID_LOOP(i, n) out[i] = unary_forward(u, x[i]);
}

// grad_in[i] = grad_out[i]·f'(x[i], y[i]); all [n]. `x` or `y` may be null when the row's
// derivative does not read it (the host checks).
extern "C" __global__ void unary_backward_f32(const float* x, const float* y, const float* grad_out,
                                              float* grad_in, i64 n, UnaryParams u) {
    GRID_LOOP(i, n) {
        float xv = x ? x[i] : 0.0f;
        float yv = y ? y[i] : 0.0f;
        grad_in[i] = grad_out[i] * unary_derivative(u, xv, yv);
    }
}

// ---- binary ----

__device__ __forceinline__ float binary_apply(int op, float a, float b) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return powf(a, b);
        case 5: return (tlx_isnan(a) || a >= b) ? a : b;  // maximum: NaN propagates, ties → a
        case 6: return (tlx_isnan(a) || a <= b) ? a : b;  // minimum
        default: return tlx_nan();
    }
}

// (∂/∂a, ∂/∂b) at (a, b) with output y.
__device__ __forceinline__ void binary_partials(int op, float a, float b, float y, float* da, float* db) {
    switch (op) {
        case 0: *da = 1.0f; *db = 1.0f; break;
        case 1: *da = 1.0f; *db = -1.0f; break;
        case 2: *da = b; *db = a; break;
        case 3: *da = 1.0f / b; *db = -a / (b * b); break;
        case 4:
            *da = b * powf(a, b - 1.0f);
            *db = a > 0.0f ? y * logf(a) : 0.0f;
            break;
        case 5: if (a >= b) { *da = 1.0f; *db = 0.0f; } else { *da = 0.0f; *db = 1.0f; } break;
        case 6: if (a <= b) { *da = 1.0f; *db = 0.0f; } else { *da = 0.0f; *db = 1.0f; } break;
        default: *da = tlx_nan(); *db = tlx_nan();
    }
}

// out[i] = op(a[i], b[i]), both dense [n].
extern "C" __global__ void binary_dense_f32(const float* a, const float* b, float* out, i64 n, int op) {
    GRID_LOOP(i, n) out[i] = binary_apply(op, a[i], b[i]);
}

// out (dense, the broadcast shape l.dims, n elements) = op(a, b) with a and b walked through
// their broadcast strides.
extern "C" __global__ void binary_strided_f32(const float* a, const float* b, float* out, i64 n, Strided2 l,
                                              int op) {
    GRID_LOOP(i, n) {
        i64 oa, ob;
        strided2_offsets(l, i, &oa, &ob);
        out[i] = binary_apply(op, a[oa], b[ob]);
    }
}

// Full-shape partial gradients of a binary op (broadcasting is undone afterwards by a sum
// over the broadcast axes): grad_a[i] = g[i]·∂op/∂a, grad_b[i] = g[i]·∂op/∂b; y, g, grad_a,
// grad_b dense [n] (the broadcast shape l.dims), a and b walked through their strides.
// Either output may be null; y (the forward output) may be null unless op is pow.
extern "C" __global__ void binary_backward_f32(const float* a, const float* b, const float* y, const float* g,
                                               float* grad_a, float* grad_b, i64 n, Strided2 l, int op) {
    GRID_LOOP(i, n) {
        i64 oa, ob;
        strided2_offsets(l, i, &oa, &ob);
        float da, db;
        binary_partials(op, a[oa], b[ob], y ? y[i] : 0.0f, &da, &db);
        if (grad_a) grad_a[i] = g[i] * da;
        if (grad_b) grad_b[i] = g[i] * db;
    }
}

// ---- comparisons and where ----

__device__ __forceinline__ bool compare(int op, float a, float b) {
    switch (op) {
        case 0: return a == b;
        case 1: return a != b;
        case 2: return a < b;
        case 3: return a <= b;
        case 4: return a > b;
        default: return a >= b;
    }
}

// mask[i] = (a op b) as u8 over broadcast layouts; mask dense [n].
extern "C" __global__ void compare_f32(const float* a, const float* b, u8* mask, i64 n, Strided2 l, int op) {
    GRID_LOOP(i, n) {
        i64 oa, ob;
        strided2_offsets(l, i, &oa, &ob);
        mask[i] = compare(op, a[oa], b[ob]) ? 1 : 0;
    }
}

// The same comparison for the other element types, exactly (no conversion): integer labels
// and indices (accuracy metrics), f64.
template <typename T>
__device__ __forceinline__ void compare_typed(const T* a, const T* b, u8* mask, i64 n, const Strided2& l,
                                              int op) {
    GRID_LOOP(i, n) {
        i64 oa, ob;
        strided2_offsets(l, i, &oa, &ob);
        T x = a[oa], y = b[ob];
        bool r;
        switch (op) {
            case 0: r = x == y; break;
            case 1: r = x != y; break;
            case 2: r = x < y; break;
            case 3: r = x <= y; break;
            case 4: r = x > y; break;
            default: r = x >= y; break;
        }
        mask[i] = r ? 1 : 0;
    }
}

extern "C" __global__ void compare_f64(const double* a, const double* b, u8* mask, i64 n, Strided2 l, int op) {
    compare_typed(a, b, mask, n, l, op);
}
extern "C" __global__ void compare_i64(const i64* a, const i64* b, u8* mask, i64 n, Strided2 l, int op) {
    compare_typed(a, b, mask, n, l, op);
}
extern "C" __global__ void compare_i32(const int* a, const int* b, u8* mask, i64 n, Strided2 l, int op) {
    compare_typed(a, b, mask, n, l, op);
}
extern "C" __global__ void compare_u8(const u8* a, const u8* b, u8* mask, i64 n, Strided2 l, int op) {
    compare_typed(a, b, mask, n, l, op);
}

// out[i] = cond[i] ? a : b; cond dense [n], a and b broadcast.
extern "C" __global__ void where_f32(const u8* cond, const float* a, const float* b, float* out, i64 n,
                                     Strided2 l) {
    GRID_LOOP(i, n) {
        i64 oa, ob;
        strided2_offsets(l, i, &oa, &ob);
        out[i] = cond[i] ? a[oa] : b[ob];
    }
}

// ---- copies ----

// dst (dense [n]) = the elements of the strided view l over src, row-major. Element-size
// generic: 8-, 4-, 2- and 1-byte variants.
extern "C" __global__ void gather_strided_u64(const u64* src, u64* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[i] = src[strided_offset(l, i)];
}
extern "C" __global__ void gather_strided_u32(const u32* src, u32* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[i] = src[strided_offset(l, i)];
}
extern "C" __global__ void gather_strided_u16(const u16* src, u16* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[i] = src[strided_offset(l, i)];
}
extern "C" __global__ void gather_strided_u8(const u8* src, u8* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[i] = src[strided_offset(l, i)];
}

// The inverse of gather: the elements of the strided view l over dst (which must not overlap
// itself) = src (dense [n], row-major). Writes only the view's elements.
extern "C" __global__ void scatter_strided_u64(const u64* src, u64* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[strided_offset(l, i)] = src[i];
}
extern "C" __global__ void scatter_strided_u32(const u32* src, u32* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[strided_offset(l, i)] = src[i];
}
extern "C" __global__ void scatter_strided_u16(const u16* src, u16* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[strided_offset(l, i)] = src[i];
}
extern "C" __global__ void scatter_strided_u8(const u8* src, u8* dst, i64 n, Strided l) {
    GRID_LOOP(i, n) dst[strided_offset(l, i)] = src[i];
}

// x[i] = v, [n].
extern "C" __global__ void fill_f32(float* x, i64 n, float v) {
    GRID_LOOP(i, n) x[i] = v;
}

// out[r, c] = bias[c] for rows of length c (out [rows·c]); with accumulate: out += bias.
extern "C" __global__ void add_row_vector_f32(float* out, const float* bias, i64 n, int c, int accumulate) {
    GRID_LOOP(i, n) {
        float b = bias[i % c];
        out[i] = accumulate ? out[i] + b : b;
    }
}
