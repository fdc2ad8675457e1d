//! One module per case kind.

pub mod augment;
pub mod callbacks;
pub mod forward;
pub mod forward_app;
pub mod layer;
pub mod loss;
pub mod preprocess;
pub mod schedule;
pub mod train_steps;
