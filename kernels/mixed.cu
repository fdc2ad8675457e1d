// mixed.cu: mixed-precision helpers. f16 and bf16 tensors are stored as raw 16-bit patterns
// (u16); casts round to nearest even (as the `half` crate). Loss scaling for f16 training:
// scale the loss (or any tensor) by S before backward, then unscale the gradients by 1/S while
// checking that every value is finite (a non-finite value sets *found_inf, and the step is
// skipped and S lowered by the host's LossScaler).

#include "common.cuh"

// dst[i] = f16(src[i]), [n].
extern "C" __global__ void cast_f32_to_f16(const float* src, u16* dst, i64 n) {
    GRID_LOOP(i, n) dst[i] = f32_to_f16_bits(src[i]);
}
// dst[i] = f32(src[i]) (exact), [n]; the bf16 pair likewise.
extern "C" __global__ void cast_f16_to_f32(const u16* src, float* dst, i64 n) {
    GRID_LOOP(i, n) dst[i] = f16_bits_to_f32(src[i]);
}
extern "C" __global__ void cast_f32_to_bf16(const float* src, u16* dst, i64 n) {
    GRID_LOOP(i, n) dst[i] = f32_to_bf16_bits(src[i]);
}
extern "C" __global__ void cast_bf16_to_f32(const u16* src, float* dst, i64 n) {
    GRID_LOOP(i, n) dst[i] = bf16_bits_to_f32(src[i]);
}

// x[i] ← x[i]·s, [n].
extern "C" __global__ void scale_f32(float* x, i64 n, float s) {
    GRID_LOOP(i, n) x[i] = x[i] * s;
}

// g[i] ← g[i]·inv_scale; *found_inf = 1 if any result is not finite. [n]
extern "C" __global__ void unscale_check_f32(float* g, i64 n, float inv_scale, int* found_inf) {
    bool bad = false;
    GRID_LOOP(i, n) {
        float v = g[i] * inv_scale;
        g[i] = v;
        bad |= !tlx_isfinite(v);
    }
    if (bad) *found_inf = 1;  // every writer stores the same value
}

// dst[i] = f32(src[i])·inv_scale from f16 gradients, with the same finiteness check.
extern "C" __global__ void unscale_check_f16_to_f32(const u16* src, float* dst, i64 n, float inv_scale, int* found_inf) {
    bool bad = false;
    GRID_LOOP(i, n) {
        float v = f16_bits_to_f32(src[i]) * inv_scale;
        dst[i] = v;
        bad |= !tlx_isfinite(v);
    }
    if (bad) *found_inf = 1;
}
