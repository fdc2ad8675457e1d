//! The applications against keras.applications: parameter counts Keras publishes, layer
//! counts and names (first, last, pooling layers), `model.layers` order and weight loading
//! against the real Keras 2 application files in `../shared/conformance/keras` (skipped with a
//! message when that directory is absent), option checks, and the named blocks.
//!
//! Forward passes of the full networks run in the conformance runner (`forward_app` cases, ci
//! profile); here only one tiny MobileNetV2 runs.

use std::path::PathBuf;
use tlx_models::{block_start_layer, build, AppOptions, Arch, Error, Pooling, PreprocessMode};
use tlx_nn::{Activation, Model};
use tlx_tensor::Tensor;

fn notop(shape: [usize; 3]) -> AppOptions {
    AppOptions::new().include_top(false).input_shape(shape)
}

fn names(model: &Model) -> Vec<String> {
    model.layers().iter().map(|l| l.name().to_string()).collect()
}

fn total_params(model: &Model) -> usize {
    model.param_counts().0
}

fn invalid_message(result: tlx_models::Result<Model>) -> String {
    match result {
        Err(e @ Error::Invalid { .. }) => e.to_string(),
        Err(other) => panic!("expected an options error, got {other}"),
        Ok(m) => panic!("expected an error, built {m:?}"),
    }
}

#[test]
fn vgg_parameter_counts_match_keras() {
    assert_eq!(total_params(&build(Arch::Vgg16, &notop([224, 224, 3])).unwrap()), 14_714_688);
    assert_eq!(total_params(&build(Arch::Vgg19, &notop([224, 224, 3])).unwrap()), 20_024_384);
    assert_eq!(total_params(&build(Arch::Vgg16, &AppOptions::new()).unwrap()), 138_357_544);
    assert_eq!(total_params(&build(Arch::Vgg19, &AppOptions::new()).unwrap()), 143_667_240);
}

#[test]
fn resnet50_parameter_counts_match_keras() {
    let top = build(Arch::ResNet50, &AppOptions::new()).unwrap();
    assert_eq!(total_params(&top), 25_636_712);
    // BatchNorm moving statistics are the non-trainable part (Keras: 53,120).
    assert_eq!(top.param_counts().2, 53_120);
    assert_eq!(total_params(&build(Arch::ResNet50, &notop([224, 224, 3])).unwrap()), 23_587_712);
}

#[test]
fn mobilenet_v2_parameter_counts_match_keras() {
    let top = build(Arch::MobileNetV2, &AppOptions::new()).unwrap();
    assert_eq!(total_params(&top), 3_538_984);
    assert_eq!(top.param_counts().2, 34_112);
    assert_eq!(total_params(&build(Arch::MobileNetV2, &notop([224, 224, 3])).unwrap()), 2_257_984);
    // Keras's own summaries: 1,691,208 for alpha 0.35 (156 layers) and 6,156,712 for 1.4.
    // (1,692,552, sometimes quoted for 0.35, is not what Keras's code builds.)
    let small = build(Arch::MobileNetV2, &AppOptions::new().alpha(0.35)).unwrap();
    assert_eq!(total_params(&small), 1_691_208);
    assert_eq!(small.layers().len(), 156);
    assert_eq!(total_params(&build(Arch::MobileNetV2, &AppOptions::new().alpha(1.4)).unwrap()), 6_156_712);
}

#[test]
fn mobilenet_v2_widths_follow_alpha() {
    // The last convolution keeps 1280 filters for alpha ≤ 1 and widens above it.
    for (alpha, first, last) in
        [(0.35, 16, 1280), (0.5, 16, 1280), (0.75, 24, 1280), (1.3, 40, 1664), (1.4, 48, 1792)]
    {
        let m = build(Arch::MobileNetV2, &notop([96, 96, 3]).alpha(alpha)).unwrap();
        let kernel = |layer: &str| m.layer(layer).unwrap().weights()[0].tensor.dims().to_vec();
        assert_eq!(kernel("Conv1"), [3, 3, 3, first], "alpha {alpha}");
        assert_eq!(kernel("Conv_1")[3], last, "alpha {alpha}");
        assert_eq!(m.name(), format!("mobilenetv2_{alpha:.2}_96"));
        assert_eq!(m.layers().len(), 154);
    }
}

#[test]
fn layer_counts_and_names_match_keras() {
    let cases: [(Arch, AppOptions, usize, &str, &str); 8] = [
        (Arch::Vgg16, notop([32, 32, 3]), 19, "block1_conv1", "block5_pool"),
        (Arch::Vgg16, AppOptions::new().input_shape([32, 32, 3]), 23, "block1_conv1", "predictions"),
        (Arch::Vgg19, notop([32, 32, 3]), 22, "block1_conv1", "block5_pool"),
        (Arch::Vgg19, AppOptions::new().input_shape([32, 32, 3]), 26, "block1_conv1", "predictions"),
        (Arch::ResNet50, notop([32, 32, 3]), 175, "conv1_pad", "conv5_block3_out"),
        (Arch::ResNet50, AppOptions::new().input_shape([32, 32, 3]), 177, "conv1_pad", "predictions"),
        (Arch::MobileNetV2, notop([32, 32, 3]), 154, "Conv1", "out_relu"),
        (Arch::MobileNetV2, AppOptions::new().input_shape([32, 32, 3]), 156, "Conv1", "predictions"),
    ];
    for (arch, options, count, first, last) in cases {
        let m = build(arch, &options).unwrap();
        let n = names(&m);
        assert_eq!(n.len(), count, "{arch} include_top={}: {n:?}", options.include_top);
        assert_eq!(n[0], "input_layer");
        assert_eq!(m.layers()[0].class_name(), "InputLayer");
        assert_eq!(n[1], first, "{arch}");
        assert_eq!(n[count - 1], last, "{arch}");
        let unique: std::collections::HashSet<&String> = n.iter().collect();
        assert_eq!(unique.len(), n.len(), "{arch}: layer names must be unique");
    }
    let vgg = names(&build(Arch::Vgg16, &AppOptions::new().input_shape([32, 32, 3])).unwrap());
    assert_eq!(vgg[19..], ["flatten", "fc1", "fc2", "predictions"]);
    let resnet = names(&build(Arch::ResNet50, &AppOptions::new().input_shape([32, 32, 3])).unwrap());
    assert_eq!(resnet[175..], ["avg_pool", "predictions"]);
    let mobilenet = names(&build(Arch::MobileNetV2, &AppOptions::new().input_shape([32, 32, 3])).unwrap());
    assert_eq!(mobilenet[154..], ["global_average_pooling2d", "predictions"]);
}

#[test]
fn resnet50_orders_the_shortcut_after_the_second_relu() {
    // KERAS-NOTES §5: in model.layers, `_0_conv` follows `_2_relu` and `_0_bn` follows `_3_conv`.
    let n = names(&build(Arch::ResNet50, &notop([32, 32, 3])).unwrap());
    let at = |name: &str| n.iter().position(|l| l == name).unwrap();
    assert_eq!(at("conv2_block1_0_conv"), at("conv2_block1_2_relu") + 1);
    assert_eq!(at("conv2_block1_3_conv"), at("conv2_block1_0_conv") + 1);
    assert_eq!(at("conv2_block1_0_bn"), at("conv2_block1_3_conv") + 1);
    assert_eq!(at("conv2_block1_3_bn"), at("conv2_block1_0_bn") + 1);
    assert_eq!(at("conv2_block1_add"), at("conv2_block1_3_bn") + 1);
}

#[test]
fn pooling_layers_carry_keras_names_and_output_shapes() {
    let cases = [
        (Arch::Vgg16, Pooling::Avg, "global_average_pooling2d", 512),
        (Arch::Vgg19, Pooling::Max, "global_max_pooling2d", 512),
        (Arch::ResNet50, Pooling::Avg, "avg_pool", 2048),
        (Arch::ResNet50, Pooling::Max, "max_pool", 2048),
        (Arch::MobileNetV2, Pooling::Avg, "global_average_pooling2d", 1280),
        (Arch::MobileNetV2, Pooling::Max, "global_max_pooling2d", 1280),
    ];
    for (arch, pooling, name, channels) in cases {
        let m = build(arch, &notop([64, 64, 3]).pooling(pooling)).unwrap();
        let last = m.layers().last().unwrap();
        assert_eq!(last.name(), name, "{arch} {pooling:?}");
        let class = if pooling == Pooling::Avg { "GlobalAveragePooling2D" } else { "GlobalMaxPooling2D" };
        assert_eq!(last.class_name(), class);
        assert_eq!(m.output_shapes(), [vec![None, Some(channels)]], "{arch} {pooling:?}");
    }
}

#[test]
fn feature_map_shapes_follow_the_input_size() {
    let shape = |arch, s: [usize; 3]| build(arch, &notop(s)).unwrap().output_shapes()[0].clone();
    assert_eq!(shape(Arch::Vgg16, [224, 224, 3]), [None, Some(7), Some(7), Some(512)]);
    assert_eq!(shape(Arch::Vgg16, [33, 47, 3]), [None, Some(1), Some(1), Some(512)]);
    assert_eq!(shape(Arch::ResNet50, [64, 64, 3]), [None, Some(2), Some(2), Some(2048)]);
    assert_eq!(shape(Arch::MobileNetV2, [96, 96, 3]), [None, Some(3), Some(3), Some(1280)]);
    // Odd sizes take correct_pad's ((1, 1), (1, 1)) before a stride-2 depthwise convolution.
    assert_eq!(shape(Arch::MobileNetV2, [75, 75, 3]), [None, Some(3), Some(3), Some(1280)]);
}

#[test]
fn layer_settings_match_keras() {
    let resnet = build(Arch::ResNet50, &notop([32, 32, 3])).unwrap();
    let bn = resnet.layer("conv3_block2_2_bn").unwrap().config();
    assert_eq!((bn["epsilon"].as_f64(), bn["momentum"].as_f64()), (Some(1.001e-5), Some(0.99)));
    assert_eq!(resnet.layer("conv2_block1_1_conv").unwrap().weights().len(), 2, "ResNet convs have a bias");
    let mobilenet = build(Arch::MobileNetV2, &notop([32, 32, 3])).unwrap();
    let bn = mobilenet.layer("block_5_project_BN").unwrap().config();
    assert_eq!((bn["epsilon"].as_f64(), bn["momentum"].as_f64()), (Some(1e-3), Some(0.999)));
    for l in mobilenet.layers() {
        if l.class_name() == "Conv2D" || l.class_name() == "DepthwiseConv2D" {
            assert_eq!(l.weights().len(), 1, "{} must have no bias", l.name());
        }
    }
    let relu = mobilenet.layer("block_3_expand_relu").unwrap();
    assert_eq!((relu.class_name(), relu.config()["max_value"].as_f64()), ("ReLU", Some(6.0)));
    // correct_pad of an even input (8×8 entering block 3 of a 32×32 model).
    assert_eq!(
        mobilenet.layer("block_3_pad").unwrap().config()["padding"],
        serde_json::json!([[0, 1], [0, 1]])
    );
}

#[test]
fn bad_options_are_clear_errors() {
    let msg = invalid_message(build(Arch::Vgg16, &notop([16, 16, 3])));
    assert!(msg.contains("at least 32x32") && msg.contains("[16, 16, 3]"), "{msg}");
    let msg = invalid_message(build(Arch::ResNet50, &notop([64, 64, 1])));
    assert!(msg.contains("1 channel") && msg.contains("takes 3"), "{msg}");
    let msg = invalid_message(build(Arch::MobileNetV2, &AppOptions::new().pooling(Pooling::Avg)));
    assert!(msg.contains("include_top = false"), "{msg}");
    let msg = invalid_message(build(Arch::MobileNetV2, &notop([96, 96, 3]).alpha(0.6)));
    assert!(msg.contains("alpha 0.6") && msg.contains("0.35"), "{msg}");
    let msg = invalid_message(build(Arch::Vgg16, &notop([64, 64, 3]).alpha(0.5)));
    assert!(msg.contains("only MobileNetV2"), "{msg}");
    let msg = invalid_message(build(Arch::ResNet50, &AppOptions::new().classes(0)));
    assert!(msg.contains("classes"), "{msg}");
    match Arch::from_name("resnet101") {
        Err(e @ Error::UnknownArchitecture { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("resnet101") && msg.contains("mobilenetv2"), "{msg}");
        }
        other => panic!("expected an unknown-architecture error, got {other:?}"),
    }
    assert!(Pooling::from_name("mean").unwrap_err().to_string().contains("`avg`"));
}

#[test]
fn arch_names_and_preprocess_modes() {
    for arch in Arch::ALL {
        assert_eq!(Arch::from_name(arch.name()).unwrap(), arch);
        assert_eq!(arch.to_string().parse::<Arch>().unwrap(), arch);
        assert_eq!(PreprocessMode::for_architecture(arch.name()).unwrap(), arch.preprocess_mode());
    }
    assert_eq!(Arch::from_name("MobileNet_V2").unwrap(), Arch::MobileNetV2);
    assert_eq!(Arch::from_name("ResNet-50").unwrap(), Arch::ResNet50);
    assert_eq!(Arch::Vgg19.preprocess_mode(), PreprocessMode::Caffe);
    assert_eq!(Arch::MobileNetV2.preprocess_mode(), PreprocessMode::Tf);
    assert_eq!(Pooling::from_name("max").unwrap(), Pooling::Max);
}

#[test]
fn block_start_layers() {
    assert_eq!(block_start_layer(Arch::Vgg16, "block5"), Some("block5_conv1"));
    assert_eq!(block_start_layer(Arch::Vgg19, "block4"), Some("block4_conv1"));
    assert_eq!(block_start_layer(Arch::ResNet50, "conv5"), Some("conv5_block1_1_conv"));
    assert_eq!(block_start_layer(Arch::ResNet50, "conv4_block3"), Some("conv4_block3_1_conv"));
    assert_eq!(block_start_layer(Arch::ResNet50, "conv1"), Some("conv1_pad"));
    assert_eq!(block_start_layer(Arch::MobileNetV2, "block_13"), Some("block_13_expand"));
    assert_eq!(block_start_layer(Arch::MobileNetV2, "block_0"), Some("expanded_conv_depthwise"));
    assert_eq!(block_start_layer(Arch::MobileNetV2, "Conv_1"), Some("Conv_1"));
    assert_eq!(block_start_layer(Arch::Vgg16, "block6"), None);
    assert_eq!(block_start_layer(Arch::ResNet50, "conv2_block4"), None);
    assert_eq!(block_start_layer(Arch::MobileNetV2, "block_17"), None);
    assert_eq!(block_start_layer(Arch::Vgg16, "conv5"), None);
}

#[test]
fn each_block_starts_at_its_first_layer_in_model_order() {
    // In the built model, a block's start layer is the first layer named `<block>` or
    // `<block>_…`, and every block the table lists exists.
    for arch in Arch::ALL {
        let model = build(arch, &notop([32, 32, 3])).unwrap();
        let n = names(&model);
        for (block, start) in arch.blocks() {
            let prefix = format!("{block}_");
            let first = n.iter().find(|l| *l == block || l.starts_with(&prefix));
            assert_eq!(first.map(String::as_str), Some(*start), "{arch} block {block}");
        }
        // Freezing everything below the last block leaves that block's layers trainable.
        let (_, start) = *arch.blocks().last().unwrap();
        let mut model = model;
        model.fine_tune_from(start).unwrap();
        let at = model.layer_index(start).unwrap();
        assert!(model.layers()[..at].iter().all(|l| !l.trainable()), "{arch}");
        assert!(model.layers()[at..].iter().all(|l| l.trainable()), "{arch}");
    }
}

#[test]
fn small_mobilenet_predicts_a_distribution_and_clones() {
    let model =
        build(Arch::MobileNetV2, &AppOptions::new().alpha(0.35).input_shape([32, 32, 3]).classes(5)).unwrap();
    let x = Tensor::from_vec(
        (0..2 * 32 * 32 * 3).map(|i| (i % 255) as f32).collect::<Vec<f32>>(),
        [2, 32, 32, 3],
    )
    .unwrap();
    let x = tlx_models::preprocess_input(&x, Arch::MobileNetV2.preprocess_mode()).unwrap();
    let y = model.predict(&x).unwrap();
    assert_eq!(y.dims(), [2, 5]);
    let p = y.to_vec::<f32>().unwrap();
    for row in p.chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        assert!(row.iter().all(|v| *v > 0.0));
    }
    let logits = build(
        Arch::MobileNetV2,
        &AppOptions::new()
            .alpha(0.35)
            .input_shape([32, 32, 3])
            .classes(5)
            .classifier_activation(Activation::Linear),
    )
    .unwrap();
    logits.set_all_weights(&model.get_weights().unwrap()).unwrap();
    let z = logits.predict(&x).unwrap().to_vec::<f32>().unwrap();
    assert!(z.iter().any(|v| *v < 0.0), "linear top gives logits: {z:?}");
    // The config round-trips: same layers, classes, parameters.
    let clone = model.clone_architecture(7).unwrap();
    assert_eq!(names(&clone), names(&model));
    assert_eq!(clone.param_counts(), model.param_counts());
    assert_eq!(
        clone.layer("block_1_pad").unwrap().config()["padding"],
        model.layer("block_1_pad").unwrap().config()["padding"]
    );
}

/// The shared reference directory, or `None` (with a printed reason) when it is absent.
fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TLX_CONFORMANCE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/keras")
    });
    if dir.join("vgg16_notop.h5").is_file() {
        Some(dir)
    } else {
        println!("skipped: no Keras application files in {}", dir.display());
        None
    }
}

/// The real Keras 2 application file lists the model's layers in the same order (its input
/// layer aside), and its weights load into the model with every shape checked.
fn check_against_file(arch: Arch, file: &str, input: [usize; 3]) {
    let Some(dir) = shared_dir() else { return };
    let path = dir.join(file);
    let keras = weights_tools::KerasFile::open(&path).unwrap();
    let stored: Vec<&str> = keras.layers.iter().map(|l| l.name.as_str()).collect();
    let mut model = build(arch, &notop(input)).unwrap();
    let ours = names(&model);
    assert_eq!(stored.len(), ours.len(), "{file}");
    assert_eq!(stored[1..], ours[1..], "{file}: model.layers order");
    let report = model.load_keras_weights(&path).unwrap();
    let weighted = model.layers().iter().filter(|l| !l.weights().is_empty()).count();
    assert_eq!(report.layers, weighted, "{file}");
    assert_eq!(report.weights, model.named_weights().len(), "{file}");
    // The values are the file's: spot-check the first and last weighted layers.
    let weighted_names: Vec<&str> = keras.layers_with_weights().iter().map(|l| l.name.as_str()).collect();
    for name in [weighted_names[0], weighted_names[weighted_names.len() - 1]] {
        let ours = &model.layer(name).unwrap().weights()[0].tensor;
        let theirs = &keras.layer(name).unwrap().weights[0].tensor;
        let theirs = Tensor::from_shared_bytes(
            theirs.data.clone().into_shared(),
            0,
            theirs.dtype,
            theirs.shape.clone(),
        )
        .unwrap();
        assert_eq!(ours.to_vec::<f32>().unwrap(), theirs.to_vec::<f32>().unwrap(), "{file}: {name}");
    }
    println!(
        "{file}: {} layers, {} weights loaded ({} zero-copy)",
        report.layers, report.weights, report.zero_copy
    );
}

#[test]
fn vgg16_notop_file_loads() {
    check_against_file(Arch::Vgg16, "vgg16_notop.h5", [32, 32, 3]);
}

#[test]
fn resnet50_notop_file_loads() {
    check_against_file(Arch::ResNet50, "resnet50_notop.h5", [64, 64, 3]);
}

#[test]
fn mobilenet_v2_notop_file_loads() {
    check_against_file(Arch::MobileNetV2, "mobilenetv2_notop.h5", [96, 96, 3]);
}

#[test]
fn a_file_of_another_architecture_is_refused() {
    let Some(dir) = shared_dir() else { return };
    let mut model = build(Arch::Vgg19, &notop([32, 32, 3])).unwrap();
    let err = model.load_keras_weights(dir.join("vgg16_notop.h5")).unwrap_err().to_string();
    assert!(err.contains("vgg16_notop.h5") && err.contains("16") && err.contains("13"), "{err}");
}
