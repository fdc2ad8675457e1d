//! The application entry point: [`Arch`] (which network), [`AppOptions`] (Keras's
//! `include_top`, `input_shape`, `pooling`, `classes`, `classifier_activation`, `alpha`),
//! [`build`], and each architecture's named blocks for transfer learning
//! ([`Arch::block_start_layer`]: "fine-tune from block5" → `block5_conv1`).
//!
//! Options are checked the way `keras.applications` checks them when it loads ImageNet weights
//! (`imagenet_utils.obtain_input_shape`): 3 input channels, at least 32×32, MobileNetV2's
//! `alpha` one of the published widths. Two deliberate differences, both errors instead of
//! silent surprises: `pooling` together with `include_top` (Keras ignores the pooling), and an
//! `alpha` other than 1.0 for an architecture that has no width multiplier. Without an
//! `input_shape` the model takes 224×224×3, also without the top (Keras leaves height and
//! width unknown there; tlx models have known spatial sizes).
//!
//! The graph-building helpers the architecture modules share ([`AppGraph`]) live here too:
//! every weightless layer is built from its Keras config, so the model's config (and
//! `clone_architecture`) is exactly Keras's.

use crate::{Error, PreprocessMode, Result};
use serde_json::{json, Value};
use std::fmt;
use tlx_nn::layers::{BatchNormalization, Conv2D, Dense, DepthwiseConv2D};
use tlx_nn::model::{Functional, NodeRef};
use tlx_nn::{Activation, Layer, Model};
use tlx_tensor::Padding;

/// Names accepted by [`Arch::from_name`], for error messages.
const KNOWN_ARCHS: &str = "vgg16, vgg19, resnet50, mobilenetv2";

/// The smallest height and width the applications accept (Keras's `min_size`).
pub const MIN_INPUT_SIZE: usize = 32;

/// The input shape used when none is given (Keras's `default_size` with 3 channels).
pub const DEFAULT_INPUT_SHAPE: [usize; 3] = [224, 224, 3];

/// The MobileNetV2 widths Keras publishes ImageNet weights for.
pub const MOBILENET_V2_ALPHAS: [f64; 6] = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4];

/// One of the `keras.applications` architectures tlx builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `keras.applications.VGG16`.
    Vgg16,
    /// `keras.applications.VGG19`.
    Vgg19,
    /// `keras.applications.ResNet50` (v1).
    ResNet50,
    /// `keras.applications.MobileNetV2`.
    MobileNetV2,
}

/// A named block of an architecture and the first layer of it in `model.layers` order.
pub type Block = (&'static str, &'static str);

const VGG_BLOCKS: &[Block] = &[
    ("block1", "block1_conv1"),
    ("block2", "block2_conv1"),
    ("block3", "block3_conv1"),
    ("block4", "block4_conv1"),
    ("block5", "block5_conv1"),
];

/// ResNet50's stages (`conv1` … `conv5`) and their residual blocks (`conv4_block3`). A block
/// starts with its `_1_conv`: the shortcut `_0_conv` comes later in Keras's layer order.
const RESNET50_BLOCKS: &[Block] = &[
    ("conv1", "conv1_pad"),
    ("conv2", "conv2_block1_1_conv"),
    ("conv2_block1", "conv2_block1_1_conv"),
    ("conv2_block2", "conv2_block2_1_conv"),
    ("conv2_block3", "conv2_block3_1_conv"),
    ("conv3", "conv3_block1_1_conv"),
    ("conv3_block1", "conv3_block1_1_conv"),
    ("conv3_block2", "conv3_block2_1_conv"),
    ("conv3_block3", "conv3_block3_1_conv"),
    ("conv3_block4", "conv3_block4_1_conv"),
    ("conv4", "conv4_block1_1_conv"),
    ("conv4_block1", "conv4_block1_1_conv"),
    ("conv4_block2", "conv4_block2_1_conv"),
    ("conv4_block3", "conv4_block3_1_conv"),
    ("conv4_block4", "conv4_block4_1_conv"),
    ("conv4_block5", "conv4_block5_1_conv"),
    ("conv4_block6", "conv4_block6_1_conv"),
    ("conv5", "conv5_block1_1_conv"),
    ("conv5_block1", "conv5_block1_1_conv"),
    ("conv5_block2", "conv5_block2_1_conv"),
    ("conv5_block3", "conv5_block3_1_conv"),
];

/// MobileNetV2's stem (`Conv1`), inverted-residual blocks (`expanded_conv` is block 0, which
/// has no expansion) and final 1×1 convolution (`Conv_1`).
const MOBILENET_V2_BLOCKS: &[Block] = &[
    ("Conv1", "Conv1"),
    ("expanded_conv", "expanded_conv_depthwise"),
    ("block_1", "block_1_expand"),
    ("block_2", "block_2_expand"),
    ("block_3", "block_3_expand"),
    ("block_4", "block_4_expand"),
    ("block_5", "block_5_expand"),
    ("block_6", "block_6_expand"),
    ("block_7", "block_7_expand"),
    ("block_8", "block_8_expand"),
    ("block_9", "block_9_expand"),
    ("block_10", "block_10_expand"),
    ("block_11", "block_11_expand"),
    ("block_12", "block_12_expand"),
    ("block_13", "block_13_expand"),
    ("block_14", "block_14_expand"),
    ("block_15", "block_15_expand"),
    ("block_16", "block_16_expand"),
    ("Conv_1", "Conv_1"),
];

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 4] = [Arch::Vgg16, Arch::Vgg19, Arch::ResNet50, Arch::MobileNetV2];

    /// The architecture named `vgg16`, `vgg19`, `resnet50` or `mobilenetv2`; case, `_` and `-`
    /// are ignored (`MobileNet_V2`, `ResNet-50`).
    pub fn from_name(name: &str) -> Result<Arch> {
        let key: String =
            name.chars().filter(|c| *c != '_' && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
        match key.as_str() {
            "vgg16" => Ok(Arch::Vgg16),
            "vgg19" => Ok(Arch::Vgg19),
            "resnet50" => Ok(Arch::ResNet50),
            "mobilenetv2" => Ok(Arch::MobileNetV2),
            _ => Err(Error::UnknownArchitecture { name: name.to_string(), known: KNOWN_ARCHS }),
        }
    }

    /// The lower-case name ([`Arch::from_name`] reads it back).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Vgg16 => "vgg16",
            Arch::Vgg19 => "vgg19",
            Arch::ResNet50 => "resnet50",
            Arch::MobileNetV2 => "mobilenetv2",
        }
    }

    /// The Keras function name (`VGG16`, `ResNet50`, `MobileNetV2`).
    pub fn keras_name(self) -> &'static str {
        match self {
            Arch::Vgg16 => "VGG16",
            Arch::Vgg19 => "VGG19",
            Arch::ResNet50 => "ResNet50",
            Arch::MobileNetV2 => "MobileNetV2",
        }
    }

    /// The `preprocess_input` mode of `keras.applications.<arch>`: caffe for VGG and ResNet50,
    /// tf for MobileNetV2.
    pub fn preprocess_mode(self) -> PreprocessMode {
        match self {
            Arch::Vgg16 | Arch::Vgg19 | Arch::ResNet50 => PreprocessMode::Caffe,
            Arch::MobileNetV2 => PreprocessMode::Tf,
        }
    }

    /// The named blocks, in model order, each with the first layer of the block in Keras's
    /// `model.layers` order.
    pub fn blocks(self) -> &'static [Block] {
        match self {
            Arch::Vgg16 | Arch::Vgg19 => VGG_BLOCKS,
            Arch::ResNet50 => RESNET50_BLOCKS,
            Arch::MobileNetV2 => MOBILENET_V2_BLOCKS,
        }
    }

    /// The first layer of block `block` (`block5` → `block5_conv1`, `conv5` →
    /// `conv5_block1_1_conv`, `block_13` → `block_13_expand`; MobileNetV2's `block_0` is
    /// `expanded_conv`), for "freeze everything below this block". `None` for a block the
    /// architecture does not have; [`Arch::blocks`] lists the known ones.
    pub fn block_start_layer(self, block: &str) -> Option<&'static str> {
        let block = if self == Arch::MobileNetV2 && block == "block_0" { "expanded_conv" } else { block };
        self.blocks().iter().find(|(name, _)| *name == block).map(|(_, first)| *first)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Arch::from_name(s)
    }
}

/// [`Arch::block_start_layer`] as a free function.
pub fn block_start_layer(arch: Arch, block: &str) -> Option<&'static str> {
    arch.block_start_layer(block)
}

/// Keras's `pooling` argument: what follows the last convolution block without the top.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pooling {
    /// `None`: the model outputs the last block's 4-D feature map.
    #[default]
    None,
    /// `"avg"`: global average pooling (a 2-D output).
    Avg,
    /// `"max"`: global max pooling (a 2-D output).
    Max,
}

impl Pooling {
    /// `none`, `avg` or `max`.
    pub fn from_name(name: &str) -> Result<Pooling> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Pooling::None),
            "avg" => Ok(Pooling::Avg),
            "max" => Ok(Pooling::Max),
            other => Err(Error::Invalid {
                op: "pooling",
                msg: format!("unknown pooling `{other}` (expected `none`, `avg` or `max`)"),
            }),
        }
    }
}

/// The arguments of `keras.applications.<Arch>(…)` that shape the model (weights are loaded
/// separately, with `Model::load_keras_weights`).
#[derive(Clone, Debug, PartialEq)]
pub struct AppOptions {
    /// Keep the classifier (`flatten, fc1, fc2, predictions` for VGG; `avg_pool, predictions`
    /// for ResNet50; `global_average_pooling2d, predictions` for MobileNetV2). Default true.
    pub include_top: bool,
    /// `[height, width, channels]`; `None` means 224×224×3.
    pub input_shape: Option<[usize; 3]>,
    /// Pooling after the last block; only without the top.
    pub pooling: Pooling,
    /// Number of classes of the top. Default 1000.
    pub classes: usize,
    /// Activation of `predictions`. Default softmax; `Activation::Linear` gives logits.
    pub classifier_activation: Activation,
    /// MobileNetV2's width multiplier (one of [`MOBILENET_V2_ALPHAS`]); 1.0 for the others.
    pub alpha: f64,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            include_top: true,
            input_shape: None,
            pooling: Pooling::None,
            classes: 1000,
            classifier_activation: Activation::Softmax { axis: -1 },
            alpha: 1.0,
        }
    }
}

impl AppOptions {
    /// Keras's defaults: with the top, 224×224×3, 1000 classes, softmax, alpha 1.0.
    pub fn new() -> Self {
        AppOptions::default()
    }

    /// Sets `include_top`.
    pub fn include_top(mut self, on: bool) -> Self {
        self.include_top = on;
        self
    }

    /// Sets `input_shape` (`[height, width, channels]`).
    pub fn input_shape(mut self, shape: [usize; 3]) -> Self {
        self.input_shape = Some(shape);
        self
    }

    /// Sets `pooling`.
    pub fn pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }

    /// Sets `classes`.
    pub fn classes(mut self, classes: usize) -> Self {
        self.classes = classes;
        self
    }

    /// Sets `classifier_activation`.
    pub fn classifier_activation(mut self, activation: Activation) -> Self {
        self.classifier_activation = activation;
        self
    }

    /// Sets `alpha` (MobileNetV2 only).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// The input shape after defaults, checked for `arch`: 3 channels, at least 32×32, and
    /// the other options consistent.
    pub fn checked_input_shape(&self, arch: Arch) -> Result<[usize; 3]> {
        let op = arch.keras_name();
        let bad = |msg: String| Error::Invalid { op, msg };
        let shape = self.input_shape.unwrap_or(DEFAULT_INPUT_SHAPE);
        let [h, w, c] = shape;
        if c != 3 {
            return Err(bad(format!(
                "input_shape {shape:?} has {c} channel(s); the application takes 3 (RGB, channels last)"
            )));
        }
        if h < MIN_INPUT_SIZE || w < MIN_INPUT_SIZE {
            return Err(bad(format!(
                "input_shape {shape:?}: input size must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
            )));
        }
        if self.include_top && self.pooling != Pooling::None {
            return Err(bad(format!(
                "pooling {:?} only applies with include_top = false (the top has its own pooling)",
                self.pooling
            )));
        }
        if self.include_top && self.classes == 0 {
            return Err(bad("classes must be at least 1".into()));
        }
        if arch == Arch::MobileNetV2 {
            if !MOBILENET_V2_ALPHAS.iter().any(|a| (a - self.alpha).abs() < 1e-9) {
                return Err(bad(format!(
                    "alpha {} is not one of the published widths {MOBILENET_V2_ALPHAS:?}",
                    self.alpha
                )));
            }
        } else if self.alpha != 1.0 {
            return Err(bad(format!(
                "alpha {} given, but only MobileNetV2 has a width multiplier",
                self.alpha
            )));
        }
        Ok(shape)
    }
}

/// Builds `arch` with Keras's layer names and `model.layers` order, so the Keras weight files
/// of the architecture load into it (`model.load_keras_weights(path)`). Weights start from
/// Keras's initializers.
///
/// ```
/// use tlx_models::{build, AppOptions, Arch};
/// let model = build(Arch::Vgg16, &AppOptions::new().include_top(false).input_shape([32, 32, 3]))?;
/// assert_eq!(model.layers().len(), 19);
/// assert_eq!(model.param_counts().0, 14_714_688);
/// # Ok::<(), tlx_models::Error>(())
/// ```
pub fn build(arch: Arch, options: &AppOptions) -> Result<Model> {
    let input_shape = options.checked_input_shape(arch)?;
    match arch {
        Arch::Vgg16 => crate::vgg::build(arch, &[2, 2, 3, 3, 3], input_shape, options),
        Arch::Vgg19 => crate::vgg::build(arch, &[2, 2, 4, 4, 4], input_shape, options),
        Arch::ResNet50 => crate::resnet::build_resnet50(input_shape, options),
        Arch::MobileNetV2 => crate::mobilenet_v2::build(input_shape, options),
    }
}

/// A Functional graph under construction, with helpers for the layers the applications use;
/// errors name the architecture.
pub(crate) struct AppGraph {
    arch: Arch,
    graph: Functional,
}

impl AppGraph {
    /// An empty graph for the model `name` of `arch`.
    pub(crate) fn new(arch: Arch, name: &str) -> Self {
        AppGraph { arch, graph: Functional::new(name) }
    }

    fn err(&self, e: impl fmt::Display) -> Error {
        Error::Invalid { op: self.arch.keras_name(), msg: e.to_string() }
    }

    /// The model input (Keras 3's `input_layer`).
    pub(crate) fn input(&mut self, shape: [usize; 3]) -> NodeRef {
        self.graph.input("input_layer", &shape)
    }

    /// The number of channels of a 4-D symbolic tensor.
    pub(crate) fn channels(&self, x: NodeRef) -> Result<usize> {
        let shape = self.graph.shape(x);
        shape
            .last()
            .copied()
            .flatten()
            .ok_or_else(|| self.err(format!("unknown channels in shape {shape:?}")))
    }

    /// The height and width of a 4-D symbolic tensor.
    pub(crate) fn spatial(&self, x: NodeRef) -> Result<(usize, usize)> {
        let shape = self.graph.shape(x);
        match shape.as_slice() {
            [_, Some(h), Some(w), _] => Ok((*h, *w)),
            _ => Err(self.err(format!("expected a 4-D NHWC tensor with known size, got {shape:?}"))),
        }
    }

    /// Calls `layer` on `inputs`.
    pub(crate) fn call(&mut self, layer: Box<dyn Layer>, inputs: &[NodeRef]) -> Result<NodeRef> {
        self.graph.call_boxed(layer, inputs).map_err(|e| self.err(e))
    }

    /// Calls a layer built from its Keras class name and config.
    pub(crate) fn keras(&mut self, class: &str, config: Value, inputs: &[NodeRef]) -> Result<NodeRef> {
        let layer = tlx_nn::layers::from_keras(class, &config).map_err(|e| self.err(e))?;
        self.call(layer, inputs)
    }

    /// `Conv2D(filters, kernel, strides, padding, use_bias, activation)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv(
        &mut self,
        name: &str,
        filters: usize,
        kernel: usize,
        strides: usize,
        padding: Padding,
        use_bias: bool,
        activation: Activation,
        x: NodeRef,
    ) -> Result<NodeRef> {
        let conv = Conv2D::new(name, filters, (kernel, kernel), (strides, strides), padding, activation);
        let conv = if use_bias { conv } else { conv.without_bias() };
        self.call(Box::new(conv), &[x])
    }

    /// `DepthwiseConv2D(kernel, strides, padding, use_bias=False)`.
    pub(crate) fn depthwise(
        &mut self,
        name: &str,
        kernel: usize,
        strides: usize,
        padding: Padding,
        x: NodeRef,
    ) -> Result<NodeRef> {
        let dw = DepthwiseConv2D::new(name, (kernel, kernel), (strides, strides), padding, 1).without_bias();
        self.call(Box::new(dw), &[x])
    }

    /// `BatchNormalization(momentum, epsilon)` over the channels.
    pub(crate) fn batch_norm(
        &mut self,
        name: &str,
        momentum: f64,
        epsilon: f64,
        x: NodeRef,
    ) -> Result<NodeRef> {
        self.call(Box::new(BatchNormalization::new(name, momentum, epsilon)), &[x])
    }

    /// `Activation(name)`, e.g. `"relu"`.
    pub(crate) fn activation(&mut self, name: &str, activation: &str, x: NodeRef) -> Result<NodeRef> {
        self.keras("Activation", json!({"name": name, "activation": activation}), &[x])
    }

    /// `ReLU(6.)`.
    pub(crate) fn relu6(&mut self, name: &str, x: NodeRef) -> Result<NodeRef> {
        let config = json!({"name": name, "max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0});
        self.keras("ReLU", config, &[x])
    }

    /// `ZeroPadding2D(((top, bottom), (left, right)))`.
    pub(crate) fn zero_pad(
        &mut self,
        name: &str,
        pad: ((usize, usize), (usize, usize)),
        x: NodeRef,
    ) -> Result<NodeRef> {
        let ((t, b), (l, r)) = pad;
        let config = json!({"name": name, "padding": [[t, b], [l, r]], "data_format": "channels_last"});
        self.keras("ZeroPadding2D", config, &[x])
    }

    /// `MaxPooling2D(pool, strides, padding='valid')`.
    pub(crate) fn max_pool(
        &mut self,
        name: &str,
        pool: usize,
        strides: usize,
        x: NodeRef,
    ) -> Result<NodeRef> {
        let config = json!({
            "name": name, "pool_size": [pool, pool], "strides": [strides, strides],
            "padding": "valid", "data_format": "channels_last",
        });
        self.keras("MaxPooling2D", config, &[x])
    }

    /// `Add()` of the inputs, in order.
    pub(crate) fn add(&mut self, name: &str, inputs: &[NodeRef]) -> Result<NodeRef> {
        self.keras("Add", json!({"name": name}), inputs)
    }

    /// `GlobalAveragePooling2D` / `GlobalMaxPooling2D` (per `pooling`) named `avg_name` /
    /// `max_name`; `Pooling::None` returns `x`.
    pub(crate) fn global_pool(
        &mut self,
        pooling: Pooling,
        avg_name: &str,
        max_name: &str,
        x: NodeRef,
    ) -> Result<NodeRef> {
        let (class, name) = match pooling {
            Pooling::None => return Ok(x),
            Pooling::Avg => ("GlobalAveragePooling2D", avg_name),
            Pooling::Max => ("GlobalMaxPooling2D", max_name),
        };
        self.keras(class, json!({"name": name, "data_format": "channels_last", "keepdims": false}), &[x])
    }

    /// `Flatten()`.
    pub(crate) fn flatten(&mut self, name: &str, x: NodeRef) -> Result<NodeRef> {
        self.keras("Flatten", json!({"name": name, "data_format": "channels_last"}), &[x])
    }

    /// `Dense(units, activation)`.
    pub(crate) fn dense(
        &mut self,
        name: &str,
        units: usize,
        activation: Activation,
        x: NodeRef,
    ) -> Result<NodeRef> {
        self.call(Box::new(Dense::new(name, units, activation)), &[x])
    }

    /// The `predictions` layer of every application's top.
    pub(crate) fn predictions(&mut self, options: &AppOptions, x: NodeRef) -> Result<NodeRef> {
        self.dense("predictions", options.classes, options.classifier_activation, x)
    }

    /// Finishes the model with input `input` and output `output`.
    pub(crate) fn finish(self, input: NodeRef, output: NodeRef) -> Result<Model> {
        let arch = self.arch;
        self.graph
            .build(&[input], &[output])
            .map_err(|e| Error::Invalid { op: arch.keras_name(), msg: e.to_string() })
    }
}

/// The ReLU activation (VGG's convolutions and fully connected layers).
pub(crate) fn relu() -> Activation {
    Activation::Unary(tlx_tensor::UnaryOp::Relu)
}
