//! tlx-cuda: the CUDA backend of tlx (issue 7), behind the `cuda` feature.
//!
//! Without the feature this crate is empty: [`ENABLED`] is false and nothing CUDA is compiled,
//! so `cargo build --workspace` on a machine with no CUDA toolkit is unaffected.
//!
//! With `--features cuda` it provides, on top of cudarc (which loads libcuda, libnvrtc and
//! libcublas at run time, so building needs neither a toolkit nor a GPU):
//! - `CudaContext`: one device, one stream, a cuBLAS handle, the kernels of `kernels/*.cu`
//!   (embedded with `include_str!`, compiled by NVRTC once per process, loaded once per
//!   device) and a caching allocator; a missing driver, GPU or library is an `Error`, never
//!   a panic (`libs` finds pip-wheel libraries through `TLX_CUDA_LIB_DIR`);
//! - `DeviceBuf`: a typed device buffer from the allocator, with host↔device copies
//!   (including straight from a `&[u8]` such as a memory-mapped weights file);
//! - `blas`: row-major SGEMM (TF32 opt-in), strided-batched GEMM and f16/bf16 GEMM with f32
//!   accumulation;
//! - `ops`: launchers for every kernel with an API mirroring `tlx_cpu`'s functions — conv
//!   (im2col + cuBLAS, col2im, depthwise), pooling, batch norm, elementwise unary/binary over
//!   broadcast strided views (comparisons of u8/i32/i64/f32/f64), reductions, softmax and fused
//!   cross-entropy, Philox dropout, the
//!   fused optimizer updates (tlx-optim's f32 math), mixed-precision casts and loss scaling,
//!   dtype conversions, gather and scatter-add along an axis;
//! - `nvrtc`: compiling every kernel source to PTX without a GPU (the CI check,
//!   `tests/nvrtc_compile.rs`); `philox`: the dropout generator on the host.
//!
//! Tests: `tests/parity_*.rs` compare every op forward and backward with `tlx_cpu`/`tlx_tensor`/
//! `tlx_optim` (f64 references) and skip with a printed reason when there is no GPU
//! (`TLX_REQUIRE_GPU=1` makes that a failure). `emu/run.sh` runs them all without a GPU on a
//! host emulation of the driver and cuBLAS (a development check, see `emu/README.md`).
//! `examples/cuda_bench.rs` measures GEMM and VGG16's convolutions.
//!
//! Done: `tlx_tensor` (feature `cuda`) has `Storage::Cuda`, `Tensor::to_device(Device::Cuda(i))`
//! and back, and GPU dispatch of its ops and their gradients through these launchers (unary,
//! binary, scalar, comparisons, where, copies, casts, reductions, arg extremes, matmul,
//! conv2d/depthwise and both gradients, pooling, batch norm, softmax, dropout, gather,
//! scatter-add, index_select/index_add, one_hot, pad, concat); mixed devices and missing
//! kernels (f64 arithmetic, f16/bf16 without conversion) are errors naming the op. Its tests
//! (`crates/tlx-tensor/tests/cuda_parity.rs`, `emu/run.sh --tensor`) pass on the emulation.
//!
//! NOT done yet (status of issue 7: blocked, needs a GPU):
//! - no run on a real GPU yet: the parity tests have passed only on the host emulation (which
//!   cannot see races, the device math library or real cuBLAS) and the benchmark has not run;
//!   performance is unmeasured and untuned (direct kernels for pooling, depthwise and im2col, no
//!   implicit GEMM, no cuDNN);
//! - above tlx-tensor nothing is wired: tlx-optim updates weights through host slices
//!   (`Tensor::update_in_place` is an error on a GPU tensor; `ops::optim` is not called yet),
//!   tlx-nn/tlx-train do not move models or batches, and the `--device cuda` flag of the `tlx`
//!   binary, the conformance runner and the transfer experiment on the GPU are not wired; the
//!   fused inference ops (`conv2d_fused`, `add_relu`) run as their composite ops on the GPU;
//! - not covered by kernels here: f64 arithmetic (f64 tensors move, copy, convert and compare
//!   on the GPU but ops on them are errors), `where` of non-f32 values, matmul batches that are
//!   not evenly strided (one GEMM per matrix), Nadam's/EMA/gradient-accumulation bookkeeping
//!   (the caller's), f16/bf16 elementwise kernels (tlx-tensor converts to f32 first);
//! - BENCHMARKS.md numbers (VGG16/ResNet50 images/s next to PyTorch) need a GPU run.

/// Whether this build has the CUDA backend (the `cuda` feature).
pub const ENABLED: bool = cfg!(feature = "cuda");

/// A one-line description of this build's CUDA support.
pub fn build_info() -> &'static str {
    if ENABLED {
        "tlx-cuda: built with the `cuda` feature (CUDA libraries are loaded at run time)"
    } else {
        "tlx-cuda: built without the `cuda` feature; rebuild with `--features cuda` for GPU support"
    }
}

#[cfg(feature = "cuda")]
mod alloc;
#[cfg(feature = "cuda")]
pub mod blas;
#[cfg(feature = "cuda")]
mod buffer;
#[cfg(feature = "cuda")]
mod context;
#[cfg(feature = "cuda")]
mod error;
#[cfg(feature = "cuda")]
pub mod libs;
#[cfg(feature = "cuda")]
pub mod nvrtc;
#[cfg(feature = "cuda")]
pub mod ops;
#[cfg(feature = "cuda")]
pub mod philox;

#[cfg(feature = "cuda")]
pub use alloc::AllocStats;
#[cfg(feature = "cuda")]
pub use buffer::{DeviceBuf, DeviceElem};
#[cfg(feature = "cuda")]
pub use context::{CudaContext, DeviceInfo, GpuTimer};
#[cfg(feature = "cuda")]
pub use error::{Error, Result};
