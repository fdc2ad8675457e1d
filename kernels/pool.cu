// pool.cu: 2-D max and average pooling on NHWC [n, h, w, c] (tlx_core::Pool2dGeometry,
// passed by value as PoolGeom), forward and backward.
//
// Semantics are tlx_cpu::reference's: windows are clipped to the input (Keras same/valid with
// the extra padding at the bottom/right), padded cells never count; max forward propagates
// NaN; max backward gives each window's gradient to its FIRST maximum in row-major window
// order; average pooling divides by the number of real cells. Both backward kernels gather per
// input cell over the windows that contain it (no atomics, deterministic).

#include "common.cuh"

struct PoolGeom {
    int n, h, w, c;
    int kh, kw, stride_h, stride_w;
    int pad_top, pad_left, out_h, out_w;
};

// Window [y0, y1) × [x0, x1) of output (oy, ox), clipped to the input.
__device__ __forceinline__ void window(const PoolGeom& g, int oy, int ox, int* y0, int* y1, int* x0, int* x1) {
    int sy = oy * g.stride_h - g.pad_top, sx = ox * g.stride_w - g.pad_left;
    *y0 = max(sy, 0);
    *y1 = max(min(sy + g.kh, g.h), 0);
    *x0 = max(sx, 0);
    *x1 = max(min(sx + g.kw, g.w), 0);
}

// The outputs [lo, hi) along one axis whose windows contain input index i.
__device__ __forceinline__ void containing(int i, int k, int stride, int pad, int out, int* lo, int* hi) {
    int p = i + pad;
    int l = p + 1 > k ? (p + 1 - k + stride - 1) / stride : 0;
    int h = min(p / stride + 1, out);
    *lo = l;
    *hi = max(h, l);
}

// out [n, out_h, out_w, c] = max over each window of x [n, h, w, c] (−inf for an empty window).
extern "C" __global__ void max_pool_forward_f32(const float* x, float* out, PoolGeom g) {
    GRID_LOOP(e, (i64)g.n * g.out_h * g.out_w * g.c) {
        int c = (int)(e % g.c);
        i64 p = e / g.c;
        int ox = (int)(p % g.out_w);
        i64 t = p / g.out_w;
        int oy = (int)(t % g.out_h);
        i64 img = t / g.out_h;
        int y0, y1, x0, x1;
        window(g, oy, ox, &y0, &y1, &x0, &x1);
        float m = -tlx_inf();
        for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) {
                float v = x[((img * g.h + iy) * g.w + ix) * g.c + c];
                if (v > m || tlx_isnan(v)) m = v;
            }
        out[e] = m;
    }
}

// out = mean over the real cells of each window; x [n, h, w, c], out [n, out_h, out_w, c].
extern "C" __global__ void avg_pool_forward_f32(const float* x, float* out, PoolGeom g) {
    GRID_LOOP(e, (i64)g.n * g.out_h * g.out_w * g.c) {
        int c = (int)(e % g.c);
        i64 p = e / g.c;
        int ox = (int)(p % g.out_w);
        i64 t = p / g.out_w;
        int oy = (int)(t % g.out_h);
        i64 img = t / g.out_h;
        int y0, y1, x0, x1;
        window(g, oy, ox, &y0, &y1, &x0, &x1);
        float s = 0.0f;
        for (int iy = y0; iy < y1; ++iy)
            for (int ix = x0; ix < x1; ++ix) s += x[((img * g.h + iy) * g.w + ix) * g.c + c];
        out[e] = s / (float)((y1 - y0) * (x1 - x0));
    }
}

// grad_in [n, h, w, c] (overwritten): Σ dY over the windows whose first maximum is this cell;
// x [n, h, w, c], dy [n, out_h, out_w, c].
extern "C" __global__ void max_pool_backward_f32(const float* x, const float* dy, float* grad_in, PoolGeom g) {
    GRID_LOOP(e, (i64)g.n * g.h * g.w * g.c) {
        int c = (int)(e % g.c);
        i64 p = e / g.c;
        int ix = (int)(p % g.w);
        i64 t = p / g.w;
        int iy = (int)(t % g.h);
        i64 img = t / g.h;
        int oy_lo, oy_hi, ox_lo, ox_hi;
        containing(iy, g.kh, g.stride_h, g.pad_top, g.out_h, &oy_lo, &oy_hi);
        containing(ix, g.kw, g.stride_w, g.pad_left, g.out_w, &ox_lo, &ox_hi);
        float acc = 0.0f;
        for (int oy = oy_lo; oy < oy_hi; ++oy)
            for (int ox = ox_lo; ox < ox_hi; ++ox) {
                int y0, y1, x0, x1;
                window(g, oy, ox, &y0, &y1, &x0, &x1);
                // The window's first maximum: the first cell, then strictly greater ones.
                int by = y0, bx = x0;
                float m = x[((img * g.h + y0) * g.w + x0) * g.c + c];
                for (int yy = y0; yy < y1; ++yy)
                    for (int xx = x0; xx < x1; ++xx) {
                        float v = x[((img * g.h + yy) * g.w + xx) * g.c + c];
                        if (v > m) {
                            m = v;
                            by = yy;
                            bx = xx;
                        }
                    }
                if (by == iy && bx == ix) acc += dy[((img * g.out_h + oy) * g.out_w + ox) * g.c + c];
            }
        grad_in[e] = acc;
    }
}

// grad_in [n, h, w, c] (overwritten) = Σ over the windows containing the cell of dY / (real
// cells); dy [n, out_h, out_w, c].
extern "C" __global__ void avg_pool_backward_f32(const float* dy, float* grad_in, PoolGeom g) {
    GRID_LOOP(e, (i64)g.n * g.h * g.w * g.c) {
        int c = (int)(e % g.c);
        i64 p = e / g.c;
        int ix = (int)(p % g.w);
        i64 t = p / g.w;
        int iy = (int)(t % g.h);
        i64 img = t / g.h;
        int oy_lo, oy_hi, ox_lo, ox_hi;
        containing(iy, g.kh, g.stride_h, g.pad_top, g.out_h, &oy_lo, &oy_hi);
        containing(ix, g.kw, g.stride_w, g.pad_left, g.out_w, &ox_lo, &ox_hi);
        float acc = 0.0f;
        for (int oy = oy_lo; oy < oy_hi; ++oy)
            for (int ox = ox_lo; ox < ox_hi; ++ox) {
                int y0, y1, x0, x1;
                window(g, oy, ox, &y0, &y1, &x0, &x1);
                float count = (float)((y1 - y0) * (x1 - x0));
                acc += dy[((img * g.out_h + oy) * g.out_w + ox) * g.c + c] / count;
            }
        grad_in[e] = acc;
    }
}
