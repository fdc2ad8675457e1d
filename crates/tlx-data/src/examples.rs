//! Where the inputs of a dataset come from: the [`Examples`] trait (a numbered collection of
//! equally shaped examples read as f32) and its in-memory implementation [`ArrayExamples`]
//! (u8 or f32, so 8-bit image sets stay at one byte a value until a batch is made).

use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// A numbered collection of equally shaped examples (the `x` side of a dataset). Implement it to
/// feed tlx from any source; reading must be thread-safe (batches are read in parallel and
/// prepared on a background thread).
pub trait Examples: Send + Sync {
    /// The number of examples.
    fn len(&self) -> usize;

    /// True when there are no examples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one example (e.g. `[28, 28, 1]`, channels last).
    fn example_shape(&self) -> &[usize];

    /// Writes example `i` (`i < len()`) as f32 into `out`, whose length is the product of
    /// [`example_shape`](Examples::example_shape).
    fn read(&self, i: usize, out: &mut [f32]) -> Result<()>;

    /// A short description for messages and `Debug` (e.g. `60000 × [28, 28, 1] u8 in memory`).
    fn describe(&self) -> String;

    /// True when [`read`](Examples::read) is a copy from memory, so cheap that a batch is
    /// assembled on one thread unless it is large (handing each example to the thread pool
    /// would cost more than copying it). False (the default) for sources that decode.
    fn in_memory(&self) -> bool {
        false
    }
}

impl fmt::Debug for dyn Examples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Number of values in one example of `shape`, or an error naming `op` when it overflows.
pub(crate) fn example_len(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::invalid(op, format!("example shape {shape:?} overflows")))
}

/// The values of an [`ArrayExamples`].
#[derive(Clone)]
enum ArrayData {
    U8(Arc<[u8]>),
    F32(Arc<[f32]>),
}

/// Examples held in memory as one array of shape `[n, ...example_shape]`, u8 or f32.
#[derive(Clone)]
pub struct ArrayExamples {
    shape: Vec<usize>,
    n: usize,
    stride: usize,
    data: ArrayData,
}

impl ArrayExamples {
    /// `n` u8 examples; `shape` is `[n, ...example_shape]` and must describe `data` exactly.
    pub fn from_u8(data: Vec<u8>, shape: &[usize]) -> Result<ArrayExamples> {
        let (n, stride) = check_shape("ArrayExamples::from_u8", shape, data.len())?;
        Ok(ArrayExamples { shape: shape[1..].to_vec(), n, stride, data: ArrayData::U8(data.into()) })
    }

    /// `n` f32 examples; `shape` is `[n, ...example_shape]` and must describe `data` exactly.
    pub fn from_f32(data: Vec<f32>, shape: &[usize]) -> Result<ArrayExamples> {
        let (n, stride) = check_shape("ArrayExamples::from_f32", shape, data.len())?;
        Ok(ArrayExamples { shape: shape[1..].to_vec(), n, stride, data: ArrayData::F32(data.into()) })
    }

    /// The same values seen with another example shape of the same size (e.g. `[28, 28]` as
    /// `[28, 28, 1]`).
    pub fn reshaped(&self, example_shape: &[usize]) -> Result<ArrayExamples> {
        let len = example_len("reshape_examples", example_shape)?;
        if len != self.stride {
            return Err(Error::invalid(
                "reshape_examples",
                format!(
                    "an example of shape {:?} has {} values, shape {example_shape:?} needs {len}",
                    self.shape, self.stride
                ),
            ));
        }
        Ok(ArrayExamples { shape: example_shape.to_vec(), ..self.clone() })
    }
}

fn check_shape(op: &'static str, shape: &[usize], len: usize) -> Result<(usize, usize)> {
    let Some((&n, rest)) = shape.split_first() else {
        return Err(Error::invalid(op, "the shape needs a leading example dimension"));
    };
    let stride = example_len(op, rest)?;
    if n.checked_mul(stride) != Some(len) {
        return Err(Error::invalid(op, format!("{len} values do not fill shape {shape:?}")));
    }
    Ok((n, stride))
}

impl Examples for ArrayExamples {
    fn len(&self) -> usize {
        self.n
    }

    fn example_shape(&self) -> &[usize] {
        &self.shape
    }

    fn read(&self, i: usize, out: &mut [f32]) -> Result<()> {
        if i >= self.n || out.len() != self.stride {
            return Err(Error::invalid(
                "Examples::read",
                format!("example {i} of {} into a buffer of {} (needs {})", self.n, out.len(), self.stride),
            ));
        }
        let range = i * self.stride..(i + 1) * self.stride;
        match &self.data {
            ArrayData::U8(d) => out.iter_mut().zip(&d[range]).for_each(|(o, &v)| *o = v as f32),
            ArrayData::F32(d) => out.copy_from_slice(&d[range]),
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let t = match self.data {
            ArrayData::U8(_) => "u8",
            ArrayData::F32(_) => "f32",
        };
        format!("{} × {:?} {t} in memory", self.n, self.shape)
    }

    fn in_memory(&self) -> bool {
        true
    }
}

/// Another source's examples seen with another example shape of the same size.
pub(crate) struct Reshaped {
    pub inner: Arc<dyn Examples>,
    pub shape: Vec<usize>,
}

impl Examples for Reshaped {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn example_shape(&self) -> &[usize] {
        &self.shape
    }
    fn read(&self, i: usize, out: &mut [f32]) -> Result<()> {
        self.inner.read(i, out)
    }
    fn describe(&self) -> String {
        format!("{} as {:?}", self.inner.describe(), self.shape)
    }
    fn in_memory(&self) -> bool {
        self.inner.in_memory()
    }
}
