//! VGG16 and VGG19 (`keras.applications.vgg16` / `vgg19`): five blocks of 3×3 'same'
//! convolutions with ReLU (`block{b}_conv{i}`, 2-2-3-3-3 or 2-2-4-4-4 of them) each closed by
//! a 2×2 stride-2 max pooling (`block{b}_pool`); the top is `flatten`, `fc1` and `fc2`
//! (4096 units, ReLU) and `predictions`. Without the top, `pooling` adds
//! `global_average_pooling2d` or `global_max_pooling2d` (Keras's automatic names).

use crate::apps::{relu, AppGraph, AppOptions, Arch};
use crate::Result;
use tlx_nn::Model;
use tlx_tensor::Padding;

/// Filters of each of the five blocks.
const BLOCK_FILTERS: [usize; 5] = [64, 128, 256, 512, 512];

/// Units of `fc1` and `fc2`.
const FC_UNITS: usize = 4096;

/// Builds a VGG with `convs_per_block[b]` convolutions in block `b + 1` (options already
/// checked by [`crate::build`]).
pub(crate) fn build(
    arch: Arch,
    convs_per_block: &[usize; 5],
    input_shape: [usize; 3],
    options: &AppOptions,
) -> Result<Model> {
    let mut g = AppGraph::new(arch, arch.name());
    let input = g.input(input_shape);
    let mut x = input;
    for (b, (&convs, &filters)) in convs_per_block.iter().zip(&BLOCK_FILTERS).enumerate() {
        let block = b + 1;
        for i in 1..=convs {
            let name = format!("block{block}_conv{i}");
            x = g.conv(&name, filters, 3, 1, Padding::Same, true, relu(), x)?;
        }
        x = g.max_pool(&format!("block{block}_pool"), 2, 2, x)?;
    }
    if options.include_top {
        x = g.flatten("flatten", x)?;
        x = g.dense("fc1", FC_UNITS, relu(), x)?;
        x = g.dense("fc2", FC_UNITS, relu(), x)?;
        x = g.predictions(options, x)?;
    } else {
        x = g.global_pool(options.pooling, "global_average_pooling2d", "global_max_pooling2d", x)?;
    }
    g.finish(input, x)
}
