//! The on-disk encoding of [`super::H5Writer`]'s tree, laid out as
//! `[superblock][dataset bytes, 64-byte aligned][metadata]`:
//!
//! - the dataset bytes' addresses follow from their sizes alone, so all metadata (object
//!   headers, local heaps, v1 B-trees, symbol nodes, global heap collections) is built in
//!   memory in one post-order pass before anything is written, and the data is then streamed;
//! - groups are old-style: a symbol-table message pointing at a v1 B-tree (K = 16, any number of
//!   levels) over `SNOD` nodes (8 entries each) whose names live in the group's local heap;
//! - attribute strings are variable-length UTF-8 in global heap collections of at least 4 KiB.

use super::{Data, DatasetNode, GroupNode, Node};
use std::io::Write;
use tlx_core::DType;

const UNDEF: u64 = u64::MAX;
const LEAF_K: usize = 4;
const INTERNAL_K: usize = 16;
const SUPERBLOCK_SIZE: usize = 96;
const DATA_ALIGN: u64 = 64;
const ENTRY_SIZE: usize = 40;
const SNOD_ENTRIES: usize = 2 * LEAF_K;
const SNOD_SIZE: usize = 8 + SNOD_ENTRIES * ENTRY_SIZE;
const BTREE_CHILDREN: usize = 2 * INTERNAL_K;
const BTREE_SIZE: usize = 24 + BTREE_CHILDREN * 8 + (BTREE_CHILDREN + 1) * 8;
const LOCAL_HEAP_HEADER: usize = 32;
const GCOL_MIN: usize = 4096;
const GCOL_HEADER: usize = 16;
const GCOL_OBJECT_HEADER: usize = 16;
/// The end of a local heap's free list on disk (libhdf5's `H5HL_FREE_NULL`).
const HEAP_FREE_NULL: u64 = 1;

/// Longest attribute name whose message still fits the 16-bit message size.
pub(super) const MAX_ATTR_NAME: usize = 65_000;

const MSG_DATASPACE: u16 = 0x01;
const MSG_DATATYPE: u16 = 0x03;
const MSG_FILL_VALUE: u16 = 0x05;
const MSG_LAYOUT: u16 = 0x08;
const MSG_ATTRIBUTE: u16 = 0x0C;
const MSG_SYMBOL_TABLE: u16 = 0x11;
/// Header message flag: the message is constant.
const FLAG_CONSTANT: u8 = 0x01;

/// Variable-length UTF-8 string, NUL-terminated padding, over unsigned 8-bit characters.
const VLEN_UTF8: [u8; 20] = [0x19, 0x01, 0x01, 0x00, 16, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 8, 0];

fn align(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn pad8(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(8) * 8, 0);
}

/// Bytes per element of the dtypes this writer stores.
pub(super) fn element_size(dtype: DType) -> Option<usize> {
    match dtype {
        DType::U8 => Some(1),
        DType::F16 => Some(2),
        DType::I32 | DType::F32 => Some(4),
        DType::I64 | DType::F64 => Some(8),
        DType::BF16 => None,
    }
}

/// Datatype message body (version 1, little-endian); `None` for a dtype with no HDF5 type here.
fn datatype(dtype: DType) -> Option<Vec<u8>> {
    // (size, sign bit, exponent location, exponent size, mantissa size, bias)
    let float = |size: u8, sign: u8, exp_loc: u8, exp_size: u8, mant: u8, bias: u32| {
        let mut v = vec![0x11, 0x20, sign, 0, size, 0, 0, 0, 0, 0, size * 8, 0, exp_loc, exp_size, 0, mant];
        v.extend(bias.to_le_bytes());
        v
    };
    let int = |size: u8, signed: bool| {
        vec![0x10, if signed { 0x08 } else { 0 }, 0, 0, size, 0, 0, 0, 0, 0, size * 8, 0]
    };
    Some(match dtype {
        DType::U8 => int(1, false),
        DType::I32 => int(4, true),
        DType::I64 => int(8, true),
        DType::F16 => float(2, 15, 10, 5, 10, 15),
        DType::F32 => float(4, 31, 23, 8, 23, 127),
        DType::F64 => float(8, 63, 52, 11, 52, 1023),
        DType::BF16 => return None,
    })
}

/// Dataspace message body (version 1): scalar for rank 0, else dims with max dims = dims.
fn dataspace(shape: &[usize]) -> Vec<u8> {
    let rank = shape.len() as u8;
    let mut v = vec![1, rank, u8::from(rank > 0), 0, 0, 0, 0, 0];
    // The dimensions, then the same as maximum dimensions (nothing for a scalar).
    for &d in shape.iter().chain(shape) {
        v.extend((d as u64).to_le_bytes());
    }
    v
}

struct Msg {
    mtype: u16,
    flags: u8,
    body: Vec<u8>,
}

/// A version-1 object header holding `msgs` in one chunk.
fn object_header(msgs: &[Msg], path: &str) -> Result<Vec<u8>, String> {
    let n = u16::try_from(msgs.len())
        .map_err(|_| format!("{path}: {} header messages (HDF5 allows 65535)", msgs.len()))?;
    let mut chunk = Vec::new();
    for m in msgs {
        let size = m.body.len().div_ceil(8) * 8;
        let size16 = u16::try_from(size)
            .map_err(|_| format!("{path}: a header message of {size} bytes (HDF5 allows 65535)"))?;
        chunk.extend(m.mtype.to_le_bytes());
        chunk.extend(size16.to_le_bytes());
        chunk.extend([m.flags, 0, 0, 0]);
        chunk.extend(&m.body);
        pad8(&mut chunk);
    }
    let size = u32::try_from(chunk.len()).map_err(|_| format!("{path}: object header too large"))?;
    let mut v = vec![1, 0];
    v.extend(n.to_le_bytes());
    v.extend(1u32.to_le_bytes()); // reference count
    v.extend(size.to_le_bytes());
    v.extend([0; 4]);
    v.extend(chunk);
    Ok(v)
}

/// A group member: name, object header address, and the B-tree and heap of a child group.
type Entry<'n> = (&'n str, u64, Option<(u64, u64)>);

struct Gcol {
    addr: u64,
    size: usize,
    used: usize,
    next_index: u16,
}

/// The metadata region being built: `buf[i]` is at file address `base + i`.
struct Meta<'p, 'a> {
    base: u64,
    buf: Vec<u8>,
    gcols: Vec<Gcol>,
    data_cursor: u64,
    data: Vec<(u64, &'p DatasetNode<'a>, String)>,
}

impl<'p, 'a> Meta<'p, 'a> {
    fn alloc(&mut self, size: usize) -> u64 {
        let start = self.buf.len().div_ceil(8) * 8;
        self.buf.resize(start + size, 0);
        self.base + start as u64
    }

    fn put(&mut self, addr: u64, bytes: &[u8]) {
        let i = (addr - self.base) as usize;
        self.buf[i..i + bytes.len()].copy_from_slice(bytes);
    }

    /// Appends `bytes` as a new block; returns its address.
    fn push(&mut self, bytes: &[u8]) -> u64 {
        let addr = self.alloc(bytes.len());
        self.put(addr, bytes);
        addr
    }

    /// Stores a string in a global heap collection: (collection address, object index).
    fn heap_string(&mut self, s: &str) -> (u64, u32) {
        let need = GCOL_OBJECT_HEADER + s.len().div_ceil(8) * 8;
        let fits = self.gcols.last().is_some_and(|g| g.used + need <= g.size && g.next_index < u16::MAX);
        if !fits {
            let size = (GCOL_HEADER + need).max(GCOL_MIN);
            let addr = self.alloc(size);
            let mut h = b"GCOL".to_vec();
            h.extend([1, 0, 0, 0]);
            h.extend((size as u64).to_le_bytes());
            self.put(addr, &h);
            self.gcols.push(Gcol { addr, size, used: GCOL_HEADER, next_index: 1 });
        }
        let g = self.gcols.last_mut().expect("a collection was just ensured");
        let (addr, index, at) = (g.addr, g.next_index, g.addr + g.used as u64);
        g.used += need;
        g.next_index += 1;
        let mut o = Vec::with_capacity(need);
        o.extend(index.to_le_bytes());
        o.extend([0u8; 6]); // reference count, reserved
        o.extend((s.len() as u64).to_le_bytes());
        o.extend(s.as_bytes());
        self.put(at, &o);
        (addr, index as u32)
    }

    /// Closes every collection with its free-space object (index 0) when there is room for one.
    fn finish_heaps(&mut self) {
        let free: Vec<(u64, usize)> = self
            .gcols
            .iter()
            .filter(|g| g.size - g.used >= GCOL_OBJECT_HEADER)
            .map(|g| (g.addr + g.used as u64, g.size - g.used))
            .collect();
        for (at, size) in free {
            let mut o = vec![0u8; 8];
            o.extend((size as u64).to_le_bytes());
            self.put(at, &o);
        }
    }

    fn attributes(&mut self, attrs: &std::collections::BTreeMap<String, String>) -> Vec<Msg> {
        attrs
            .iter()
            .map(|(name, value)| {
                let (addr, index) = self.heap_string(value);
                let mut b = vec![1, 0];
                b.extend(((name.len() + 1) as u16).to_le_bytes());
                b.extend((VLEN_UTF8.len() as u16).to_le_bytes());
                b.extend(8u16.to_le_bytes());
                b.extend(name.as_bytes());
                b.push(0);
                pad8(&mut b);
                b.extend(VLEN_UTF8);
                pad8(&mut b);
                b.extend(dataspace(&[]));
                b.extend((value.len() as u32).to_le_bytes());
                b.extend(addr.to_le_bytes());
                b.extend(index.to_le_bytes());
                Msg { mtype: MSG_ATTRIBUTE, flags: 0, body: b }
            })
            .collect()
    }

    fn dataset(&mut self, d: &'p DatasetNode<'a>, path: &str) -> Result<u64, String> {
        let dtype =
            datatype(d.dtype).ok_or_else(|| format!("{path}: dtype {:?} has no HDF5 type", d.dtype))?;
        let addr = if d.nbytes == 0 {
            UNDEF
        } else {
            let at = align(self.data_cursor, DATA_ALIGN);
            self.data_cursor = at + d.nbytes;
            self.data.push((at, d, path.to_string()));
            at
        };
        let mut layout = vec![3, 1];
        layout.extend(addr.to_le_bytes());
        layout.extend(d.nbytes.to_le_bytes());
        let mut msgs = vec![
            Msg { mtype: MSG_DATASPACE, flags: 0, body: dataspace(&d.shape) },
            Msg { mtype: MSG_DATATYPE, flags: FLAG_CONSTANT, body: dtype },
            // Version 2: allocation late, fill written if set, fill value defined as the default.
            Msg { mtype: MSG_FILL_VALUE, flags: FLAG_CONSTANT, body: vec![2, 2, 2, 1, 0, 0, 0, 0] },
            Msg { mtype: MSG_LAYOUT, flags: 0, body: layout },
        ];
        msgs.extend(self.attributes(&d.attrs));
        let h = object_header(&msgs, path)?;
        Ok(self.push(&h))
    }

    /// Emits a group and everything below it; returns (header, B-tree, local heap) addresses.
    fn group(&mut self, g: &'p GroupNode<'a>, path: &str) -> Result<(u64, u64, u64), String> {
        let mut entries: Vec<Entry<'_>> = Vec::with_capacity(g.children.len());
        for (name, child) in &g.children {
            let child_path = format!("{}/{name}", path.trim_end_matches('/'));
            match child {
                Node::Group(c) => {
                    let (h, b, l) = self.group(c, &child_path)?;
                    entries.push((name, h, Some((b, l))));
                }
                Node::Dataset(d) => entries.push((name, self.dataset(d, &child_path)?, None)),
            }
        }
        // Local heap: the empty name at offset 0, then each member name.
        let mut names = vec![0u8; 8];
        let mut offsets = Vec::with_capacity(entries.len());
        for (name, _, _) in &entries {
            offsets.push(names.len() as u64);
            names.extend(name.as_bytes());
            names.push(0);
            pad8(&mut names);
        }
        let heap = self.alloc(LOCAL_HEAP_HEADER + names.len());
        let mut h = b"HEAP".to_vec();
        h.extend([0, 0, 0, 0]);
        h.extend((names.len() as u64).to_le_bytes());
        h.extend(HEAP_FREE_NULL.to_le_bytes());
        h.extend((heap + LOCAL_HEAP_HEADER as u64).to_le_bytes());
        h.extend(&names);
        self.put(heap, &h);
        // Symbol nodes, 8 entries each: (address, heap offset of its last name).
        let mut leaves = Vec::new();
        for (chunk, offs) in entries.chunks(SNOD_ENTRIES).zip(offsets.chunks(SNOD_ENTRIES)) {
            let mut s = b"SNOD".to_vec();
            s.extend([1, 0]);
            s.extend((chunk.len() as u16).to_le_bytes());
            for ((_, addr, cache), off) in chunk.iter().zip(offs) {
                s.extend(off.to_le_bytes());
                s.extend(addr.to_le_bytes());
                match cache {
                    Some((btree, lheap)) => {
                        s.extend(1u32.to_le_bytes());
                        s.extend([0; 4]);
                        s.extend(btree.to_le_bytes());
                        s.extend(lheap.to_le_bytes());
                    }
                    None => s.extend([0; 24]),
                }
            }
            s.resize(SNOD_SIZE, 0);
            leaves.push((self.push(&s), *offs.last().expect("chunks are non-empty")));
        }
        let btree = self.btree(&leaves);
        let mut stab = btree.to_le_bytes().to_vec();
        stab.extend(heap.to_le_bytes());
        let mut msgs = vec![Msg { mtype: MSG_SYMBOL_TABLE, flags: 0, body: stab }];
        msgs.extend(self.attributes(&g.attrs));
        let header = self.push(&object_header(&msgs, if path.is_empty() { "/" } else { path })?);
        Ok((header, btree, heap))
    }

    /// Builds a group B-tree over symbol nodes given as (address, right key); returns the root.
    /// Each key is the heap offset of the last name below it; the leftmost key is offset 0 ("").
    fn btree(&mut self, leaves: &[(u64, u64)]) -> u64 {
        let mut items: Vec<(u64, u64)> = leaves.to_vec();
        let mut level = 0u8;
        loop {
            let groups: Vec<&[(u64, u64)]> =
                if items.is_empty() { vec![&[]] } else { items.chunks(BTREE_CHILDREN).collect() };
            let addrs: Vec<u64> = groups.iter().map(|_| self.alloc(BTREE_SIZE)).collect();
            let mut next = Vec::with_capacity(groups.len());
            let mut left_key = 0u64;
            for (i, children) in groups.iter().enumerate() {
                let mut n = b"TREE".to_vec();
                n.extend([0, level]);
                n.extend((children.len() as u16).to_le_bytes());
                n.extend((if i > 0 { addrs[i - 1] } else { UNDEF }).to_le_bytes());
                n.extend(addrs.get(i + 1).copied().unwrap_or(UNDEF).to_le_bytes());
                n.extend(left_key.to_le_bytes());
                for (child, right_key) in children.iter() {
                    n.extend(child.to_le_bytes());
                    n.extend(right_key.to_le_bytes());
                }
                n.resize(BTREE_SIZE, 0);
                self.put(addrs[i], &n);
                let right = children.last().map_or(left_key, |c| c.1);
                next.push((addrs[i], right));
                left_key = right;
            }
            if next.len() == 1 {
                return next[0].0;
            }
            items = next;
            level += 1;
        }
    }
}

fn data_size(g: &GroupNode<'_>) -> u64 {
    g.children
        .values()
        .map(|c| match c {
            Node::Group(c) => data_size(c),
            Node::Dataset(d) if d.nbytes > 0 => align(d.nbytes, DATA_ALIGN),
            Node::Dataset(_) => 0,
        })
        .sum()
}

/// Everything needed to write the file: all metadata is final, data comes from the tree.
pub(super) struct Plan<'p, 'a> {
    superblock: Vec<u8>,
    data: Vec<(u64, &'p DatasetNode<'a>, String)>,
    meta_base: u64,
    meta: Vec<u8>,
}

/// Lays the file out.
pub(super) fn plan<'p, 'a>(root: &'p GroupNode<'a>) -> Result<Plan<'p, 'a>, String> {
    let data_start = align(SUPERBLOCK_SIZE as u64, DATA_ALIGN);
    let meta_base = align(data_start + data_size(root), 8);
    let mut m = Meta {
        base: meta_base,
        buf: Vec::new(),
        gcols: Vec::new(),
        data_cursor: data_start,
        data: Vec::new(),
    };
    let (root_header, btree, heap) = m.group(root, "")?;
    m.finish_heaps();
    let eof = meta_base + m.buf.len() as u64;
    let mut sb = super::super::superblock::SIGNATURE.to_vec();
    sb.extend([0, 0, 0, 0, 0, 8, 8, 0]); // versions, sizes of offsets and lengths
    sb.extend((LEAF_K as u16).to_le_bytes());
    sb.extend((INTERNAL_K as u16).to_le_bytes());
    sb.extend(0u32.to_le_bytes()); // consistency flags
    for a in [0, UNDEF, eof, UNDEF] {
        sb.extend(a.to_le_bytes()); // base, free space, end of file, driver info
    }
    // Root symbol table entry, caching the root group's B-tree and heap.
    sb.extend(0u64.to_le_bytes());
    sb.extend(root_header.to_le_bytes());
    sb.extend(1u32.to_le_bytes());
    sb.extend(0u32.to_le_bytes());
    sb.extend(btree.to_le_bytes());
    sb.extend(heap.to_le_bytes());
    debug_assert_eq!(sb.len(), SUPERBLOCK_SIZE);
    Ok(Plan { superblock: sb, data: m.data, meta_base, meta: m.buf })
}

/// Counts bytes passed through, so that a dataset's producer is held to its size.
struct Counting<'w> {
    inner: &'w mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn zeros(w: &mut dyn Write, mut n: u64) -> std::io::Result<()> {
    let z = [0u8; 4096];
    while n > 0 {
        let k = n.min(z.len() as u64) as usize;
        w.write_all(&z[..k])?;
        n -= k as u64;
    }
    Ok(())
}

impl Plan<'_, '_> {
    /// Writes the file; returns its size.
    pub(super) fn write(&self, w: &mut dyn Write) -> std::io::Result<u64> {
        w.write_all(&self.superblock)?;
        let mut pos = self.superblock.len() as u64;
        for (addr, d, path) in &self.data {
            zeros(w, addr - pos)?;
            let mut c = Counting { inner: w, n: 0 };
            match &d.data {
                Data::Bytes(b) => c.write_all(b)?,
                Data::Stream(f) => f(&mut c)?,
            }
            if c.n != d.nbytes {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "dataset {path}: {} bytes written for shape {:?} of {:?} ({} bytes)",
                        c.n, d.shape, d.dtype, d.nbytes
                    ),
                ));
            }
            pos = addr + d.nbytes;
        }
        zeros(w, self.meta_base - pos)?;
        w.write_all(&self.meta)?;
        w.flush()?;
        Ok(self.meta_base + self.meta.len() as u64)
    }
}
