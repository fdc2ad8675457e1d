//! Layer fusion in the forward pass: chains of consecutive nodes that each feed only the next
//! run as one op.
//! - Conv2D/DepthwiseConv2D (bias, ReLU/ReLU6 activation) → BatchNormalization in inference
//!   mode → Add of a value computed earlier → ReLU/ReLU6: one convolution whose epilogue
//!   applies the bias, the folded batch norm, the residual and the activation to each output
//!   tile while it is in cache (`Tensor::conv2d_fused`); a convolution alone fuses its bias and
//!   activation the same way. (ResNet's `_3_conv → _3_bn → _add → _out` is one pass.)
//! - ZeroPadding2D → a `valid` convolution (and its chain): the convolution with explicit
//!   padding, without the padded copy of its input.
//! - Add of two tensors → ReLU, where the Add does not end a convolution chain:
//!   `Tensor::add_relu`.
//! - In training, BatchNormalization (trainable, batch statistics) → Add of a value computed
//!   earlier, if any → ReLU/ReLU6: `Tensor::batch_norm_train_relu`, one recorded op that keeps
//!   only its input, the residual and its output for the backward pass (ResNet's `_bn →
//!   _relu` and `_3_bn → _add → _out`: the normalized values and sums are not kept).
//! - ZeroPadding2D → an unpadded MaxPooling2D (ResNet's stem): `Tensor::max_pool2d_zero_padded`,
//!   the padding read as zeros in place.
//!
//! The fused ops compute the same float operations in the same order as the layers one by
//! one (results are bit-identical, see `tests/fusion.rs`), and when a gradient is recorded
//! they run as those separate ops, or as one recorded op with the separate ops' values and
//! gradients (the training batch norm chain; a convolution with only a bias and a ReLU/ReLU6,
//! see `Tensor::conv2d_fused`), so fusion is safe in training too; `Context::fuse` turns it
//! off.

use super::{Model, Source};
use crate::layer::Context;
use crate::{Error, Result};
use tlx_tensor::{ConvEpilogue, EpilogueAct, Padding, Tensor};

/// What a layer contributes to a fused chain ([`crate::Layer::fusion`]).
pub enum Fusion<'a> {
    /// A convolution (a depthwise one with its kernel `[kh, kw, c, m]` already reshaped to
    /// `[kh, kw, 1, c·m]` and `groups = c`) with its bias and a fusable activation.
    Conv {
        kernel: Tensor,
        bias: Option<&'a Tensor>,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
        act: EpilogueAct,
    },
    /// Batch normalization over the last axis; `trainable` decides its mode with the context.
    BatchNorm {
        gamma: Option<&'a Tensor>,
        beta: Option<&'a Tensor>,
        mean: &'a Tensor,
        var: &'a Tensor,
        eps: f64,
        momentum: f64,
        trainable: bool,
    },
    /// A ReLU or ReLU6 activation layer.
    Act(EpilogueAct),
    /// ZeroPadding2D (top, bottom, left, right): folded into a following unpadded convolution.
    Pad(usize, usize, usize, usize),
    /// Add of two inputs.
    Add,
    /// MaxPooling2D: a ZeroPadding2D before an unpadded one folds into it.
    MaxPool { pool: (usize, usize), strides: (usize, usize), padding: Padding },
}

/// The activation a fused epilogue can apply for a unary op, if any.
pub fn epilogue_act(op: &tlx_tensor::UnaryOp) -> Option<EpilogueAct> {
    match op {
        tlx_tensor::UnaryOp::Relu => Some(EpilogueAct::Relu),
        tlx_tensor::UnaryOp::Relu6 => Some(EpilogueAct::Relu6),
        _ => None,
    }
}

/// A fused chain of nodes `first_node..=last` (`first_node` may be a ZeroPadding2D before the
/// convolution at `conv`).
struct Chain {
    first_node: usize,
    last: usize,
    kind: ChainKind,
}

enum ChainKind {
    /// Padding folded in, the convolution node, the BatchNorm node folded in, the other
    /// input of an Add folded in, the activation.
    Conv {
        pad: Option<(usize, usize, usize, usize)>,
        conv: usize,
        bn: Option<usize>,
        residual: Option<Source>,
        act: EpilogueAct,
    },
    /// Add → ReLU.
    AddRelu,
    /// BatchNormalization in training mode → (Add of a value from outside the chain →)
    /// ReLU or ReLU6, recorded as one op (`Tensor::batch_norm_train_relu`/`_relu6`).
    TrainBatchNormAct { residual: Option<Source>, act: EpilogueAct },
    /// ZeroPadding2D (top, bottom, left, right) → unpadded MaxPooling2D.
    PadMaxPool { pad: (usize, usize, usize, usize), pool: (usize, usize), strides: (usize, usize) },
}

impl Model {
    fn fusion_at(&self, j: usize) -> Option<Fusion<'_>> {
        self.layers[self.nodes[j].layer].fusion()
    }

    /// Whether node `k` (a chain member before the last) feeds only node `k + 1` and nothing
    /// else, and is not an output; `uses[k]` counts its consumers.
    fn feeds_only_next(&self, k: usize, uses: &[usize], end: usize) -> bool {
        k + 1 < end
            && uses[k] == 1
            && self.nodes[k + 1].inputs.len() == 1
            && self.nodes[k + 1].inputs[0] == Source::Node(k)
    }

    /// The fused chain that starts at node `j`, if any.
    fn chain_at(&self, j: usize, uses: &[usize], end: usize, ctx: &Context) -> Option<Chain> {
        if !ctx.fuse {
            return None;
        }
        let n_inputs = self.nodes[j].inputs.len();
        match self.fusion_at(j)? {
            Fusion::Add if n_inputs == 2 && self.feeds_only_next(j, uses, end) => match self.fusion_at(j + 1)
            {
                Some(Fusion::Act(EpilogueAct::Relu)) => {
                    Some(Chain { first_node: j, last: j + 1, kind: ChainKind::AddRelu })
                }
                _ => None,
            },
            Fusion::Pad(t, b, l, r) if n_inputs == 1 && self.feeds_only_next(j, uses, end) => {
                match self.fusion_at(j + 1)? {
                    Fusion::Conv { padding: Padding::Valid, act, .. } => {
                        self.conv_chain(j, j + 1, Some((t, b, l, r)), act, uses, end, ctx)
                    }
                    Fusion::MaxPool { pool, strides, padding: Padding::Valid } => Some(Chain {
                        first_node: j,
                        last: j + 1,
                        kind: ChainKind::PadMaxPool { pad: (t, b, l, r), pool, strides },
                    }),
                    _ => None,
                }
            }
            Fusion::BatchNorm { trainable: true, mean, .. }
                if n_inputs == 1 && ctx.training && mean.dims().len() == 1 =>
            {
                let residual = self.residual_of_next_add(j, j, uses, end);
                let last = j + residual.is_some() as usize;
                let Some(Fusion::Act(act)) = self.fusion_at(last + 1) else { return None };
                (act != EpilogueAct::Linear && self.feeds_only_next(last, uses, end)).then_some(Chain {
                    first_node: j,
                    last: last + 1,
                    kind: ChainKind::TrainBatchNormAct { residual, act },
                })
            }
            Fusion::Conv { act, bias, .. } if n_inputs == 1 => {
                let chain = self.conv_chain(j, j, None, act, uses, end, ctx)?;
                let trivial = chain.last == j && bias.is_none() && act == EpilogueAct::Linear;
                (!trivial).then_some(chain)
            }
            _ => None,
        }
    }

    /// The other input of node `k + 1` when it is an Add of node `k` (its only consumer) and a
    /// value from outside the chain that starts at `first_node`.
    fn residual_of_next_add(
        &self,
        first_node: usize,
        k: usize,
        uses: &[usize],
        end: usize,
    ) -> Option<Source> {
        if k + 1 >= end || uses[k] != 1 || !matches!(self.fusion_at(k + 1), Some(Fusion::Add)) {
            return None;
        }
        let inputs = &self.nodes[k + 1].inputs;
        let other = match inputs.as_slice() {
            [a, b] if *a == Source::Node(k) => b,
            [a, b] if *b == Source::Node(k) => a,
            _ => return None,
        };
        match other {
            Source::Node(o) if (first_node..=k).contains(o) => None,
            _ => Some(*other),
        }
    }

    /// The chain from a convolution at `conv`: a BatchNormalization in inference mode after
    /// a linear convolution, an Add of an earlier value after a linear result, then a
    /// ReLU/ReLU6 after a linear result.
    #[allow(clippy::too_many_arguments)]
    fn conv_chain(
        &self,
        first_node: usize,
        conv: usize,
        pad: Option<(usize, usize, usize, usize)>,
        mut act: EpilogueAct,
        uses: &[usize],
        end: usize,
        ctx: &Context,
    ) -> Option<Chain> {
        let (mut last, mut bn) = (conv, None);
        if act == EpilogueAct::Linear && self.feeds_only_next(last, uses, end) {
            if let Some(Fusion::BatchNorm { mean, trainable, .. }) = self.fusion_at(last + 1) {
                if !(ctx.training && trainable) && mean.dims().len() == 1 {
                    last += 1;
                    bn = Some(last);
                }
            }
        }
        let mut residual = None;
        if act == EpilogueAct::Linear {
            if let Some(other) = self.residual_of_next_add(first_node, last, uses, end) {
                residual = Some(other);
                last += 1;
            }
        }
        if act == EpilogueAct::Linear && self.feeds_only_next(last, uses, end) {
            if let Some(Fusion::Act(a)) = self.fusion_at(last + 1) {
                act = a;
                last += 1;
            }
        }
        Some(Chain { first_node, last, kind: ChainKind::Conv { pad, conv, bn, residual, act } })
    }

    /// The chains of layers a forward pass in `ctx` runs fused, each as its layers' names
    /// (for inspection and tests).
    pub fn fused_chains(&self, ctx: &Context) -> Vec<Vec<String>> {
        let uses = self.use_counts(self.nodes.len());
        let mut chains = Vec::new();
        let mut j = 0;
        while j < self.nodes.len() {
            match self.chain_at(j, &uses, self.nodes.len(), ctx) {
                Some(c) => {
                    let names = (c.first_node..=c.last)
                        .map(|k| self.layers[self.nodes[k].layer].name().to_string())
                        .collect();
                    chains.push(names);
                    j = c.last + 1;
                }
                None => j += 1,
            }
        }
        chains
    }

    /// How many nodes (and model outputs) consume each of the first `end` nodes' values.
    pub(super) fn use_counts(&self, end: usize) -> Vec<usize> {
        let mut uses = vec![0usize; self.nodes.len()];
        for node in self.nodes.iter().take(end) {
            for s in &node.inputs {
                if let Source::Node(k) = s {
                    uses[*k] += 1;
                }
            }
        }
        for s in &self.outputs {
            if let Source::Node(k) = s {
                uses[*k] += 1;
            }
        }
        uses
    }

    /// Runs the fused chain starting at node `j` (whose arguments are `args`; `fetch(s, last)`
    /// gives any other value the chain `j..=last` reads, handed over when the chain is its
    /// last reader), if one does. Returns its result and its last node.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_fused(
        &self,
        j: usize,
        args: &[Tensor],
        fetch: &mut dyn FnMut(&Source, usize) -> Result<Tensor>,
        uses: &[usize],
        end: usize,
        ctx: &Context,
    ) -> Result<Option<(Tensor, usize)>> {
        let Some(chain) = self.chain_at(j, uses, end, ctx) else { return Ok(None) };
        let wrap = |k: usize| {
            let layer = &self.layers[self.nodes[k].layer];
            let (name, class) = (layer.name().to_string(), layer.class_name().to_string());
            move |e| Error::Layer { layer: name.clone(), class: class.clone(), source: e }
        };
        let y = match chain.kind {
            ChainKind::AddRelu => args[0].add_relu(&args[1]).map_err(wrap(j))?,
            ChainKind::TrainBatchNormAct { residual, act } => {
                let Some(Fusion::BatchNorm { gamma, beta, mean: mm, var: mv, eps, momentum, .. }) =
                    self.fusion_at(j)
                else {
                    unreachable!("chain_at matched a batch normalization at node {j}")
                };
                let residual = residual.as_ref().map(|s| fetch(s, chain.last)).transpose()?;
                let run = || -> tlx_tensor::Result<Tensor> {
                    let (y, mean, var) = match act {
                        EpilogueAct::Relu6 => {
                            args[0].batch_norm_train_relu6(gamma, beta, eps, residual.as_ref())
                        }
                        _ => args[0].batch_norm_train_relu(gamma, beta, eps, residual.as_ref()),
                    }?;
                    crate::layers::update_moving_statistics(mm, mv, &mean, &var, momentum)?;
                    Ok(y)
                };
                run().map_err(wrap(j))?
            }
            ChainKind::PadMaxPool { pad, pool, strides } => {
                args[0].max_pool2d_zero_padded(pad, pool, strides).map_err(wrap(j + 1))?
            }
            ChainKind::Conv { pad, conv, bn, residual, act } => {
                let Some(Fusion::Conv { kernel, bias, strides, dilation, padding, groups, .. }) =
                    self.fusion_at(conv)
                else {
                    unreachable!("chain_at matched a convolution at node {conv}")
                };
                let padding = match pad {
                    Some((top, bottom, left, right)) => Padding::Explicit { top, bottom, left, right },
                    None => padding,
                };
                let (scale, shift) = match bn.map(|k| (k, self.fusion_at(k))) {
                    Some((k, Some(Fusion::BatchNorm { gamma, beta, mean, var, eps, .. }))) => {
                        let (s, b) =
                            Tensor::batch_norm_coefficients(gamma, beta, mean, var, eps).map_err(wrap(k))?;
                        (Some(s), Some(b))
                    }
                    _ => (None, None),
                };
                let ep =
                    ConvEpilogue { bias, scale: scale.as_ref(), shift: shift.as_ref(), residual: None, act };
                match residual.as_ref().map(|s| fetch(s, chain.last)).transpose()? {
                    // Stored over the residual where the chain holds its only handle.
                    Some(r) => {
                        args[0].conv2d_fused_over_residual(&kernel, strides, dilation, padding, groups, ep, r)
                    }
                    None => args[0].conv2d_fused(&kernel, strides, dilation, padding, groups, ep),
                }
                .map_err(wrap(conv))?
            }
        };
        Ok(Some((y, chain.last)))
    }
}
