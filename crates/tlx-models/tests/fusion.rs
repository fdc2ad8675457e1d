//! Layer fusion (`tlx_nn::model::fuse`) changes no bit of any result: each application, with
//! random weights and BatchNorm statistics far from the identity, predicts exactly what it
//! predicts with fusion off; a frozen base in training mode (BatchNorm in inference mode,
//! gradients recorded) gives the same loss and gradients either way.

use tlx_models::{build, AppOptions, Arch};
use tlx_nn::{Context, Model};
use tlx_tensor::{Rng, Tensor};

/// Replaces every weight with random values; BatchNorm variances positive, gammas near 1.
fn randomize(model: &Model, seed: u64) {
    let mut rng = Rng::new(seed);
    for (path, w) in model.named_weights() {
        let dims = w.tensor.dims().to_vec();
        // Kernels scaled to keep activations of order one through 50 layers.
        let fan_in: usize = dims[..dims.len() - 1].iter().product::<usize>().max(1);
        let a = if dims.len() > 1 { (3.0 / fan_in as f64).sqrt() } else { 0.5 };
        let t = Tensor::rand_uniform(dims, -a, a, tlx_tensor::DType::F32, &mut rng).unwrap();
        let t = if path.ends_with("moving_variance") { t.abs().unwrap().add_scalar(0.2).unwrap() } else { t };
        let t = if path.ends_with("gamma") { t.add_scalar(1.0).unwrap() } else { t };
        w.tensor.assign(&t).unwrap();
    }
}

fn forward(model: &Model, x: &Tensor, fuse: bool) -> Vec<f32> {
    let _g = tlx_tensor::no_grad();
    let mut ctx = Context::inference();
    ctx.fuse = fuse;
    model.forward(std::slice::from_ref(x), &mut ctx).unwrap().swap_remove(0).to_vec::<f32>().unwrap()
}

fn check_app(arch: Arch, options: AppOptions, input: [usize; 3]) -> Model {
    let model = build(arch, &options.input_shape(input)).unwrap();
    randomize(&model, 3);
    let mut rng = Rng::new(9);
    let x =
        Tensor::rand_uniform([2, input[0], input[1], input[2]], -1.0, 1.0, tlx_tensor::DType::F32, &mut rng)
            .unwrap();
    let (fused, plain) = (forward(&model, &x, true), forward(&model, &x, false));
    assert!(fused.iter().all(|v| v.is_finite()), "{arch:?}: non-finite output");
    assert!(fused.iter().any(|&v| v != 0.0), "{arch:?}: all-zero output");
    assert_eq!(fused, plain, "{arch:?}: fused and unfused predictions differ");
    // Model::predict fuses.
    assert_eq!(model.predict(&x).unwrap().to_vec::<f32>().unwrap(), plain, "{arch:?}: predict");
    let mut off = Context::inference();
    off.fuse = false;
    assert!(model.fused_chains(&off).is_empty());
    model
}

/// One training-mode forward and backward pass (fusion on or off): the loss, a mean of
/// squares of the output, and every trainable weight's gradient.
fn training_step(model: &Model, x: &Tensor, fuse: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut ctx = Context::training(1);
    ctx.fuse = fuse;
    let y = model.forward(std::slice::from_ref(x), &mut ctx).unwrap().swap_remove(0);
    let loss = y.square().unwrap().mean(&[0, 1, 2, 3], false).unwrap();
    let weights = model.trainable_weights();
    for (_, w) in &weights {
        w.zero_grad();
    }
    loss.backward().unwrap();
    let grads = weights.iter().map(|(_, w)| w.grad().unwrap().to_vec::<f32>().unwrap()).collect();
    (loss.to_vec::<f32>().unwrap(), grads)
}

fn has_chain(model: &Model, chain: &[&str]) -> bool {
    model.fused_chains(&Context::inference()).iter().any(|c| c == chain)
}

#[test]
fn resnet50_predicts_the_same_bits_fused() {
    let m = check_app(Arch::ResNet50, AppOptions::new().include_top(false), [40, 40, 3]);
    // Every convolution is fused with its BatchNorm (53), and every block's last convolution
    // also with the block's Add (of the shortcut) and ReLU; the stem's padding with its max
    // pooling.
    let chains = m.fused_chains(&Context::inference());
    assert_eq!(chains.len(), 54, "{chains:?}");
    assert!(has_chain(&m, &["pool1_pad", "pool1_pool"]));
    assert!(has_chain(&m, &["conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu"]));
    assert!(has_chain(&m, &["conv2_block1_0_conv", "conv2_block1_0_bn"]));
    assert!(has_chain(
        &m,
        &["conv5_block3_3_conv", "conv5_block3_3_bn", "conv5_block3_add", "conv5_block3_out"]
    ));
    let with_add = chains.iter().filter(|c| c.iter().any(|n| n.ends_with("_add"))).count();
    assert_eq!(with_add, 16, "{chains:?}");
}

#[test]
fn mobilenet_v2_predicts_the_same_bits_fused() {
    let m = check_app(Arch::MobileNetV2, AppOptions::new().include_top(false).alpha(0.35), [48, 48, 3]);
    assert!(has_chain(
        &m,
        &["block_1_pad", "block_1_depthwise", "block_1_depthwise_BN", "block_1_depthwise_relu"]
    ));
    assert!(has_chain(&m, &["block_1_project", "block_1_project_BN"]));
    assert!(has_chain(&m, &["Conv_1", "Conv_1_bn", "out_relu"]));
}

#[test]
fn vgg16_predicts_the_same_bits_fused() {
    let m = check_app(Arch::Vgg16, AppOptions::new().include_top(false), [32, 32, 3]);
    // Each convolution alone: bias and ReLU in its epilogue.
    assert_eq!(m.fused_chains(&Context::inference()).len(), 13);
    assert!(has_chain(&m, &["block5_conv3"]));
}

#[test]
fn frozen_base_gradients_are_the_same_fused() {
    let model =
        build(Arch::MobileNetV2, &AppOptions::new().include_top(false).alpha(0.35).input_shape([32, 32, 3]))
            .unwrap();
    randomize(&model, 5);
    // Freeze the BatchNorm layers only: they run in inference mode while the convolutions
    // train, so the fused chains must fall back to the separate ops to record gradients.
    let mut model = model;
    for layer in model.layers_mut() {
        if layer.class_name() == "BatchNormalization" {
            layer.set_trainable(false).unwrap();
        }
    }
    model.sync_requires_grad().unwrap();
    let mut rng = Rng::new(2);
    let x = Tensor::rand_uniform([2, 32, 32, 3], -1.0, 1.0, tlx_tensor::DType::F32, &mut rng).unwrap();
    let (fused, plain) = (training_step(&model, &x, true), training_step(&model, &x, false));
    assert!(!fused.1.is_empty());
    assert_eq!(fused, plain, "loss or gradients differ with fusion on");
}

#[test]
fn resnet50_training_batch_norm_chains_give_the_same_bits() {
    // Every layer trainable, BatchNorm on batch statistics: `_bn → _relu` and `_3_bn → _add →
    // _out` run as one recorded op each (Tensor::batch_norm_train_relu). Loss, every
    // gradient and the moving statistics they update must be the bits of the separate ops.
    let model =
        build(Arch::ResNet50, &AppOptions::new().include_top(false).input_shape([32, 32, 3])).unwrap();
    randomize(&model, 7);
    let mut ctx = Context::training(1);
    let chains = model.fused_chains(&ctx);
    let bn_chains = chains.iter().filter(|c| c[0].ends_with("_bn")).count();
    assert_eq!(bn_chains, 49, "{chains:?}"); // 53 BatchNorms but the 4 shortcuts' `_0_bn`
    assert!(chains.iter().any(|c| c == &["conv1_bn", "conv1_relu"]));
    assert!(chains.iter().any(|c| c == &["conv2_block1_2_bn", "conv2_block1_2_relu"]));
    assert!(chains.iter().any(|c| c == &["conv3_block1_3_bn", "conv3_block1_add", "conv3_block1_out"]));
    assert!(chains.iter().any(|c| c == &["conv5_block3_3_bn", "conv5_block3_add", "conv5_block3_out"]));
    ctx.fuse = false;
    assert!(!model.fused_chains(&ctx).iter().any(|c| c[0].ends_with("_bn")));

    let mut rng = Rng::new(4);
    let x = Tensor::rand_uniform([2, 32, 32, 3], -1.0, 1.0, tlx_tensor::DType::F32, &mut rng).unwrap();
    let moving = model.non_trainable_weights();
    // Copies (not views: `assign` writes into the weights' storage).
    let start: Vec<Tensor> =
        moving.iter().map(|(_, w)| Tensor::from_vec(w.to_vec::<f32>().unwrap(), w.dims()).unwrap()).collect();
    let run = |fuse: bool| {
        for ((_, w), s) in moving.iter().zip(&start) {
            w.assign(s).unwrap();
        }
        let (loss, grads) = training_step(&model, &x, fuse);
        let stats: Vec<Vec<f32>> = moving.iter().map(|(_, w)| w.to_vec::<f32>().unwrap()).collect();
        (loss, grads, stats)
    };
    let (fused, plain) = (run(true), run(false));
    assert_eq!(fused.1.len(), model.trainable_weights().len());
    assert!(fused.0[0].is_finite() && fused.0[0] > 0.0);
    assert_eq!(fused.0, plain.0, "losses differ with fusion on");
    assert_eq!(fused.1, plain.1, "gradients differ with fusion on");
    assert_eq!(fused.2, plain.2, "moving statistics differ with fusion on");
    assert_ne!(fused.2, start.iter().map(|s| s.to_vec::<f32>().unwrap()).collect::<Vec<_>>());
}

#[test]
fn vgg16_training_convolutions_give_the_same_bits() {
    // Every layer trainable: each convolution with its bias and ReLU is one recorded op
    // (the pre-activation sums are not kept); loss and gradients are the separate ops' bits.
    let model = build(Arch::Vgg16, &AppOptions::new().include_top(false).input_shape([32, 32, 3])).unwrap();
    randomize(&model, 8);
    let mut rng = Rng::new(6);
    let x = Tensor::rand_uniform([2, 32, 32, 3], -1.0, 1.0, tlx_tensor::DType::F32, &mut rng).unwrap();
    assert_eq!(model.fused_chains(&Context::training(1)).len(), 13);
    let (fused, plain) = (training_step(&model, &x, true), training_step(&model, &x, false));
    assert_eq!(fused.1.len(), 26);
    assert!(fused.0[0] > 0.0 && fused.1.iter().all(|g| g.iter().any(|&v| v != 0.0)));
    assert_eq!(fused, plain, "loss or gradients differ with fusion on");
}

#[test]
fn mobilenet_v2_training_batch_norm_relu6_chains_give_the_same_bits() {
    // Every layer trainable: each `_BN → _relu` (ReLU6) is one recorded op; the BatchNorms
    // before a block's Add (no activation) stay separate. Loss and gradients are the bits
    // of the separate ops.
    let model =
        build(Arch::MobileNetV2, &AppOptions::new().include_top(false).alpha(0.35).input_shape([32, 32, 3]))
            .unwrap();
    randomize(&model, 9);
    let chains = model.fused_chains(&Context::training(1));
    assert!(chains.iter().any(|c| c == &["block_1_depthwise_BN", "block_1_depthwise_relu"]), "{chains:?}");
    assert!(chains.iter().any(|c| c == &["bn_Conv1", "Conv1_relu"]), "{chains:?}");
    assert!(!chains.iter().any(|c| c[0] == "block_2_project_BN"));
    let mut rng = Rng::new(3);
    let x = Tensor::rand_uniform([2, 32, 32, 3], -1.0, 1.0, tlx_tensor::DType::F32, &mut rng).unwrap();
    let (fused, plain) = (training_step(&model, &x, true), training_step(&model, &x, false));
    assert!(fused.0[0] > 0.0 && !fused.1.is_empty());
    assert_eq!(fused, plain, "loss or gradients differ with fusion on");
}
