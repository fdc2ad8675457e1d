//! A minimal HDF5 writer: nested groups, scalar string attributes and contiguous numeric
//! datasets of any shape (scalars and zero-size dimensions included), written atomically.
//!
//! The on-disk format is the one h5py/libhdf5 write by default and Keras's files use
//! (KERAS-NOTES §6.1): superblock version 0, version-1 object headers, old-style groups
//! (symbol-table message, v1 B-tree, local heap, `SNOD` nodes), attribute strings as
//! variable-length UTF-8 in global heap collections, datasets with a version-1 dataspace, a
//! fill-value message and a contiguous layout message. libhdf5 1.8 onwards (h5py, Keras) and
//! [`crate::hdf5::H5File`] read it.
//!
//! ```
//! use weights_tools::hdf5::{H5File, H5Writer};
//! let mut w = H5Writer::new();
//! w.group("layers/dense/vars")?;
//! w.attr_str("layers/dense/vars", "name", "dense_1")?;
//! w.dataset_f32("layers/dense/vars/0", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
//! let f = H5File::from_bytes("mem", w.to_bytes()?)?;
//! assert_eq!(f.dataset("/layers/dense/vars/0")?.shape()?, vec![2, 3]);
//! # Ok::<(), weights_tools::Error>(())
//! ```
//!
//! Dataset bytes are given up front ([`H5Writer::dataset_bytes`]) or produced while the file
//! is written ([`H5Writer::dataset_with`]), so a model's weights need not be copied first.

mod encode;

use crate::error::{Error, Result};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tlx_core::DType;

/// What error messages call a file that is still being assembled.
const UNWRITTEN: &str = "HDF5 writer";

/// The HDF5 limit on dataset rank.
pub const MAX_RANK: usize = 32;

/// Produces a dataset's bytes (little-endian, C order) while the file is written.
pub type DataFn<'a> = Box<dyn Fn(&mut dyn Write) -> std::io::Result<()> + 'a>;

enum Data<'a> {
    Bytes(Cow<'a, [u8]>),
    Stream(DataFn<'a>),
}

struct DatasetNode<'a> {
    dtype: DType,
    shape: Vec<usize>,
    nbytes: u64,
    data: Data<'a>,
    attrs: BTreeMap<String, String>,
}

#[derive(Default)]
struct GroupNode<'a> {
    children: BTreeMap<String, Node<'a>>,
    attrs: BTreeMap<String, String>,
}

enum Node<'a> {
    Group(GroupNode<'a>),
    Dataset(DatasetNode<'a>),
}

/// An HDF5 file being assembled in memory (structure, attributes, references to data), then
/// written with [`H5Writer::write`] (atomically) or [`H5Writer::to_bytes`].
///
/// Paths are `/`-separated and relative to the root (a leading `/` is allowed). Member names
/// may be any UTF-8 except empty, `.`, or containing `/` or NUL; members are stored in byte
/// order of their names, as HDF5 lists them.
#[derive(Default)]
pub struct H5Writer<'a> {
    root: GroupNode<'a>,
}

fn invalid(what: impl Into<String>) -> Error {
    Error::invalid(UNWRITTEN, what)
}

/// Splits and checks a path.
fn components(path: &str) -> Result<Vec<&str>> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = trimmed.split('/').collect();
    for p in &parts {
        check_name(p, path)?;
    }
    Ok(parts)
}

fn check_name(name: &str, path: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(format!("path {path:?}: empty member name (doubled or trailing '/')")));
    }
    if name == "." {
        return Err(invalid(format!("path {path:?}: '.' is not a valid member name")));
    }
    if name.contains('\0') {
        return Err(invalid(format!("path {path:?}: member name {name:?} contains a NUL byte")));
    }
    Ok(())
}

impl<'a> H5Writer<'a> {
    /// An empty file (just the root group).
    pub fn new() -> Self {
        H5Writer::default()
    }

    /// The group at `parts`, creating missing groups when `create` is set.
    fn group_at(&mut self, parts: &[&str], path: &str, create: bool) -> Result<&mut GroupNode<'a>> {
        let mut g = &mut self.root;
        for (i, p) in parts.iter().enumerate() {
            if create && !g.children.contains_key(*p) {
                g.children.insert(p.to_string(), Node::Group(GroupNode::default()));
            }
            g = match g.children.get_mut(*p) {
                Some(Node::Group(c)) => c,
                Some(Node::Dataset(_)) => {
                    return Err(invalid(format!(
                        "path {path:?}: /{} is a dataset, not a group",
                        parts[..=i].join("/")
                    )))
                }
                None => return Err(invalid(format!("path {path:?}: no group /{}", parts[..=i].join("/")))),
            };
        }
        Ok(g)
    }

    /// Creates the group at `path` and any missing parent groups (an existing group is fine).
    pub fn group(&mut self, path: &str) -> Result<()> {
        let parts = components(path)?;
        self.group_at(&parts, path, true).map(|_| ())
    }

    /// Sets a scalar variable-length UTF-8 string attribute (what h5py writes for a Python
    /// `str`) on the existing group or dataset at `path`, replacing one of the same name.
    pub fn attr_str(&mut self, path: &str, name: &str, value: &str) -> Result<()> {
        if name.is_empty() || name.contains('\0') {
            return Err(invalid(format!("{path}: attribute name {name:?} is empty or contains NUL")));
        }
        if name.len() > encode::MAX_ATTR_NAME {
            return Err(invalid(format!(
                "{path}: attribute name of {} bytes (at most {})",
                name.len(),
                encode::MAX_ATTR_NAME
            )));
        }
        if value.contains('\0') {
            return Err(invalid(format!("{path}: attribute {name:?}: value contains a NUL byte")));
        }
        if u32::try_from(value.len()).is_err() {
            return Err(invalid(format!("{path}: attribute {name:?}: value of {} bytes", value.len())));
        }
        let parts = components(path)?;
        let attrs = match parts.split_last() {
            None => &mut self.root.attrs,
            Some((last, parents)) => {
                let g = self.group_at(parents, path, false)?;
                match g.children.get_mut(*last) {
                    Some(Node::Group(c)) => &mut c.attrs,
                    Some(Node::Dataset(d)) => &mut d.attrs,
                    None => return Err(invalid(format!("{path}: no such group or dataset"))),
                }
            }
        };
        attrs.insert(name.to_string(), value.to_string());
        Ok(())
    }

    fn add_dataset(&mut self, path: &str, dtype: DType, shape: &[usize], data: Data<'a>) -> Result<()> {
        let esize = encode::element_size(dtype)
            .ok_or_else(|| invalid(format!("dataset {path:?}: dtype {dtype:?} has no HDF5 type here")))?;
        if shape.len() > MAX_RANK {
            return Err(invalid(format!("dataset {path:?}: rank {} (HDF5 allows {MAX_RANK})", shape.len())));
        }
        let nbytes = shape
            .iter()
            .try_fold(esize as u64, |a, &d| a.checked_mul(d as u64))
            .filter(|&n| n < (1u64 << 62))
            .ok_or_else(|| invalid(format!("dataset {path:?}: shape {shape:?} is too large")))?;
        if let Data::Bytes(b) = &data {
            if b.len() as u64 != nbytes {
                return Err(invalid(format!(
                    "dataset {path:?}: shape {shape:?} of {dtype:?} needs {nbytes} bytes, got {}",
                    b.len()
                )));
            }
        }
        let parts = components(path)?;
        let Some((last, parents)) = parts.split_last() else {
            return Err(invalid("the root is a group; a dataset needs a name"));
        };
        let g = self.group_at(parents, path, true)?;
        if g.children.contains_key(*last) {
            return Err(invalid(format!("dataset {path:?}: the name is already taken")));
        }
        let node = DatasetNode { dtype, shape: shape.to_vec(), nbytes, data, attrs: BTreeMap::new() };
        g.children.insert(last.to_string(), Node::Dataset(node));
        Ok(())
    }

    /// Adds a contiguous dataset of `dtype` (U8, I32, I64, F16, F32 or F64) with its bytes
    /// (little-endian, C order; `shape = []` is a scalar). Parent groups are created.
    pub fn dataset_bytes(
        &mut self,
        path: &str,
        dtype: DType,
        shape: &[usize],
        bytes: impl Into<Cow<'a, [u8]>>,
    ) -> Result<()> {
        self.add_dataset(path, dtype, shape, Data::Bytes(bytes.into()))
    }

    /// Adds a dataset whose bytes `fill` writes when the file is written; it must write exactly
    /// the shape's size in bytes (checked: anything else fails the write).
    pub fn dataset_with(
        &mut self,
        path: &str,
        dtype: DType,
        shape: &[usize],
        fill: impl Fn(&mut dyn Write) -> std::io::Result<()> + 'a,
    ) -> Result<()> {
        self.add_dataset(path, dtype, shape, Data::Stream(Box::new(fill)))
    }

    /// Adds an f32 dataset.
    pub fn dataset_f32(&mut self, path: &str, shape: &[usize], values: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.dataset_bytes(path, DType::F32, shape, bytes)
    }

    /// Adds an f64 dataset.
    pub fn dataset_f64(&mut self, path: &str, shape: &[usize], values: &[f64]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.dataset_bytes(path, DType::F64, shape, bytes)
    }

    /// Adds an i64 dataset.
    pub fn dataset_i64(&mut self, path: &str, shape: &[usize], values: &[i64]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.dataset_bytes(path, DType::I64, shape, bytes)
    }

    /// Writes the file to `w` (`file` names it in errors); returns the bytes written.
    pub fn write_to(&self, w: &mut dyn Write, file: &str) -> Result<u64> {
        let plan = encode::plan(&self.root).map_err(|e| Error::invalid(file, e))?;
        plan.write(w).map_err(|e| Error::io(file, e))
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out, "(in memory)")?;
        Ok(out)
    }

    /// Writes the file atomically: to a temporary file next to `path`, synced, then renamed,
    /// so that a crash leaves either the old file or the complete new one.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let plan = encode::plan(&self.root).map_err(|e| Error::invalid(&name, e))?;
        crate::safetensors::write_atomic_with(path, |w| plan.write(w).map(|_| ()))
    }
}
