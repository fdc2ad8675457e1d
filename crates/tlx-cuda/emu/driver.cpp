// A fake libcuda.so.1: device memory is host memory, modules ignore their PTX and resolve
// functions to the host-compiled kernels, launches run the kernels on the host.
#include "shim.h"
#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#include <mutex>

thread_local dim3 emu::threadIdx, emu::blockIdx;
dim3 emu::blockDim, emu::gridDim;
namespace emu {
std::barrier<>* block_barrier;
std::barrier<>* warp_barrier[32];
unsigned long long exch[32][32];
std::map<std::string, Kernel>& registry() { static std::map<std::string, Kernel> r; return r; }
}
static std::mutex launch_lock;

#pragma GCC visibility push(default)
extern "C" {
typedef int CUresult;
typedef unsigned long long CUdeviceptr;
CUresult cuInit(unsigned) { return 0; }
CUresult cuGetExportTable(const void** t, const void*) { *t = nullptr; return 500; }
CUresult cuDriverGetVersion(int* v) { *v = 12080; return 0; }
CUresult cuDeviceGetCount(int* n) { *n = 1; return 0; }
CUresult cuDeviceGet(int* d, int o) { if (o != 0) return 101; *d = 0; return 0; }
CUresult cuDeviceGetName(char* name, int len, int) { std::snprintf(name, len, "tlx host emulator"); return 0; }
CUresult cuDeviceGetAttribute(int* v, int attr, int) {
    switch (attr) {
        case 75: *v = 8; break;   // compute capability major
        case 76: *v = 0; break;   // minor
        case 16: *v = 4; break;   // multiprocessors
        case 115: *v = 1; break;  // memory pools supported
        default: *v = 1;
    }
    return 0;
}
CUresult cuDeviceTotalMem_v2(size_t* b, int) { *b = (size_t)8 << 30; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** c, int) { *c = (void*)0x1; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int) { return 0; }
CUresult cuCtxSetCurrent(void*) { return 0; }
CUresult cuCtxGetCurrent(void** c) { *c = (void*)0x1; return 0; }
CUresult cuCtxSynchronize() { return 0; }
CUresult cuStreamCreate(void** s, unsigned) { *s = new int(0); return 0; }
CUresult cuStreamSynchronize(void*) { return 0; }
CUresult cuStreamDestroy_v2(void* s) { delete (int*)s; return 0; }
CUresult cuStreamWaitEvent(void*, void*, unsigned) { return 0; }
static CUresult alloc(CUdeviceptr* p, size_t b) { void* m = std::aligned_alloc(256, ((b + 255) / 256) * 256 + 256); if (!m) return 2; std::memset(m, 0xA5, b); *p = (CUdeviceptr)m; return 0; }
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t b, void*) { return alloc(p, b); }
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t b) { return alloc(p, b); }
CUresult cuMemFreeAsync(CUdeviceptr p, void*) { std::free((void*)p); return 0; }
CUresult cuMemFree_v2(CUdeviceptr p) { std::free((void*)p); return 0; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* s, size_t b, void*) { std::memcpy((void*)d, s, b); return 0; }
CUresult cuMemcpyDtoHAsync_v2(void* d, CUdeviceptr s, size_t b, void*) { std::memcpy(d, (void*)s, b); return 0; }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t b, void*) { std::memmove((void*)d, (void*)s, b); return 0; }
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t b, void*) { std::memset((void*)d, v, b); return 0; }
CUresult cuMemGetInfo_v2(size_t* f, size_t* t) { *f = *t = (size_t)8 << 30; return 0; }
CUresult cuModuleLoadData(void** m, const void*) { *m = new int(0); return 0; }
CUresult cuModuleUnload(void* m) { delete (int*)m; return 0; }
CUresult cuModuleGetFunction(void** f, void*, const char* name) {
    auto& r = emu::registry();
    auto it = r.find(name);
    if (it == r.end()) return 500;
    *f = &it->second;
    return 0;
}
CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned, void*, void** params, void**) {
    std::lock_guard<std::mutex> g(launch_lock);
    auto* k = (emu::Kernel*)f;
    if (by != 1 || bz != 1 || bx == 0 || bx > 1024 || gx == 0 || gy == 0 || gz == 0 || gy > 65535) return 1;
    emu::gridDim = {gx, gy, gz};
    emu::blockDim = {bx, by, bz};
    for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
            for (unsigned x = 0; x < gx; ++x) {
                dim3 b{x, y, z};
                if (!k->threaded) {
                    emu::blockIdx = b;
                    for (unsigned t = 0; t < bx; ++t) {
                        emu::threadIdx = {t, 0, 0};
                        k->fn(params);
                    }
                    continue;
                }
                if (bx % 32 != 0) return 1;
                std::barrier<> block((std::ptrdiff_t)bx);
                std::vector<std::barrier<>*> warps;
                for (unsigned w = 0; w < bx / 32; ++w) warps.push_back(new std::barrier<>(32));
                emu::block_barrier = &block;
                for (unsigned w = 0; w < bx / 32; ++w) emu::warp_barrier[w] = warps[w];
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < bx; ++t)
                    ts.emplace_back([=] {
                        emu::blockIdx = b;
                        emu::threadIdx = {t, 0, 0};
                        k->fn(params);
                    });
                for (auto& t : ts) t.join();
                for (auto* w : warps) delete w;
            }
    return 0;
}
struct Ev { std::chrono::steady_clock::time_point t; };
CUresult cuEventCreate(void** e, unsigned) { *e = new Ev(); return 0; }
CUresult cuEventRecord(void* e, void*) { ((Ev*)e)->t = std::chrono::steady_clock::now(); return 0; }
CUresult cuEventSynchronize(void*) { return 0; }
CUresult cuEventQuery(void*) { return 0; }
CUresult cuEventElapsedTime(float* ms, void* a, void* b) { *ms = std::chrono::duration<float, std::milli>(((Ev*)b)->t - ((Ev*)a)->t).count(); return 0; }
CUresult cuEventDestroy_v2(void* e) { delete (Ev*)e; return 0; }
CUresult cuGetErrorString(CUresult, const char** s) { *s = "emulated error"; return 0; }
CUresult cuGetErrorName(CUresult, const char** s) { *s = "CUDA_ERROR_EMULATED"; return 0; }
}
#pragma GCC visibility pop
