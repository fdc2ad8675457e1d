//! The error type of tlx-train: callback configurations that Keras would reject or that tlx
//! cannot interpret (naming the callback and the field), bad training arguments and data, and
//! the errors of the crates training uses.

/// Errors from training and its callbacks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field that is unknown, of the wrong type or out of range.
    #[error("{callback}: field `{field}`: {msg}")]
    Config {
        /// The callback class, e.g. `EarlyStopping`.
        callback: &'static str,
        /// The offending field, e.g. `patience`.
        field: String,
        /// What is wrong with it.
        msg: String,
    },

    /// A configuration that is not a JSON object.
    #[error("{callback}: the configuration must be a JSON object of arguments, got {found}")]
    Malformed {
        /// The callback class.
        callback: &'static str,
        /// A short rendering of what was found.
        found: String,
    },

    /// `mode="auto"` with a monitored quantity whose direction cannot be told from its name.
    #[error(
        "{callback} callback received monitor={monitor}, but tlx isn't able to automatically \
         determine whether that metric should be maximized or minimized. Pass mode=\"max\" in \
         order to monitor based on the highest metric value, or mode=\"min\" in order to use the \
         lowest value."
    )]
    UnknownMonitorDirection {
        /// The callback class.
        callback: &'static str,
        /// The monitored name as given.
        monitor: String,
    },

    /// A bad argument or state of training (wrong shapes, empty data, changed trainables…).
    #[error("{0}")]
    Invalid(String),

    /// Training data that does not fit the model or the loss.
    #[error("data: {0}")]
    Data(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// From a layer or model.
    #[error(transparent)]
    Nn(#[from] tlx_nn::Error),

    /// From the optimizer.
    #[error(transparent)]
    Optim(#[from] tlx_optim::Error),

    /// From a tensor operation.
    #[error(transparent)]
    Tensor(#[from] tlx_tensor::Error),

    /// From the data pipeline.
    #[error(transparent)]
    Dataset(#[from] tlx_data::Error),

    /// From reading or writing a weights file.
    #[error(transparent)]
    File(#[from] weights_tools::Error),
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }
}

/// Result with the tlx-train error.
pub type Result<T> = std::result::Result<T, Error>;
