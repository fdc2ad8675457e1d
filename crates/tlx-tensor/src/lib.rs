//! tlx-tensor: the `Tensor` type.
//!
//! A `Tensor` is a cheap `Arc` handle to a node: storage (owned CPU memory, or a read-only
//! memory-mapped view copied on first write), a strided layout (views share storage), a dtype,
//! a device, and — only when grad mode is on and some input requires a gradient — the op that
//! produced it. Ops check their arguments and return errors naming the op and shapes; the CPU
//! kernels come from tlx-cpu, and with the `cuda` feature tensors moved with
//! `to_device(Device::Cuda(i))` run their ops on that GPU (see the `cuda` module). `backward` runs
//! reverse-mode autodiff over the recorded graph.
//!
//! ```
//! use tlx_tensor::{Tensor, DType};
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]).unwrap().with_grad().unwrap();
//! let loss = w.square().unwrap().sum_all().unwrap();
//! loss.backward().unwrap();
//! assert_eq!(w.grad().unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
//! # let _ = DType::F32;
//! ```

pub mod autograd;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod gradcheck;
mod ops;
pub mod random;
pub mod recycle;
pub mod storage;
mod tensor;

pub use autograd::{is_grad_enabled, no_grad, with_no_grad, NoGradGuard};
pub use ops::fused::{ConvEpilogue, EpilogueAct};
pub use random::Rng;
pub use storage::{CpuStorage, SharedBytes, Storage, StorageElement};
pub use tensor::{Device, Tensor, TensorId};
pub use tlx_core::{BinaryOp, CmpOp, DType, Element, Error, Padding, Result, Shape, UnaryOp};
pub use tlx_cpu::reduce::ReduceOp;
