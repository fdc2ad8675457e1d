//! tlx-core: the vocabulary every other tlx crate speaks.
//!
//! Shapes and strided layouts, element types, the Keras convolution and pooling geometry
//! (padding `same`/`valid` with Keras's asymmetric rule), the elementwise op table's scalar
//! definitions, the one error type of the tensor stack, and a caching global allocator for
//! large blocks that binaries may install ([`BlockCache`]). It depends on nothing of ours.

pub mod binary;
pub mod block_cache;
pub mod dtype;
pub mod error;
pub mod geometry;
pub mod layout;
pub mod shape;
pub mod unary;

pub use binary::{BinaryOp, CmpOp};
pub use block_cache::{BlockCache, BlockCacheStats};
pub use dtype::{DType, Element, Float};
pub use error::{Error, Result};
pub use geometry::{Conv2dGeometry, Padding, Pool2dGeometry};
pub use layout::{Layout, StridedOffsets};
pub use shape::{resolve_axes, resolve_axis, Shape};
pub use unary::UnaryOp;
