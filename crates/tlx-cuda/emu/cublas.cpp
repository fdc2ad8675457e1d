// A fake libcublas.so.12: GemmEx / GemmStridedBatchedEx with cuBLAS's column-major
// semantics, f64 accumulation, f32/f16/bf16 operands and outputs.
#include "shim.h"
#include <cstdio>
#pragma GCC visibility push(default)
extern "C" {
typedef int cublasStatus_t;
cublasStatus_t cublasCreate_v2(void** h) { *h = new int(0); return 0; }
cublasStatus_t cublasDestroy_v2(void* h) { delete (int*)h; return 0; }
cublasStatus_t cublasSetStream_v2(void*, void*) { return 0; }
static double load(const void* p, int t, long long i) {
    if (t == 0) return ((const float*)p)[i];
    unsigned short b = ((const unsigned short*)p)[i];
    if (t == 2) return emu_f16_to_f32(b);
    if (t == 14) return __uint_as_float((unsigned)b << 16);
    std::abort();
}
static void store(void* p, int t, long long i, double v) {
    float f = (float)v;
    if (t == 0) { ((float*)p)[i] = f; return; }
    if (t == 2) { ((unsigned short*)p)[i] = emu_f32_to_f16(f); return; }
    if (t == 14) {
        unsigned u = __float_as_uint(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) { ((unsigned short*)p)[i] = (unsigned short)((u >> 16) | 0x40); return; }
        u += 0x7fffu + ((u >> 16) & 1u);
        ((unsigned short*)p)[i] = (unsigned short)(u >> 16);
        return;
    }
    std::abort();
}
static void gemm(int ta, int tb, int m, int n, int k, const float* alpha, const void* A, int at, int lda,
                 const void* B, int bt, int ldb, const float* beta, void* C, int ct, int ldc) {
    for (int j = 0; j < n; ++j)
        for (int i = 0; i < m; ++i) {
            double acc = 0;
            for (int p = 0; p < k; ++p) {
                double a = ta ? load(A, at, p + (long long)i * lda) : load(A, at, i + (long long)p * lda);
                double b = tb ? load(B, bt, j + (long long)p * ldb) : load(B, bt, p + (long long)j * ldb);
                acc += a * b;
            }
            long long ci = i + (long long)j * ldc;
            double v = *alpha * acc + (*beta == 0.0f ? 0.0 : *beta * load(C, ct, ci));
            store(C, ct, ci, v);
        }
}
cublasStatus_t cublasGemmEx(void*, int ta, int tb, int m, int n, int k, const void* alpha, const void* A, int at,
                            int lda, const void* B, int bt, int ldb, const void* beta, void* C, int ct, int ldc, int, int) {
    if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) { std::fprintf(stderr, "cublasGemmEx: bad ld\n"); return 7; }
    gemm(ta, tb, m, n, k, (const float*)alpha, A, at, lda, B, bt, ldb, (const float*)beta, C, ct, ldc);
    return 0;
}
cublasStatus_t cublasGemmStridedBatchedEx(void*, int ta, int tb, int m, int n, int k, const void* alpha, const void* A,
                                          int at, int lda, long long sa, const void* B, int bt, int ldb, long long sb,
                                          const void* beta, void* C, int ct, int ldc, long long sc, int batch, int, int) {
    if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) { std::fprintf(stderr, "cublasGemmStridedBatchedEx: bad ld\n"); return 7; }
    auto es = [](int t) { return t == 0 ? 4 : 2; };
    for (int b = 0; b < batch; ++b)
        gemm(ta, tb, m, n, k, (const float*)alpha, (const char*)A + b * sa * es(at), at, lda,
             (const char*)B + b * sb * es(bt), bt, ldb, (const float*)beta, (char*)C + b * sc * es(ct), ct, ldc);
    return 0;
}
}
#pragma GCC visibility pop
