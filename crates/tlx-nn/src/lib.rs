//! tlx-nn: Keras layers, models (Sequential and Functional, built in code or from Keras
//! configs and weight files), losses, regularizers, constraints and initializers.
//!
//! Every layer can be built from the `{class_name, config}` JSON Keras writes (Keras 2 and 3
//! spellings), with Keras's defaults and weight names, so Keras weight files drop in. A config
//! value tlx does not implement is an error naming the layer and field, never ignored.

pub mod activation;
pub mod config;
pub mod error;
pub mod initializers;
pub mod layer;
pub mod layers;
pub mod losses;
pub mod model;
pub mod regularizers;

pub use activation::Activation;
pub use error::{Error, Result};
pub use layer::{Context, Layer, LayerBase, LayerTime, Logits, LogitsKind, ShapeSpec, Weight};
pub use losses::{Loss, Reduction};
pub use model::{Functional, LayerSelector, Model, ModelKind};
