//! tlx-cpu: the CPU kernels, one module per family.
//!
//! Kernels work on plain slices whose shapes come from tlx-core (`Conv2dGeometry`,
//! `Pool2dGeometry`, `Layout`). They never allocate in their inner loops, vectorise with
//! `wide`, and split work across threads with `rayon` only above a size threshold so small
//! tensors stay on one thread. Inputs are trusted: the tensor layer checks shapes and returns
//! errors before calling here; the kernels assert only what memory safety needs.
//!
//! `reference` holds the plain-loop definitions every optimised kernel is tested against.

pub mod awake;
pub mod conv;
pub mod copy;
pub mod elementwise;
mod expm1_avx2;
pub mod gemm;
pub mod norm;
mod par;
pub mod pool;
pub mod reduce;
pub mod reference;
mod simd;
pub mod softmax;
pub mod unary_simd;

pub use awake::keep_awake;
pub use par::on_worker;
/// The thread pools the kernels run on (re-exported so that callers such as benches and
/// `tlx bench --threads` can run kernels on a pool of a chosen size with `pool.install`).
pub use rayon::{ThreadPool, ThreadPoolBuilder};

/// Work (in elements or multiply-adds) below which a kernel stays on the calling thread.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;
