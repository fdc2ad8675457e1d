//! The Keras layers tlx implements, and `from_keras` to build one from `{class_name, config}`.

mod common;
mod conv;
mod dense;
mod norm;
mod stateless;

pub use common::WeightSpec;
pub use conv::{Conv2D, DepthwiseConv2D, SeparableConv2D, Window};
pub use dense::Dense;
pub(crate) use norm::update_moving_statistics;
pub use norm::BatchNormalization;
pub use stateless::{Merge, Stateless, StatelessOp};

use crate::config::ConfigReader;
use crate::error::{Error, Result};
use crate::layer::Layer;
use serde_json::Value;

/// Builds an (unbuilt) layer from Keras's class name and config. An unknown class, or a config
/// value that would change the computation and that tlx does not implement, is an error naming
/// the layer and the field.
pub fn from_keras(class_name: &str, config: &Value) -> Result<Box<dyn Layer>> {
    let r = ConfigReader::new(class_name, config)?;
    let trainable = r.bool_or("trainable", true)?;
    let mut layer: Box<dyn Layer> = match class_name {
        "Dense" => Box::new(Dense::from_config(&r)?),
        "Conv2D" | "Convolution2D" => Box::new(Conv2D::from_config(&r)?),
        "DepthwiseConv2D" => Box::new(DepthwiseConv2D::from_config(&r)?),
        "SeparableConv2D" | "SeparableConvolution2D" => Box::new(SeparableConv2D::from_config(&r)?),
        "BatchNormalization" => Box::new(BatchNormalization::from_config(&r)?),
        other => match Stateless::from_config(other, &r, config)? {
            Some(s) => Box::new(s),
            None => return Err(Error::UnknownLayer { layer: r.name(), class: other.to_string() }),
        },
    };
    r.finish()?;
    layer.set_trainable(trainable)?;
    Ok(layer)
}
