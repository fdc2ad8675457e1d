// optim.cu: the fused optimizer updates, one kernel per rule, one pass over each variable
// (weight, gradient and slots in one loop), with Keras 3's semantics exactly as tlx-optim's
// rules: gradient pre-processing (global_clipnorm scale, clipnorm, clipvalue) and decoupled
// weight decay are folded in. Every per-step scalar is computed on the host in f32 in
// tlx-optim's operand order (tlx-cuda's optim.rs); this file is compiled with --fmad=false so
// each f32 operation rounds like the CPU's.
//
// All arrays are dense [n] and updated in place.

#include "common.cuh"

// Gradient pre-processing and weight decay of one variable.
// mode 0: g; 1: g·a (global_clipnorm scale); 2: (g·a)/b (clipnorm: a = clipnorm,
// b = max(‖g‖, clipnorm)); 3: clip(g, −a, a), NaN propagating. decay: w ← w − w·wd·lr.
struct Prep {
    int mode;
    float a, b;
    int decay;
    float wd, lr;
};

__device__ __forceinline__ float prep_grad(const Prep& p, float g) {
    switch (p.mode) {
        case 1: return g * p.a;
        case 2: return (g * p.a) / p.b;
        case 3: return g > p.a ? p.a : (g < -p.a ? -p.a : g);
        default: return g;
    }
}
__device__ __forceinline__ float prep_weight(const Prep& p, float w) { return p.decay ? w - w * p.wd * p.lr : w; }

// SGD: w ← w − g·lr; with momentum μ: m ← m·μ − g·lr, w ← w + m, or (Nesterov)
// w ← w + (m·μ − g·lr). m may be null (no momentum).
extern "C" __global__ void sgd_f32(float* w, const float* g, float* m, i64 n, float lr, float mu, int nesterov, Prep p) {
    GRID_LOOP(i, n) {
        float gi = prep_grad(p, g[i]);
        float wd = prep_weight(p, w[i]);
        if (!m) {
            w[i] = wd - gi * lr;
        } else {
            float mn = m[i] * mu - gi * lr;
            m[i] = mn;
            w[i] = nesterov ? wd + (mn * mu - gi * lr) : wd + mn;
        }
    }
}

// Adagrad: a ← a + g², w ← w − (lr·g)/√(a + ε).
extern "C" __global__ void adagrad_f32(float* w, const float* g, float* acc, i64 n, float lr, float eps, Prep p) {
    GRID_LOOP(i, n) {
        float gi = prep_grad(p, g[i]);
        float wd = prep_weight(p, w[i]);
        float an = acc[i] + gi * gi;
        acc[i] = an;
        w[i] = wd - (lr * gi) / sqrtf(an + eps);
    }
}

struct RmsPropArgs {
    float lr, rho, one_minus_rho, eps, momentum;
};

// RMSprop: v ← ρ·v + (1−ρ)·g²; centered (avg non-null): ḡ ← ρ·ḡ + (1−ρ)·g, den = v − ḡ² + ε,
// else den = v + ε; inc = (lr·g)/√den; momentum (m non-null): m ← μ·m + inc, w ← w − m;
// else w ← w − inc.
extern "C" __global__ void rmsprop_f32(float* w, const float* g, float* v, float* m, float* avg, i64 n, RmsPropArgs a,
                                       Prep p) {
    GRID_LOOP(i, n) {
        float gi = prep_grad(p, g[i]);
        float wd = prep_weight(p, w[i]);
        float vn = a.rho * v[i] + a.one_minus_rho * (gi * gi);
        v[i] = vn;
        float den;
        if (avg) {
            float an = a.rho * avg[i] + a.one_minus_rho * gi;
            avg[i] = an;
            den = vn - an * an + a.eps;
        } else {
            den = vn + a.eps;
        }
        float inc = (a.lr * gi) / sqrtf(den);
        if (m) {
            float mn = a.momentum * m[i] + inc;
            m[i] = mn;
            w[i] = wd - mn;
        } else {
            w[i] = wd - inc;
        }
    }
}

struct AdamArgs {
    float alpha;  // lr·√(1 − β2^t)/(1 − β1^t)
    float c1, c2; // 1 − β1, 1 − β2
    float eps;
};

// Adam: m ← m + (g − m)·c1, v ← v + (g² − v)·c2; AMSGrad (vhat non-null): v̂ ← max(v̂, v);
// w ← w − (m·α)/(√v + ε).
extern "C" __global__ void adam_f32(float* w, const float* g, float* m, float* v, float* vhat, i64 n, AdamArgs a,
                                    Prep p) {
    GRID_LOOP(i, n) {
        float gi = prep_grad(p, g[i]);
        float wd = prep_weight(p, w[i]);
        float mn = m[i] + (gi - m[i]) * a.c1;
        float vn = v[i] + (gi * gi - v[i]) * a.c2;
        m[i] = mn;
        v[i] = vn;
        float den = vn;
        if (vhat) {
            float vh = vhat[i];
            den = (tlx_isnan(vh) || vh > vn) ? vh : vn;
            vhat[i] = den;
        }
        w[i] = wd - (mn * a.alpha) / (sqrtf(den) + a.eps);
    }
}

struct AdamaxArgs {
    float lr, one_minus_b1p, c1, b2, eps;
};

// Adamax: m ← m + (g − m)·c1, u ← max(β2·u, |g|), w ← w − (lr·m)/((1 − β1^t)·(u + ε)).
extern "C" __global__ void adamax_f32(float* w, const float* g, float* m, float* u, i64 n, AdamaxArgs a, Prep p) {
    GRID_LOOP(i, n) {
        float gi = prep_grad(p, g[i]);
        float wd = prep_weight(p, w[i]);
        float mn = m[i] + (gi - m[i]) * a.c1;
        float bu = a.b2 * u[i], ag = fabsf(gi);
        float un = (tlx_isnan(bu) || bu > ag) ? bu : ag;
        m[i] = mn;
        u[i] = un;
        w[i] = wd - (a.lr * mn) / (a.one_minus_b1p * (un + a.eps));
    }
}

struct NadamArgs {
    float lr, c1, c2;
    float u_t_1;    // μ_{t+1}
    float d1;       // 1 − Π·μ_{t+1}
    float k;        // 1 − μ_t
    float d2;       // 1 − Π
    float one_b2p;  // 1 − β2^t
    float eps;
};

// Nadam (Keras 3): m, v as Adam; m̂ = (μ_{t+1}·m)/d1 + (k·g)/d2, v̂ = v/(1 − β2^t),
// w ← w − (m̂·lr)/(√v̂ + ε).
extern "C" __global__ void nadam_f32(float* w, const float* g, float* m, float* v, i64 n, NadamArgs a, Prep p) {
    GRID_LOOP(i, n) {
        float gi = prep_grad(p, g[i]);
        float wd = prep_weight(p, w[i]);
        float mn = m[i] + (gi - m[i]) * a.c1;
        float vn = v[i] + (gi * gi - v[i]) * a.c2;
        m[i] = mn;
        v[i] = vn;
        float m_hat = (a.u_t_1 * mn) / a.d1 + (a.k * gi) / a.d2;
        float v_hat = vn / a.one_b2p;
        w[i] = wd - (m_hat * a.lr) / (sqrtf(v_hat) + a.eps);
    }
}
