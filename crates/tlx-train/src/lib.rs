//! tlx-train: training with Keras 3's semantics.
//!
//! - [`Trainer`]: a model compiled with an optimizer, a loss and [`metrics`]; `train_step`,
//!   `fit` (shuffled epochs, validation, class/sample weights, callbacks, progress, History),
//!   `evaluate`, `predict`.
//! - [`fit`]: the loop and the callbacks it drives (EarlyStopping with restore_best_weights,
//!   ReduceLROnPlateau, ModelCheckpoint, LearningRateScheduler, CSVLogger, TerminateOnNaN).
//! - [`checkpoint`]: atomic checkpoints (weights, optimizer state, position) and exact resume.
//! - [`feature_cache`]: train a head on a frozen base's outputs computed once.
//! - [`plot`]: a PNG of the loss and accuracy curves of a [`History`] (built-in bitmap font).
//! - [`callbacks`]: [`EarlyStopping`] and [`ReduceLROnPlateau`] as state machines driven by
//!   the epoch-end [`Logs`] (`loss`, `val_loss`, `accuracy`, …), built from Keras's callback
//!   arguments as JSON, and the shared monitor logic ([`callbacks::monitor`]).
//!
//! ```
//! use tlx_train::{EarlyStopping, Logs};
//! let mut stop = EarlyStopping::from_keras_config(&serde_json::json!({"patience": 2}))?;
//! stop.on_train_begin();
//! let mut stopped_at = None;
//! for (epoch, val_loss) in [1.0, 0.8, 0.85, 0.9].into_iter().enumerate() {
//!     let logs = Logs::from([("val_loss".to_string(), val_loss)]);
//!     if stop.on_epoch_end(epoch, &logs).stop {
//!         stopped_at = Some(epoch);
//!         break;
//!     }
//! }
//! assert_eq!((stopped_at, stop.best_epoch()), (Some(3), 1));
//! # Ok::<(), tlx_train::Error>(())
//! ```

pub mod callbacks;
pub mod checkpoint;
mod error;
pub mod feature_cache;
pub mod fit;
pub mod metrics;
pub mod plot;
mod trainer;
pub mod transfer_demo;

pub use callbacks::{EarlyStopping, EarlyStoppingStep, Logs, ReduceLROnPlateau};
pub use error::{Error, Result};
pub use feature_cache::FeatureCache;
pub use fit::{Callback, Control, FitOptions, History, Validation, Verbosity};
pub use metrics::Metric;
pub use trainer::{StepOutput, Trainer};
