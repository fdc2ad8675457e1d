//! Matrix multiplication with batch dimensions (NumPy `matmul` semantics: rank-1 operands
//! are promoted and the added axis removed, batch axes broadcast). Strided operands such as
//! transposed views go to the GEMM without a copy.

use super::{half_roundtrip, on_gpu, same_dtype, with_float};
use crate::autograd::Op;
use crate::storage::StorageElement;
use crate::Tensor;
use rayon::prelude::*;
use tlx_core::{Error, Layout, Result, Shape};
use tlx_cpu::gemm::{gemm, MatRef};

impl Tensor {
    /// `self @ other`.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        same_dtype("matmul", self, other)?;
        half_roundtrip!(self, |a| a.matmul(&other.to_dtype(tlx_core::DType::F32)?));
        if self.rank() == 0 || other.rank() == 0 {
            return Err(Error::shape(
                "matmul",
                format!("operands must have rank ≥ 1, got shapes {} and {}", self.shape(), other.shape()),
            ));
        }
        let a = if self.rank() == 1 { self.unsqueeze(0)? } else { self.clone() };
        let b = if other.rank() == 1 { other.unsqueeze(-1)? } else { other.clone() };
        let mut out = matmul_nd(&a, &b).map_err(|e| match e {
            Error::Shape { msg, .. } => {
                Error::shape("matmul", format!("{} @ {}: {msg}", self.shape(), other.shape()))
            }
            e => e,
        })?;
        if other.rank() == 1 {
            out = out.squeeze(-1)?;
        }
        if self.rank() == 1 {
            out = out.squeeze(if other.rank() == 1 { -1 } else { -2 })?;
        }
        Ok(out)
    }
}

/// Storage offsets of each batch's matrix of the rank ≥ 2 `t`, its batch axes broadcast to
/// `batch`.
pub(crate) fn batch_offsets(t: &Tensor, batch: &Shape) -> Result<Vec<usize>> {
    let r = t.rank();
    let l = t.layout();
    let bl =
        Layout::from_parts(Shape::new(l.dims()[..r - 2].to_vec()), l.strides()[..r - 2].to_vec(), l.offset());
    Ok(bl.broadcast_to(batch)?.offsets().collect())
}

/// Batched matmul of rank ≥ 2 operands `[..., m, k] @ [..., k, n]`.
fn matmul_nd(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.dims()[ra - 2], a.dims()[ra - 1]);
    let (k2, n) = (b.dims()[rb - 2], b.dims()[rb - 1]);
    if k != k2 {
        return Err(Error::shape("matmul", format!("inner dimensions {k} and {k2} differ")));
    }
    let batch = Shape::new(a.dims()[..ra - 2].to_vec())
        .broadcast(&Shape::new(b.dims()[..rb - 2].to_vec()), "matmul")?;
    let nb = batch.numel();
    let mut out_dims = batch.dims().to_vec();
    out_dims.extend([m, n]);
    on_gpu!("matmul", [a, b], |_| crate::cuda::matmul(a, b, &batch, (m, k, n), out_dims));
    let (oa, ob) = (batch_offsets(a, &batch)?, batch_offsets(b, &batch)?);
    let (sa, sb) = (a.layout().strides(), b.layout().strides());
    let (a_rs, a_cs, b_rs, b_cs) = (sa[ra - 2], sa[ra - 1], sb[rb - 2], sb[rb - 1]);
    let storage = with_float!(a.dtype(), "matmul", T => {
        super::elementwise::read_pair(a, b, |sta, stb| {
            let (ad, bd) = (sta.as_slice::<T>("matmul")?, stb.as_slice::<T>("matmul")?);
            // Overwritten entirely (β = 0: C is not read): a recycled buffer will do.
            let mut out = crate::recycle::output_buffer::<T>(nb * m * n);
            let one = <T as tlx_core::Element>::from_f64(1.0);
            let zero = T::default();
            let run = |(i, c): (usize, &mut [T])| {
                let am = MatRef { data: &ad[oa[i]..], rows: m, cols: k, row_stride: a_rs, col_stride: a_cs };
                let bm = MatRef { data: &bd[ob[i]..], rows: k, cols: n, row_stride: b_rs, col_stride: b_cs };
                gemm(one, am, bm, zero, c, n);
            };
            if m * n > 0 {
                if nb > 1 && m * n * k < (1 << 16) {
                    out.par_chunks_mut(m * n).enumerate().for_each(run);
                } else {
                    out.chunks_mut(m * n).enumerate().for_each(run);
                }
            }
            Ok(T::wrap(out))
        })?
    });
    Ok(Tensor::from_storage(storage, Shape::new(out_dims), Some(Op::Matmul { a: a.clone(), b: b.clone() })))
}
