//! tlx-models: the Keras applications (`keras.applications`) for tlx.
//!
//! - [`preprocess`]: `preprocess_input` in Keras's three modes (`caffe`, `torch`, `tf`) with
//!   Keras's float32 arithmetic, and the mode each architecture expects
//!   ([`PreprocessMode::for_architecture`]).
//! - [`imagenet`]: the 1000 ImageNet class names in the order of Keras's
//!   `imagenet_class_index.json` and `decode_predictions`.
//!
//! ```
//! use tlx_models::{preprocess_input, PreprocessMode};
//! use tlx_tensor::Tensor;
//! let rgb = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [1, 1, 1, 3])?;
//! let bgr = preprocess_input(&rgb, PreprocessMode::for_architecture("vgg16")?)?;
//! // RGB → BGR, then the BGR means are subtracted: (30 − 103.939, 20 − 116.779, 10 − 123.68).
//! assert_eq!(bgr.to_vec::<f32>()?, vec![30.0 - 103.939, 20.0 - 116.779, 10.0 - 123.68]);
//! # Ok::<(), tlx_models::Error>(())
//! ```

pub mod apps;
pub mod imagenet;
pub mod mobilenet_v2;
pub mod preprocess;
pub mod resnet;
pub mod vgg;

pub use apps::{block_start_layer, build, AppOptions, Arch, Pooling};
pub use imagenet::{decode_predictions, Prediction};
pub use preprocess::{preprocess_input, PreprocessMode};

/// Errors from the applications: unknown names, inputs of the wrong shape, and errors of the
/// tensor stack underneath.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (dtype, shape, device).
    #[error(transparent)]
    Tensor(#[from] tlx_tensor::Error),

    /// A `preprocess_input` mode that Keras does not have.
    #[error("unknown preprocess mode `{0}` (expected `caffe`, `torch` or `tf`)")]
    UnknownPreprocessMode(String),

    /// An architecture name tlx does not know.
    #[error("unknown architecture `{name}` (known: {known})")]
    UnknownArchitecture {
        /// The name as given.
        name: String,
        /// The names that are accepted.
        known: &'static str,
    },

    /// An input whose shape does not fit the operation.
    #[error("{op}: {msg}")]
    Shape {
        /// The function called.
        op: &'static str,
        /// What is wrong, with the shape found.
        msg: String,
    },

    /// Values the operation cannot work with (NaN scores…).
    #[error("{op}: {msg}")]
    Invalid {
        /// The function called.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
}

/// Result with the tlx-models error.
pub type Result<T> = std::result::Result<T, Error>;
