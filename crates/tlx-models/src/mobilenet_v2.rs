//! MobileNetV2 (`keras.applications.mobilenet_v2`), for the widths `alpha` Keras publishes.
//!
//! Stem: `Conv1` 3×3 stride 2 'same' (no bias), `bn_Conv1`, `Conv1_relu` (ReLU(6.)). Then 17
//! inverted-residual blocks: block 0 (`expanded_conv_*`) has no expansion; blocks 1–16
//! (`block_N_*`) expand 6× with a 1×1 `expand` → `expand_BN` → `expand_relu`. Stride-2
//! blocks first pad with `ZeroPadding2D` `pad` (Keras's `correct_pad`: `((0, 1), (0, 1))` for
//! even sizes, `((1, 1), (1, 1))` for odd) and run the 3×3 `depthwise` 'valid'; stride-1 blocks
//! run it 'same'. Then `depthwise_BN` → `depthwise_relu` → 1×1 `project` → `project_BN`, and
//! `add` when the stride is 1 and the channels are unchanged. Channel counts go through
//! `_make_divisible(·, 8)`. The head is `Conv_1` (1280 wide, or `1280·alpha` rounded when
//! alpha > 1), `Conv_1_bn`, `out_relu`; the top `global_average_pooling2d` and `predictions`.
//! No convolution has a bias; BatchNorm uses epsilon 1e-3 and momentum 0.999.

use crate::apps::{AppGraph, AppOptions, Arch};
use crate::Result;
use tlx_nn::model::NodeRef;
use tlx_nn::{Activation, Model};
use tlx_tensor::Padding;

/// MobileNetV2's BatchNormalization epsilon.
pub const BN_EPSILON: f64 = 1e-3;
/// MobileNetV2's BatchNormalization momentum.
pub const BN_MOMENTUM: f64 = 0.999;

/// The inverted-residual blocks: (output filters before `alpha`, stride, expansion).
const BLOCKS: [(usize, usize, usize); 17] = [
    (16, 1, 1),
    (24, 2, 6),
    (24, 1, 6),
    (32, 2, 6),
    (32, 1, 6),
    (32, 1, 6),
    (64, 2, 6),
    (64, 1, 6),
    (64, 1, 6),
    (64, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (160, 2, 6),
    (160, 1, 6),
    (160, 1, 6),
    (320, 1, 6),
];

/// Keras's `_make_divisible(v, divisor)`: `v` rounded to the nearest multiple of `divisor`
/// (at least `divisor`), bumped up one step if rounding lost more than 10%.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = ((v + d / 2.0).trunc() / d).floor() * d;
    let mut new_v = rounded.max(d);
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// Keras's `imagenet_utils.correct_pad` for a 3×3 kernel: `((top, bottom), (left, right))`
/// zero padding before a stride-2 'valid' depthwise convolution.
pub fn correct_pad(height: usize, width: usize) -> ((usize, usize), (usize, usize)) {
    // Keras: `correct - adjust` with correct = 1 and adjust = 1 - n % 2.
    ((height % 2, 1), (width % 2, 1))
}

/// Builds MobileNetV2 (options already checked by [`crate::build`], `alpha` included).
pub(crate) fn build(input_shape: [usize; 3], options: &AppOptions) -> Result<Model> {
    let alpha = options.alpha;
    let name = format!("mobilenetv2_{alpha:.2}_{}", input_shape[0]);
    let mut g = AppGraph::new(Arch::MobileNetV2, &name);
    let input = g.input(input_shape);
    let first_filters = make_divisible(32.0 * alpha, 8);
    let x = g.conv("Conv1", first_filters, 3, 2, Padding::Same, false, Activation::Linear, input)?;
    let x = g.batch_norm("bn_Conv1", BN_MOMENTUM, BN_EPSILON, x)?;
    let mut x = g.relu6("Conv1_relu", x)?;
    for (block_id, &(filters, stride, expansion)) in BLOCKS.iter().enumerate() {
        x = inverted_res_block(&mut g, block_id, filters, stride, expansion, alpha, x)?;
    }
    let last_filters = if alpha > 1.0 { make_divisible(1280.0 * alpha, 8) } else { 1280 };
    let x = g.conv("Conv_1", last_filters, 1, 1, Padding::Valid, false, Activation::Linear, x)?;
    let x = g.batch_norm("Conv_1_bn", BN_MOMENTUM, BN_EPSILON, x)?;
    let x = g.relu6("out_relu", x)?;
    let x = if options.include_top {
        let x = g.global_pool(crate::Pooling::Avg, "global_average_pooling2d", "global_max_pooling2d", x)?;
        g.predictions(options, x)?
    } else {
        g.global_pool(options.pooling, "global_average_pooling2d", "global_max_pooling2d", x)?
    };
    g.finish(input, x)
}

/// One inverted-residual block (Keras's `_inverted_res_block`).
fn inverted_res_block(
    g: &mut AppGraph,
    block_id: usize,
    filters: usize,
    stride: usize,
    expansion: usize,
    alpha: f64,
    inputs: NodeRef,
) -> Result<NodeRef> {
    let in_channels = g.channels(inputs)?;
    // Keras truncates `filters * alpha` to an int before rounding to a multiple of 8.
    let pointwise_filters = make_divisible((filters as f64 * alpha).trunc(), 8);
    let linear = Activation::Linear;
    let mut x = inputs;
    let prefix = if block_id == 0 {
        "expanded_conv_".to_string()
    } else {
        let prefix = format!("block_{block_id}_");
        let expand = format!("{prefix}expand");
        x = g.conv(&expand, expansion * in_channels, 1, 1, Padding::Same, false, linear, x)?;
        x = g.batch_norm(&format!("{prefix}expand_BN"), BN_MOMENTUM, BN_EPSILON, x)?;
        x = g.relu6(&format!("{prefix}expand_relu"), x)?;
        prefix
    };
    let padding = if stride == 2 {
        let (h, w) = g.spatial(x)?;
        x = g.zero_pad(&format!("{prefix}pad"), correct_pad(h, w), x)?;
        Padding::Valid
    } else {
        Padding::Same
    };
    x = g.depthwise(&format!("{prefix}depthwise"), 3, stride, padding, x)?;
    x = g.batch_norm(&format!("{prefix}depthwise_BN"), BN_MOMENTUM, BN_EPSILON, x)?;
    x = g.relu6(&format!("{prefix}depthwise_relu"), x)?;
    x = g.conv(&format!("{prefix}project"), pointwise_filters, 1, 1, Padding::Same, false, linear, x)?;
    x = g.batch_norm(&format!("{prefix}project_BN"), BN_MOMENTUM, BN_EPSILON, x)?;
    if in_channels == pointwise_filters && stride == 1 {
        x = g.add(&format!("{prefix}add"), &[inputs, x])?;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_divisible_matches_keras() {
        // Values computed with Keras's `_make_divisible` (Python float arithmetic).
        assert_eq!(make_divisible(32.0 * 0.35, 8), 16); // 11.2 rounds to 8, < 90%: bumped
        assert_eq!(make_divisible(32.0 * 1.0, 8), 32);
        assert_eq!(make_divisible(32.0 * 1.4, 8), 48); // 44.8
        assert_eq!(make_divisible(1280.0 * 1.3, 8), 1664);
        assert_eq!(make_divisible(1280.0 * 1.4, 8), 1792);
        assert_eq!(make_divisible((16.0f64 * 0.35).trunc(), 8), 8);
        assert_eq!(make_divisible((24.0f64 * 0.75).trunc(), 8), 24); // 18 → 16 < 16.2 → 24
        assert_eq!(make_divisible((160.0f64 * 0.35).trunc(), 8), 56);
    }

    #[test]
    fn correct_pad_depends_on_parity() {
        assert_eq!(correct_pad(112, 112), ((0, 1), (0, 1)));
        assert_eq!(correct_pad(7, 8), ((1, 1), (0, 1)));
    }
}
