//! The error type of tlx-nn: tensor errors with the layer they happened in, and configuration
//! errors naming the layer, its class and the offending field.

/// Errors from layers, losses and Keras configs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside a layer.
    #[error("layer '{layer}' ({class}): {source}")]
    Layer {
        layer: String,
        class: String,
        #[source]
        source: tlx_core::Error,
    },

    /// A Keras config value that tlx cannot honour (unknown, malformed, or unsupported).
    #[error("{class} '{layer}': field '{field}': {msg}")]
    Config { layer: String, class: String, field: String, msg: String },

    /// A layer class tlx does not implement.
    #[error("unknown layer class '{class}' (layer '{layer}'): tlx cannot rebuild it")]
    UnknownLayer { layer: String, class: String },

    /// A tensor error outside any layer.
    #[error(transparent)]
    Tensor(#[from] tlx_core::Error),

    /// A weights or model file could not be read.
    #[error(transparent)]
    File(#[from] weights_tools::Error),

    /// Anything else (wrong number of inputs, weights that do not fit…).
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// A config error.
    pub fn config(layer: &str, class: &str, field: &str, msg: impl Into<String>) -> Self {
        Error::Config { layer: layer.into(), class: class.into(), field: field.into(), msg: msg.into() }
    }
}

/// Result with the tlx-nn error.
pub type Result<T> = std::result::Result<T, Error>;
