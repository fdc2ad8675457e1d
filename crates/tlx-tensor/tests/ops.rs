//! Forward values, autograd semantics, storage sharing and error messages of tensor ops.

use std::sync::Arc;
use tlx_tensor::gradcheck::check_gradients;
use tlx_tensor::{no_grad, DType, Padding, Rng, SharedBytes, Tensor};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape.to_vec()).unwrap()
}

fn vals(x: &Tensor) -> Vec<f32> {
    x.to_vec_f32().unwrap()
}

#[test]
fn views_share_storage_and_copy_only_when_needed() {
    let x = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let tr = x.t().unwrap();
    assert!(tr.shares_storage_with(&x) && !tr.is_contiguous());
    assert_eq!(vals(&tr), vec![1., 4., 2., 5., 3., 6.]);
    let r = tr.reshape([6]).unwrap(); // strided: must copy
    assert!(!r.shares_storage_with(&x));
    assert_eq!(vals(&r), vec![1., 4., 2., 5., 3., 6.]);
    let n = x.narrow(1, 1, 2).unwrap();
    assert!(n.shares_storage_with(&x));
    assert_eq!(vals(&n), vec![2., 3., 5., 6.]);
    let b = t(&[1., 2., 3.], &[3]).broadcast_to([2, 3]).unwrap();
    assert_eq!(vals(&b), vec![1., 2., 3., 1., 2., 3.]);
    assert_eq!(x.unsqueeze(-1).unwrap().dims(), &[2, 3, 1]);
    assert_eq!(x.reshape_infer(&[3, -1]).unwrap().dims(), &[3, 2]);
    // Writes through a view are visible through the original.
    n.assign(&t(&[0., 0., 0., 0.], &[2, 2])).unwrap();
    assert_eq!(vals(&x), vec![1., 0., 0., 4., 0., 0.]);
}

#[test]
fn memory_mapped_storage_is_zero_copy_until_written() {
    let bytes: Vec<u8> = [0.5f32, 1.5, 2.5, 3.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let shared: SharedBytes = Arc::new(bytes);
    let w = Tensor::from_shared_bytes(shared.clone(), 0, DType::F32, [2, 2]).unwrap();
    assert!(w.is_mapped());
    assert_eq!(vals(&w.add_scalar(1.0).unwrap()), vec![1.5, 2.5, 3.5, 4.5]);
    w.update_in_place::<f32, _>(|v| v[0] = 9.0).unwrap();
    assert!(!w.is_mapped());
    assert_eq!(vals(&w), vec![9.0, 1.5, 2.5, 3.5]);
    assert_eq!(&(*shared).as_ref()[0..4], &0.5f32.to_le_bytes());
    assert!(Tensor::from_shared_bytes(shared, 8, DType::F32, [3]).is_err());
}

#[test]
fn dtypes_convert_and_half_precision_computes_in_f32() {
    let x = t(&[1.5, -2.25, 3.0], &[3]);
    for d in [DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64, DType::U8] {
        assert_eq!(x.to_dtype(d).unwrap().dtype(), d);
    }
    let h = x.to_dtype(DType::F16).unwrap();
    let y = h.mul(&h).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert_eq!(vals(&y), vec![2.25, 5.0625, 9.0]);
    let bf = x.to_dtype(DType::BF16).unwrap().relu().unwrap();
    assert_eq!((bf.dtype(), vals(&bf)), (DType::BF16, vec![1.5, 0.0, 3.0]));
    assert_eq!(x.to_dtype(DType::I64).unwrap().to_vec::<i64>().unwrap(), vec![1, -2, 3]);
    let e = x.to_dtype(DType::I64).unwrap().exp().unwrap_err();
    assert!(e.to_string().contains("int64"), "{e}");
    assert!(x.add(&x.to_dtype(DType::F64).unwrap()).unwrap_err().to_string().contains("different dtypes"));
}

#[test]
fn reductions_and_argmax() {
    let x = t(&[1., 5., 3., 4., 2., 6.], &[2, 3]);
    assert_eq!(vals(&x.sum(&[1], false).unwrap()), vec![9., 12.]);
    assert_eq!(x.sum(&[0], true).unwrap().dims(), &[1, 3]);
    assert_eq!(vals(&x.mean(&[0, 1], false).unwrap()), vec![3.5]);
    assert_eq!(vals(&x.max(&[0], false).unwrap()), vec![4., 5., 6.]);
    assert_eq!(vals(&x.min(&[-1], false).unwrap()), vec![1., 2.]);
    assert!((vals(&x.var(&[1], false).unwrap())[0] - 8.0 / 3.0).abs() < 1e-6);
    assert_eq!(x.argmax(1, false).unwrap().to_vec::<i64>().unwrap(), vec![1, 2]);
    assert_eq!(x.argmin(0, true).unwrap().dims(), &[1, 3]);
    let e = x.sum(&[2], false).unwrap_err();
    assert_eq!(e.to_string(), "sum: axis 2 is out of range for a tensor of rank 2");
    // Ties of max share the gradient equally (TensorFlow's rule).
    let tie = t(&[2., 2., 1.], &[3]).with_grad().unwrap();
    tie.max_all().unwrap().backward().unwrap();
    assert_eq!(vals(&tie.grad().unwrap()), vec![0.5, 0.5, 0.0]);
}

#[test]
fn matmul_and_error_messages() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[1., 0., 0., 1., 1., 1.], &[3, 2]);
    assert_eq!(vals(&a.matmul(&b).unwrap()), vec![4., 5., 10., 11.]);
    let e = a.matmul(&a).unwrap_err();
    assert_eq!(e.to_string(), "matmul: [2, 3] @ [2, 3]: inner dimensions 3 and 2 differ");
    let batched = Tensor::stack(&[a.clone(), a.mul_scalar(2.0).unwrap()], 0).unwrap();
    let out = batched.matmul(&b).unwrap();
    assert_eq!(out.dims(), &[2, 2, 2]);
    assert_eq!(vals(&out)[4..], [8., 10., 20., 22.]);
    let e = a.add(&t(&[1., 2.], &[2])).unwrap_err();
    assert_eq!(e.to_string(), "add: shapes [2, 3] and [2] cannot be broadcast together");
}

#[test]
fn convolution_and_pooling_values_and_errors() {
    // A 3×3 sum kernel over a 3×3 image of ones with 'same' padding counts neighbours.
    let x = Tensor::ones([1, 3, 3, 1], DType::F32);
    let k = Tensor::ones([3, 3, 1, 1], DType::F32);
    let y = x.conv2d(&k, (1, 1), (1, 1), Padding::Same, 1).unwrap();
    assert_eq!(vals(&y), vec![4., 6., 4., 6., 9., 6., 4., 6., 4.]);
    let e = x.conv2d(&Tensor::ones([3, 3, 2, 1], DType::F32), (1, 1), (1, 1), Padding::Same, 1).unwrap_err();
    assert!(e.to_string().starts_with("conv2d: input has 1 channels"), "{e}");
    let e = x.conv2d(&Tensor::ones([5, 5, 1, 1], DType::F32), (1, 1), (1, 1), Padding::Valid, 1).unwrap_err();
    assert!(e.to_string().contains("larger than the input size 3"), "{e}");
    let e = x.reshape([3, 3, 1]).unwrap().conv2d(&k, (1, 1), (1, 1), Padding::Same, 1).unwrap_err();
    assert!(e.to_string().contains("rank 4"), "{e}");
    // Average pooling with 'same' padding divides by the real cells: a 5×5 ramp, k2 s2.
    let ramp = Tensor::arange(0.0, 25.0, 1.0, DType::F32).unwrap().reshape([1, 5, 5, 1]).unwrap();
    let avg = ramp.avg_pool2d((2, 2), (2, 2), Padding::Same).unwrap();
    assert_eq!(vals(&avg)[8], 24.0);
    assert_eq!(vals(&avg)[0], 3.0);
    let mx = ramp.max_pool2d((3, 3), (2, 2), Padding::Same).unwrap();
    assert_eq!(vals(&mx), vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]);
    // Depthwise with multiplier 2: output channel c·2 + m.
    let img = Tensor::ones([1, 2, 2, 2], DType::F32);
    let dk = t(&[1., 2., 3., 4.], &[1, 1, 2, 2]);
    assert_eq!(
        vals(&img.depthwise_conv2d(&dk, (1, 1), (1, 1), Padding::Valid).unwrap())[..4],
        [1., 2., 3., 4.]
    );
}

#[test]
fn indexing_values_and_errors() {
    let x = t(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
    let idx = Tensor::from_vec(vec![2i64, 0], [2]).unwrap();
    assert_eq!(vals(&x.index_select(0, &idx).unwrap()), vec![5., 6., 1., 2.]);
    let bad = Tensor::from_vec(vec![3i64], [1]).unwrap();
    assert_eq!(
        x.index_select(0, &bad).unwrap_err().to_string(),
        "index_select: index 3 is out of range for an axis of size 3"
    );
    let labels = Tensor::from_vec(vec![1i64, 0, 2], [3]).unwrap();
    assert_eq!(
        vals(&Tensor::one_hot(&labels, 3, DType::F32).unwrap()),
        vec![0., 1., 0., 1., 0., 0., 0., 0., 1.]
    );
    let picked = x.gather(1, &Tensor::from_vec(vec![1i64, 0, 1], [3, 1]).unwrap()).unwrap();
    assert_eq!(vals(&picked), vec![2., 3., 6.]);
    let mask = x.gt(&Tensor::scalar(3.0f32)).unwrap();
    assert_eq!(mask.to_vec::<u8>().unwrap(), vec![0, 0, 0, 1, 1, 1]);
    let w = Tensor::where_cond(&mask, &x, &Tensor::scalar(0.0f32)).unwrap();
    assert_eq!(vals(&w), vec![0., 0., 0., 4., 5., 6.]);
    let cat = Tensor::concat(&[x.clone(), x.clone()], 1).unwrap();
    assert_eq!(cat.dims(), &[3, 4]);
    assert!(Tensor::concat(&[x.clone(), t(&[1.], &[1, 1])], 0).is_err());
    let p = t(&[1., 2.], &[1, 2]).pad(&[(0, 1), (1, 0)], 9.0).unwrap();
    assert_eq!(vals(&p), vec![9., 1., 2., 9., 9., 9.]);
}

#[test]
fn softmax_and_batch_norm_values() {
    let x = t(&[1., 2., 3., 1000., 1000., 1000.], &[2, 3]);
    let s = vals(&x.softmax(-1).unwrap());
    assert!((s[0] - 0.09003057).abs() < 1e-6 && (s[3] - 1.0 / 3.0).abs() < 1e-6);
    let ls = vals(&x.log_softmax(1).unwrap());
    assert!((ls[2] + 0.40760596).abs() < 1e-6);
    let v = t(&[1., 2., 3., 4.], &[4, 1]);
    let (y, mean, var) = v.batch_norm_train(None, None, 0.0 + 1e-3).unwrap();
    assert_eq!(vals(&mean), vec![2.5]);
    assert_eq!(vals(&var), vec![1.25]);
    assert!((vals(&y)[0] + 1.5 / (1.25f32 + 1e-3).sqrt()).abs() < 1e-5);
    let bad = v.batch_norm_train(Some(&t(&[1., 1.], &[2])), None, 1e-3).unwrap_err();
    assert!(bad.to_string().contains("gamma"), "{bad}");
}

#[test]
fn autograd_records_only_what_needs_gradients() {
    let frozen = t(&[1., 2.], &[2]);
    let w = t(&[3., 4.], &[2]).with_grad().unwrap();
    let y = frozen.mul_scalar(2.0).unwrap();
    assert!(y.is_leaf() && !y.requires_grad(), "a frozen path records nothing");
    let z = y.mul(&w).unwrap();
    assert!(!z.is_leaf() && z.requires_grad());
    {
        let _g = no_grad();
        assert!(w.square().unwrap().is_leaf(), "no_grad records nothing");
    }
    // Gradients accumulate across backward calls until cleared.
    z.sum_all().unwrap().backward().unwrap();
    z.sum_all().unwrap().backward().unwrap();
    assert_eq!(vals(&w.grad().unwrap()), vec![4., 8.]);
    assert!(frozen.grad().is_none());
    w.zero_grad();
    assert!(w.grad().is_none());
    // detach stops gradients.
    let d = w.detach();
    assert!(!d.requires_grad() && d.shares_storage_with(&w));
    assert!(d.square().unwrap().sum_all().unwrap().backward().is_err());
    // backward needs a scalar.
    let e = w.mul_scalar(2.0).unwrap().backward().unwrap_err();
    assert!(e.to_string().contains("one-element"), "{e}");
    assert!(Tensor::from_vec(vec![1i64], [1]).unwrap().set_requires_grad(true).is_err());
}

#[test]
fn deep_graphs_do_not_overflow_the_stack() {
    let w = Tensor::scalar(1.0f32).with_grad().unwrap();
    let mut y = w.clone();
    for _ in 0..20_000 {
        y = y.mul_scalar(1.0).unwrap();
    }
    y.backward().unwrap();
    assert_eq!(vals(&w.grad().unwrap()), vec![1.0]);
}

#[test]
fn gradcheck_detects_wrong_gradients() {
    // detach() hides the dependence from autograd, so the analytic gradient is wrong.
    let x = tlx_tensor::gradcheck::sample(&[3], 0.5, 1.0, 1);
    let err = check_gradients(|t| t[0].detach().square()?.add(&t[0]), &[x], 1e-6, 1e-6).unwrap_err();
    assert!(err.to_string().contains("analytic"), "{err}");
}

#[test]
fn random_tensors_are_seeded() {
    let a = Tensor::randn([100], 0.0, 1.0, DType::F32, &mut Rng::new(3)).unwrap();
    let b = Tensor::randn([100], 0.0, 1.0, DType::F32, &mut Rng::new(3)).unwrap();
    assert_eq!(vals(&a), vals(&b));
    let u = Tensor::rand_uniform([100], -2.0, -1.0, DType::F64, &mut Rng::new(4)).unwrap();
    assert!(u.to_vec::<f64>().unwrap().iter().all(|&v| (-2.0..-1.0).contains(&v)));
}

/// conv2d_fused with a residual: the one-pass kernel gives exactly the separate ops
/// (`act(residual + (conv + bias)·scale + shift)`); a residual that only broadcasts runs as
/// those ops; with a gradient recorded, the residual gets its gradient.
#[test]
fn fused_convolution_adds_a_residual_like_the_separate_ops() {
    use tlx_tensor::{ConvEpilogue, EpilogueAct, UnaryOp};
    let mut rng = Rng::new(41);
    let mut rand =
        |dims: &[usize]| Tensor::rand_uniform(dims.to_vec(), -1.0, 1.0, DType::F32, &mut rng).unwrap();
    let (x, k, bias, scale, shift) =
        (rand(&[2, 9, 7, 5]), rand(&[3, 3, 5, 6]), rand(&[6]), rand(&[6]), rand(&[6]));
    let residual = rand(&[2, 9, 7, 6]);
    let separate = |r: &Tensor| {
        let y = x.conv2d(&k, (1, 1), (1, 1), Padding::Same, 1).unwrap();
        let y = y.add(&bias).unwrap().mul(&scale).unwrap().add(&shift).unwrap();
        r.add(&y).unwrap().unary(UnaryOp::Relu).unwrap()
    };
    let params = [bias.clone(), scale.clone(), shift.clone()];
    fn ep<'a>(p: &'a [Tensor; 3], r: Option<&'a Tensor>) -> ConvEpilogue<'a> {
        ConvEpilogue {
            bias: Some(&p[0]),
            scale: Some(&p[1]),
            shift: Some(&p[2]),
            residual: r,
            act: EpilogueAct::Relu,
        }
    }
    let fused = |r: &Tensor| {
        let _g = no_grad();
        x.conv2d_fused(&k, (1, 1), (1, 1), Padding::Same, 1, ep(&params, Some(r))).unwrap()
    };
    let want = separate(&residual);
    assert_eq!(vals(&fused(&residual)), vals(&want));
    assert!(vals(&want).iter().any(|&v| v > 0.0) && vals(&want).contains(&0.0));
    // A strided (transposed back) residual is read as its values, not its storage order.
    let strided =
        residual.permute(&[0, 2, 1, 3]).unwrap().contiguous().unwrap().permute(&[0, 2, 1, 3]).unwrap();
    assert!(!strided.is_contiguous());
    assert_eq!(vals(&fused(&strided)), vals(&want));
    // Broadcast over the output: the separate ops.
    let per_channel = rand(&[6]);
    assert_eq!(vals(&fused(&per_channel)), vals(&separate(&per_channel)));
    // A residual that fits nothing is the add's error, not a panic.
    let misfit = rand(&[2, 3]);
    let _g = no_grad();
    assert!(x.conv2d_fused(&k, (1, 1), (1, 1), Padding::Same, 1, ep(&params, Some(&misfit))).is_err());
    drop(_g);
    // Recorded: the gradient of sum(y) reaches the residual through the ReLU's mask.
    let r = residual.with_grad().unwrap();
    let y = x.conv2d_fused(&k, (1, 1), (1, 1), Padding::Same, 1, ep(&params, Some(&r))).unwrap();
    y.sum_all().unwrap().backward().unwrap();
    let mask: Vec<f32> = vals(&want).iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
    assert_eq!(vals(&r.grad().unwrap()), mask);
}

/// An f32 kernel run without a gradient to record goes through its kept form (transformed
/// for Winograd, or packed for the direct convolution), made on the first call and kept with
/// the kernel's storage: the results stay those of the kernel's current values after
/// `assign` and `update_in_place` (a stale kept kernel would give the old ones), match the
/// fused convolution's bits, and the f64 convolution's values to rounding; with a gradient
/// recorded the per-call path runs.
#[test]
fn kept_kernels_follow_the_weights() {
    use tlx_cpu::conv::{ConvAlgorithm, KeptKernel};
    use tlx_tensor::{ConvEpilogue, EpilogueAct};
    // (kernel side, strides, the kept form expected)
    for (side, strides, expected) in [
        (3, (1, 1), ConvAlgorithm::Winograd4x4),
        (3, (2, 2), ConvAlgorithm::Direct),
        (1, (1, 1), ConvAlgorithm::Direct),
    ] {
        let kdims = [side, side, 32, 32];
        let geom = tlx_core::Conv2dGeometry::new(&[1, 16, 16, 32], &kdims, strides, (1, 1), Padding::Same, 1)
            .unwrap();
        if std::env::var_os("TLX_CONV_WINOGRAD").is_none() {
            assert_eq!(KeptKernel::algorithm(&geom), Some(expected), "{geom:?}");
        }
        let mut rng = Rng::new(5);
        let x = Tensor::rand_uniform([1, 16, 16, 32], -1.0, 1.0, DType::F32, &mut rng).unwrap();
        let k = Tensor::rand_uniform(kdims, -1.0, 1.0, DType::F32, &mut rng).unwrap();
        // Normwise relative distance to the f64 convolution with the kernel's current values.
        let check = |y: &Tensor, what: &str| {
            let (x64, k64) = (x.to_dtype(DType::F64).unwrap(), k.to_dtype(DType::F64).unwrap());
            let want = x64.conv2d(&k64, strides, (1, 1), Padding::Same, 1).unwrap().to_vec::<f64>().unwrap();
            let got = y.to_vec::<f32>().unwrap();
            let err: f64 = got.iter().zip(&want).map(|(&g, &w)| (g as f64 - w).powi(2)).sum::<f64>().sqrt();
            let norm: f64 = want.iter().map(|w| w * w).sum::<f64>().sqrt();
            assert!(err / norm < 2e-5, "{side}x{side} {strides:?} {what}: normwise error {}", err / norm);
        };
        let infer = || {
            let _g = no_grad();
            x.conv2d(&k, strides, (1, 1), Padding::Same, 1).unwrap()
        };
        let first = infer();
        check(&first, "first call");
        assert_eq!(vals(&infer()), vals(&first), "kept kernel: same bits again");
        let fused = {
            let _g = no_grad();
            let ep = ConvEpilogue {
                bias: None,
                scale: None,
                shift: None,
                residual: None,
                act: EpilogueAct::Linear,
            };
            x.conv2d_fused(&k, strides, (1, 1), Padding::Same, 1, ep).unwrap()
        };
        assert_eq!(vals(&fused), vals(&first), "fused and separate agree");
        // New weights through assign, then through an in-place update (an optimizer step).
        k.assign(&Tensor::rand_uniform(kdims, -1.0, 1.0, DType::F32, &mut rng).unwrap()).unwrap();
        check(&infer(), "after assign");
        k.update_in_place::<f32, _>(|w| w.iter_mut().for_each(|v| *v = 0.5 - *v)).unwrap();
        check(&infer(), "after update_in_place");
        // Recorded: the gradient flows (and the values are still the convolution's).
        let kg = k.clone().with_grad().unwrap();
        let y = x.conv2d(&kg, strides, (1, 1), Padding::Same, 1).unwrap();
        check(&y, "recorded");
        y.sum_all().unwrap().backward().unwrap();
        assert_eq!(kg.grad().unwrap().dims(), &kdims);
    }
}

/// Zero padding folded into max pooling: the bits of `pad` then `max_pool2d` without a
/// gradient to record; with one, the two ops run and the gradient reaches the input.
#[test]
fn zero_padded_max_pooling_is_pad_then_pool() {
    let x = Tensor::rand_uniform([2, 7, 6, 40], -1.0, 1.0, DType::F32, &mut Rng::new(8)).unwrap();
    let two_ops = |x: &Tensor| {
        x.pad(&[(0, 0), (1, 2), (0, 1), (0, 0)], 0.0)
            .unwrap()
            .max_pool2d((3, 3), (2, 2), Padding::Valid)
            .unwrap()
    };
    let fused = {
        let _g = no_grad();
        x.max_pool2d_zero_padded((1, 2, 0, 1), (3, 3), (2, 2)).unwrap()
    };
    let want = two_ops(&x);
    assert_eq!(fused.dims(), want.dims());
    assert_eq!(vals(&fused), vals(&want));
    // Negative inputs: the padded zeros win at the border.
    assert!(vals(&want).contains(&0.0));
    let xg = x.clone().with_grad().unwrap();
    let y = xg.max_pool2d_zero_padded((1, 2, 0, 1), (3, 3), (2, 2)).unwrap();
    assert_eq!(vals(&y), vals(&want));
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(xg.grad().unwrap().dims(), x.dims());
    // A window larger than the padded input is the pooling's shape error.
    let _g = no_grad();
    assert!(x.max_pool2d_zero_padded((0, 0, 0, 0), (9, 9), (1, 1)).is_err());
}
