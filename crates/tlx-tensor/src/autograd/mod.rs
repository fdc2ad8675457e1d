//! Reverse-mode automatic differentiation.
//!
//! The tape lives in the tensor nodes: a result records its `Op` (with its inputs) only when
//! grad mode is on and some input requires a gradient, so a frozen backbone records nothing
//! and keeps no activations alive. `backward` sorts the graph topologically with an explicit
//! stack (no recursion, so deep networks cannot overflow it), walks it in reverse applying the
//! rules in `rules.rs`, and accumulates into the leaves' `grad` until they are cleared.

mod rules;

use crate::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use tlx_core::{BinaryOp, Conv2dGeometry, Error, Pool2dGeometry, Result, UnaryOp};
use tlx_cpu::reduce::ReduceOp;

/// How a tensor was computed: the op, its inputs, and what backward needs.
pub(crate) enum Op {
    Unary {
        op: UnaryOp,
        x: Tensor,
    },
    Binary {
        op: BinaryOp,
        a: Tensor,
        b: Tensor,
    },
    /// `axes` are resolved and sorted; the output keeps or drops them (`keepdims`).
    Reduce {
        op: ReduceOp,
        x: Tensor,
        axes: Vec<usize>,
        keepdims: bool,
    },
    Matmul {
        a: Tensor,
        b: Tensor,
    },
    /// Any change of shape that keeps the row-major order (reshape, squeeze, unsqueeze…).
    Reshape {
        x: Tensor,
    },
    Permute {
        x: Tensor,
        perm: Vec<usize>,
    },
    Narrow {
        x: Tensor,
        axis: usize,
        start: usize,
    },
    BroadcastTo {
        x: Tensor,
    },
    /// A dense copy (contiguous) — identity for gradients.
    Copy {
        x: Tensor,
    },
    /// A change of element type; the gradient is cast back.
    Cast {
        x: Tensor,
    },
    /// A move to another device; the gradient is moved back.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    ToDevice {
        x: Tensor,
    },
    Concat {
        xs: Vec<Tensor>,
        axis: usize,
    },
    /// Constant padding; `pads[i] = (before, after)` per axis.
    Pad {
        x: Tensor,
        pads: Vec<(usize, usize)>,
    },
    IndexSelect {
        x: Tensor,
        indices: Tensor,
        axis: usize,
    },
    Gather {
        x: Tensor,
        indices: Tensor,
        axis: usize,
    },
    Where {
        cond: Tensor,
        a: Tensor,
        b: Tensor,
    },
    Softmax {
        x: Tensor,
        axis: usize,
        log: bool,
    },
    /// A convolution; with `bias` and `act` (ReLU or ReLU6), plus a bias per output channel
    /// and then the activation in the same op (`Tensor::conv2d_fused` when recording: the
    /// sums without the bias or before the activation are not kept).
    Conv2d {
        x: Tensor,
        kernel: Tensor,
        geom: Conv2dGeometry,
        bias: Option<Tensor>,
        act: Option<UnaryOp>,
    },
    MaxPool2d {
        x: Tensor,
        geom: Pool2dGeometry,
    },
    AvgPool2d {
        x: Tensor,
        geom: Pool2dGeometry,
    },
    /// Training-mode batch norm over all axes but the last; `mean`/`inv_std` per channel.
    /// With `act` (ReLU or ReLU6), followed by `act(· + residual)` in the same op (`Tensor::batch_norm_train_relu`: the backward pass needs only x, the
    /// residual's node and the output).
    BatchNorm {
        x: Tensor,
        gamma: Option<Tensor>,
        beta: Option<Tensor>,
        mean: Tensor,
        inv_std: Tensor,
        residual: Option<Tensor>,
        act: Option<UnaryOp>,
    },
}

impl Op {
    /// The op's name (for error messages).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Unary { op, .. } => op.name(),
            Op::Binary { op, .. } => op.name(),
            Op::Reduce { op, .. } => op.name(),
            Op::Matmul { .. } => "matmul",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Narrow { .. } => "narrow",
            Op::BroadcastTo { .. } => "broadcast_to",
            Op::Copy { .. } => "contiguous",
            Op::Cast { .. } => "to_dtype",
            Op::ToDevice { .. } => "to_device",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::IndexSelect { .. } => "index_select",
            Op::Gather { .. } => "gather",
            Op::Where { .. } => "where",
            Op::Softmax { log: false, .. } => "softmax",
            Op::Softmax { log: true, .. } => "log_softmax",
            Op::Conv2d { .. } => "conv2d",
            Op::MaxPool2d { .. } => "max_pool2d",
            Op::AvgPool2d { .. } => "avg_pool2d",
            Op::BatchNorm { .. } => "batch_norm",
        }
    }

    /// The differentiable inputs, in the order `rules::backward` returns their gradients.
    pub(crate) fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary { x, .. }
            | Op::Reduce { x, .. }
            | Op::Reshape { x }
            | Op::Permute { x, .. }
            | Op::Narrow { x, .. }
            | Op::BroadcastTo { x }
            | Op::Copy { x }
            | Op::Cast { x }
            | Op::ToDevice { x }
            | Op::Pad { x, .. }
            | Op::IndexSelect { x, .. }
            | Op::Gather { x, .. }
            | Op::Softmax { x, .. }
            | Op::MaxPool2d { x, .. }
            | Op::AvgPool2d { x, .. } => vec![x],
            Op::Binary { a, b, .. } | Op::Matmul { a, b } | Op::Where { a, b, .. } => vec![a, b],
            Op::Concat { xs, .. } => xs.iter().collect(),
            Op::Conv2d { x, kernel, bias, .. } => [x, kernel].into_iter().chain(bias).collect(),
            Op::BatchNorm { x, gamma, beta, residual, .. } => {
                let mut v = vec![x];
                v.extend(gamma.iter());
                v.extend(beta.iter());
                v.extend(residual.iter());
                v
            }
        }
    }
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// True unless inside a `no_grad` scope on this thread.
pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// While alive, no op records a graph on this thread (inference, optimizer updates).
pub struct NoGradGuard {
    _private: (),
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Disables graph recording until the returned guard is dropped.
pub fn no_grad() -> NoGradGuard {
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    NoGradGuard { _private: () }
}

/// Runs `f` with graph recording disabled.
pub fn with_no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = no_grad();
    f()
}

/// Whether an op should be recorded: grad mode on and some input requires a gradient.
pub(crate) fn should_record(op: &Op) -> bool {
    is_grad_enabled() && op.inputs().iter().any(|t| t.requires_grad())
}

/// Nodes reachable from `root` through recorded ops, inputs before the ops that use them.
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    // (tensor, children pushed?) — an explicit stack instead of recursion.
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(op) = t.op() {
            for input in op.inputs() {
                if input.requires_grad() && !visited.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}

impl Tensor {
    /// Backpropagates from this one-element tensor (a loss), accumulating into the `grad` of
    /// every leaf that requires gradients.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Autograd(format!(
                "backward() needs a one-element tensor (a loss), got shape {}; use backward_with(grad)",
                self.shape()
            )));
        }
        self.backward_with(&Tensor::full_on(self.shape().clone(), 1.0, self.dtype(), self.device())?)
    }

    /// Backpropagates `grad` (the gradient of some objective with respect to this tensor).
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if grad.shape() != self.shape() {
            return Err(Error::Autograd(format!(
                "gradient of shape {} does not match tensor of shape {}",
                grad.shape(),
                self.shape()
            )));
        }
        if grad.device() != self.device() {
            return Err(Error::Autograd(format!(
                "backward_with: the gradient is on {} but the tensor is on {}",
                grad.device(),
                self.device()
            )));
        }
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "backward() on a tensor that does not require gradients (no trainable input, or computed under no_grad)"
                    .into(),
            ));
        }
        let _no_grad = no_grad();
        let order = topological_order(self);
        let mut grads: HashMap<_, Tensor> = HashMap::new();
        grads.insert(self.id(), grad.to_dtype(self.dtype())?);
        for node in order.iter().rev() {
            let Some(g) = grads.remove(&node.id()) else { continue };
            match node.op() {
                None => node.accumulate_grad(g)?,
                Some(op) => {
                    let input_grads = rules::backward(op, node, &g)?;
                    for (input, ig) in op.inputs().into_iter().zip(input_grads) {
                        let Some(ig) = ig else { continue };
                        if !input.requires_grad() {
                            continue;
                        }
                        debug_assert_eq!(ig.shape(), input.shape(), "gradient shape of {}", op.name());
                        let acc = match grads.remove(&input.id()) {
                            Some(prev) => prev.add(&ig)?,
                            None => ig,
                        };
                        grads.insert(input.id(), acc);
                    }
                }
            }
        }
        Ok(())
    }
}
