// index.cu: element-type conversions between the integer and float types, and the index ops
// of training: gather along an axis (the picked log-probabilities of a sparse cross-entropy)
// and its gradient, scatter-add, computed as a gather per output element (deterministic, no
// atomics), plus the range check of integer indices.

#include "common.cuh"

// ---- conversions: D(S) as tlx_cpu::copy::cast does it, through double; to an integer type
// Rust's `as` (truncation toward zero, saturating, NaN → 0) ----

template <typename D> __device__ __forceinline__ D to_int_sat(double v, double lo, double hi) {
    if (v != v) return (D)0;
    if (v <= lo) return (D)lo;
    if (v >= hi) return (D)hi;
    return (D)v;
}
__device__ __forceinline__ u8 conv_u8(double v) { return to_int_sat<u8>(v, 0.0, 255.0); }
__device__ __forceinline__ int conv_i32(double v) { return to_int_sat<int>(v, -2147483648.0, 2147483647.0); }
__device__ __forceinline__ i64 conv_i64(double v) {
    // 2^63 is not an i64: values at or above it saturate to the maximum.
    if (v != v) return 0;
    if (v <= -9223372036854775808.0) return (i64)(-9223372036854775807LL - 1);
    if (v >= 9223372036854775808.0) return 9223372036854775807LL;
    return (i64)v;
}
__device__ __forceinline__ float conv_f32(double v) { return (float)v; }
__device__ __forceinline__ double conv_f64(double v) { return v; }

#define CONVERT(SN, ST, DN, DT)                                                                    \
    extern "C" __global__ void convert_##SN##_to_##DN(const ST* src, DT* dst, i64 n) {             \
        GRID_LOOP(i, n) dst[i] = conv_##DN((double)src[i]);                                         \
    }

CONVERT(u8, u8, i32, int)
CONVERT(u8, u8, i64, i64)
CONVERT(u8, u8, f32, float)
CONVERT(u8, u8, f64, double)
CONVERT(i32, int, u8, u8)
CONVERT(i32, int, i64, i64)
CONVERT(i32, int, f32, float)
CONVERT(i32, int, f64, double)
CONVERT(i64, i64, u8, u8)
CONVERT(i64, i64, i32, int)
CONVERT(i64, i64, f32, float)
CONVERT(i64, i64, f64, double)
CONVERT(f32, float, u8, u8)
CONVERT(f32, float, i32, int)
CONVERT(f32, float, i64, i64)
CONVERT(f32, float, f64, double)
CONVERT(f64, double, u8, u8)
CONVERT(f64, double, i32, int)
CONVERT(f64, double, i64, i64)
CONVERT(f64, double, f32, float)

// ---- index ops ----

// The geometry of gather/scatter-add along `axis`: the dense indices have shape `idx_dims`
// (rank `rank`), the dense source/target `x_dims` (the same rank; off the axis no smaller).
struct IndexGeom {
    int rank;
    int axis;
    i64 idx_dims[TLX_MAX_RANK];
    i64 x_dims[TLX_MAX_RANK];
};

// *bad = 1 when some idx[i] is outside [0, bound) (never cleared here).
extern "C" __global__ void index_check_i64(const i64* idx, i64 n, i64 bound, int* bad) {
    bool b = false;
    GRID_LOOP(i, n) b |= idx[i] < 0 || idx[i] >= bound;
    if (b) *bad = 1;  // every writer stores the same value
}

// out[p] = x[the position of index element p with its axis coordinate replaced by idx[p]];
// out and idx have idx_dims. An index outside the axis gives NaN (index_check_i64 reports it).
extern "C" __global__ void gather_axis_f32(const float* x, const i64* idx, float* out, i64 n, IndexGeom g) {
    GRID_LOOP(p, n) {
        i64 rest = p, pos = 0, stride = 1;
        bool ok = true;
        for (int d = g.rank - 1; d >= 0; --d) {
            i64 c = rest % g.idx_dims[d];
            rest /= g.idx_dims[d];
            if (d == g.axis) {
                c = idx[p];
                ok = c >= 0 && c < g.x_dims[d];
            }
            pos += c * stride;
            stride *= g.x_dims[d];
        }
        out[p] = ok ? x[pos] : tlx_nan();
    }
}

// out[q] = base[q] + Σ src[p] over the index elements p that gather would read x[q] from, added
// in index order (as the CPU's scatter_add); out and base have x_dims, src and idx idx_dims.
extern "C" __global__ void scatter_add_axis_f32(const float* base, const i64* idx, const float* src, float* out,
                                                i64 n, IndexGeom g) {
    GRID_LOOP(q, n) {
        i64 rest = q, first = 0, stride = 1, axis_stride = 1, coord = 0;
        bool inside = true;
        for (int d = g.rank - 1; d >= 0; --d) {
            i64 c = rest % g.x_dims[d];
            rest /= g.x_dims[d];
            if (d == g.axis) {
                coord = c;
                axis_stride = stride;
            } else {
                inside = inside && c < g.idx_dims[d];
                first += c * stride;
            }
            stride *= g.idx_dims[d];
        }
        float acc = base[q];
        if (inside) {
            for (i64 j = 0; j < g.idx_dims[g.axis]; ++j) {
                i64 p = first + j * axis_stride;
                if (idx[p] == coord) acc += src[p];
            }
        }
        out[q] = acc;
    }
}
