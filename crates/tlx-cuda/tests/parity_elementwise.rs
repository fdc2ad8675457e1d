//! CPU-vs-CUDA parity of the elementwise launchers: every unary op forward and backward, every
//! binary op forward and backward over broadcast and strided views, comparisons, `where`,
//! strided gather/scatter, fill and the bias row add. References are the op tables in f64
//! (`tlx_core`) and `tlx_cpu`'s kernels run in f64; bound: normwise relative error ≤ 1e-5.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, broadcast_operand, up, Rng, F32_TOL};
use tlx_core::{BinaryOp, CmpOp, Layout, Shape, UnaryOp};
use tlx_cuda::ops::elementwise as ew;
use tlx_cuda::ops::reduce::{reduce, ReduceOp};

#[test]
fn unary_forward_and_backward_match_the_op_table() {
    let Some(ctx) = common::device("unary") else { return };
    let mut rng = Rng::new(1);
    for op in UnaryOp::all_for_tests() {
        let n = rng.range(1, 5000);
        let x = if op.needs_positive_input() { rng.vec(n, 0.1, 4.0) } else { rng.vec(n, -4.0, 4.0) };
        let gx = ctx.htod(&x).unwrap();
        let mut gy = ctx.alloc::<f32>(n).unwrap();
        ew::unary(op, &gx, &mut gy).unwrap();
        let y = gy.to_vec().unwrap();
        let want: Vec<f64> = x.iter().map(|&v| op.forward(v as f64)).collect();
        assert_close(&format!("{op:?} forward"), &y, &want, F32_TOL);

        let g = rng.vec(n, -1.0, 1.0);
        let gg = ctx.htod(&g).unwrap();
        let mut gi = ctx.alloc::<f32>(n).unwrap();
        let (need_x, need_y) = ew::derivative_reads(op);
        ew::unary_backward(op, need_x.then_some(&gx), need_y.then_some(&gy), &gg, &mut gi).unwrap();
        let want: Vec<f64> = x
            .iter()
            .zip(&g)
            .map(|(&v, &g)| g as f64 * op.derivative(v as f64, op.forward(v as f64)))
            .collect();
        assert_close(&format!("{op:?} backward"), &gi.to_vec().unwrap(), &want, F32_TOL);
        // A needed input that is missing is an error, not a wrong answer.
        if need_x {
            assert!(ew::unary_backward(op, None, Some(&gy), &gg, &mut gi).is_err());
        }
    }
}

const BINARY: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Pow,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
];

/// Operand values that keep every op well conditioned (pow's base positive, no division by ~0).
fn operand(rng: &mut Rng, n: usize, op: BinaryOp, right: bool) -> Vec<f32> {
    match (op, right) {
        (BinaryOp::Pow, false) => rng.vec(n, 0.2, 3.0),
        (BinaryOp::Pow, true) => rng.vec(n, -2.0, 2.0),
        (BinaryOp::Div, true) => rng.vec(n, 0.5, 2.0),
        _ => rng.vec(n, -3.0, 3.0),
    }
}

#[test]
fn binary_forward_over_broadcast_and_strided_views() {
    let Some(ctx) = common::device("binary") else { return };
    let mut rng = Rng::new(2);
    for case in 0..60 {
        let op = BINARY[case % BINARY.len()];
        let out_dims = common::dims(&mut rng, 1, 5, 6);
        let (la, na, _) = broadcast_operand(&mut rng, &out_dims);
        let (lb, nb, _) = broadcast_operand(&mut rng, &out_dims);
        let (a, b) = (operand(&mut rng, na, op, false), operand(&mut rng, nb, op, true));
        let n = la.numel();
        let mut want = vec![0.0f64; n];
        tlx_cpu::elementwise::binary(op, &up(&a), &la, &up(&b), &lb, &mut want);
        let (ga, gb) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap());
        let mut out = ctx.alloc::<f32>(n).unwrap();
        ew::binary(op, &ga, &la, &gb, &lb, &mut out).unwrap();
        assert_close(
            &format!("{op:?} {out_dims:?} ({la:?}, {lb:?})"),
            &out.to_vec().unwrap(),
            &want,
            F32_TOL,
        );
    }
}

#[test]
fn binary_backward_partials_and_broadcast_reduction() {
    let Some(ctx) = common::device("binary_backward") else { return };
    let mut rng = Rng::new(3);
    for case in 0..40 {
        let op = BINARY[case % BINARY.len()];
        let out_dims = common::dims(&mut rng, 1, 4, 6);
        let (la, na, own_a) = broadcast_operand(&mut rng, &out_dims);
        let (lb, nb, _) = broadcast_operand(&mut rng, &out_dims);
        let (a, b) = (operand(&mut rng, na, op, false), operand(&mut rng, nb, op, true));
        let n = la.numel();
        let g = rng.vec(n, -1.0, 1.0);
        let (ga, gb, gg) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap(), ctx.htod(&g).unwrap());
        let mut y = ctx.alloc::<f32>(n).unwrap();
        ew::binary(op, &ga, &la, &gb, &lb, &mut y).unwrap();
        let (mut da, mut db) = (ctx.alloc::<f32>(n).unwrap(), ctx.alloc::<f32>(n).unwrap());
        ew::binary_backward(op, &ga, &la, &gb, &lb, Some(&y), &gg, Some(&mut da), Some(&mut db)).unwrap();
        let (mut wa, mut wb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for ((oa, ob), &g) in la.offsets().zip(lb.offsets()).zip(&g) {
            let (x, z) = (a[oa] as f64, b[ob] as f64);
            let (pa, pb) = op.partials(x, z, op.apply(x, z));
            wa.push(g as f64 * pa);
            wb.push(g as f64 * pb);
        }
        let what = format!("{op:?} backward {out_dims:?}");
        assert_close(&format!("{what} ∂a"), &da.to_vec().unwrap(), &wa, F32_TOL);
        assert_close(&format!("{what} ∂b"), &db.to_vec().unwrap(), &wb, F32_TOL);

        // Undo a's broadcasting: sum the full-shape partial over the axes a was broadcast on.
        let lead = out_dims.len() - own_a.len();
        let axes: Vec<usize> =
            (0..out_dims.len()).filter(|&i| i < lead || (own_a[i - lead] == 1 && out_dims[i] != 1)).collect();
        let kept: usize = (0..out_dims.len()).filter(|i| !axes.contains(i)).map(|i| out_dims[i]).product();
        let mut want = vec![0.0f64; kept];
        tlx_cpu::reduce::reduce(tlx_cpu::reduce::ReduceOp::Sum, &wa, &out_dims, &axes, &mut want);
        let mut summed = ctx.alloc::<f32>(kept).unwrap();
        reduce(ReduceOp::Sum, &da, &Layout::contiguous(out_dims.clone()), &axes, &mut summed).unwrap();
        assert_close(&format!("{what} ∂a summed over {axes:?}"), &summed.to_vec().unwrap(), &want, F32_TOL);
    }
}

#[test]
fn comparisons_and_where_match_exactly() {
    let Some(ctx) = common::device("compare") else { return };
    let mut rng = Rng::new(4);
    let cmps = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];
    for case in 0..24 {
        let op = cmps[case % cmps.len()];
        let out_dims = common::dims(&mut rng, 1, 4, 5);
        let (la, na, _) = broadcast_operand(&mut rng, &out_dims);
        let (lb, nb, _) = broadcast_operand(&mut rng, &out_dims);
        // Small integers, so ties happen.
        let a: Vec<f32> = (0..na).map(|_| rng.below(4) as f32).collect();
        let b: Vec<f32> = (0..nb).map(|_| rng.below(4) as f32).collect();
        let n = la.numel();
        let mut want = vec![0u8; n];
        tlx_cpu::elementwise::compare(op, &a, &la, &b, &lb, &mut want);
        let (ga, gb) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap());
        let mut mask = ctx.alloc::<u8>(n).unwrap();
        ew::compare(op, &ga, &la, &gb, &lb, &mut mask).unwrap();
        assert_eq!(mask.to_vec().unwrap(), want, "{op:?} {out_dims:?}");

        let cond: Vec<u8> = (0..n).map(|_| rng.below(2) as u8).collect();
        let mut want = vec![0f32; n];
        tlx_cpu::elementwise::where_select(&cond, &a, &la, &b, &lb, &mut want);
        let gc = ctx.htod(&cond).unwrap();
        let mut out = ctx.alloc::<f32>(n).unwrap();
        ew::where_select(&gc, &ga, &la, &gb, &lb, &mut out).unwrap();
        assert_eq!(out.to_vec().unwrap(), want, "where {out_dims:?}");

        // The same comparison on every other element type with a kernel.
        let mut want = vec![0u8; n];
        tlx_cpu::elementwise::compare(op, &a, &la, &b, &lb, &mut want);
        fn typed<T: tlx_cuda::DeviceElem>(
            ctx: &tlx_cuda::CudaContext,
            op: CmpOp,
            (a, la): (Vec<T>, &Layout),
            (b, lb): (Vec<T>, &Layout),
        ) -> Vec<u8> {
            let (ga, gb) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap());
            let mut mask = ctx.alloc::<u8>(la.numel()).unwrap();
            ew::compare_typed(op, &ga, la, &gb, lb, &mut mask).unwrap();
            mask.to_vec().unwrap()
        }
        let conv = |v: &[f32], f: &dyn Fn(f32) -> i64| v.iter().map(|&x| f(x)).collect::<Vec<i64>>();
        // Values beyond f32's integer range, so a conversion to f32 would lose ties.
        let big = |x: f32| (1i64 << 40) + x as i64;
        assert_eq!(typed(&ctx, op, (conv(&a, &big), &la), (conv(&b, &big), &lb)), want, "i64 {op:?}");
        let i32s = |v: &[f32]| v.iter().map(|&x| x as i32 - 2).collect::<Vec<i32>>();
        assert_eq!(typed(&ctx, op, (i32s(&a), &la), (i32s(&b), &lb)), want, "i32 {op:?}");
        let u8s = |v: &[f32]| v.iter().map(|&x| x as u8).collect::<Vec<u8>>();
        assert_eq!(typed(&ctx, op, (u8s(&a), &la), (u8s(&b), &lb)), want, "u8 {op:?}");
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64 + 0.25).collect::<Vec<f64>>();
        assert_eq!(typed(&ctx, op, (f64s(&a), &la), (f64s(&b), &lb)), want, "f64 {op:?}");
    }
}

#[test]
fn gather_and_scatter_of_views_for_every_element_size() {
    let Some(ctx) = common::device("copy_strided") else { return };
    let mut rng = Rng::new(5);
    for _ in 0..12 {
        let dims = common::dims(&mut rng, 1, 6, 5);
        let (l, len) = common::view(&mut rng, &dims);
        let n = l.numel();
        // f32 (4 bytes), f16 (2), u8 (1), i64 (8).
        let f: Vec<f32> = rng.vec(len, -1.0, 1.0);
        let h: Vec<half::f16> = f.iter().map(|&v| half::f16::from_f32(v)).collect();
        let b: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let q: Vec<i64> = (0..len).map(|_| rng.next_u64() as i64).collect();
        macro_rules! check {
            ($src:expr, $zero:expr) => {{
                let src = $src;
                let mut want = vec![$zero; n];
                tlx_cpu::copy::copy_strided(&src, &l, &mut want);
                let gs = ctx.htod(&src).unwrap();
                let mut gd = ctx.alloc(n).unwrap();
                ew::copy_strided(&gs, &l, &mut gd).unwrap();
                assert_eq!(gd.to_vec().unwrap(), want, "gather {dims:?} {l:?}");
                // Scatter back into a buffer of other values: only the view's elements change.
                let mut base = src.clone();
                base.reverse();
                let mut want = base.clone();
                tlx_cpu::copy::scatter_strided(&gd.to_vec().unwrap(), &l, &mut want);
                let mut gb = ctx.htod(&base).unwrap();
                ew::scatter_strided(&gd, &l, &mut gb).unwrap();
                assert_eq!(gb.to_vec().unwrap(), want, "scatter {dims:?} {l:?}");
            }};
        }
        check!(f.clone(), 0f32);
        check!(h.clone(), half::f16::ZERO);
        check!(b.clone(), 0u8);
        check!(q.clone(), 0i64);
    }
    // A broadcast destination is refused.
    let src = ctx.htod(&[1f32, 2.0, 3.0]).unwrap();
    let mut dst = ctx.alloc::<f32>(1).unwrap();
    let l = Layout::contiguous([1]).broadcast_to(&Shape::from([3])).unwrap();
    assert!(ew::scatter_strided(&src, &l, &mut dst).is_err());
}

#[test]
fn fill_and_bias_rows() {
    let Some(ctx) = common::device("fill") else { return };
    let mut rng = Rng::new(6);
    let (rows, c) = (37, 19);
    let mut out = ctx.alloc::<f32>(rows * c).unwrap();
    ew::fill(&mut out, 2.5).unwrap();
    assert!(out.to_vec().unwrap().iter().all(|&v| v == 2.5));
    let bias = rng.vec(c, -1.0, 1.0);
    let gb = ctx.htod(&bias).unwrap();
    ew::add_row_vector(&mut out, &gb, true).unwrap();
    let want: Vec<f32> = (0..rows * c).map(|i| 2.5 + bias[i % c]).collect();
    assert_eq!(out.to_vec().unwrap(), want);
    ew::add_row_vector(&mut out, &gb, false).unwrap();
    let want: Vec<f32> = (0..rows * c).map(|i| bias[i % c]).collect();
    assert_eq!(out.to_vec().unwrap(), want);
    let short = ctx.alloc::<f32>(7).unwrap();
    assert!(ew::add_row_vector(&mut out, &short, false).is_err(), "703 values are not rows of 7");
}

#[test]
fn mismatched_lengths_are_errors() {
    let Some(ctx) = common::device("errors") else { return };
    let x = ctx.zeros::<f32>(10).unwrap();
    let mut out = ctx.alloc::<f32>(9).unwrap();
    let e = ew::unary(UnaryOp::Relu, &x, &mut out).unwrap_err();
    assert!(e.to_string().contains("10 elements, expected 9"), "{e}");
    let l = Layout::contiguous([4, 4]);
    let e = ew::binary(BinaryOp::Add, &x, &l, &x, &l, &mut ctx.alloc::<f32>(16).unwrap()).unwrap_err();
    assert!(e.to_string().contains("reaches element 16"), "{e}");
}
