//! Zero-padded copies of NHWC images, for forward convolutions that read their patches in
//! place (`gemm::Patches`): padding the image once costs one copy of it, where im2col
//! writes each element `kh·kw / (stride_h·stride_w)` times (≈ 12 for ResNet50's stem).

use rayon::prelude::*;
use tlx_core::Conv2dGeometry;

/// Largest padded copy (bytes) made; larger images go through im2col's bounded tiles.
pub(super) const MAX_BYTES: usize = 64 << 20;

/// `[n, h + pad_top + pad_bottom, w + pad_left + pad_right, c_in]` of the padded image.
pub(super) fn shape(g: &Conv2dGeometry) -> [usize; 4] {
    [g.n, g.h + g.pad_top + g.pad_bottom, g.w + g.pad_left + g.pad_right, g.c_in]
}

/// Whether an unpadded convolution over the padded image gives `g`'s output size (its
/// patches are then the padded convolution's, pixel for pixel).
pub(super) fn same_output(g: &Conv2dGeometry) -> bool {
    let [_, hp, wp, _] = shape(g);
    let span_h = (g.kh - 1) * g.dilation_h + 1;
    let span_w = (g.kw - 1) * g.dilation_w + 1;
    hp >= span_h
        && wp >= span_w
        && (hp - span_h) / g.stride_h + 1 == g.out_h
        && (wp - span_w) / g.stride_w + 1 == g.out_w
}

/// Writes `input` `[n, h, w, c_in]` into `out` (`shape(g)`, exactly) with zero borders, one
/// padded row per task when `parallel`.
pub(super) fn pad_into<T: Copy + Default + Send + Sync>(
    g: &Conv2dGeometry,
    input: &[T],
    out: &mut [T],
    parallel: bool,
) {
    let [_, hp, wp, c] = shape(g);
    debug_assert_eq!(out.len(), g.n * hp * wp * c);
    debug_assert_eq!(input.len(), g.n * g.h * g.w * c);
    let row = |(r, dst): (usize, &mut [T])| {
        // Padded row r: image r / hp, row y of it.
        let (img, y) = (r / hp, r % hp);
        if y < g.pad_top || y >= g.pad_top + g.h {
            dst.fill(T::default());
            return;
        }
        let src = &input[((img * g.h + y - g.pad_top) * g.w) * c..][..g.w * c];
        let (left, rest) = dst.split_at_mut(g.pad_left * c);
        let (mid, right) = rest.split_at_mut(g.w * c);
        left.fill(T::default());
        mid.copy_from_slice(src);
        right.fill(T::default());
    };
    if parallel {
        out.par_chunks_mut(wp * c).enumerate().for_each(row);
    } else {
        out.chunks_mut(wp * c).enumerate().for_each(row);
    }
}
