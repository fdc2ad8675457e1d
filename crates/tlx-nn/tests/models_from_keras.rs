//! Whole Keras models rebuilt from their files (Keras 2 and 3 `.h5`, `.keras`, `.weights.h5`)
//! and run on the inputs Keras recorded, against Keras's outputs. Uses the full reference set
//! in `../shared/conformance/keras` when present, else the committed fixtures.

use std::path::PathBuf;
use tlx_nn::{Model, ModelKind};
use tlx_tensor::Tensor;

fn dir() -> PathBuf {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/keras");
    if shared.join("small_cnn.input.npy").exists() {
        println!("using the full reference set in {}", shared.display());
        shared
    } else {
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras");
        println!("../shared not found; using the committed fixtures in {}", d.display());
        d
    }
}

fn npy(path: PathBuf) -> Option<Tensor> {
    let raw = weights_tools::npy::read_npy(&path).ok()?;
    Tensor::from_shared_bytes(raw.data.into_shared(), 0, raw.dtype, raw.shape).ok()
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let d: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    d / b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-12)
}

fn check(model_file: &str, weights: Option<&str>, stem: &str) {
    let d = dir();
    let (Some(x), Some(want)) =
        (npy(d.join(format!("{stem}.input.npy"))), npy(d.join(format!("{stem}.output.npy"))))
    else {
        println!("skipping {model_file}: no recorded input/output next to it");
        return;
    };
    let mut m = Model::from_keras_file(d.join(model_file)).unwrap();
    if let Some(w) = weights {
        let r = m.load_keras_weights(d.join(w)).unwrap();
        assert!(r.weights > 0);
    }
    let got = m.predict(&x).unwrap();
    let e = rel_err(&got, &want);
    println!("{model_file}: rel err {e:.2e}");
    assert!(e < 1e-5, "{model_file}: relative error {e}");
}

#[test]
fn small_cnn_from_keras3_h5_keras_and_weights_h5() {
    check("small_cnn.k3.h5", None, "small_cnn");
    check("small_cnn.keras", None, "small_cnn");
    check("small_cnn.keras", Some("small_cnn.weights.h5"), "small_cnn");
}

#[test]
fn small_resnet_functional_from_keras3() {
    check("small_resnet.k3.h5", None, "small_resnet");
    check("small_resnet.keras", None, "small_resnet");
    check("small_resnet.keras", Some("small_resnet.weights.h5"), "small_resnet");
    check("small_resnet.keras", Some("small_resnet.weights.latest-gzip.h5"), "small_resnet");
}

#[test]
fn mlp_from_keras2_h5() {
    check("model_a.k2.h5", None, "model_a");
    check("model_a.k2.latest-gzip.h5", None, "model_a");
}

#[test]
fn structure_of_a_functional_model() {
    let m = Model::from_keras_file(dir().join("small_resnet.keras")).unwrap();
    assert_eq!(m.kind(), ModelKind::Functional);
    assert_eq!(m.layers()[0].class_name(), "InputLayer");
    let s = m.summary();
    assert!(s.contains("Total params"), "{s}");
    let (total, trainable, frozen) = m.param_counts();
    assert_eq!(total, trainable + frozen);
    assert!(frozen > 0, "BatchNorm moving statistics are non-trainable");
    // Round trip through our own config keeps the structure and, with copied weights, the outputs.
    let clone = m.deep_clone().unwrap();
    let x = Tensor::ones([2, 16, 16, 3], tlx_tensor::DType::F32);
    let (a, b) = (m.predict(&x).unwrap(), clone.predict(&x).unwrap());
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
}

#[test]
fn lambda_layer_is_named_in_the_error() {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras/real-world");
    for entry in std::fs::read_dir(d).unwrap() {
        let p = entry.unwrap().path();
        let e = Model::from_keras_file(&p).unwrap_err().to_string();
        assert!(e.contains("Lambda") && e.contains("lambda_1"), "{}: {e}", p.display());
    }
}
