//! Finite-difference checks (f64) of every differentiable op's gradient.
#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in the checks

use tlx_tensor::gradcheck::{check_gradients, sample};
use tlx_tensor::{DType, Padding, Rng, Tensor, UnaryOp};

const EPS: f64 = 1e-6;
const TOL: f64 = 1e-6;

fn check(f: impl Fn(&[Tensor]) -> tlx_tensor::Result<Tensor>, inputs: &[Tensor]) {
    if let Err(e) = check_gradients(f, inputs, EPS, TOL) {
        panic!("{e}");
    }
}

/// Inputs kept away from the op's kinks so central differences are meaningful.
fn unary_input(op: UnaryOp, seed: u64) -> Tensor {
    let raw = sample(&[3, 5], 0.0, 1.0, seed).to_vec::<f64>().unwrap();
    let v: Vec<f64> = raw
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            if op.needs_positive_input() {
                0.2 + 2.0 * u
            } else {
                // Magnitudes in [0.1, 4.9] avoiding the kinks at 0, ±3, 6 and the clamp bounds.
                let m = 0.1 + 4.8 * u;
                let m = if (m - 3.0).abs() < 0.05 { m + 0.1 } else { m };
                let x = sign * m;
                match op {
                    UnaryOp::Clamp { min, max } if (x - min).abs() < 0.05 || (x - max).abs() < 0.05 => {
                        x + 0.1
                    }
                    UnaryOp::ReluExt { .. } if (x - 0.3).abs() < 0.05 || (x - 2.5).abs() < 0.05 => x + 0.1,
                    _ => x,
                }
            }
        })
        .collect();
    Tensor::from_vec(v, [3, 5]).unwrap()
}

#[test]
fn every_unary_op() {
    for (k, op) in UnaryOp::all_for_tests().into_iter().enumerate() {
        if op == UnaryOp::Sign {
            continue; // zero derivative everywhere it is defined; checked in ops tests
        }
        let x = unary_input(op, k as u64);
        check(|t| t[0].unary(op), &[x.clone()]);
        // Through a strided (transposed) view too.
        check(|t| t[0].t()?.unary(op), &[x]);
    }
}

#[test]
fn binary_ops_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[2, 3], &[2, 3]), (&[2, 3], &[3]), (&[2, 1, 4], &[3, 1]), (&[], &[2, 2])];
    for (i, (sa, sb)) in shapes.iter().enumerate() {
        let a = sample(sa, 0.5, 2.0, i as u64);
        let b = sample(sb, 0.5, 2.0, 10 + i as u64);
        check(|t| t[0].add(&t[1]), &[a.clone(), b.clone()]);
        check(|t| t[0].sub(&t[1]), &[a.clone(), b.clone()]);
        check(|t| t[0].mul(&t[1]), &[a.clone(), b.clone()]);
        check(|t| t[0].div(&t[1]), &[a.clone(), b.clone()]);
        check(|t| t[0].pow(&t[1]), &[a.clone(), b.clone()]);
        // Shift b so no element ties with a.
        let b2 = b.add_scalar(0.013).unwrap();
        check(|t| t[0].maximum(&t[1]), &[a.clone(), b2.clone()]);
        check(|t| t[0].minimum(&t[1]), &[a.clone(), b2.clone()]);
    }
    // The same tensor on both sides accumulates both gradients.
    let a = sample(&[4], 0.5, 2.0, 3);
    check(|t| t[0].mul(&t[0]), &[a]);
}

#[test]
fn reductions_over_axes() {
    let x = sample(&[2, 3, 4], -1.0, 1.0, 5);
    for axes in [vec![], vec![0], vec![1], vec![2], vec![0, 2], vec![-1, -2], vec![0, 1, 2]] {
        for keep in [false, true] {
            check(|t| t[0].sum(&axes, keep), &[x.clone()]);
            check(|t| t[0].mean(&axes, keep), &[x.clone()]);
            check(|t| t[0].max(&axes, keep), &[x.clone()]);
            check(|t| t[0].min(&axes, keep), &[x.clone()]);
            check(|t| t[0].var(&axes, keep), &[x.clone()]);
        }
    }
    check(|t| t[0].sum_all(), &[x.clone()]);
    check(|t| t[0].mean_all(), &[x]);
}

#[test]
fn matmul_shapes_and_views() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 4], &[4, 2]),
        (&[2, 3, 4], &[4, 5]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[4], &[4, 3]),
        (&[3, 4], &[4]),
        (&[4], &[4]),
    ];
    for (i, (sa, sb)) in cases.iter().enumerate() {
        let a = sample(sa, -1.0, 1.0, i as u64);
        let b = sample(sb, -1.0, 1.0, 20 + i as u64);
        check(|t| t[0].matmul(&t[1]), &[a, b]);
    }
    // Transposed operands go through the GEMM as strided views.
    let a = sample(&[4, 3], -1.0, 1.0, 1);
    let b = sample(&[2, 4], -1.0, 1.0, 2);
    check(|t| t[0].t()?.matmul(&t[1].t()?), &[a, b]);
}

#[test]
fn views_and_shape_ops() {
    let x = sample(&[2, 3, 4], -1.0, 1.0, 7);
    check(|t| t[0].reshape([4, 6]), &[x.clone()]);
    check(|t| t[0].reshape_infer(&[-1, 2]), &[x.clone()]);
    check(|t| t[0].permute(&[2, 0, 1])?.contiguous(), &[x.clone()]);
    check(|t| t[0].narrow(2, 1, 2), &[x.clone()]);
    check(|t| t[0].slice(1, 0, 2)?.reshape([2, 2, 4]), &[x.clone()]);
    check(|t| t[0].unsqueeze(1)?.broadcast_to([2, 5, 3, 4]), &[x.clone()]);
    check(|t| t[0].unsqueeze(0)?.squeeze(0), &[x.clone()]);
    check(|t| t[0].flatten_from(1), &[x.clone()]);
    check(|t| t[0].pad(&[(1, 0), (0, 2), (1, 1)], 0.5), &[x.clone()]);
    let y = sample(&[2, 1, 4], -1.0, 1.0, 8);
    check(|t| Tensor::concat(&[t[0].clone(), t[1].clone(), t[0].clone()], 1), &[x.clone(), y]);
    let z = sample(&[2, 3, 4], -1.0, 1.0, 9);
    check(|t| Tensor::stack(&[t[0].clone(), t[1].clone()], 1), &[x.clone(), z]);
}

#[test]
fn indexing_ops() {
    let x = sample(&[4, 3], -1.0, 1.0, 11);
    let idx = Tensor::from_vec(vec![2i64, 0, 2, 3], [4]).unwrap();
    check(|t| t[0].index_select(0, &idx), &[x.clone()]);
    let idx1 = Tensor::from_vec(vec![1i32, 1], [2]).unwrap();
    check(|t| t[0].index_select(1, &idx1), &[x.clone()]);
    let g = Tensor::from_vec(vec![0i64, 2, 1, 1, 2, 2, 0, 0], [4, 2]).unwrap();
    check(|t| t[0].gather(1, &g), &[x.clone()]);
    let mask = Tensor::from_vec(vec![1u8, 0, 1], [3]).unwrap();
    let y = sample(&[4, 1], -1.0, 1.0, 12);
    check(|t| Tensor::where_cond(&mask, &t[0], &t[1]), &[x, y]);
}

#[test]
fn softmax_family() {
    let x = sample(&[3, 4, 2], -2.0, 2.0, 13);
    for axis in [0, 1, -1] {
        check(|t| t[0].softmax(axis), &[x.clone()]);
        check(|t| t[0].log_softmax(axis), &[x.clone()]);
    }
}

#[test]
fn convolutions() {
    let x = sample(&[2, 6, 5, 4], -1.0, 1.0, 14);
    let configs = [
        ((3, 3), (1, 1), (1, 1), Padding::Same, 1),
        ((3, 3), (2, 2), (1, 1), Padding::Valid, 1),
        ((3, 2), (2, 1), (1, 1), Padding::Same, 1),
        ((3, 2), (1, 1), (2, 2), Padding::Same, 1),
        ((1, 1), (1, 1), (1, 1), Padding::Valid, 1),
        ((3, 3), (1, 2), (1, 1), Padding::Same, 2),
        ((2, 2), (1, 1), (1, 1), Padding::Explicit { top: 1, bottom: 0, left: 2, right: 1 }, 1),
    ];
    for (i, (k, s, d, p, groups)) in configs.into_iter().enumerate() {
        let kernel = sample(&[k.0, k.1, 4 / groups, 6], -1.0, 1.0, 30 + i as u64);
        check(|t| t[0].conv2d(&t[1], s, d, p, groups), &[x.clone(), kernel]);
    }
    for mult in [1, 2] {
        let kernel = sample(&[3, 3, 4, mult], -1.0, 1.0, 40 + mult as u64);
        check(|t| t[0].depthwise_conv2d(&t[1], (2, 2), (1, 1), Padding::Same), &[x.clone(), kernel.clone()]);
        check(|t| t[0].depthwise_conv2d(&t[1], (1, 1), (1, 1), Padding::Valid), &[x.clone(), kernel]);
    }
}

#[test]
fn pooling() {
    let x = sample(&[2, 5, 6, 3], -1.0, 1.0, 15);
    for (pool, strides, padding) in
        [((2, 2), (2, 2), Padding::Valid), ((3, 3), (2, 2), Padding::Same), ((2, 3), (1, 1), Padding::Same)]
    {
        check(|t| t[0].max_pool2d(pool, strides, padding), &[x.clone()]);
        check(|t| t[0].avg_pool2d(pool, strides, padding), &[x.clone()]);
    }
    check(|t| t[0].global_avg_pool2d(false), &[x.clone()]);
    check(|t| t[0].global_max_pool2d(true), &[x]);
}

#[test]
fn batch_norm() {
    let x = sample(&[4, 3, 2, 5], -1.0, 2.0, 16);
    let gamma = sample(&[5], 0.5, 1.5, 17);
    let beta = sample(&[5], -0.5, 0.5, 18);
    check(
        |t| Ok(t[0].batch_norm_train(Some(&t[1]), Some(&t[2]), 1e-3)?.0),
        &[x.clone(), gamma.clone(), beta.clone()],
    );
    check(|t| Ok(t[0].batch_norm_train(None, None, 1e-5)?.0), &[x.clone()]);
    let mean = sample(&[5], -0.2, 0.2, 19);
    let var = sample(&[5], 0.5, 1.5, 20);
    check(|t| t[0].batch_norm_inference(Some(&t[1]), Some(&t[2]), &mean, &var, 1e-3), &[x, gamma, beta]);
}

#[test]
fn batch_norm_then_relu_as_one_op() {
    // relu(bn(x) + r): finite differences (inputs kept off the ReLU's kink: the output is
    // checked to stay at least 1e-3 from zero), with and without the residual and γ/β.
    let x = sample(&[4, 3, 2, 5], -1.0, 2.0, 22);
    let gamma = sample(&[5], 0.5, 1.5, 23);
    let beta = sample(&[5], -0.5, 0.5, 24);
    let r = sample(&[4, 3, 2, 5], -1.0, 1.0, 25);
    let (y, _, _) = x.batch_norm_train_relu(Some(&gamma), Some(&beta), 1e-3, Some(&r)).unwrap();
    let pre = x.batch_norm_train(Some(&gamma), Some(&beta), 1e-3).unwrap().0.add(&r).unwrap();
    assert!(pre.to_vec::<f64>().unwrap().iter().all(|v| v.abs() > 1e-3), "inputs too close to the kink");
    assert_eq!(y.to_vec::<f64>().unwrap(), pre.relu().unwrap().to_vec::<f64>().unwrap());
    check(
        |t| Ok(t[0].batch_norm_train_relu(Some(&t[1]), Some(&t[2]), 1e-3, Some(&t[3]))?.0),
        &[x.clone(), gamma.clone(), beta.clone(), r],
    );
    check(
        |t| Ok(t[0].batch_norm_train_relu(Some(&t[1]), Some(&t[2]), 1e-3, None)?.0),
        &[x.clone(), gamma, beta],
    );
    check(|t| Ok(t[0].batch_norm_train_relu(None, None, 1e-5, None)?.0), &[x]);
}

#[test]
fn batch_norm_then_relu_matches_the_separate_ops_bit_for_bit() {
    // f32, γ/β: the same outputs, batch statistics and gradients (x, γ, β, residual) as
    // batch_norm_train → add → relu (with a residual) and batch_norm_train → relu6 (γ
    // scaled so that outputs pass 6) recorded one by one.
    let f32s = |shape: &[usize], lo, hi, seed| sample(shape, lo, hi, seed).to_dtype(DType::F32).unwrap();
    for relu6 in [false, true] {
        let leaves = [
            f32s(&[6, 4, 3, 16], -1.0, 2.0, 26),
            f32s(&[16], 0.5, 1.5, 27).mul_scalar(if relu6 { 5.0 } else { 1.0 }).unwrap(),
            f32s(&[16], -0.5, 0.5, 28),
            f32s(&[6, 4, 3, 16], -1.0, 1.0, 29),
        ];
        let weights = f32s(&[6, 4, 3, 16], -1.0, 1.0, 30);
        let run = |fused: bool| {
            let t: Vec<Tensor> = leaves.iter().map(|l| l.detach().with_grad().unwrap()).collect();
            let (y, mean, var) = match (fused, relu6) {
                (true, false) => {
                    t[0].batch_norm_train_relu(Some(&t[1]), Some(&t[2]), 1e-3, Some(&t[3])).unwrap()
                }
                (true, true) => t[0].batch_norm_train_relu6(Some(&t[1]), Some(&t[2]), 1e-3, None).unwrap(),
                (false, _) => {
                    let (z, m, v) = t[0].batch_norm_train(Some(&t[1]), Some(&t[2]), 1e-3).unwrap();
                    let y = if relu6 { z.relu6().unwrap() } else { z.add(&t[3]).unwrap().relu().unwrap() };
                    (y, m, v)
                }
            };
            y.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out =
                vec![y.to_vec::<f32>().unwrap(), mean.to_vec::<f32>().unwrap(), var.to_vec::<f32>().unwrap()];
            out.extend(
                t.iter().take(3 + !relu6 as usize).map(|l| l.grad().unwrap().to_vec::<f32>().unwrap()),
            );
            out
        };
        let (fused, separate) = (run(true), run(false));
        for (i, (a, b)) in fused.iter().zip(&separate).enumerate() {
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b), "relu6 {relu6}: part {i} (y, mean, var, dx, dγ, dβ, dr) differs");
        }
        assert!(fused[0].contains(&0.0) && fused[0].iter().any(|&v| v > 0.0 && v < 6.0));
        assert_eq!(fused[0].contains(&6.0), relu6);
    }
}

#[test]
fn conv2d_with_bias_and_activation_recorded_as_one_op_matches_the_separate_ops() {
    use tlx_tensor::{ConvEpilogue, EpilogueAct, UnaryOp};
    let fused = |t: &[Tensor], stride: usize, bias: bool, act: EpilogueAct| {
        let ep = ConvEpilogue { bias: bias.then_some(&t[2]), scale: None, shift: None, residual: None, act };
        t[0].conv2d_fused(&t[1], (stride, stride), (1, 1), Padding::Same, 1, ep)
    };
    // Finite differences (f64): x, kernel and bias, strided too (the output kept off the
    // activations' kinks: checked below).
    let (x, k, b) = (
        sample(&[2, 5, 4, 3], -1.0, 1.0, 31),
        sample(&[3, 3, 3, 4], -1.0, 1.0, 32),
        sample(&[4], -1.0, 1.0, 33),
    );
    for act in [EpilogueAct::Linear, EpilogueAct::Relu] {
        check(|t| fused(t, 1, true, act), &[x.clone(), k.clone(), b.clone()]);
        check(|t| fused(t, 2, true, act), &[x.clone(), k.clone(), b.clone()]);
    }
    let pre =
        x.conv2d(&k, (1, 1), (1, 1), Padding::Same, 1).unwrap().add(&b).unwrap().to_vec::<f64>().unwrap();
    assert!(pre.iter().all(|v| v.abs() > 1e-4), "inputs too close to the ReLU's kink");
    // f32, bit for bit against conv2d → add → activation: output and every gradient, with
    // outputs on both sides of ReLU6's bounds.
    let f32s = |shape: &[usize], seed| sample(shape, -1.0, 1.0, seed).to_dtype(DType::F32).unwrap();
    let leaves =
        [f32s(&[3, 9, 7, 16], 34), f32s(&[3, 3, 16, 24], 35).mul_scalar(2.0).unwrap(), f32s(&[24], 36)];
    let weights = f32s(&[3, 9, 7, 24], 37);
    for (bias, act, op) in [
        (true, EpilogueAct::Linear, None),
        (true, EpilogueAct::Relu, Some(UnaryOp::Relu)),
        (false, EpilogueAct::Relu6, Some(UnaryOp::Relu6)),
    ] {
        let run = |one_op: bool| {
            let t: Vec<Tensor> = leaves.iter().map(|l| l.detach().with_grad().unwrap()).collect();
            let y = if one_op {
                fused(&t, 1, bias, act).unwrap()
            } else {
                let y = t[0].conv2d(&t[1], (1, 1), (1, 1), Padding::Same, 1).unwrap();
                let y = if bias { y.add(&t[2]).unwrap() } else { y };
                op.map_or(y.clone(), |op| y.unary(op).unwrap())
            };
            y.mul(&weights).unwrap().sum_all().unwrap().backward().unwrap();
            let mut out = vec![y.to_vec::<f32>().unwrap()];
            out.extend(t.iter().take(2 + bias as usize).map(|l| l.grad().unwrap().to_vec::<f32>().unwrap()));
            out.into_iter().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>()
        };
        let one = run(true);
        assert_eq!(
            one,
            run(false),
            "conv2d_fused ({act:?}, bias {bias}, recorded) differs from the separate ops"
        );
        let y: Vec<f32> = one[0].iter().map(|&b| f32::from_bits(b)).collect();
        if act == EpilogueAct::Relu6 {
            assert!(y.contains(&0.0) && y.contains(&6.0) && y.iter().any(|&v| v > 0.0 && v < 6.0));
        }
    }
}

#[test]
fn dropout_and_casts() {
    let x = sample(&[50], -1.0, 1.0, 21);
    check(|t| t[0].dropout(0.4, &mut Rng::new(5)), &[x.clone()]);
    // A cast in the middle: gradients come back through both conversions.
    let leaf = x.detach().with_grad().unwrap();
    leaf.to_dtype(DType::F32).unwrap().square().unwrap().sum_all().unwrap().backward().unwrap();
    let g = leaf.grad().unwrap();
    assert_eq!(g.dtype(), DType::F64);
    for (a, b) in g.to_vec::<f64>().unwrap().iter().zip(x.to_vec::<f64>().unwrap()) {
        assert!((a - 2.0 * b).abs() < 1e-6);
    }
}
