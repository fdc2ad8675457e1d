//! CPU vs CUDA parity of tlx-tensor's ops (feature `cuda`): every op runs forward and
//! backward on `Device::Cuda(0)` and is compared with the CPU in f64 (normwise relative error
//! ≤ 1e-5), on strided and broadcast inputs; plus device moves, host reads, mixed-device and
//! missing-kernel errors.
//!
//! Without a driver or GPU each test prints why and passes; `TLX_REQUIRE_GPU=1` makes that a
//! failure (as tlx-cuda's parity tests). `crates/tlx-cuda/emu/run.sh --tensor` runs them on the
//! host emulation of the driver.
#![cfg(feature = "cuda")]
#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in the checks

use std::sync::Arc;
use tlx_tensor::{BinaryOp, CmpOp, DType, Device, Padding, Result, Rng, SharedBytes, Tensor, UnaryOp};

const TOL: f64 = 1e-5;
const GPU: Device = Device::Cuda(0);
const CPU: Device = Device::Cpu;

/// Whether device 0 is usable (else prints why the test is skipped).
fn gpu(test: &str) -> bool {
    match tlx_cuda::CudaContext::first() {
        Ok(ctx) => {
            println!("{test}: running on {}", ctx.info().name);
            true
        }
        Err(e) if std::env::var("TLX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("{test}: TLX_REQUIRE_GPU=1 but no usable GPU: {e}")
        }
        Err(e) if e.is_unavailable() => {
            println!("{test}: skipped: no CUDA driver/GPU: {e}");
            false
        }
        Err(e) => panic!("{test}: CUDA is present but unusable: {e}"),
    }
}

/// f32 uniform samples in `[lo, hi)` on the CPU.
fn rand(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), lo, hi, DType::F32, &mut Rng::new(seed)).unwrap()
}

/// Asserts `got` (any device) matches `want` in shape and values (normwise relative error).
fn close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert_eq!(a.is_nan(), b.is_nan(), "{what}: element {i} is {a}, reference {b}");
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (a, b) in g.iter().zip(&w).filter(|(a, b)| !a.is_nan() && !b.is_nan()) {
        num += (a - b) * (a - b);
        den += b * b;
    }
    let err = if den == 0.0 { num.sqrt() } else { (num / den).sqrt() };
    assert!(err <= tol, "{what}: normwise relative error {err:.3e} exceeds {tol:.1e}");
}

/// Runs `f` on the CPU with the inputs in f64 (the reference) and on the GPU with them in f32,
/// and compares the output and the gradient of every input of `loss = Σ f(inputs)·w` for a
/// fixed random `w`. `f` gets the device, to move any extra operand (indices, masks) there.
fn parity(what: &str, inputs: &[Tensor], f: impl Fn(&[Tensor], Device) -> Result<Tensor>) {
    let run = |dev: Device| -> (Tensor, Vec<Tensor>) {
        let leaves: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                let t = if dev == CPU { t.to_dtype(DType::F64).unwrap() } else { t.to_device(dev).unwrap() };
                t.with_grad().unwrap()
            })
            .collect();
        let y = f(&leaves, dev).unwrap_or_else(|e| panic!("{what} on {dev}: {e}"));
        assert_eq!(y.device(), dev, "{what}: output device");
        let w = rand(y.dims(), -1.0, 1.0, 99).to_dtype(y.dtype()).unwrap().to_device(dev).unwrap();
        y.mul(&w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap_or_else(|e| panic!("{what} backward on {dev}: {e}"));
        let grads = leaves
            .iter()
            .map(|l| {
                let g = l.grad().unwrap_or_else(|| panic!("{what}: no gradient on {dev}"));
                assert_eq!(g.device(), dev, "{what}: gradient device");
                g
            })
            .collect();
        (y, grads)
    };
    let (want, want_g) = run(CPU);
    let (got, got_g) = run(GPU);
    close(&format!("{what} forward"), &got, &want, TOL);
    for (i, (g, w)) in got_g.iter().zip(&want_g).enumerate() {
        close(&format!("{what} gradient {i}"), g, w, TOL);
    }
}

/// Forward-only comparison of exact results (masks, indices, copies).
fn exact(what: &str, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let want = f(inputs).unwrap();
    let moved: Vec<Tensor> = inputs.iter().map(|t| t.to_device(GPU).unwrap()).collect();
    let got = f(&moved).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(got.device(), GPU, "{what}");
    assert_eq!((got.shape(), got.dtype()), (want.shape(), want.dtype()), "{what}");
    assert_eq!(got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap(), "{what}");
}

fn message(r: Result<Tensor>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn moves_host_reads_and_writes() {
    if !gpu("moves_host_reads_and_writes") {
        return;
    }
    let x = rand(&[3, 4], -1.0, 1.0, 1);
    let g = x.to_device(GPU).unwrap();
    assert_eq!((g.device(), g.shape(), g.dtype()), (GPU, x.shape(), DType::F32));
    assert!(!x.requires_grad() && g.is_leaf());
    assert_eq!(g.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    assert_eq!(g.to_device(CPU).unwrap().to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    // Strided views move and read back in row-major order, both ways.
    let v = x.t().unwrap().narrow(0, 1, 2).unwrap();
    assert_eq!(v.to_device(GPU).unwrap().to_vec::<f32>().unwrap(), v.to_vec::<f32>().unwrap());
    let gv = g.t().unwrap().narrow(0, 1, 2).unwrap();
    assert_eq!(gv.device(), GPU);
    assert_eq!(gv.to_vec::<f32>().unwrap(), v.to_vec::<f32>().unwrap());
    assert_eq!(gv.to_device(CPU).unwrap().to_vec::<f32>().unwrap(), v.to_vec::<f32>().unwrap());
    assert_eq!(gv.with_slice::<f32, _>(|s| s.to_vec()).unwrap(), v.to_vec::<f32>().unwrap());
    assert!((g.sum_all().unwrap().item().unwrap() - x.sum_all().unwrap().item().unwrap()).abs() < 1e-5);
    // Memory-mapped bytes go straight to the device.
    let bytes: Vec<u8> = [0.0f32, 1.5, -2.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let shared: SharedBytes = Arc::new(bytes);
    let m = Tensor::from_shared_bytes(shared, 4, DType::F32, [3]).unwrap();
    assert!(m.is_mapped());
    assert_eq!(m.to_device(GPU).unwrap().to_vec::<f32>().unwrap(), vec![1.5, -2.0, 4.0]);
    // Every dtype round-trips.
    for dt in [DType::U8, DType::I32, DType::I64, DType::F16, DType::BF16, DType::F64] {
        let t = Tensor::arange(0.0, 7.0, 1.0, dt).unwrap();
        assert_eq!(
            t.to_device(GPU).unwrap().to_device(CPU).unwrap().to_vec_f64().unwrap(),
            t.to_vec_f64().unwrap()
        );
    }
    // Writes: assign (from either device, through views) and adopt_storage.
    let w = Tensor::zeros([3, 4], DType::F32).to_device(GPU).unwrap();
    let alias = w.reshape([12]).unwrap();
    w.assign(&x).unwrap();
    assert_eq!(alias.to_vec::<f32>().unwrap(), x.reshape([12]).unwrap().to_vec::<f32>().unwrap());
    w.t().unwrap().assign(&g.t().unwrap().mul_scalar(2.0).unwrap()).unwrap();
    close("assign through a transposed view", &w, &x.mul_scalar(2.0).unwrap(), 0.0);
    let w2 = Tensor::zeros([3, 4], DType::F32).to_device(GPU).unwrap();
    w2.adopt_storage(&g).unwrap();
    w2.assign(&Tensor::zeros([3, 4], DType::F32)).unwrap();
    assert_eq!(g.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap(), "copy on write keeps the source");
    let e = w.update_in_place::<f32, _>(|v| v[0] = 1.0).unwrap_err().to_string();
    assert!(e.contains("update_in_place") && e.contains("CUDA"), "{e}");
    // A device that does not exist is an error naming it.
    let e = message(x.to_device(Device::Cuda(97)));
    assert!(e.contains("cuda:97"), "{e}");
}

#[test]
fn unary_ops_forward_and_backward() {
    if !gpu("unary_ops_forward_and_backward") {
        return;
    }
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Square,
        UnaryOp::Recip,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Relu6,
        UnaryOp::Selu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Softplus,
        UnaryOp::HardSigmoid,
        UnaryOp::Sign,
        UnaryOp::LeakyRelu { alpha: 0.2 },
        UnaryOp::Elu { alpha: 1.3 },
        UnaryOp::Clamp { min: -0.5, max: 0.7 },
        UnaryOp::Powf { p: 2.5 },
        UnaryOp::Affine { mul: -1.5, add: 0.25 },
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let (lo, hi) = if op.needs_positive_input() { (0.2, 2.0) } else { (-4.0, 7.0) };
        let x = rand(&[6, 5], lo, hi, 10 + i as u64);
        // A transposed, narrowed view: the GPU gathers it first.
        parity(&format!("{op:?}"), &[x], |x, _| x[0].t()?.narrow(0, 1, 4)?.unary(op));
    }
}

#[test]
fn binary_ops_with_broadcasting_and_views() {
    if !gpu("binary_ops_with_broadcasting_and_views") {
        return;
    }
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let (lo, hi) = if matches!(op, BinaryOp::Pow | BinaryOp::Div) { (0.5, 2.0) } else { (-2.0, 2.0) };
        let a = rand(&[4, 1, 5], lo, hi, 20 + i as u64);
        let b = rand(&[5, 3], lo, hi, 30 + i as u64);
        parity(&format!("{op:?} broadcast"), &[a.clone(), b.clone()], |x, _| x[0].binary(&x[1].t()?, op));
        parity(&format!("{op:?} same operand"), &[a.clone()], |x, _| {
            x[0].binary(&x[0].permute(&[1, 0, 2])?, op)
        });
    }
    let (a, b) = (rand(&[2, 3], -1.0, 1.0, 40), rand(&[3], -1.0, 1.0, 41));
    parity("operators and scalars", &[a, b], |x, _| {
        let y = ((&x[0] + &x[1])? * x[0].clone())?;
        (&y - &x[1].mul_scalar(3.0)?.add_scalar(0.5)?)?.affine(2.0, -1.0)?.div(&x[1].abs()?.add_scalar(1.0)?)
    });
}

#[test]
fn comparisons_and_where() {
    if !gpu("comparisons_and_where") {
        return;
    }
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 2.0, 0.0], [2, 3]).unwrap();
    let b = Tensor::from_vec(vec![2.0f32, 2.0, 1.0], [3]).unwrap();
    for op in [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge] {
        exact(&format!("{op:?}"), &[a.clone(), b.clone()], |x| x[0].compare(&x[1], op));
        exact(&format!("{op:?} f16"), &[a.clone(), b.clone()], |x| {
            x[0].to_dtype(DType::F16)?.t()?.compare(&x[1].to_dtype(DType::F16)?.unsqueeze(-1)?, op)
        });
    }
    let (la, lb) = (
        Tensor::from_vec(vec![3i64, 1 << 40, 7], [3]).unwrap(),
        Tensor::from_vec(vec![(1i64 << 40) + 1], [1]).unwrap(),
    );
    for dt in [DType::U8, DType::I32, DType::F64] {
        exact(&format!("Lt {dt}"), &[a.clone(), b.clone()], |x| x[0].to_dtype(dt)?.lt(&x[1].to_dtype(dt)?));
    }
    exact("i64 beyond f32's integers", &[la, lb], |x| x[0].lt(&x[1]));
    let cond = a.gt(&b).unwrap();
    let (x, y) = (rand(&[2, 3], -1.0, 1.0, 50), rand(&[3], -1.0, 1.0, 51));
    parity("where", &[x, y], |t, d| Tensor::where_cond(&cond.to_device(d)?, &t[0], &t[1]));
    let (x, y) = (rand(&[2, 3], -1.0, 1.0, 52), rand(&[2, 3], -1.0, 1.0, 53));
    parity("maximum with ties", &[x.clone(), y], |t, _| t[0].maximum(&t[1])?.minimum(&t[0].mul_scalar(0.5)?));
    parity("max and min with ties", &[x.round_trip_ties()], |t, _| {
        t[0].max(&[1], true)?.add(&t[0].min(&[0], false)?.sum_all()?)
    });
}

/// Values with repeated entries (ties for max/min).
trait Ties {
    fn round_trip_ties(&self) -> Tensor;
}

impl Ties for Tensor {
    fn round_trip_ties(&self) -> Tensor {
        let v: Vec<f32> = self.to_vec::<f32>().unwrap().iter().map(|x| (x * 2.0).round() / 2.0).collect();
        Tensor::from_vec(v, self.shape().clone()).unwrap()
    }
}

#[test]
fn copies_and_dtype_casts() {
    if !gpu("copies_and_dtype_casts") {
        return;
    }
    let x = rand(&[3, 4, 5], -300.0, 300.0, 60);
    exact("contiguous of a permuted view", &[x.clone()], |t| t[0].permute(&[2, 0, 1])?.contiguous());
    exact("reshape of a view", &[x.clone()], |t| t[0].t()?.reshape([20, 3]));
    exact("broadcast_to", &[x.narrow(1, 0, 1).unwrap()], |t| t[0].broadcast_to([3, 4, 5])?.contiguous());
    for dt in [DType::U8, DType::I32, DType::I64, DType::F16, DType::BF16, DType::F64] {
        exact(&format!("f32 → {dt}"), &[x.clone()], |t| t[0].t()?.to_dtype(dt));
        exact(&format!("f32 → {dt} → f32"), &[x.clone()], |t| t[0].to_dtype(dt)?.to_dtype(DType::F32));
    }
    let i = Tensor::arange(-5.0, 300.0, 7.0, DType::I64).unwrap();
    for dt in [DType::U8, DType::I32, DType::F32, DType::F64, DType::F16] {
        exact(&format!("i64 → {dt}"), &[i.clone()], |t| t[0].to_dtype(dt));
    }
    parity("casts are differentiable", &[rand(&[4, 3], -2.0, 2.0, 61)], |t, _| {
        let orig = t[0].dtype();
        t[0].to_dtype(DType::BF16)?.to_dtype(orig)?.mul(&t[0].permute(&[1, 0])?.contiguous()?.t()?)
    });
    parity("f16 tensors compute in f32", &[rand(&[4, 3], -2.0, 2.0, 62)], |t, _| {
        let orig = t[0].dtype();
        t[0].to_dtype(DType::F16)?.tanh()?.to_dtype(orig)
    });
}

#[test]
fn reductions_and_arg_extremes() {
    if !gpu("reductions_and_arg_extremes") {
        return;
    }
    let x = rand(&[4, 5, 6], -2.0, 2.0, 70);
    for (axes, keep) in [
        (&[0isize][..], false),
        (&[1, 2][..], true),
        (&[-1][..], false),
        (&[0, 2][..], true),
        (&[][..], false),
    ] {
        parity(&format!("sum {axes:?}"), &[x.clone()], |t, _| t[0].permute(&[2, 0, 1])?.sum(axes, keep));
        parity(&format!("mean {axes:?}"), &[x.clone()], |t, _| t[0].mean(axes, keep));
        parity(&format!("max {axes:?}"), &[x.clone()], |t, _| t[0].narrow(1, 1, 3)?.max(axes, keep));
        parity(&format!("min {axes:?}"), &[x.clone()], |t, _| t[0].min(axes, keep));
    }
    parity("var", &[x.clone()], |t, _| t[0].var(&[0, 1], false));
    parity("sum_all of a broadcast", &[rand(&[5], -1.0, 1.0, 71)], |t, _| {
        t[0].broadcast_to([3, 5])?.square()?.sum_all()
    });
    parity("mean_all and max_all", &[x.clone()], |t, _| t[0].mean_all()?.add(&t[0].max_all()?));
    for axis in [0isize, 1, -1] {
        exact(&format!("argmax {axis}"), &[x.clone()], |t| t[0].argmax(axis, false));
        exact(&format!("argmin {axis}"), &[x.clone()], |t| t[0].t()?.argmin(axis, true));
    }
}

#[test]
fn matmul_batched_broadcast_and_transposed() {
    if !gpu("matmul_batched_broadcast_and_transposed") {
        return;
    }
    let cases: Vec<(Vec<usize>, Vec<usize>)> = vec![
        (vec![3, 4], vec![4, 5]),
        (vec![2, 3, 4], vec![2, 4, 5]),
        (vec![2, 1, 3, 4], vec![3, 4, 5]),
        (vec![4], vec![4, 5]),
        (vec![3, 4], vec![4]),
        (vec![1, 4], vec![4, 1]),
    ];
    for (i, (a, b)) in cases.into_iter().enumerate() {
        let (ta, tb) = (rand(&a, -1.0, 1.0, 80 + i as u64), rand(&b, -1.0, 1.0, 90 + i as u64));
        parity(&format!("{a:?} @ {b:?}"), &[ta, tb], |t, _| t[0].matmul(&t[1]));
    }
    // Transposed operands go to cuBLAS as views; permuted batches and odd strides are copied.
    let (a, b) = (rand(&[2, 4, 3], -1.0, 1.0, 100), rand(&[5, 4], -1.0, 1.0, 101));
    parity("aᵀ @ bᵀ", &[a, b], |t, _| t[0].transpose(-1, -2)?.matmul(&t[1].t()?));
    let (a, b) = (rand(&[3, 2, 4, 5], -1.0, 1.0, 102), rand(&[2, 5, 6], -1.0, 1.0, 103));
    parity("permuted batch", &[a, b], |t, _| t[0].permute(&[1, 0, 2, 3])?.matmul(&t[1].unsqueeze(1)?));
    let (a, b) = (rand(&[4, 6], -1.0, 1.0, 104), rand(&[6, 4], -1.0, 1.0, 105));
    parity("narrowed columns", &[a, b], |t, _| t[0].narrow(1, 1, 4)?.matmul(&t[1].narrow(0, 2, 4)?));
    parity("dense chain", &[rand(&[3, 4], -1.0, 1.0, 106), rand(&[4, 2], -1.0, 1.0, 107)], |t, _| {
        t[0].matmul(&t[1])?.relu()?.matmul(&t[1].t()?)
    });
}

#[test]
fn convolutions_forward_and_both_gradients() {
    if !gpu("convolutions_forward_and_both_gradients") {
        return;
    }
    type Case = (Vec<usize>, Vec<usize>, (usize, usize), (usize, usize), Padding, usize);
    let cases: Vec<Case> = vec![
        (vec![2, 7, 6, 3], vec![3, 3, 3, 4], (1, 1), (1, 1), Padding::Same, 1),
        (vec![2, 7, 6, 3], vec![3, 2, 3, 4], (2, 2), (1, 1), Padding::Valid, 1),
        (vec![1, 8, 7, 2], vec![3, 3, 2, 3], (1, 1), (2, 2), Padding::Same, 1),
        (vec![2, 5, 4, 3], vec![1, 1, 3, 5], (1, 1), (1, 1), Padding::Valid, 1),
        (vec![2, 6, 5, 6], vec![3, 3, 2, 6], (1, 1), (1, 1), Padding::Same, 3),
    ];
    for (i, (xs, ks, s, d, p, g)) in cases.into_iter().enumerate() {
        let (x, k) = (rand(&xs, -1.0, 1.0, 110 + i as u64), rand(&ks, -1.0, 1.0, 120 + i as u64));
        parity(&format!("conv2d {xs:?} {ks:?} s{s:?} d{d:?} {p:?} g{g}"), &[x, k], |t, _| {
            t[0].conv2d(&t[1], s, d, p, g)
        });
    }
    // The fused inference convolution runs as its composite ops on the GPU.
    let (x, k) = (rand(&[2, 5, 5, 3], -1.0, 1.0, 125), rand(&[3, 3, 3, 4], -1.0, 1.0, 126));
    let (bias, scale, shift) =
        (rand(&[4], -1.0, 1.0, 127), rand(&[4], 0.5, 1.5, 128), rand(&[4], -1.0, 1.0, 129));
    let fused = |t: &[Tensor]| {
        let ep = tlx_tensor::ConvEpilogue {
            bias: Some(&t[2]),
            scale: Some(&t[3]),
            shift: Some(&t[4]),
            residual: None,
            act: tlx_tensor::EpilogueAct::Relu,
        };
        tlx_tensor::with_no_grad(|| t[0].conv2d_fused(&t[1], (1, 1), (1, 1), Padding::Same, 1, ep))
    };
    let ins = [x, k, bias, scale, shift];
    let moved: Vec<Tensor> = ins.iter().map(|t| t.to_device(GPU).unwrap()).collect();
    let got = fused(&moved).unwrap();
    assert_eq!(got.device(), GPU);
    close("conv2d_fused", &got, &fused(&ins).unwrap(), TOL);
    let (x, k) = (rand(&[2, 6, 5, 3], -1.0, 1.0, 130), rand(&[3, 3, 3, 2], -1.0, 1.0, 131));
    parity("depthwise", &[x.clone(), k.clone()], |t, _| {
        t[0].depthwise_conv2d(&t[1], (1, 1), (1, 1), Padding::Same)
    });
    parity("depthwise strided, permuted input", &[x, k], |t, _| {
        t[0].permute(&[0, 2, 1, 3])?.depthwise_conv2d(&t[1], (2, 2), (1, 1), Padding::Valid)
    });
}

#[test]
fn pooling_forward_and_backward() {
    if !gpu("pooling_forward_and_backward") {
        return;
    }
    let x = rand(&[2, 7, 6, 3], -1.0, 1.0, 140);
    for (pool, strides, pad) in
        [((2, 2), (2, 2), Padding::Valid), ((3, 3), (2, 2), Padding::Same), ((2, 3), (1, 2), Padding::Same)]
    {
        parity(&format!("max_pool {pool:?} {strides:?} {pad:?}"), &[x.clone()], |t, _| {
            t[0].max_pool2d(pool, strides, pad)
        });
        parity(&format!("avg_pool {pool:?} {strides:?} {pad:?}"), &[x.clone()], |t, _| {
            t[0].avg_pool2d(pool, strides, pad)
        });
    }
    parity("global pools", &[x.clone()], |t, _| {
        t[0].global_avg_pool2d(false)?.add(&t[0].global_max_pool2d(false)?)
    });
    parity("global avg keepdims", &[x], |t, _| t[0].global_avg_pool2d(true));
}

#[test]
fn batch_norm_train_inference_and_backward() {
    if !gpu("batch_norm_train_inference_and_backward") {
        return;
    }
    let x = rand(&[4, 3, 2, 5], -2.0, 3.0, 150);
    let (gamma, beta) = (rand(&[5], 0.5, 1.5, 151), rand(&[5], -0.5, 0.5, 152));
    parity("batch_norm_train", &[x.clone(), gamma.clone(), beta.clone()], |t, _| {
        Ok(t[0].batch_norm_train(Some(&t[1]), Some(&t[2]), 1e-3)?.0)
    });
    parity("batch_norm_train without γ/β", &[x.clone()], |t, _| {
        Ok(t[0].batch_norm_train(None, None, 1.001e-5)?.0)
    });
    let (_, m, v) = x.to_dtype(DType::F64).unwrap().batch_norm_train(None, None, 1e-3).unwrap();
    let (_, gm, gv) = x.to_device(GPU).unwrap().batch_norm_train(None, None, 1e-3).unwrap();
    assert_eq!((gm.device(), gv.device()), (GPU, GPU));
    close("batch mean", &gm, &m, TOL);
    close("batch variance", &gv, &v, TOL);
    let (mean, var) = (rand(&[5], -0.5, 0.5, 153), rand(&[5], 0.5, 2.0, 154));
    parity("batch_norm_inference", &[x, gamma, beta, mean, var], |t, _| {
        t[0].batch_norm_inference(Some(&t[1]), Some(&t[2]), &t[3], &t[4], 1e-3)
    });
}

#[test]
fn softmax_and_log_softmax() {
    if !gpu("softmax_and_log_softmax") {
        return;
    }
    let x = rand(&[3, 4, 5], -3.0, 3.0, 160);
    for axis in [-1isize, 1, 0] {
        parity(&format!("softmax {axis}"), &[x.clone()], |t, _| t[0].softmax(axis));
        parity(&format!("log_softmax {axis}"), &[x.clone()], |t, _| {
            t[0].permute(&[0, 2, 1])?.log_softmax(axis)
        });
    }
}

#[test]
fn dropout_on_the_device() {
    if !gpu("dropout_on_the_device") {
        return;
    }
    let x = Tensor::ones([4000], DType::F32).to_device(GPU).unwrap().with_grad().unwrap();
    let y = x.dropout(0.25, &mut Rng::new(3)).unwrap();
    assert_eq!(y.device(), GPU);
    let v = y.to_vec::<f32>().unwrap();
    let kept = v.iter().filter(|&&a| a != 0.0).count() as f64 / v.len() as f64;
    assert!((kept - 0.75).abs() < 0.03, "kept {kept}");
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.75).abs() < 1e-6));
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec::<f32>().unwrap(), v, "the gradient is the mask");
    let again = x.dropout(0.25, &mut Rng::new(3)).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(again, v, "the mask depends only on the generator");
}

#[test]
fn gather_scatter_index_select_one_hot() {
    if !gpu("gather_scatter_index_select_one_hot") {
        return;
    }
    let x = rand(&[3, 5], -1.0, 1.0, 170);
    let idx = Tensor::from_vec(vec![4i64, 0, 0, 2, 1, 3, 3, 3], [2, 4]).unwrap();
    parity("gather", &[x.clone()], |t, d| t[0].gather(1, &idx.to_device(d)?));
    let sel = Tensor::from_vec(vec![2i32, 0, 2], [3]).unwrap();
    parity("index_select", &[x.clone()], |t, d| t[0].index_select(0, &sel.to_device(d)?));
    parity("index_select axis 1", &[x.clone()], |t, d| t[0].index_select(-1, &sel.to_device(d)?));
    let src = rand(&[2, 4], -1.0, 1.0, 171);
    close(
        "scatter_add",
        &x.to_device(GPU)
            .unwrap()
            .scatter_add(1, &idx.to_device(GPU).unwrap(), &src.to_device(GPU).unwrap())
            .unwrap(),
        &x.scatter_add(1, &idx, &src).unwrap(),
        TOL,
    );
    let labels = Tensor::from_vec(vec![3u8, 0, 1, 3], [2, 2]).unwrap();
    exact("one_hot", &[labels.clone()], |t| Tensor::one_hot(&t[0], 4, DType::F32));
    // Cross-entropy as users write it: log_softmax, gather the labels, mean.
    let lab = Tensor::from_vec(vec![1i64, 4, 0], [3, 1]).unwrap();
    parity("cross-entropy", &[x.clone()], |t, d| {
        t[0].log_softmax(-1)?.gather(1, &lab.to_device(d)?)?.mean_all()?.neg()
    });
    let bad = Tensor::from_vec(vec![5i64], [1, 1]).unwrap().to_device(GPU).unwrap();
    let e = message(x.to_device(GPU).unwrap().gather(1, &bad));
    assert!(e.contains("gather") && e.contains("out of range"), "{e}");
    let e = message(Tensor::one_hot(&labels.to_device(GPU).unwrap(), 3, DType::F32));
    assert!(e.contains("one_hot"), "{e}");
}

#[test]
fn pad_narrow_concat_stack() {
    if !gpu("pad_narrow_concat_stack") {
        return;
    }
    let (a, b) = (rand(&[2, 3, 4], -1.0, 1.0, 180), rand(&[2, 2, 4], -1.0, 1.0, 181));
    parity("pad", &[a.clone()], |t, _| t[0].pad(&[(1, 0), (0, 2), (1, 1)], 2.5));
    parity("narrow and slice (backward pads)", &[a.clone()], |t, _| t[0].narrow(1, 1, 2)?.slice(2, 1, 3));
    parity("concat", &[a.clone(), b], |t, _| {
        Tensor::concat(&[t[0].clone(), t[1].clone(), t[0].narrow(1, 0, 1)?], 1)
    });
    parity("stack of views", &[a], |t, _| Tensor::stack(&[t[0].t()?, t[0].mul_scalar(2.0)?.t()?], 0));
    let i = Tensor::arange(0.0, 6.0, 1.0, DType::I32).unwrap().reshape([2, 3]).unwrap();
    exact("pad of integers with zeros", &[i.clone()], |t| t[0].pad(&[(0, 1), (2, 0)], 0.0));
    exact("concat of integers", &[i.clone()], |t| {
        Tensor::concat(&[t[0].clone(), t[0].t()?.reshape([2, 3])?], 0)
    });
}

#[test]
fn autograd_across_devices_and_a_small_network() {
    if !gpu("autograd_across_devices_and_a_small_network") {
        return;
    }
    // A CPU leaf moved to the GPU gets its gradient back on the CPU.
    let w = rand(&[3, 2], -1.0, 1.0, 190).with_grad().unwrap();
    let loss = w.to_device(GPU).unwrap().square().unwrap().sum_all().unwrap();
    assert_eq!(loss.device(), GPU);
    loss.backward().unwrap();
    let g = w.grad().unwrap();
    assert_eq!(g.device(), CPU);
    close("gradient through to_device", &g, &w.mul_scalar(2.0).unwrap(), 1e-6);

    // conv → batch norm → relu6 → max pool → flatten → dense → log_softmax → NLL.
    let x = rand(&[2, 6, 6, 2], -1.0, 1.0, 191);
    let k = rand(&[3, 3, 2, 4], -0.5, 0.5, 192);
    let gamma = rand(&[4], 0.5, 1.5, 193);
    let dense = rand(&[36, 3], -0.3, 0.3, 194);
    let bias = rand(&[3], -0.1, 0.1, 195);
    let labels = Tensor::from_vec(vec![2i64, 0], [2, 1]).unwrap();
    parity("network", &[x, k, gamma, dense, bias], |t, d| {
        let h = t[0].conv2d(&t[1], (1, 1), (1, 1), Padding::Same, 1)?;
        let h = h.batch_norm_train(Some(&t[2]), None, 1e-3)?.0.relu6()?;
        let h = h.max_pool2d((2, 2), (2, 2), Padding::Valid)?.flatten_from(1)?;
        let logits = h.matmul(&t[3])?.add(&t[4])?;
        logits.log_softmax(-1)?.gather(1, &labels.to_device(d)?)?.mean_all()?.neg()
    });
}

#[test]
fn mixed_devices_and_missing_kernels_are_errors() {
    if !gpu("mixed_devices_and_missing_kernels_are_errors") {
        return;
    }
    let c = rand(&[2, 3], -1.0, 1.0, 200);
    let g = c.to_device(GPU).unwrap();
    for (op, r) in [
        ("add", g.add(&c)),
        ("matmul", c.matmul(&g.t().unwrap())),
        ("where", Tensor::where_cond(&c.gt(&c).unwrap(), &g, &g)),
        ("concat", Tensor::concat(&[c.clone(), g.clone()], 0)),
        ("gather", g.gather(1, &Tensor::zeros([2, 1], DType::I64))),
    ] {
        let e = message(r);
        assert!(e.contains(op) && e.contains("cuda:0") && e.contains("cpu"), "{op}: {e}");
    }
    // f64 arithmetic and non-f32 kernels are missing on the GPU: errors naming the op.
    let g64 = c.to_dtype(DType::F64).unwrap().to_device(GPU).unwrap();
    let e = message(g64.exp());
    assert!(e.contains("exp") && e.contains("no CUDA kernel"), "{e}");
    let e = message(g64.matmul(&g64.t().unwrap()));
    assert!(e.contains("matmul") && e.contains("no CUDA kernel"), "{e}");
    let gi = Tensor::zeros([2, 2], DType::I32).to_device(GPU).unwrap();
    let e = message(gi.pad(&[(1, 1), (0, 0)], 1.0));
    assert!(e.contains("pad") && e.contains("no CUDA kernel"), "{e}");
    // Nothing was copied to the host behind the caller's back.
    assert_eq!(g.device(), GPU);
    let leaf = g.detach().with_grad().unwrap();
    let e =
        leaf.square().unwrap().sum_all().unwrap().backward_with(&Tensor::ones([], DType::F32)).unwrap_err();
    assert!(e.to_string().contains("cpu") && e.to_string().contains("cuda:0"), "{e}");
}
