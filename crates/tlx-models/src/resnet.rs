//! ResNet50 v1 (`keras.applications.resnet.ResNet50`).
//!
//! Stem: `conv1_pad` (3 each side), `conv1_conv` 7×7 stride 2 'valid', `conv1_bn`,
//! `conv1_relu`, `pool1_pad` (1 each side), `pool1_pool` 3×3 stride 2. Then four stages
//! `conv2` … `conv5` of 3, 4, 6, 3 bottleneck blocks with 64, 128, 256, 512 filters; the first
//! block of a stage has stride 1 (`conv2`) or 2 and a projection shortcut
//! (`_0_conv`, `_0_bn`), the others an identity shortcut. A block `convS_blockB` is
//! `_1_conv` 1×1 (carrying the stride) → `_1_bn` → `_1_relu` → `_2_conv` 3×3 'same' → `_2_bn`
//! → `_2_relu` → `_3_conv` 1×1 (4× filters) → `_3_bn`, then `_add` (shortcut first) and
//! `_out` (ReLU). Every convolution has a bias; BatchNorm uses epsilon 1.001e-5 and momentum
//! 0.99. The top is `avg_pool` and `predictions`; without it, `pooling` adds `avg_pool` or
//! `max_pool`.

use crate::apps::{AppGraph, AppOptions, Arch};
use crate::Result;
use tlx_nn::model::NodeRef;
use tlx_nn::{Activation, Model};
use tlx_tensor::Padding;

/// ResNet's BatchNormalization epsilon.
pub const BN_EPSILON: f64 = 1.001e-5;
/// ResNet's BatchNormalization momentum (Keras's default).
pub const BN_MOMENTUM: f64 = 0.99;

/// ResNet50's stages: (name, filters, blocks, stride of the first block).
const RESNET50_STAGES: [(&str, usize, usize, usize); 4] =
    [("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2), ("conv5", 512, 3, 2)];

/// Builds ResNet50 (options already checked by [`crate::build`]).
pub(crate) fn build_resnet50(input_shape: [usize; 3], options: &AppOptions) -> Result<Model> {
    let mut g = AppGraph::new(Arch::ResNet50, "resnet50");
    let input = g.input(input_shape);
    let x = g.zero_pad("conv1_pad", ((3, 3), (3, 3)), input)?;
    let x = g.conv("conv1_conv", 64, 7, 2, Padding::Valid, true, Activation::Linear, x)?;
    let x = g.batch_norm("conv1_bn", BN_MOMENTUM, BN_EPSILON, x)?;
    let x = g.activation("conv1_relu", "relu", x)?;
    let x = g.zero_pad("pool1_pad", ((1, 1), (1, 1)), x)?;
    let mut x = g.max_pool("pool1_pool", 3, 2, x)?;
    for (stage, filters, blocks, stride) in RESNET50_STAGES {
        x = residual_block(&mut g, &format!("{stage}_block1"), filters, stride, true, x)?;
        for b in 2..=blocks {
            x = residual_block(&mut g, &format!("{stage}_block{b}"), filters, 1, false, x)?;
        }
    }
    let x = if options.include_top {
        let x = g.global_pool(crate::Pooling::Avg, "avg_pool", "max_pool", x)?;
        g.predictions(options, x)?
    } else {
        g.global_pool(options.pooling, "avg_pool", "max_pool", x)?
    };
    g.finish(input, x)
}

/// One bottleneck block (Keras's `residual_block_v1`).
fn residual_block(
    g: &mut AppGraph,
    name: &str,
    filters: usize,
    stride: usize,
    conv_shortcut: bool,
    x: NodeRef,
) -> Result<NodeRef> {
    let linear = Activation::Linear;
    let shortcut = if conv_shortcut {
        let s = g.conv(&format!("{name}_0_conv"), 4 * filters, 1, stride, Padding::Valid, true, linear, x)?;
        g.batch_norm(&format!("{name}_0_bn"), BN_MOMENTUM, BN_EPSILON, s)?
    } else {
        x
    };
    let y = g.conv(&format!("{name}_1_conv"), filters, 1, stride, Padding::Valid, true, linear, x)?;
    let y = g.batch_norm(&format!("{name}_1_bn"), BN_MOMENTUM, BN_EPSILON, y)?;
    let y = g.activation(&format!("{name}_1_relu"), "relu", y)?;
    let y = g.conv(&format!("{name}_2_conv"), filters, 3, 1, Padding::Same, true, linear, y)?;
    let y = g.batch_norm(&format!("{name}_2_bn"), BN_MOMENTUM, BN_EPSILON, y)?;
    let y = g.activation(&format!("{name}_2_relu"), "relu", y)?;
    let y = g.conv(&format!("{name}_3_conv"), 4 * filters, 1, 1, Padding::Valid, true, linear, y)?;
    let y = g.batch_norm(&format!("{name}_3_bn"), BN_MOMENTUM, BN_EPSILON, y)?;
    let y = g.add(&format!("{name}_add"), &[shortcut, y])?;
    g.activation(&format!("{name}_out"), "relu", y)
}
