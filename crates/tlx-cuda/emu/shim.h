// Host emulation of the CUDA C subset the kernels use. Blocks run one after another; the
// threads of a block run sequentially, or as real threads (with barriers for __syncthreads
// and warp shuffles) for kernels that synchronise.
#pragma once
#include <cmath>
#include <math.h>
#include <cstring>
#include <cstdint>
#include <barrier>
#include <map>
#include <string>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct uint4 { unsigned x, y, z, w; };
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace emu {
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
extern std::barrier<>* block_barrier;
extern std::barrier<>* warp_barrier[32];
extern unsigned long long exch[32][32];
using Wrapper = void (*)(void**);
struct Kernel { Wrapper fn; bool threaded; };
std::map<std::string, Kernel>& registry();
struct Reg { Reg(const char* name, Wrapper fn, bool threaded) { registry()[name] = Kernel{fn, threaded}; } };
template <class T> T shfl_xor(T v, int m) {
    int lane = emu::threadIdx.x & 31, w = emu::threadIdx.x >> 5;
    static_assert(sizeof(T) <= 8, "");
    std::memcpy(&exch[w][lane], &v, sizeof(T));
    warp_barrier[w]->arrive_and_wait();
    T r;
    std::memcpy(&r, &exch[w][lane ^ m], sizeof(T));
    warp_barrier[w]->arrive_and_wait();
    return r;
}
}  // namespace emu

#define threadIdx emu::threadIdx
#define blockIdx emu::blockIdx
#define blockDim emu::blockDim
#define gridDim emu::gridDim
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int m) { return emu::shfl_xor(v, m); }
inline double __shfl_xor_sync(unsigned, double v, int m) { return emu::shfl_xor(v, m); }

template <class T> inline T min(T a, T b) { return a < b ? a : b; }
template <class T> inline T max(T a, T b) { return a > b ? a : b; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

// f32 → f16 bits, round to nearest even (the `half` crate's algorithm).
inline unsigned short emu_f32_to_f16(float value) {
    unsigned x = __float_as_uint(value);
    unsigned sign = x & 0x80000000u, exp = x & 0x7F800000u, man = x & 0x007FFFFFu;
    if (exp == 0x7F800000u) {
        unsigned nan_bit = man == 0 ? 0 : 0x0200u;
        return (unsigned short)((sign >> 16) | 0x7C00u | nan_bit | (man >> 13));
    }
    unsigned half_sign = sign >> 16;
    int unbiased_exp = (int)(exp >> 23) - 127;
    int half_exp = unbiased_exp + 15;
    if (half_exp >= 0x1F) return (unsigned short)(half_sign | 0x7C00u);
    if (half_exp <= 0) {
        if (14 - half_exp > 24) return (unsigned short)half_sign;
        man = man | 0x00800000u;
        unsigned half_man = man >> (14 - half_exp);
        unsigned round_bit = 1u << (13 - half_exp);
        if ((man & round_bit) != 0 && (man & (3 * round_bit - 1)) != 0) half_man += 1;
        return (unsigned short)(half_sign | half_man);
    }
    unsigned half_exp_bits = (unsigned)half_exp << 10;
    unsigned half_man = man >> 13;
    unsigned round_bit = 0x00001000u;
    if ((man & round_bit) != 0 && (man & (3 * round_bit - 1)) != 0)
        return (unsigned short)((half_sign | half_exp_bits | half_man) + 1);
    return (unsigned short)(half_sign | half_exp_bits | half_man);
}
inline float emu_f16_to_f32(unsigned short i) {
    unsigned sign = (unsigned)(i & 0x8000u) << 16, exp = i & 0x7C00u, man = i & 0x03FFu;
    if ((i & 0x7FFFu) == 0) return __uint_as_float(sign);
    if (exp == 0x7C00u) return __uint_as_float(man == 0 ? (sign | 0x7F800000u) : (sign | 0x7FC00000u | (man << 13)));
    if (exp == 0) {
        float m = (float)man * (1.0f / 16777216.0f);  // man · 2^-24
        return sign ? -m : m;
    }
    unsigned e = ((exp >> 10) - 15 + 127) << 23;
    return __uint_as_float(sign | e | (man << 13));
}
