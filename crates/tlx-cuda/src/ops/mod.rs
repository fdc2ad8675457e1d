//! Launchers for every kernel of `kernels/*.cu`, one module per kernel family, with an API
//! mirroring `tlx_cpu`'s functions: the same arguments in the same order (geometry, inputs,
//! outputs), with [`DeviceBuf`]s in place of slices.
//!
//! Conventions shared by every launcher:
//! - the device is the output buffer's; every other buffer must be on the same device;
//! - lengths and shapes are checked on the host before anything is launched, and a mismatch
//!   is an [`Error::Invalid`] naming the op and the sizes (tlx_cpu asserts where this returns
//!   an error): a kernel never reads or writes outside its buffers;
//! - launches are asynchronous on the device's one stream; results are read back with
//!   [`DeviceBuf::to_vec`] (which waits) or consumed by later launches (stream order);
//! - temporaries come from the caching allocator and go back to it when the launcher returns
//!   (safe: whatever reuses them is queued after the kernels that use them);
//! - f32 everywhere unless a name says otherwise (`*_f16`, `*_bf16`, `i64` labels, `u8` masks).
//!
//! Strided inputs (views: transposes, slices, broadcasts) are described by a
//! [`tlx_core::Layout`] and passed to the kernels by value with up to [`MAX_RANK`] axes after
//! merging axes that are contiguous in every operand.

pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod index;
pub mod mixed;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod softmax;

use crate::buffer::{DeviceBuf, DeviceElem};
use crate::context::CudaContext;
use crate::error::{Error, Result};
use cudarc::driver::LaunchConfig;
use tlx_core::Layout;

/// The most axes a strided layout may have after merging (`TLX_MAX_RANK` in common.cuh).
pub const MAX_RANK: usize = 8;

/// `Strided` of common.cuh: one strided layout (element strides, 0 = broadcast).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided {
    rank: i32,
    dims: [i64; MAX_RANK],
    strides: [i64; MAX_RANK],
    offset: i64,
}

/// `Strided2` of common.cuh: two layouts over one shape, walked together.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided2 {
    rank: i32,
    dims: [i64; MAX_RANK],
    sa: [i64; MAX_RANK],
    sb: [i64; MAX_RANK],
    off_a: i64,
    off_b: i64,
}

/// Merges the axes of `dims` (shared by every operand, whose strides are `strides[j]`):
/// size-1 axes are dropped and an axis folds into the next one when it is contiguous with it
/// in every operand. The element walk (row-major over `dims`) is unchanged.
pub(crate) fn merge_axes(dims: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut md: Vec<usize> = Vec::with_capacity(dims.len());
    let mut ms: Vec<Vec<usize>> = vec![Vec::with_capacity(dims.len()); strides.len()];
    for (i, &d) in dims.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let foldable = !md.is_empty()
            && strides.iter().enumerate().all(|(j, s)| ms[j].last().copied() == Some(s[i] * d));
        if foldable {
            *md.last_mut().expect("non-empty") *= d;
            for (j, s) in strides.iter().enumerate() {
                *ms[j].last_mut().expect("non-empty") = s[i];
            }
        } else {
            md.push(d);
            for (j, s) in strides.iter().enumerate() {
                ms[j].push(s[i]);
            }
        }
    }
    (md, ms)
}

fn to_i64(op: &'static str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(op, format!("{v} does not fit in 64 bits")))
}

/// A 32-bit kernel parameter (shape dimensions), or an error naming it.
pub(crate) fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::invalid(op, format!("{what} = {v} exceeds the kernels' 32-bit limit")))
}

fn fill_axes(op: &'static str, v: &[usize], out: &mut [i64; MAX_RANK]) -> Result<()> {
    for (o, &x) in out.iter_mut().zip(v) {
        *o = to_i64(op, x)?;
    }
    Ok(())
}

fn rank_error(op: &'static str, rank: usize, dims: &[usize]) -> Error {
    Error::invalid(
        op,
        format!("a strided layout of shape {dims:?} has {rank} axes after merging; the kernels take at most {MAX_RANK}"),
    )
}

impl Strided {
    /// The kernel form of `layout` (axes merged).
    pub(crate) fn new(op: &'static str, layout: &Layout) -> Result<Strided> {
        let (dims, strides) = merge_axes(layout.dims(), &[layout.strides()]);
        if dims.len() > MAX_RANK {
            return Err(rank_error(op, dims.len(), layout.dims()));
        }
        let mut s =
            Strided { rank: dims.len() as i32, dims: [1; MAX_RANK], strides: [0; MAX_RANK], offset: 0 };
        fill_axes(op, &dims, &mut s.dims)?;
        fill_axes(op, &strides[0], &mut s.strides)?;
        s.offset = to_i64(op, layout.offset())?;
        Ok(s)
    }
}

impl Strided2 {
    /// The kernel form of two layouts over the same shape (axes merged in both).
    pub(crate) fn new(op: &'static str, la: &Layout, lb: &Layout) -> Result<Strided2> {
        if la.dims() != lb.dims() {
            return Err(Error::invalid(
                op,
                format!(
                    "operand layouts must be broadcast to one shape, got {:?} and {:?}",
                    la.dims(),
                    lb.dims()
                ),
            ));
        }
        let (dims, strides) = merge_axes(la.dims(), &[la.strides(), lb.strides()]);
        if dims.len() > MAX_RANK {
            return Err(rank_error(op, dims.len(), la.dims()));
        }
        let mut s = Strided2 {
            rank: dims.len() as i32,
            dims: [1; MAX_RANK],
            sa: [0; MAX_RANK],
            sb: [0; MAX_RANK],
            off_a: to_i64(op, la.offset())?,
            off_b: to_i64(op, lb.offset())?,
        };
        fill_axes(op, &dims, &mut s.dims)?;
        fill_axes(op, &strides[0], &mut s.sa)?;
        fill_axes(op, &strides[1], &mut s.sb)?;
        Ok(s)
    }
}

/// Errors unless `got == want` (a buffer's length against what the op needs).
pub(crate) fn check_len(op: &'static str, what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::invalid(op, format!("{what} has {got} elements, expected {want}")))
    }
}

/// Errors unless `layout` (a view over `buf`) stays inside the buffer; returns its element count.
pub(crate) fn check_layout<T: DeviceElem>(
    op: &'static str,
    what: &str,
    buf: &DeviceBuf<T>,
    layout: &Layout,
) -> Result<usize> {
    let extent = layout.storage_extent();
    if extent > buf.len() {
        return Err(Error::invalid(
            op,
            format!(
                "{what}: the view of shape {:?} (strides {:?}, offset {}) reaches element {} of a buffer of {}",
                layout.dims(),
                layout.strides(),
                layout.offset(),
                extent,
                buf.len()
            ),
        ));
    }
    Ok(layout.numel())
}

/// The device address of `buf` after checking that it is on `ctx` and holds exactly `len`
/// elements.
pub(crate) fn exact<T: DeviceElem>(
    ctx: &CudaContext,
    op: &'static str,
    what: &str,
    buf: &DeviceBuf<T>,
    len: usize,
) -> Result<u64> {
    check_len(op, what, buf.len(), len)?;
    buf.arg(ctx, op, what, len)
}

/// Like [`exact`] for an optional buffer: `0` (a null pointer) when absent.
pub(crate) fn exact_opt<T: DeviceElem>(
    ctx: &CudaContext,
    op: &'static str,
    what: &str,
    buf: Option<&DeviceBuf<T>>,
    len: usize,
) -> Result<u64> {
    buf.map_or(Ok(0), |b| exact(ctx, op, what, b, len))
}

/// 256-thread blocks covering `n` items with grid-stride loops (at most 2²⁰ blocks).
pub(crate) fn grid(n: usize) -> LaunchConfig {
    crate::context::grid_1d(n, 256)
}

/// A 2-D launch: `blocks_x × blocks_y` blocks of `threads` threads.
pub(crate) fn grid_2d(blocks_x: usize, blocks_y: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks_x.clamp(1, i32::MAX as usize) as u32, blocks_y.clamp(1, 65_535) as u32, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Splits `len` items into at most `max_splits` runs of at least `min_run` items:
/// `(splits, run_length)` with `splits·run_length ≥ len` and no empty run.
pub(crate) fn split(len: usize, want_splits: usize, min_run: usize) -> (usize, usize) {
    if len == 0 {
        return (1, 1);
    }
    let splits = want_splits.clamp(1, 65_535).min(len.div_ceil(min_run.max(1))).max(1);
    let run = len.div_ceil(splits);
    (len.div_ceil(run), run)
}

/// Threads a split reduction aims to keep busy (enough for the largest GPUs).
pub(crate) const TARGET_THREADS: usize = 1 << 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_the_walk() {
        // A contiguous [2, 3, 4] is one axis of 24.
        let (d, s) = merge_axes(&[2, 3, 4], &[&[12, 4, 1]]);
        assert_eq!((d, s), (vec![24], vec![vec![1]]));
        // A transpose does not merge; size-1 axes go.
        let (d, s) = merge_axes(&[3, 1, 2], &[&[1, 7, 3]]);
        assert_eq!((d, s), (vec![3, 2], vec![vec![1, 3]]));
        // A broadcast row merges only where both operands are contiguous.
        let (d, s) = merge_axes(&[4, 5, 6], &[&[30, 6, 1], &[0, 6, 1]]);
        assert_eq!((d, s), (vec![4, 30], vec![vec![30, 1], vec![0, 1]]));
        let (d, s) = merge_axes(&[1, 1], &[&[1, 1]]);
        assert_eq!((d, s), (vec![], vec![vec![]]));
    }

    #[test]
    fn splits_cover_without_empty_runs() {
        for len in [1usize, 7, 100, 4096, 1_000_003] {
            for want in [1usize, 3, 64, 100_000] {
                for min_run in [1usize, 16, 256] {
                    let (s, r) = split(len, want, min_run);
                    assert!(s * r >= len && (s - 1) * r < len, "{len} {want} {min_run}: {s}×{r}");
                    assert!((1..=65_535).contains(&s));
                }
            }
        }
    }
}
