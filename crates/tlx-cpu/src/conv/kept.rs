//! Convolution kernels prepared once and kept from call to call while the weights do not
//! change (inference, frozen layers): transformed for Winograd ([`WinogradKernel`]) or
//! packed for the SGEMM micro-kernel. Preparing costs a pass over the kernel per call
//! otherwise, which at batch 1 is a large part of a layer (packing ResNet50's kernels was
//! 12 % of a batch-1 forward pass). tlx-tensor keeps them with the weights' storage.

use super::winograd::{self, ConvAlgorithm, WinogradKernel};
use super::{check_sizes, gemm_conv, small_k, Epilogue, Tuning};
use crate::gemm::{MatRef, OwnedPackedBs};
use tlx_core::Conv2dGeometry;

/// A kernel in the form its convolution runs with.
#[derive(Debug)]
pub enum KeptKernel {
    /// Transformed for Winograd F(2×2) or F(4×4).
    Winograd(WinogradKernel),
    /// The kernel matrix `[kh·kw·c_in, c_out]` packed for the direct (im2col) convolution.
    Packed {
        packed: OwnedPackedBs,
        /// The kernel's shape `[kh, kw, c_in, c_out]`.
        shape: [usize; 4],
    },
}

impl KeptKernel {
    /// How `g` runs with a kept f32 kernel: `Winograd2x2`/`Winograd4x4` (where Winograd's
    /// cost model, with the kernel's transform paid once, expects a gain) or `Direct`
    /// (packed); `None` where nothing is kept (grouped and depthwise convolutions, and small
    /// patches, which have their own kernels). Callers key the kept kernel by it (batch size
    /// and image size can change it).
    pub fn algorithm(g: &Conv2dGeometry) -> Option<ConvAlgorithm> {
        let patch = g.kh * g.kw * g.c_in;
        if g.groups != 1 || g.is_depthwise() || (!g.is_pointwise() && patch <= small_k::MAX_K) {
            return None;
        }
        Some(winograd::kept_kernel_algorithm(g))
    }

    /// `kernel` `[kh, kw, c_in, c_out]` of `g` prepared for `algorithm` (as
    /// [`KeptKernel::algorithm`] gives); `None` if it does not apply to `g` or the kernel
    /// does not fit it.
    pub fn new(algorithm: ConvAlgorithm, g: &Conv2dGeometry, kernel: &[f32]) -> Option<KeptKernel> {
        let shape = g.kernel_shape();
        if kernel.len() != shape.iter().product::<usize>() || g.groups != 1 {
            return None;
        }
        match algorithm {
            ConvAlgorithm::Winograd2x2 | ConvAlgorithm::Winograd4x4 => {
                WinogradKernel::new(algorithm, g, kernel).map(KeptKernel::Winograd)
            }
            ConvAlgorithm::Direct => {
                let w = MatRef::row_major(kernel, shape[0] * shape[1] * shape[2], shape[3]);
                Some(KeptKernel::Packed { packed: OwnedPackedBs::new(&[w]), shape })
            }
            ConvAlgorithm::Auto => None,
        }
    }

    /// Whether [`conv2d_forward_fused_kept_over_residual`] can run `g` with it: a kernel
    /// matrix packed for the GEMM (one group) whose products run in one depth block (`c_in`
    /// up to the micro-kernel's depth block for a pointwise convolution: 256 with AVX2).
    pub fn overwrites_residual(&self, g: &Conv2dGeometry) -> bool {
        match self {
            KeptKernel::Packed { packed, shape } => {
                *shape == g.kernel_shape() && g.groups == 1 && packed.views()[0].one_depth_block()
            }
            KeptKernel::Winograd(_) => false,
        }
    }

    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        match self {
            KeptKernel::Winograd(w) => w.bytes(),
            KeptKernel::Packed { packed, .. } => packed.bytes(),
        }
    }
}

/// [`super::conv2d_forward_fused`] of an f32 convolution with its kernel kept from an
/// earlier call (`kernel` is still the plain kernel, for the parts of the work that read it
/// directly). Panics unless `kept` was made for `g`'s kernel shape and the slices fit `g`.
pub fn conv2d_forward_fused_kept(
    g: &Conv2dGeometry,
    input: &[f32],
    kernel: &[f32],
    kept: &KeptKernel,
    ep: &Epilogue<'_, f32>,
    out: &mut [f32],
) {
    forward("conv2d_forward_fused_kept", g, input, kernel, kept, ep, false, out)
}

/// [`conv2d_forward_fused_kept`] with the residual in `out` on entry (`ep.residual` must be
/// `None`): each output element is stored over its residual, read just before, so a residual
/// block needs no separate output buffer and reads one stream less. The same bits as with
/// the residual apart. Panics unless [`KeptKernel::overwrites_residual`] holds for `g` and
/// the slices fit `g`.
pub fn conv2d_forward_fused_kept_over_residual(
    g: &Conv2dGeometry,
    input: &[f32],
    kernel: &[f32],
    kept: &KeptKernel,
    ep: &Epilogue<'_, f32>,
    out: &mut [f32],
) {
    const OP: &str = "conv2d_forward_fused_kept_over_residual";
    assert!(
        ep.residual.is_none() && kept.overwrites_residual(g),
        "{OP}: {kept:?} for {g:?} (a residual apart: {})",
        ep.residual.is_some()
    );
    forward(OP, g, input, kernel, kept, ep, true, out)
}

/// The two entry points above: `residual_in_out` says whether `out` holds the residual.
#[allow(clippy::too_many_arguments)]
fn forward(
    op: &str,
    g: &Conv2dGeometry,
    input: &[f32],
    kernel: &[f32],
    kept: &KeptKernel,
    ep: &Epilogue<'_, f32>,
    residual_in_out: bool,
    out: &mut [f32],
) {
    check_sizes(op, g, input.len(), kernel.len(), out.len());
    ep.check(g.c_out, out.len());
    // A residual in `out` is added even by an otherwise identity epilogue.
    let ep = (residual_in_out || !ep.is_identity()).then_some(ep);
    if out.is_empty() {
        return;
    }
    let t = Tuning::new();
    match kept {
        KeptKernel::Winograd(wk) => {
            debug_assert!(!residual_in_out, "{op}: Winograd kernels do not overwrite a residual");
            winograd::forward_kept(wk, g, input, ep, out, &t)
        }
        KeptKernel::Packed { packed, shape } => {
            assert!(*shape == g.kernel_shape() && g.groups == 1, "{op}: {kept:?} for {g:?}");
            let views = packed.views();
            gemm_conv::forward_kept(g, input, kernel, Some(&views[0]), None, ep, residual_in_out, out, &t)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fill;
    use super::super::winograd::{Choice, F2, F4};
    use super::super::{forward_with, EpilogueAct};
    use super::*;
    use tlx_core::Padding;

    /// A kept kernel gives the bits of the per-call path with the same algorithm (kernel
    /// packed or transformed in the call), with a fused epilogue and residual; nothing is
    /// kept where other kernels run.
    #[test]
    fn kept_kernels_give_the_per_call_bits() {
        let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        for (input, kernel, strides, padding) in [
            ([2, 9, 7, 24], [1, 1, 24, 40], (1, 1), Padding::Valid),
            ([1, 11, 10, 20], [3, 3, 20, 17], (2, 2), Padding::Same),
            ([1, 12, 12, 16], [3, 3, 16, 16], (1, 1), Padding::Same),
            ([1, 13, 9, 8], [5, 3, 8, 33], (1, 2), Padding::Valid),
        ] {
            let g = Conv2dGeometry::new(&input, &kernel, strides, (1, 1), padding, 1).unwrap();
            let numel = |s: [usize; 4]| s.iter().product::<usize>();
            let x = f32s(fill(numel(g.input_shape()), 1));
            let k = f32s(fill(numel(g.kernel_shape()), 2));
            let (bias, r) = (f32s(fill(g.c_out, 3)), f32s(fill(numel(g.output_shape()), 4)));
            let ep = Epilogue {
                bias: Some(&bias),
                scale: None,
                shift: None,
                residual: Some(&r),
                act: EpilogueAct::Relu,
            };
            let algorithm = KeptKernel::algorithm(&g).expect("kept");
            let kept = KeptKernel::new(algorithm, &g, &k).expect("fits");
            assert!(kept.bytes() >= 4 * k.len());
            let winograd = match algorithm {
                ConvAlgorithm::Winograd2x2 => Choice::Force(&F2),
                ConvAlgorithm::Winograd4x4 => Choice::Force(&F4),
                _ => Choice::Off,
            };
            let mut want = vec![f32::NAN; numel(g.output_shape())];
            forward_with(&g, &x, &k, None, Some(&ep), &mut want, &Tuning { winograd, ..Tuning::new() });
            let mut got = vec![f32::NAN; want.len()];
            conv2d_forward_fused_kept(&g, &x, &k, &kept, &ep, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&got) == bits(&want), "{g:?} {algorithm:?}: kept and per-call bits differ");
            assert!(KeptKernel::new(algorithm, &g, &k[1..]).is_none());
        }
        // Depthwise, grouped and small-patch convolutions keep nothing.
        let small =
            Conv2dGeometry::new(&[1, 8, 8, 3], &[3, 3, 3, 8], (1, 1), (1, 1), Padding::Same, 1).unwrap();
        let grouped =
            Conv2dGeometry::new(&[1, 8, 8, 8], &[3, 3, 4, 8], (1, 1), (1, 1), Padding::Same, 2).unwrap();
        assert_eq!((KeptKernel::algorithm(&small), KeptKernel::algorithm(&grouped)), (None, None));
        assert!(KeptKernel::new(ConvAlgorithm::Auto, &small, &[0.0; 216]).is_none());
    }

    /// The output stored over its residual has the bits of the residual apart: few and many
    /// rows (the panel, row-block and band splits), a strided 1×1 and an im2col product,
    /// every activation, a residual with NaN, ±inf and −0.0. Kernels whose products take two
    /// depth blocks, and Winograd kernels, decline.
    #[test]
    fn the_output_overwrites_its_residual_with_the_same_bits() {
        let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        let numel = |s: [usize; 4]| s.iter().product::<usize>();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (case, (input, kernel, strides)) in [
            ([1, 7, 7, 64], [1, 1, 64, 96], (1, 1)),
            ([2, 30, 31, 40], [1, 1, 40, 72], (1, 1)),
            ([1, 20, 22, 24], [1, 1, 24, 50], (2, 2)),
            ([1, 9, 11, 12], [3, 3, 12, 20], (1, 1)),
        ]
        .into_iter()
        .enumerate()
        {
            let g = Conv2dGeometry::new(&input, &kernel, strides, (1, 1), Padding::Valid, 1).unwrap();
            let x = f32s(fill(numel(g.input_shape()), 11));
            let k = f32s(fill(numel(g.kernel_shape()), 12));
            let (bias, scale) = (f32s(fill(g.c_out, 13)), f32s(fill(g.c_out, 14)));
            let mut r = f32s(fill(numel(g.output_shape()), 15));
            for (i, v) in r.iter_mut().enumerate() {
                match i % 37 {
                    5 => *v = f32::NAN,
                    9 => *v = f32::INFINITY,
                    17 => *v = f32::NEG_INFINITY,
                    23 => *v = -0.0,
                    _ => {}
                }
            }
            let kept = KeptKernel::new(ConvAlgorithm::Direct, &g, &k).expect("fits");
            assert!(kept.overwrites_residual(&g), "{g:?}");
            for act in [EpilogueAct::Linear, EpilogueAct::Relu, EpilogueAct::Relu6] {
                let apart = Epilogue {
                    bias: Some(&bias),
                    scale: (case % 2 == 0).then_some(&scale[..]),
                    shift: None,
                    residual: Some(&r),
                    act,
                };
                let mut want = vec![f32::NAN; r.len()];
                conv2d_forward_fused_kept(&g, &x, &k, &kept, &apart, &mut want);
                let mut got = r.clone();
                let in_out = Epilogue { residual: None, ..apart };
                conv2d_forward_fused_kept_over_residual(&g, &x, &k, &kept, &in_out, &mut got);
                assert!(bits(&got) == bits(&want), "{g:?} {act:?}: in place and apart differ");
            }
        }
        // A depth of two blocks (c_in past any micro-kernel's depth block) and Winograd.
        let deep = Conv2dGeometry::new(&[1, 4, 4, 1100], &[1, 1, 1100, 8], (1, 1), (1, 1), Padding::Valid, 1)
            .unwrap();
        let kept = KeptKernel::new(ConvAlgorithm::Direct, &deep, &vec![0.5; 8800]).expect("fits");
        assert!(!kept.overwrites_residual(&deep));
        let w =
            Conv2dGeometry::new(&[1, 12, 12, 16], &[3, 3, 16, 16], (1, 1), (1, 1), Padding::Same, 1).unwrap();
        let kept = KeptKernel::new(ConvAlgorithm::Winograd4x4, &w, &vec![0.5; 2304]).expect("fits");
        assert!(!kept.overwrites_residual(&w));
    }
}
