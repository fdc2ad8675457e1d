//! Elementwise kernels: unary ops from the op table (forward and backward), binary ops and
//! comparisons over broadcast strided layouts, and `where`.
//!
//! Dense inputs take a straight loop the compiler vectorises; large ones are split across
//! threads. Broadcast and strided inputs walk the output row by row along the last axis.

use rayon::prelude::*;
use tlx_core::{BinaryOp, CmpOp, Element, Float, Layout, UnaryOp};

const CHUNK: usize = 1 << 14;

/// `out[i] = op(x[i])`.
pub fn unary<T: Float>(op: UnaryOp, x: &[T], out: &mut [T]) {
    assert_eq!(x.len(), out.len(), "unary: lengths differ");
    let body = |(o, x): (&mut [T], &[T])| {
        // f32: the op table's SIMD form when it has one.
        if T::DTYPE == tlx_core::DType::F32
            && crate::unary_simd::unary_f32(op, bytemuck::cast_slice(x), bytemuck::cast_slice_mut(o))
        {
            return;
        }
        match op {
            UnaryOp::Relu => o
                .iter_mut()
                .zip(x)
                .for_each(|(o, &x)| *o = if x > T::zero() || x.is_nan() { x } else { T::zero() }),
            UnaryOp::Neg => o.iter_mut().zip(x).for_each(|(o, &x)| *o = -x),
            UnaryOp::Square => o.iter_mut().zip(x).for_each(|(o, &x)| *o = x * x),
            _ => o.iter_mut().zip(x).for_each(|(o, &x)| *o = op.forward(x)),
        }
    };
    if x.len() >= crate::PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(body);
    } else {
        body((out, x));
    }
}

/// `out[i] = relu(a[i] + b[i])` (a residual block's end; NaN stays NaN, as `UnaryOp::Relu`).
pub fn add_relu<T: Float>(a: &[T], b: &[T], out: &mut [T]) {
    assert!(a.len() == out.len() && b.len() == out.len(), "add_relu: lengths differ");
    let body = |(o, (a, b)): (&mut [T], (&[T], &[T]))| {
        o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| {
            let v = a + b;
            *o = if v < T::zero() { T::zero() } else { v };
        })
    };
    if out.len() >= crate::PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(body);
    } else {
        body((out, (a, b)));
    }
}

/// `grad_in[i] = grad_out[i] · f'(x[i], y[i])`.
pub fn unary_backward<T: Float>(op: UnaryOp, x: &[T], y: &[T], grad_out: &[T], grad_in: &mut [T]) {
    let n = grad_in.len();
    assert!(x.len() == n && y.len() == n && grad_out.len() == n, "unary_backward: lengths differ");
    #[allow(clippy::type_complexity)]
    let body = |(((gi, x), y), go): (((&mut [T], &[T]), &[T]), &[T])| {
        if T::DTYPE == tlx_core::DType::F32
            && crate::unary_simd::unary_backward_f32(
                op,
                bytemuck::cast_slice(x),
                bytemuck::cast_slice(y),
                bytemuck::cast_slice(go),
                bytemuck::cast_slice_mut(gi),
            )
        {
            return;
        }
        for i in 0..gi.len() {
            gi[i] = go[i] * op.derivative(x[i], y[i]);
        }
    };
    if n >= crate::PARALLEL_THRESHOLD {
        grad_in
            .par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .zip(y.par_chunks(CHUNK))
            .zip(grad_out.par_chunks(CHUNK))
            .for_each(body);
    } else {
        body((((grad_in, x), y), grad_out));
    }
}

/// Walks `out` (dense, row-major, the broadcast shape) with two inputs whose layouts have
/// already been broadcast to that shape, calling `f(a, b)` per element.
fn zip_strided<A: Copy + Sync, B: Copy + Sync, O: Send>(
    a: &[A],
    la: &Layout,
    b: &[B],
    lb: &Layout,
    out: &mut [O],
    f: impl Fn(A, B) -> O + Sync,
) {
    assert_eq!(la.dims(), lb.dims(), "binary: layouts must share the output shape");
    assert_eq!(out.len(), la.numel(), "binary: output size");
    assert!(
        la.storage_extent() <= a.len() && lb.storage_extent() <= b.len(),
        "binary: layout exceeds storage"
    );
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        let (a, b) = (&a[ra], &b[rb]);
        if out.len() >= crate::PARALLEL_THRESHOLD {
            out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(
                |(o, (a, b))| o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = f(a, b)),
            );
        } else {
            out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = f(a, b));
        }
        return;
    }
    let rank = la.dims().len();
    if rank == 0 {
        out[0] = f(a[la.offset()], b[lb.offset()]);
        return;
    }
    let inner = la.dims()[rank - 1];
    if inner == 0 {
        return;
    }
    let (sa, sb) = (la.strides()[rank - 1], lb.strides()[rank - 1]);
    let outer = |l: &Layout| {
        Layout::from_parts(l.dims()[..rank - 1].to_vec().into(), l.strides()[..rank - 1].to_vec(), l.offset())
    };
    let (oa, ob) = (outer(la), outer(lb));
    let row = |o: &mut [O], ba: usize, bb: usize| match (sa, sb) {
        (1, 1) => o
            .iter_mut()
            .zip(a[ba..ba + inner].iter().zip(&b[bb..bb + inner]))
            .for_each(|(o, (&x, &y))| *o = f(x, y)),
        (1, 0) => {
            let y = b[bb];
            o.iter_mut().zip(&a[ba..ba + inner]).for_each(|(o, &x)| *o = f(x, y))
        }
        (0, 1) => {
            let x = a[ba];
            o.iter_mut().zip(&b[bb..bb + inner]).for_each(|(o, &y)| *o = f(x, y))
        }
        _ => o.iter_mut().enumerate().for_each(|(j, o)| *o = f(a[ba + j * sa], b[bb + j * sb])),
    };
    if out.len() >= crate::PARALLEL_THRESHOLD && oa.numel() > 1 {
        let bases: Vec<(usize, usize)> = oa.offsets().zip(ob.offsets()).collect();
        out.par_chunks_mut(inner).zip(bases.par_iter()).for_each(|(o, &(ba, bb))| row(o, ba, bb));
    } else {
        for (o, (ba, bb)) in out.chunks_mut(inner).zip(oa.offsets().zip(ob.offsets())) {
            row(o, ba, bb);
        }
    }
}

/// `out = op(a, b)` where `la` and `lb` are broadcast to the shape of the dense `out`.
pub fn binary<T: Float>(op: BinaryOp, a: &[T], la: &Layout, b: &[T], lb: &Layout, out: &mut [T]) {
    match op {
        BinaryOp::Add => zip_strided(a, la, b, lb, out, |x, y| x + y),
        BinaryOp::Sub => zip_strided(a, la, b, lb, out, |x, y| x - y),
        BinaryOp::Mul => zip_strided(a, la, b, lb, out, |x, y| x * y),
        BinaryOp::Div => zip_strided(a, la, b, lb, out, |x, y| x / y),
        _ => zip_strided(a, la, b, lb, out, |x, y| op.apply(x, y)),
    }
}

/// `out = (a op b) as u8` with broadcast layouts.
pub fn compare<T: Element>(op: CmpOp, a: &[T], la: &Layout, b: &[T], lb: &Layout, out: &mut [u8]) {
    zip_strided(a, la, b, lb, out, |x, y| op.apply(x, y) as u8);
}

/// `out = cond ? a : b`; `cond` is dense in the output shape, `la`/`lb` broadcast to it.
pub fn where_select<T: Element>(cond: &[u8], a: &[T], la: &Layout, b: &[T], lb: &Layout, out: &mut [T]) {
    assert_eq!(cond.len(), out.len(), "where: condition size");
    let mut picked: Vec<(T, T)> = vec![(T::default(), T::default()); out.len()];
    zip_strided(a, la, b, lb, &mut picked, |x, y| (x, y));
    out.iter_mut().zip(cond.iter().zip(picked)).for_each(|(o, (&c, (x, y)))| *o = if c != 0 { x } else { y });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlx_core::Shape;

    #[test]
    fn broadcast_binary_matches_index_arithmetic() {
        let a: Vec<f64> = (0..6).map(|v| v as f64).collect(); // [2, 3]
        let b = vec![10.0, 20.0]; // [2, 1]
        let out_shape = Shape::from([2, 3]);
        let la = Layout::contiguous([2, 3]);
        let lb = Layout::contiguous([2, 1]).broadcast_to(&out_shape).unwrap();
        let mut out = vec![0.0; 6];
        binary(BinaryOp::Sub, &a, &la, &b, &lb, &mut out);
        assert_eq!(out, vec![-10.0, -9.0, -8.0, -17.0, -16.0, -15.0]);
        // Transposed left operand.
        let lt = Layout::contiguous([3, 2]).permute(&[1, 0]).unwrap();
        binary(BinaryOp::Mul, &a, &lt, &b, &lb, &mut out);
        assert_eq!(out, vec![0.0, 20.0, 40.0, 20.0, 60.0, 100.0]);
        let mut mask = vec![0u8; 6];
        compare(
            CmpOp::Gt,
            &a,
            &la,
            &[2.0],
            &Layout::contiguous(Shape::scalar()).broadcast_to(&out_shape).unwrap(),
            &mut mask,
        );
        assert_eq!(mask, vec![0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn unary_large_and_small_agree_with_table() {
        let x: Vec<f32> = (0..70_000).map(|i| (i as f32 - 35_000.0) / 5_000.0).collect();
        for op in [UnaryOp::Relu, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Affine { mul: 2.0, add: 1.0 }] {
            let mut out = vec![0.0; x.len()];
            unary(op, &x, &mut out);
            for (o, &v) in out.iter().zip(&x).step_by(997) {
                let want = op.forward(v);
                assert!((o - want).abs() <= 2e-6 * want.abs().max(1e-6), "{op:?}: {o} vs {want}");
            }
        }
    }
}
