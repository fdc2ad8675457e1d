//! A pure-Rust, read-only HDF5 reader for the files Keras (through h5py) writes: memory-mapped,
//! bounds-checked, with zero-copy views of contiguous datasets.
//!
//! Supported: superblock versions 0–3; object header versions 1 and 2 with continuations;
//! old-style groups (symbol tables, v1 B-trees, local heaps) and new-style groups (link
//! messages, dense storage with fractal heaps and v2 B-trees); attributes in headers and in dense
//! storage; contiguous, compact and chunked datasets (deflate, shuffle, Fletcher-32; chunk
//! indexes v1 B-tree, single chunk, implicit, fixed array, extensible array, v2 B-tree);
//! integer and float types in either byte order, fixed and variable-length strings.

mod attribute;
mod btree1;
mod btree2;
mod chunk_index;
mod cursor;
mod dataset;
mod datatype;
mod filters;
mod fractal_heap;
mod group;
mod heaps;
mod messages;
mod object_header;
mod superblock;
pub mod write;

pub use attribute::{AttrValue, Attribute};
pub use datatype::{H5Type, StrPad};
pub use group::LinkEntry;
pub use write::H5Writer;

use crate::error::{Error, Fault, PResult, Result};
use crate::source::Source;
use crate::tensor::RawTensor;
use cursor::FileCtx;
use dataset::DatasetInfo;
use group::Kind;
use object_header::ObjectHeader;
use std::collections::HashSet;
use std::path::Path;
use tlx_core::DType;

/// Maximum depth of nested groups followed by [`H5File::walk`] and path lookups.
const MAX_PATH_DEPTH: usize = 256;

/// An open HDF5 file.
#[derive(Clone, Debug)]
pub struct H5File {
    src: Source,
    sb: superblock::Superblock,
}

impl H5File {
    /// Memory-maps and opens a file.
    pub fn open(path: impl AsRef<Path>) -> Result<H5File> {
        H5File::from_source(Source::open(path.as_ref())?)
    }

    /// Opens an HDF5 image held in memory (`name` is used in error messages).
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<H5File> {
        H5File::from_source(Source::owned(name.into(), bytes))
    }

    pub(crate) fn from_source(src: Source) -> Result<H5File> {
        let sb = superblock::parse(src.bytes()).map_err(|e| e.at(&src.name, "superblock"))?;
        Ok(H5File { src, sb })
    }

    /// The file name used in messages.
    pub fn name(&self) -> &str {
        &self.src.name
    }

    /// The superblock version (0–3).
    pub fn superblock_version(&self) -> u8 {
        self.sb.version
    }

    fn ctx(&self) -> FileCtx<'_> {
        FileCtx { data: self.src.bytes(), base: self.sb.base, sizes: self.sb.sizes }
    }

    fn err(&self, path: &str) -> impl Fn(Fault) -> Error + '_ {
        let path = path.to_string();
        move |e| e.at(&self.src.name, &path)
    }

    fn header(&self, addr: u64, path: &str) -> Result<ObjectHeader<'_>> {
        object_header::parse(&self.ctx(), addr).map_err(self.err(path))
    }

    fn object_at(&self, addr: u64, path: String) -> Result<Object<'_>> {
        let h = self.header(addr, &path)?;
        match group::kind(&h) {
            Kind::Group => Ok(Object::Group(Group { file: self, path, addr })),
            Kind::Dataset => {
                let info = dataset_info(&self.ctx(), &h).map_err(self.err(&path))?;
                Ok(Object::Dataset(Dataset { file: self, path, addr, info }))
            }
            Kind::Other => {
                Err(Fault::unsupported("object that is neither a group nor a dataset").at(self.name(), &path))
            }
        }
    }

    /// The root group.
    pub fn root(&self) -> Result<Group<'_>> {
        self.group("/")
    }

    /// The object at an absolute path (`/model_weights/dense`).
    pub fn get(&self, path: &str) -> Result<Object<'_>> {
        let mut addr = self.sb.root;
        let mut cur = String::new();
        for (depth, part) in path.split('/').filter(|p| !p.is_empty()).enumerate() {
            if depth > MAX_PATH_DEPTH {
                return Err(Error::invalid(self.name(), format!("path {path:?} is too deep")));
            }
            let h = self.header(addr, if cur.is_empty() { "/" } else { &cur })?;
            if group::kind(&h) != Kind::Group {
                return Err(Error::not_found(self.name(), format!("{path} ({cur} is not a group)")));
            }
            let links = group::links(&self.ctx(), &h).map_err(self.err(&cur))?;
            let Some(l) = links.iter().find(|l| l.name == part) else {
                return Err(Error::not_found(self.name(), path));
            };
            addr = l.addr;
            cur = format!("{cur}/{part}");
        }
        self.object_at(addr, if cur.is_empty() { "/".into() } else { cur })
    }

    /// The group at a path.
    pub fn group(&self, path: &str) -> Result<Group<'_>> {
        match self.get(path)? {
            Object::Group(g) => Ok(g),
            Object::Dataset(_) => {
                Err(Error::invalid(self.name(), format!("{path} is a dataset, not a group")))
            }
        }
    }

    /// The dataset at a path.
    pub fn dataset(&self, path: &str) -> Result<Dataset<'_>> {
        match self.get(path)? {
            Object::Dataset(d) => Ok(d),
            Object::Group(_) => Err(Error::invalid(self.name(), format!("{path} is a group, not a dataset"))),
        }
    }

    /// Every group and dataset reachable from the root, sorted by path, each once (hard links
    /// to an object already visited, including cycles, are not followed again; committed
    /// datatypes are skipped).
    pub fn walk(&self) -> Result<Vec<Object<'_>>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let root = self.root()?;
        seen.insert(root.addr);
        let mut stack = vec![(root, 0usize)];
        while let Some((g, depth)) = stack.pop() {
            let links = g.links()?;
            out.push(Object::Group(g.clone()));
            if depth >= MAX_PATH_DEPTH {
                return Err(Fault::corrupt("groups nested too deeply").at(self.name(), &g.path));
            }
            let mut children = Vec::new();
            for l in links {
                if !seen.insert(l.addr) {
                    continue;
                }
                let path =
                    if g.path == "/" { format!("/{}", l.name) } else { format!("{}/{}", g.path, l.name) };
                if group::kind(&self.header(l.addr, &path)?) == Kind::Other {
                    continue; // a committed datatype: neither group nor dataset
                }
                children.push(self.object_at(l.addr, path)?);
            }
            for c in children.into_iter().rev() {
                match c {
                    Object::Group(cg) => stack.push((cg, depth + 1)),
                    d @ Object::Dataset(_) => out.push(d),
                }
            }
        }
        out.sort_by(|a, b| a.path().cmp(b.path()));
        Ok(out)
    }
}

fn dataset_info<'a>(f: &FileCtx<'a>, h: &ObjectHeader<'a>) -> PResult<DatasetInfo<'a>> {
    let need = |t: u16, what: &str| {
        h.first(t).ok_or_else(|| Fault::corrupt(format!("dataset without a {what} message")))
    };
    let space = messages::dataspace(need(object_header::MSG_DATASPACE, "dataspace")?.data, f.sizes)?;
    let dtm = need(object_header::MSG_DATATYPE, "datatype")?;
    let dtype = datatype::parse_maybe_shared(dtm.data, dtm.is_shared(), f)?;
    let layout = messages::layout(need(object_header::MSG_LAYOUT, "layout")?.data, f.sizes)?;
    let filters = match h.first(object_header::MSG_FILTERS) {
        Some(m) => messages::filters(m.data, f.sizes)?,
        None => Vec::new(),
    };
    Ok(DatasetInfo { dims: space.dims, max_dims: space.max_dims, dtype, layout, filters })
}

/// A group or a dataset.
#[derive(Clone, Debug)]
pub enum Object<'f> {
    /// A group.
    Group(Group<'f>),
    /// A dataset.
    Dataset(Dataset<'f>),
}

impl Object<'_> {
    /// Absolute path.
    pub fn path(&self) -> &str {
        match self {
            Object::Group(g) => &g.path,
            Object::Dataset(d) => &d.path,
        }
    }

    /// Attributes, sorted by name.
    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        match self {
            Object::Group(g) => g.attributes(),
            Object::Dataset(d) => d.attributes(),
        }
    }
}

fn attributes_of(file: &H5File, addr: u64, path: &str) -> Result<Vec<Attribute>> {
    let h = file.header(addr, path)?;
    group::attributes(&file.ctx(), &h).map_err(file.err(path))
}

/// A group.
#[derive(Clone, Debug)]
pub struct Group<'f> {
    file: &'f H5File,
    path: String,
    addr: u64,
}

impl<'f> Group<'f> {
    /// Absolute path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Object header address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Hard links, sorted by name.
    pub fn links(&self) -> Result<Vec<LinkEntry>> {
        let h = self.file.header(self.addr, &self.path)?;
        group::links(&self.file.ctx(), &h).map_err(self.file.err(&self.path))
    }

    /// Member names, sorted.
    pub fn member_names(&self) -> Result<Vec<String>> {
        Ok(self.links()?.into_iter().map(|l| l.name).collect())
    }

    /// Attributes, sorted by name.
    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        attributes_of(self.file, self.addr, &self.path)
    }

    /// One attribute.
    pub fn attr(&self, name: &str) -> Result<Option<Attribute>> {
        Ok(self.attributes()?.into_iter().find(|a| a.name == name))
    }

    /// A string attribute as a list, joining Keras's split form (`name0`, `name1`, …) that
    /// Keras writes when the list is over 64 KB. `None` when neither form exists.
    pub fn attr_strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        let attrs = self.attributes()?;
        let as_list = |a: &Attribute| {
            a.as_strings().ok_or_else(|| {
                Error::invalid(
                    self.file.name(),
                    format!("{}: attribute {} is not a list of strings", self.path, a.name),
                )
            })
        };
        if let Some(a) = attrs.iter().find(|a| a.name == name) {
            return as_list(a).map(Some);
        }
        let mut out = Vec::new();
        let mut found = false;
        for i in 0.. {
            let part = format!("{name}{i}");
            let Some(a) = attrs.iter().find(|a| a.name == part) else { break };
            found = true;
            out.extend(as_list(a)?);
        }
        Ok(found.then_some(out))
    }

    /// A member by relative path.
    pub fn get(&self, rel: &str) -> Result<Object<'f>> {
        let base = if self.path == "/" { String::new() } else { self.path.clone() };
        self.file.get(&format!("{base}/{rel}"))
    }

    /// A member group.
    pub fn group(&self, rel: &str) -> Result<Group<'f>> {
        let base = if self.path == "/" { String::new() } else { self.path.clone() };
        self.file.group(&format!("{base}/{rel}"))
    }

    /// A member dataset.
    pub fn dataset(&self, rel: &str) -> Result<Dataset<'f>> {
        let base = if self.path == "/" { String::new() } else { self.path.clone() };
        self.file.dataset(&format!("{base}/{rel}"))
    }

    /// The file.
    pub fn file(&self) -> &'f H5File {
        self.file
    }
}

/// A dataset.
#[derive(Clone, Debug)]
pub struct Dataset<'f> {
    file: &'f H5File,
    path: String,
    addr: u64,
    info: DatasetInfo<'f>,
}

impl Dataset<'_> {
    /// Absolute path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Object header address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Dimensions (empty for a scalar or a null dataspace).
    pub fn shape(&self) -> Result<Vec<usize>> {
        self.info.shape().map_err(self.file.err(&self.path))
    }

    /// The stored datatype.
    pub fn h5_type(&self) -> &H5Type {
        &self.info.dtype
    }

    /// The dtype [`Dataset::read`] returns.
    pub fn dtype(&self) -> Result<DType> {
        self.info.dtype.tensor_dtype().map(|(d, _)| d).ok_or_else(|| {
            Fault::unsupported(format!(
                "dataset of type {} is not a numeric tensor",
                self.info.dtype.numpy_name()
            ))
            .at(self.file.name(), &self.path)
        })
    }

    /// `contiguous`, `chunked` or `compact`.
    pub fn layout_name(&self) -> &'static str {
        self.info.layout_name()
    }

    /// Names of the filters applied to chunks (`gzip`, `shuffle`, …).
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.info.filters.iter().map(|f| filters::filter_name(f.id)).collect()
    }

    /// Attributes, sorted by name.
    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        attributes_of(self.file, self.addr, &self.path)
    }

    /// Reads the data: a zero-copy view for contiguous little-endian data of a mapped file,
    /// decoded owned bytes otherwise.
    pub fn read(&self) -> Result<RawTensor> {
        let shape = self.shape()?;
        let bytes = dataset::read_stored(&self.file.src, &self.file.ctx(), &self.info)
            .map_err(self.file.err(&self.path))?;
        dataset::to_tensor(shape, &self.info.dtype, bytes).map_err(self.file.err(&self.path))
    }
}
