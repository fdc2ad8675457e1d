//! `preprocess_input` against KERAS-NOTES §7's worked examples and values Keras 3.15 wrote, its
//! argument checks; the ImageNet class table and `decode_predictions` ordering.

use tlx_models::imagenet::{self, NUM_CLASSES};
use tlx_models::{decode_predictions, preprocess_input, Error, PreprocessMode};
use tlx_tensor::{DType, Tensor};

fn pixel(rgb: [f32; 3]) -> Tensor {
    Tensor::from_vec(rgb.to_vec(), [1, 1, 1, 3]).unwrap()
}

fn run(x: &Tensor, mode: &str) -> Vec<f32> {
    preprocess_input(x, PreprocessMode::from_name(mode).unwrap()).unwrap().to_vec::<f32>().unwrap()
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() <= tol, "got {got:?}, want {want:?}");
    }
}

#[test]
fn caffe_swaps_to_bgr_and_subtracts_the_means() {
    // KERAS-NOTES §7: RGB (10, 20, 30) → (−73.939, −96.779, −113.68).
    assert_close(&run(&pixel([10.0, 20.0, 30.0]), "caffe"), &[-73.939, -96.779, -113.68], 1e-5);
}

#[test]
fn tf_scales_to_minus_one_one() {
    let x = Tensor::from_vec(vec![0.0f32, 127.5, 255.0, 51.0, 25.5, 229.5], [1, 1, 2, 3]).unwrap();
    assert_close(&run(&x, "tf"), &[-1.0, 0.0, 1.0, -0.6, -0.8, 0.8], 1e-6);
}

#[test]
fn torch_normalises_each_rgb_channel() {
    let got = run(&pixel([255.0, 0.0, 127.5]), "torch");
    let want = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.5 - 0.406) / 0.225];
    assert_close(&got, &want, 1e-6);
}

/// The first pixel of each `preprocess` case of the Keras conformance set (Keras 3.15, float32
/// NumPy input): tlx must reproduce Keras's float32 rounding exactly.
#[test]
fn matches_keras_float32_rounding_exactly() {
    let input = [3.0350141525268555f64, 110.23955535888672, 16.239681243896484].map(|v| v as f32);
    let cases = [
        ("caffe", [-87.69932556152344f64, -6.5394439697265625, -120.64498901367188]),
        ("torch", [-2.065930128097534, -0.10575007647275925, -1.5213998556137085]),
        ("tf", [-0.9761959910392761, -0.13537603616714478, -0.8726299405097961]),
    ];
    for (mode, want) in cases {
        assert_eq!(run(&pixel(input), mode), want.map(|v| v as f32), "mode {mode}");
    }
}

#[test]
fn keeps_the_shape_and_works_on_single_images() {
    let values: Vec<f32> = (0..2 * 3 * 4 * 3).map(|v| v as f32).collect();
    let batch = Tensor::from_vec(values.clone(), [2, 3, 4, 3]).unwrap();
    let image = Tensor::from_vec(values[..36].to_vec(), [3, 4, 3]).unwrap();
    for mode in ["caffe", "torch", "tf"] {
        let out = preprocess_input(&batch, PreprocessMode::from_name(mode).unwrap()).unwrap();
        assert_eq!(out.dims(), &[2, 3, 4, 3]);
        assert_eq!(out.dtype(), DType::F32);
        let one = run(&image, mode);
        assert_eq!(one, out.to_vec::<f32>().unwrap()[..36].to_vec(), "mode {mode}");
    }
}

#[test]
fn f64_is_computed_in_f64_and_integers_become_f32() {
    let x = Tensor::from_vec(vec![10.0f64, 20.0, 30.0], [1, 1, 3]).unwrap();
    let out = preprocess_input(&x, PreprocessMode::Caffe).unwrap();
    assert_eq!(out.dtype(), DType::F64);
    assert_eq!(out.to_vec::<f64>().unwrap(), vec![30.0 - 103.939, 20.0 - 116.779, 10.0 - 123.68]);

    let bytes = Tensor::from_vec(vec![0u8, 255, 51], [1, 1, 3]).unwrap();
    let out = preprocess_input(&bytes, PreprocessMode::Tf).unwrap();
    assert_eq!(out.dtype(), DType::F32);
    assert_close(&out.to_vec::<f32>().unwrap(), &[-1.0, 1.0, -0.6], 1e-6);
}

#[test]
fn tf_mode_takes_any_channel_count() {
    let gray = Tensor::from_vec(vec![0.0f32, 255.0], [1, 2, 1]).unwrap();
    assert_eq!(run(&gray, "tf"), vec![-1.0, 1.0]);
}

#[test]
fn bad_arguments_are_errors() {
    let err = PreprocessMode::from_name("caffee").unwrap_err();
    assert!(matches!(err, Error::UnknownPreprocessMode(ref m) if m == "caffee"), "{err}");
    assert!(err.to_string().contains("caffe") && err.to_string().contains("torch"));

    let flat = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3]).unwrap();
    let five = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [1, 1, 1, 1, 3]).unwrap();
    for x in [&flat, &five] {
        let err = preprocess_input(x, PreprocessMode::Tf).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }) && err.to_string().contains("[h, w, c]"), "{err}");
    }
    let rgba = Tensor::from_vec(vec![1.0f32; 8], [1, 2, 4]).unwrap();
    for mode in [PreprocessMode::Caffe, PreprocessMode::Torch] {
        let err = preprocess_input(&rgba, mode).unwrap_err();
        assert!(err.to_string().contains("3 RGB channels"), "{err}");
    }
}

#[test]
fn each_architecture_has_its_keras_mode() {
    for (arch, mode) in [
        ("vgg16", PreprocessMode::Caffe),
        ("vgg19", PreprocessMode::Caffe),
        ("resnet50", PreprocessMode::Caffe),
        ("ResNet50", PreprocessMode::Caffe),
        ("mobilenetv2", PreprocessMode::Tf),
        ("MobileNet_V2", PreprocessMode::Tf),
    ] {
        assert_eq!(PreprocessMode::for_architecture(arch).unwrap(), mode, "{arch}");
    }
    let err = PreprocessMode::for_architecture("inception_v3").unwrap_err();
    assert!(err.to_string().contains("inception_v3") && err.to_string().contains("vgg16"), "{err}");
}

#[test]
fn class_table_is_keras_order() {
    let known = [
        (0, "n01440764", "tench"),
        (1, "n01443537", "goldfish"),
        (134, "n02012849", "crane"),
        (207, "n02099601", "golden_retriever"),
        (281, "n02123045", "tabby"),
        (409, "n02708093", "analog_clock"),
        (517, "n03126707", "crane"),
        (999, "n15075141", "toilet_tissue"),
    ];
    for (i, wnid, name) in known {
        assert_eq!(imagenet::class(i), Some((wnid, name)), "class {i}");
        assert_eq!(imagenet::index_of_wnid(wnid), Some(i));
    }
    assert_eq!(imagenet::class(NUM_CLASSES), None);
    assert_eq!(imagenet::classes().len(), NUM_CLASSES);
}

fn scores(rows: &[&[(usize, f32)]]) -> Tensor {
    let mut v = vec![0.0f32; rows.len() * NUM_CLASSES];
    for (r, row) in rows.iter().enumerate() {
        for &(i, s) in row.iter() {
            v[r * NUM_CLASSES + i] = s;
        }
    }
    Tensor::from_vec(v, [rows.len(), NUM_CLASSES]).unwrap()
}

fn names(row: &[tlx_models::Prediction]) -> Vec<(&str, f64)> {
    row.iter().map(|p| (p.name, p.score)).collect()
}

#[test]
fn decode_sorts_each_row_best_first() {
    // keras-hub's own test of Keras's decoding, one row per order.
    let probs = scores(&[&[(997, 0.5), (998, 0.25), (999, 0.125)], &[(997, 0.125), (998, 0.25), (999, 0.5)]]);
    let out = decode_predictions(&probs, 3).unwrap();
    assert_eq!(names(&out[0]), vec![("bolete", 0.5), ("ear", 0.25), ("toilet_tissue", 0.125)]);
    assert_eq!(names(&out[1]), vec![("toilet_tissue", 0.5), ("ear", 0.25), ("bolete", 0.125)]);
    let first = &out[0][0];
    assert_eq!((first.index, first.wnid), (997, "n13054560"));
}

#[test]
fn decode_ties_keep_the_lower_index_first() {
    let probs = scores(&[&[(281, 0.4), (207, 0.4), (1, 0.2)], &[]]);
    let out = decode_predictions(&probs, 4).unwrap();
    let idx: Vec<usize> = out[0].iter().map(|p| p.index).collect();
    assert_eq!(idx, vec![207, 281, 1, 0]);
    let idx: Vec<usize> = out[1].iter().map(|p| p.index).collect();
    assert_eq!(idx, vec![0, 1, 2, 3]);
}

#[test]
fn decode_top_is_clamped_and_zero_is_empty() {
    let probs = scores(&[&[(5, 1.0)]]);
    let all = decode_predictions(&probs, 5000).unwrap();
    assert_eq!(all[0].len(), NUM_CLASSES);
    assert_eq!(all[0][0].index, 5);
    assert!(decode_predictions(&probs, 0).unwrap()[0].is_empty());
}

#[test]
fn decode_rejects_bad_shapes_and_nan() {
    for dims in [vec![NUM_CLASSES], vec![2, 999], vec![1, 1, NUM_CLASSES]] {
        let n: usize = dims.iter().product();
        let t = Tensor::from_vec(vec![0.0f32; n], dims.clone()).unwrap();
        let err = decode_predictions(&t, 5).unwrap_err();
        assert!(err.to_string().contains("(samples, 1000)"), "{dims:?}: {err}");
    }
    let mut v = vec![0.0f32; 2 * NUM_CLASSES];
    v[NUM_CLASSES + 7] = f32::NAN;
    let err = decode_predictions(&Tensor::from_vec(v, [2, NUM_CLASSES]).unwrap(), 5).unwrap_err();
    assert!(err.to_string().contains("row 1, class 7"), "{err}");
}
