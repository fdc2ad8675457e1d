// dropout.cu: dropout whose mask is a pure function of (seed, offset, element index), from the
// counter-based Philox4x32-10 generator, so the backward pass regenerates the mask instead of
// storing it. tlx-cuda's `philox` module has the same generator on the host (tests check the
// mask bit for bit).
//
// Element i uses word i % 4 of Philox(counter = (i / 4 low, i / 4 high, offset low, offset high),
// key = (seed low, seed high)); its uniform is (word >> 8)·2⁻²⁴ in [0, 1). The element is kept
// when uniform ≥ rate (tlx-tensor's rule), and kept elements are scaled by 1/(1 − rate).

#include "common.cuh"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct PhiloxKey {
    u32 seed_lo, seed_hi, offset_lo, offset_hi;
};

__device__ __forceinline__ uint4 philox4x32_10(uint4 ctr, u32 k0, u32 k1) {
    for (int round = 0; round < 10; ++round) {
        u32 hi0 = __umulhi(PHILOX_M0, ctr.x), lo0 = PHILOX_M0 * ctr.x;
        u32 hi1 = __umulhi(PHILOX_M1, ctr.z), lo1 = PHILOX_M1 * ctr.z;
        ctr = make_uint4(hi1 ^ ctr.y ^ k0, lo1, hi0 ^ ctr.w ^ k1, lo0);
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    return ctr;
}

__device__ __forceinline__ float philox_uniform(const PhiloxKey& k, i64 i) {
    u64 block = (u64)i >> 2;
    uint4 r = philox4x32_10(make_uint4((u32)block, (u32)(block >> 32), k.offset_lo, k.offset_hi), k.seed_lo, k.seed_hi);
    u32 word = (i & 3) == 0 ? r.x : ((i & 3) == 1 ? r.y : ((i & 3) == 2 ? r.z : r.w));
    return (float)(word >> 8) * (1.0f / 16777216.0f);
}

// out[i] = keep(i) ? x[i]·scale : 0; x, out [n]. Also serves the backward pass (x = dY).
extern "C" __global__ void dropout_f32(const float* x, float* out, i64 n, float rate, float scale, PhiloxKey k) {
    GRID_LOOP(i, n) out[i] = philox_uniform(k, i) >= rate ? x[i] * scale : 0.0f;
}

// mask[i] = keep(i) as u8, [n].
extern "C" __global__ void dropout_mask_u8(u8* mask, i64 n, float rate, PhiloxKey k) {
    GRID_LOOP(i, n) mask[i] = philox_uniform(k, i) >= rate ? 1 : 0;
}

// out[i] = uniform(i) in [0, 1), [n] (random tensors on the device).
extern "C" __global__ void uniform_f32(float* out, i64 n, PhiloxKey k) {
    GRID_LOOP(i, n) out[i] = philox_uniform(k, i);
}
