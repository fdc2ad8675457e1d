//! GEMM through cuBLAS with tlx's row-major conventions.
//!
//! `C ← α·op(A)·op(B) + β·C` where every matrix is row-major with its own row stride (`ld`)
//! and start offset, and `op` is an optional transpose (a view, no copy), like
//! `tlx_cpu::gemm::MatRef`. cuBLAS is column-major, so the product is issued as
//! `Cᵀ = op(B)ᵀ·op(A)ᵀ`: a row-major matrix's memory is its transpose seen column-major.
//!
//! Precision: f32 GEMMs use full f32 (`CUBLAS_COMPUTE_32F`) unless the context allows TF32
//! ([`CudaContext::set_allow_tf32`]). f16/bf16 operands always accumulate in f32
//! (`cublasGemmEx` with `CUBLAS_COMPUTE_32F`) and write f32 or their own type.

use crate::buffer::{DeviceBuf, DeviceElem};
use crate::context::CudaContext;
use crate::error::{Error, Result};
use cudarc::cublas::{result as blas, sys};
use std::ffi::c_void;

/// A read-only row-major matrix in a device buffer: the logical `rows × cols` matrix is the
/// stored one, or its transpose when `trans`. The stored matrix starts at element `offset`
/// with row stride `ld`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a, T: DeviceElem> {
    pub buf: &'a DeviceBuf<T>,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    pub trans: bool,
}

impl<'a, T: DeviceElem> Mat<'a, T> {
    /// A dense row-major `[rows, cols]` matrix at the start of `buf`.
    pub fn row_major(buf: &'a DeviceBuf<T>, rows: usize, cols: usize) -> Self {
        Mat { buf, offset: 0, rows, cols, ld: cols, trans: false }
    }

    /// The transpose, as a view.
    pub fn t(self) -> Self {
        Mat { rows: self.cols, cols: self.rows, trans: !self.trans, ..self }
    }

    /// The same matrix starting `offset` elements into the buffer with row stride `ld`.
    pub fn at(self, offset: usize, ld: usize) -> Self {
        Mat { offset, ld, ..self }
    }

    /// Stored (rows, cols).
    fn stored(&self) -> (usize, usize) {
        if self.trans {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

/// The output matrix: row-major `[rows, cols]` at element `offset` with row stride `ld`.
#[derive(Debug)]
pub struct MatMut<'a, T: DeviceElem> {
    pub buf: &'a mut DeviceBuf<T>,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
}

impl<'a, T: DeviceElem> MatMut<'a, T> {
    /// A dense row-major `[rows, cols]` matrix at the start of `buf`.
    pub fn row_major(buf: &'a mut DeviceBuf<T>, rows: usize, cols: usize) -> Self {
        MatMut { buf, offset: 0, rows, cols, ld: cols }
    }

    /// The same matrix starting `offset` elements into the buffer with row stride `ld`.
    pub fn at(self, offset: usize, ld: usize) -> Self {
        MatMut { offset, ld, ..self }
    }
}

/// Element types cuBLAS multiplies here.
pub trait GemmElem: DeviceElem {
    #[doc(hidden)]
    const CUDA_TYPE: sys::cudaDataType;
}
impl GemmElem for f32 {
    const CUDA_TYPE: sys::cudaDataType = sys::cudaDataType::CUDA_R_32F;
}
impl GemmElem for half::f16 {
    const CUDA_TYPE: sys::cudaDataType = sys::cudaDataType::CUDA_R_16F;
}
impl GemmElem for half::bf16 {
    const CUDA_TYPE: sys::cudaDataType = sys::cudaDataType::CUDA_R_16BF;
}

/// Elements from `offset` a stored `[rows, cols]` matrix with row stride `ld` reaches.
fn extent(offset: usize, rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        offset + (rows - 1) * ld + cols
    }
}

fn to_i32(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(op, format!("{what} = {v} exceeds cuBLAS's 32-bit limit")))
}

struct Plan {
    ta: sys::cublasOperation_t,
    tb: sys::cublasOperation_t,
    m: i32,
    n: i32,
    k: i32,
    lda: i32,
    ldb: i32,
    ldc: i32,
    a: u64,
    b: u64,
    c: u64,
}

/// Checks shapes and bounds (with `batch` matrices `stride_*` elements apart) and builds the
/// column-major call.
#[allow(clippy::too_many_arguments)]
fn plan<A: GemmElem, C: GemmElem>(
    ctx: &CudaContext,
    op: &'static str,
    a: &Mat<'_, A>,
    b: &Mat<'_, A>,
    c: &MatMut<'_, C>,
    batch: usize,
    strides: (usize, usize, usize),
) -> Result<Plan> {
    if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
        return Err(Error::invalid(
            op,
            format!(
                "shapes do not chain: [{}x{}]·[{}x{}] into [{}x{}]",
                a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
            ),
        ));
    }
    let last = batch.saturating_sub(1);
    let need = |m: (usize, usize), off: usize, ld: usize, stride: usize, what: &str| -> Result<usize> {
        if ld < m.1.max(1) {
            return Err(Error::invalid(op, format!("{what}: row stride {ld} is below its {} columns", m.1)));
        }
        Ok(extent(off + last * stride, m.0, m.1, ld))
    };
    let pa = a.buf.arg(ctx, op, "A", need(a.stored(), a.offset, a.ld, strides.0, "A")?)?;
    let pb = b.buf.arg(ctx, op, "B", need(b.stored(), b.offset, b.ld, strides.1, "B")?)?;
    let pc = c.buf.arg(ctx, op, "C", need((c.rows, c.cols), c.offset, c.ld, strides.2, "C")?)?;
    let (sa, sc) = (std::mem::size_of::<A>() as u64, std::mem::size_of::<C>() as u64);
    let flag =
        |t: bool| if t { sys::cublasOperation_t::CUBLAS_OP_T } else { sys::cublasOperation_t::CUBLAS_OP_N };
    Ok(Plan {
        ta: flag(b.trans),
        tb: flag(a.trans),
        m: to_i32(op, "n", c.cols)?,
        n: to_i32(op, "m", c.rows)?,
        k: to_i32(op, "k", a.cols)?,
        lda: to_i32(op, "ldb", b.ld.max(1))?,
        ldb: to_i32(op, "lda", a.ld.max(1))?,
        ldc: to_i32(op, "ldc", c.ld.max(1))?,
        a: pb + b.offset as u64 * sa,
        b: pa + a.offset as u64 * sa,
        c: pc + c.offset as u64 * sc,
    })
}

fn compute_type<A: GemmElem>(ctx: &CudaContext) -> sys::cublasComputeType_t {
    if A::DTYPE == tlx_core::DType::F32 && ctx.allow_tf32() {
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
    } else {
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
    }
}

/// `C ← α·op(A)·op(B) + β·C`. A and B are f32, f16 or bf16 (the same type); C is f32 or the
/// operands' type; arithmetic accumulates in f32. With β = 0, C's old contents are ignored.
pub fn gemm<A: GemmElem, C: GemmElem>(
    ctx: &CudaContext,
    alpha: f32,
    a: Mat<'_, A>,
    b: Mat<'_, A>,
    beta: f32,
    c: MatMut<'_, C>,
) -> Result<()> {
    let p = plan(ctx, "gemm", &a, &b, &c, 1, (0, 0, 0))?;
    if p.m == 0 || p.n == 0 {
        return Ok(());
    }
    let handle = ctx.blas()?;
    ctx.bind()?;
    // SAFETY: `plan` checked that every element the product reads or writes lies inside the
    // three buffers (all on this device); α and β are host f32s, matching the f32 compute
    // type in cuBLAS's default host pointer mode; the handle runs on this device's stream.
    unsafe {
        blas::gemm_ex(
            *handle.handle(),
            p.ta,
            p.tb,
            p.m,
            p.n,
            p.k,
            &alpha as *const f32 as *const c_void,
            p.a as *const c_void,
            A::CUDA_TYPE,
            p.lda,
            p.b as *const c_void,
            A::CUDA_TYPE,
            p.ldb,
            &beta as *const f32 as *const c_void,
            p.c as *mut c_void,
            C::CUDA_TYPE,
            p.ldc,
            compute_type::<A>(ctx),
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    }
    .map_err(|source| Error::Blas { what: "cublasGemmEx", source })
}

/// f32 `C ← α·op(A)·op(B) + β·C` (SGEMM, or TF32 when allowed).
pub fn sgemm(
    ctx: &CudaContext,
    alpha: f32,
    a: Mat<'_, f32>,
    b: Mat<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
) -> Result<()> {
    gemm(ctx, alpha, a, b, beta, c)
}

/// `batch` independent products, matrix `i` of each operand `stride_*·i` elements after its
/// first: `C_i ← α·op(A_i)·op(B_i) + β·C_i` (batched matmul; a stride of 0 broadcasts).
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided_batched<A: GemmElem, C: GemmElem>(
    ctx: &CudaContext,
    batch: usize,
    alpha: f32,
    a: Mat<'_, A>,
    stride_a: usize,
    b: Mat<'_, A>,
    stride_b: usize,
    beta: f32,
    c: MatMut<'_, C>,
    stride_c: usize,
) -> Result<()> {
    const OP: &str = "gemm_strided_batched";
    let p = plan(ctx, OP, &a, &b, &c, batch, (stride_a, stride_b, stride_c))?;
    if p.m == 0 || p.n == 0 || batch == 0 {
        return Ok(());
    }
    let stride = |s: usize| i64::try_from(s).map_err(|_| Error::invalid(OP, "stride overflows i64"));
    let handle = ctx.blas()?;
    ctx.bind()?;
    // SAFETY: as in `gemm`, with `plan` checking the last matrix of each batch too.
    unsafe {
        blas::gemm_strided_batched_ex(
            *handle.handle(),
            p.ta,
            p.tb,
            p.m,
            p.n,
            p.k,
            &alpha as *const f32 as *const c_void,
            p.a as *const c_void,
            A::CUDA_TYPE,
            p.lda,
            stride(stride_b)?,
            p.b as *const c_void,
            A::CUDA_TYPE,
            p.ldb,
            stride(stride_a)?,
            &beta as *const f32 as *const c_void,
            p.c as *mut c_void,
            C::CUDA_TYPE,
            p.ldc,
            stride(stride_c)?,
            to_i32(OP, "batch", batch)?,
            compute_type::<A>(ctx),
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
        )
    }
    .map_err(|source| Error::Blas { what: "cublasGemmStridedBatchedEx", source })
}
