//! Conversion and index launchers (`kernels/index.cu`): element-type conversions between
//! u8/i32/i64/f32/f64 (`tlx_cpu::copy::cast`'s rules: through f64, integers as Rust's
//! saturating `as`), gather along an axis, its gradient scatter-add (a gather per output
//! element: deterministic, no atomics), and the range check of i64 indices.

use super::{check_len, exact, grid, MAX_RANK};
use crate::buffer::{DeviceBuf, DeviceElem};
use crate::context::KernelArgs;
use crate::error::{Error, Result};
use tlx_core::DType;

const FILE: &str = "index.cu";

fn dtype_name(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::U8 => "u8",
        DType::I32 => "i32",
        DType::I64 => "i64",
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::F16 | DType::BF16 => return None,
    })
}

/// The conversion kernel from `S` to `D`, if index.cu has one.
fn convert_kernel(from: DType, to: DType) -> Option<&'static str> {
    let (f, t) = (dtype_name(from)?, dtype_name(to)?);
    CONVERT_KERNELS.iter().find(|(a, b, _)| *a == f && *b == t).map(|(_, _, k)| *k)
}

const CONVERT_KERNELS: &[(&str, &str, &str)] = &[
    ("u8", "i32", "convert_u8_to_i32"),
    ("u8", "i64", "convert_u8_to_i64"),
    ("u8", "f32", "convert_u8_to_f32"),
    ("u8", "f64", "convert_u8_to_f64"),
    ("i32", "u8", "convert_i32_to_u8"),
    ("i32", "i64", "convert_i32_to_i64"),
    ("i32", "f32", "convert_i32_to_f32"),
    ("i32", "f64", "convert_i32_to_f64"),
    ("i64", "u8", "convert_i64_to_u8"),
    ("i64", "i32", "convert_i64_to_i32"),
    ("i64", "f32", "convert_i64_to_f32"),
    ("i64", "f64", "convert_i64_to_f64"),
    ("f32", "u8", "convert_f32_to_u8"),
    ("f32", "i32", "convert_f32_to_i32"),
    ("f32", "i64", "convert_f32_to_i64"),
    ("f32", "f64", "convert_f32_to_f64"),
    ("f64", "u8", "convert_f64_to_u8"),
    ("f64", "i32", "convert_f64_to_i32"),
    ("f64", "i64", "convert_f64_to_i64"),
    ("f64", "f32", "convert_f64_to_f32"),
];

/// Whether [`convert`] has a kernel from `from` to `to` (any two different types among u8,
/// i32, i64, f32 and f64; f16/bf16 go through [`super::mixed`]'s f32 casts).
pub fn can_convert(from: DType, to: DType) -> bool {
    convert_kernel(from, to).is_some()
}

/// `dst[i] = D(src[i])` (see [`can_convert`] for the pairs).
pub fn convert<S: DeviceElem, D: DeviceElem>(src: &DeviceBuf<S>, dst: &mut DeviceBuf<D>) -> Result<()> {
    const OP: &str = "convert";
    let function = convert_kernel(S::DTYPE, D::DTYPE).ok_or_else(|| {
        Error::invalid(OP, format!("no conversion kernel from {} to {}", S::DTYPE, D::DTYPE))
    })?;
    let ctx = dst.context().clone();
    let n = dst.len();
    let (ps, pd) = (exact(&ctx, OP, "src", src, n)?, exact(&ctx, OP, "dst", dst, n)?);
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(ps).ptr(pd).val(n as i64);
    // SAFETY: convert_S_to_D(const S* src, D* dst, i64 n) with S, D the element types named by
    // the kernel (looked up from the buffers' dtypes): reads src[0..n), writes dst[0..n).
    unsafe { ctx.launch(FILE, function, grid(n), &a) }
}

/// The number of entries of `idx` outside `[0, bound)`, as 0 or 1 (waits for the device).
pub fn any_out_of_range(idx: &DeviceBuf<i64>, bound: usize) -> Result<bool> {
    const OP: &str = "index_check";
    let ctx = idx.context().clone();
    let n = idx.len();
    if n == 0 {
        return Ok(false);
    }
    let bad = ctx.zeros::<i32>(1)?;
    let mut a = KernelArgs::new();
    a.ptr(idx.arg(&ctx, OP, "indices", n)?).val(n as i64).val(bound as i64).ptr(bad.ptr());
    // SAFETY: index_check_i64(const i64* idx, i64 n, i64 bound, int* bad): reads idx[0..n),
    // writes bad[0] (one i32).
    unsafe { ctx.launch(FILE, "index_check_i64", grid(n), &a)? };
    Ok(bad.to_vec()?[0] != 0)
}

/// `IndexGeom` of index.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct IndexGeom {
    rank: i32,
    axis: i32,
    idx_dims: [i64; MAX_RANK],
    x_dims: [i64; MAX_RANK],
}

impl IndexGeom {
    fn new(op: &'static str, x_dims: &[usize], idx_dims: &[usize], axis: usize) -> Result<IndexGeom> {
        let rank = x_dims.len();
        if rank == 0 || rank > MAX_RANK || idx_dims.len() != rank || axis >= rank {
            return Err(Error::invalid(
                op,
                format!("indices {idx_dims:?} and tensor {x_dims:?} along axis {axis}: ranks 1..={MAX_RANK} and equal"),
            ));
        }
        if x_dims.iter().zip(idx_dims).enumerate().any(|(d, (&x, &i))| d != axis && i > x) {
            return Err(Error::invalid(op, format!("indices {idx_dims:?} do not fit tensor {x_dims:?}")));
        }
        let mut g = IndexGeom {
            rank: rank as i32,
            axis: axis as i32,
            idx_dims: [1; MAX_RANK],
            x_dims: [1; MAX_RANK],
        };
        for d in 0..rank {
            g.idx_dims[d] = idx_dims[d] as i64;
            g.x_dims[d] = x_dims[d] as i64;
        }
        Ok(g)
    }
}

fn numel(d: &[usize]) -> usize {
    d.iter().product()
}

/// `out[p] = x[p with its axis coordinate replaced by idx[p]]` (PyTorch's `gather`): `x` dense
/// `x_dims`, `idx` and `out` dense `idx_dims` (the same rank, off `axis` no larger). An index
/// outside the axis gives NaN; check with [`any_out_of_range`] first for an error instead.
pub fn gather(
    x: &DeviceBuf<f32>,
    x_dims: &[usize],
    idx: &DeviceBuf<i64>,
    idx_dims: &[usize],
    axis: usize,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "gather";
    let ctx = out.context().clone();
    let g = IndexGeom::new(OP, x_dims, idx_dims, axis)?;
    let n = numel(idx_dims);
    let px = exact(&ctx, OP, "x", x, numel(x_dims))?;
    let pi = exact(&ctx, OP, "indices", idx, n)?;
    let po = exact(&ctx, OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(pi).ptr(po).val(n as i64).val(g);
    // SAFETY: gather_axis_f32(const float* x, const i64* idx, float* out, i64 n, IndexGeom):
    // reads idx[0..n) and x at positions inside x_dims (an index outside the axis is not used
    // to read), writes out[0..n); the buffers hold exactly those sizes (checked).
    unsafe { ctx.launch(FILE, "gather_axis_f32", grid(n), &a) }
}

/// `out = base` plus `src[p]` added at every position [`gather`] reads for `p` (repeated
/// positions add up in index order; indices outside the axis add nothing). `base`, `out`
/// dense `x_dims`; `idx`, `src` dense `idx_dims`.
#[allow(clippy::too_many_arguments)]
pub fn scatter_add(
    base: &DeviceBuf<f32>,
    x_dims: &[usize],
    idx: &DeviceBuf<i64>,
    src: &DeviceBuf<f32>,
    idx_dims: &[usize],
    axis: usize,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "scatter_add";
    let ctx = out.context().clone();
    let g = IndexGeom::new(OP, x_dims, idx_dims, axis)?;
    let n = numel(x_dims);
    let m = numel(idx_dims);
    let pb = exact(&ctx, OP, "base", base, n)?;
    let pi = exact(&ctx, OP, "indices", idx, m)?;
    let ps = exact(&ctx, OP, "src", src, m)?;
    check_len(OP, "out", out.len(), n)?;
    let po = out.arg(&ctx, OP, "out", n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(pb).ptr(pi).ptr(ps).ptr(po).val(n as i64).val(g);
    // SAFETY: scatter_add_axis_f32(const float* base, const i64* idx, const float* src, float*
    // out, i64 n, IndexGeom): reads base[0..n), and idx/src at positions inside idx_dims (only
    // for x positions whose off-axis coordinates lie inside idx_dims), writes out[0..n).
    unsafe { ctx.launch(FILE, "scatter_add_axis_f32", grid(n), &a) }
}
