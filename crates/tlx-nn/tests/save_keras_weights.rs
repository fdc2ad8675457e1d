//! `Model::save_keras_weights`: Keras 3 `.weights.h5` files that load back bit for bit (models
//! built in code, shared layers, nested models, the Keras fixtures), with Keras's exact tree
//! (compared with the `small_cnn.weights.h5` / `small_resnet.weights.h5` Keras wrote), and
//! errors for bad input.
//!
//! Keras itself loading the files is checked by `tests/keras/check_weights_h5.py` (needs Python
//! with Keras 3) on what `dump_for_keras_check` writes when `TLX_KERAS_CHECK_DIR` is set.

use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tlx_nn::layers::{BatchNormalization, Conv2D, Dense, Merge, Stateless, StatelessOp};
use tlx_nn::model::Functional;
use tlx_nn::{Activation, Model};
use tlx_tensor::{DType, Padding, Rng, Tensor};
use weights_tools::hdf5::{H5File, Object};
use weights_tools::{RawTensor, TensorBytes};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras")
}

/// A directory for one test's files, removed (with everything in it) when the test ends.
fn tmp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("tlx-save-h5-{tag}-")).tempdir().expect("temporary directory")
}

fn relu() -> Activation {
    Activation::from_name("relu").unwrap()
}

/// A Sequential MLP with BatchNorm and a weightless layer.
fn mlp() -> Model {
    let mut m = Model::sequential("mlp", &[8]);
    m.add(Dense::new("d1", 16, relu())).unwrap();
    m.add(BatchNormalization::new("bn", 0.99, 1e-3)).unwrap();
    m.add(Stateless::new("drop", "Dropout", StatelessOp::Dropout { rate: 0.5, spatial: false })).unwrap();
    m.add(Dense::new("out", 3, Activation::from_name("softmax").unwrap())).unwrap();
    m
}

/// A Functional model with a nested Sequential (with BatchNorm), a layer called twice and a merge.
fn functional() -> Model {
    let mut inner = Model::sequential("inner", &[6]);
    inner.add(Dense::new("i1", 5, relu())).unwrap();
    inner.add(BatchNormalization::new("ibn", 0.99, 1e-3)).unwrap();
    let mut g = Functional::new("func");
    let x = g.input("x", &[6]);
    let h = g.call(inner, &[x]).unwrap();
    let a = g.call(Dense::new("shared", 5, relu()), &[h]).unwrap();
    let b = g.call_shared("shared", &[a]).unwrap();
    let s = g.call(Stateless::new("sum", "Add", StatelessOp::Merge(Merge::Add)), &[h, b]).unwrap();
    let y = g.call(Dense::new("head", 2, Activation::Linear), &[s]).unwrap();
    g.build(&[x], &[y]).unwrap()
}

/// A small CNN (Conv2D, BatchNorm, pooling, Dense) built in code.
fn cnn() -> Model {
    let mut m = Model::sequential("cnn", &[6, 6, 2]);
    m.add(Conv2D::new("c1", 4, (3, 3), (1, 1), Padding::Same, relu())).unwrap();
    m.add(BatchNormalization::new("b1", 0.99, 1e-3)).unwrap();
    let pool = StatelessOp::MaxPool { pool: (2, 2), strides: (2, 2), padding: Padding::Valid };
    m.add(Stateless::new("p1", "MaxPooling2D", pool)).unwrap();
    m.add(Stateless::new("flat", "Flatten", StatelessOp::Flatten)).unwrap();
    m.add(Dense::new("out", 3, Activation::Linear)).unwrap();
    m
}

/// Gives every weight random values (variances positive), as training would.
fn randomize(m: &Model, seed: u64) {
    let mut rng = Rng::new(seed);
    let values: Vec<Tensor> = m
        .named_weights()
        .iter()
        .map(|(name, w)| {
            let n = w.tensor.numel();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let r = rng.normal() as f32;
                    if name.ends_with("moving_variance") {
                        r.abs() + 0.1
                    } else {
                        r
                    }
                })
                .collect();
            Tensor::from_vec(v, w.tensor.dims().to_vec()).unwrap()
        })
        .collect();
    m.set_all_weights(&values).unwrap();
}

/// Every weight's path and bits, in `model.weights` order.
fn bits(m: &Model) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    m.named_weights()
        .iter()
        .map(|(p, w)| {
            let v = w.tensor.to_vec::<f32>().unwrap();
            (p.clone(), w.tensor.dims().to_vec(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// What the reader sees: every group (with its `name` attribute) and dataset (shape, dtype).
fn tree(path: &Path) -> BTreeMap<String, String> {
    let f = H5File::open(path).unwrap();
    f.walk()
        .unwrap()
        .iter()
        .map(|o| {
            let desc = match o {
                Object::Group(g) => {
                    let name = g.attr("name").unwrap().map(|a| a.as_str().unwrap().to_string());
                    format!("group name={name:?}")
                }
                Object::Dataset(d) => format!("dataset {:?} {:?}", d.shape().unwrap(), d.dtype().unwrap()),
            };
            (o.path().to_string(), desc)
        })
        .collect()
}

/// Saves, loads into a copy with other weights, and checks the copy has the same bits.
fn round_trip(m: &Model, dir: &Path, file: &str) -> PathBuf {
    let path = dir.join(file);
    m.save_keras_weights(&path).unwrap();
    let mut copy = m.clone_architecture(0xBEEF).unwrap();
    randomize(&copy, 4242);
    if !m.named_weights().is_empty() {
        assert_ne!(bits(&copy), bits(m), "{file}: the copy starts with other weights");
    }
    let report = copy.load_keras_weights(&path).unwrap();
    assert_eq!(report.weights, m.named_weights().len(), "{file}: {report:?}");
    assert_eq!(bits(&copy), bits(m), "{file}: weights differ after the round trip");
    assert_eq!(m.keras_weights_bytes().unwrap(), std::fs::read(&path).unwrap(), "{file}: bytes");
    path
}

#[test]
fn sequential_mlp_with_batchnorm_round_trips_with_keras_keys() {
    let dir_guard = tmp_dir("mlp");
    let dir = dir_guard.path();
    let m = mlp();
    randomize(&m, 1);
    let path = round_trip(&m, dir, "mlp.weights.h5");
    let t = tree(&path);
    let want: BTreeMap<String, String> = [
        ("/", "group name=None"),
        ("/vars", "group name=Some(\"mlp\")"),
        ("/layers", "group name=None"),
        ("/layers/dense", "group name=None"),
        ("/layers/dense/vars", "group name=Some(\"d1\")"),
        ("/layers/dense/vars/0", "dataset [8, 16] F32"),
        ("/layers/dense/vars/1", "dataset [16] F32"),
        ("/layers/batch_normalization", "group name=None"),
        ("/layers/batch_normalization/vars", "group name=Some(\"bn\")"),
        ("/layers/batch_normalization/vars/0", "dataset [16] F32"),
        ("/layers/batch_normalization/vars/1", "dataset [16] F32"),
        ("/layers/batch_normalization/vars/2", "dataset [16] F32"),
        ("/layers/batch_normalization/vars/3", "dataset [16] F32"),
        ("/layers/dropout", "group name=None"),
        ("/layers/dropout/vars", "group name=Some(\"drop\")"),
        ("/layers/dense_1", "group name=None"),
        ("/layers/dense_1/vars", "group name=Some(\"out\")"),
        ("/layers/dense_1/vars/0", "dataset [16, 3] F32"),
        ("/layers/dense_1/vars/1", "dataset [3] F32"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(t, want);
    // BatchNorm's order: gamma, beta, moving_mean, moving_variance.
    let f = H5File::open(&path).unwrap();
    let bn = m.layer("bn").unwrap();
    for (i, w) in bn.weights().iter().enumerate() {
        let d = f.dataset(&format!("/layers/batch_normalization/vars/{i}")).unwrap().read().unwrap();
        let stored: Vec<f32> =
            d.data.as_bytes().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(stored, w.tensor.to_vec::<f32>().unwrap(), "vars/{i} is {}", w.name);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn functional_with_shared_layers_and_a_nested_sequential_round_trips() {
    let dir_guard = tmp_dir("func");
    let dir = dir_guard.path();
    let m = functional();
    randomize(&m, 2);
    let path = round_trip(&m, dir, "func.weights.h5");
    let t = tree(&path);
    let paths: Vec<&str> = t.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/",
            "/layers",
            "/layers/add",
            "/layers/add/vars",
            "/layers/dense",
            "/layers/dense/vars",
            "/layers/dense/vars/0",
            "/layers/dense/vars/1",
            "/layers/dense_1",
            "/layers/dense_1/vars",
            "/layers/dense_1/vars/0",
            "/layers/dense_1/vars/1",
            "/layers/input_layer",
            "/layers/input_layer/vars",
            "/layers/sequential",
            "/layers/sequential/layers",
            "/layers/sequential/layers/batch_normalization",
            "/layers/sequential/layers/batch_normalization/vars",
            "/layers/sequential/layers/batch_normalization/vars/0",
            "/layers/sequential/layers/batch_normalization/vars/1",
            "/layers/sequential/layers/batch_normalization/vars/2",
            "/layers/sequential/layers/batch_normalization/vars/3",
            "/layers/sequential/layers/dense",
            "/layers/sequential/layers/dense/vars",
            "/layers/sequential/layers/dense/vars/0",
            "/layers/sequential/layers/dense/vars/1",
            "/layers/sequential/vars",
            "/vars",
        ]
    );
    assert_eq!(t["/layers/sequential/vars"], "group name=Some(\"inner\")");
    assert_eq!(t["/layers/sequential/layers/dense/vars"], "group name=Some(\"i1\")");
    assert_eq!(t["/layers/dense/vars"], "group name=Some(\"shared\")", "the shared layer is saved once");
    assert_eq!(t["/layers/input_layer/vars"], "group name=Some(\"x\")");
    // Same predictions from the copy.
    let mut copy = m.clone_architecture(7).unwrap();
    copy.load_keras_weights(&path).unwrap();
    let x =
        Tensor::from_vec((0..12).map(|i| i as f32 / 5.0 - 1.0).collect::<Vec<f32>>(), vec![2, 6]).unwrap();
    assert_eq!(
        m.predict(&x).unwrap().to_vec::<f32>().unwrap(),
        copy.predict(&x).unwrap().to_vec::<f32>().unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The Keras fixtures: rebuilt from the `.keras`, loaded with Keras's own `.weights.h5`, saved
/// again: the same tree as Keras's file (less the optimizer) and the same bytes in every dataset.
#[test]
fn keras_fixtures_save_the_tree_and_bytes_keras_wrote() {
    let dir_guard = tmp_dir("fixtures");
    let dir = dir_guard.path();
    for stem in ["small_cnn", "small_resnet"] {
        let keras_file = fixtures().join(format!("{stem}.weights.h5"));
        let mut m = Model::from_keras_file(fixtures().join(format!("{stem}.keras"))).unwrap();
        m.load_keras_weights(&keras_file).unwrap();
        let ours = round_trip(&m, dir, &format!("{stem}.weights.h5"));
        let theirs: BTreeMap<String, String> =
            tree(&keras_file).into_iter().filter(|(p, _)| !p.starts_with("/optimizer")).collect();
        assert_eq!(tree(&ours), theirs, "{stem}: tree differs from Keras's");
        let (a, b) = (H5File::open(&ours).unwrap(), H5File::open(&keras_file).unwrap());
        let mut n = 0;
        for o in b.walk().unwrap() {
            if let (Object::Dataset(d), false) = (&o, o.path().starts_with("/optimizer")) {
                let want = d.read().unwrap();
                let got = a.dataset(d.path()).unwrap().read().unwrap();
                assert_eq!(got.data.as_bytes(), want.data.as_bytes(), "{stem}: {}", d.path());
                n += 1;
            }
        }
        assert_eq!(n, m.named_weights().len(), "{stem}: every weight compared");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn code_built_cnn_round_trips() {
    let dir_guard = tmp_dir("cnn");
    let dir = dir_guard.path();
    let m = cnn();
    randomize(&m, 3);
    let path = round_trip(&m, dir, "cnn.weights.h5");
    let t = tree(&path);
    assert_eq!(t["/layers/conv2d/vars/0"], "dataset [3, 3, 2, 4] F32");
    assert_eq!(t["/layers/max_pooling2d/vars"], "group name=Some(\"p1\")");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn odd_names_empty_models_zero_sizes_and_many_layers() {
    let dir_guard = tmp_dir("edge");
    let dir = dir_guard.path();
    // Layer names with '/' and non-ASCII are attribute values, not paths.
    let mut m = Model::sequential("モデル/x", &[3]);
    m.add(Dense::new("dense/one", 2, Activation::Linear)).unwrap();
    m.add(Dense::new("плотный ✓", 2, Activation::Linear)).unwrap();
    randomize(&m, 4);
    let path = round_trip(&m, dir, "names.weights.h5");
    let t = tree(&path);
    assert_eq!(t["/vars"], "group name=Some(\"モデル/x\")");
    assert_eq!(t["/layers/dense/vars"], "group name=Some(\"dense/one\")");
    assert_eq!(t["/layers/dense_1/vars"], "group name=Some(\"плотный ✓\")");

    // An empty model: just /vars.
    let empty = Model::sequential("empty", &[3]);
    let path = round_trip(&empty, dir, "empty.weights.h5");
    assert_eq!(tree(&path).keys().collect::<Vec<_>>(), ["/", "/vars"]);

    // Zero-size weights.
    let mut z = Model::sequential("zero", &[0]);
    z.add(Dense::new("d", 3, Activation::Linear)).unwrap();
    let path = round_trip(&z, dir, "zero.weights.h5");
    assert_eq!(tree(&path)["/layers/dense/vars/0"], "dataset [0, 3] F32");

    // Hundreds of layers: a two-level B-tree under /layers, one string per layer.
    let mut big = Model::sequential("big", &[4]);
    for i in 0..600 {
        let op = StatelessOp::Activation(relu());
        big.add(Stateless::new(&format!("act{i}"), "Activation", op)).unwrap();
    }
    big.add(Dense::new("last", 2, Activation::Linear)).unwrap();
    randomize(&big, 5);
    let path = round_trip(&big, dir, "big.weights.h5");
    let t = tree(&path);
    assert_eq!(t["/layers/activation_599/vars"], "group name=Some(\"act599\")");
    assert_eq!(t["/layers/dense/vars/0"], "dataset [4, 2] F32");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_is_an_error() {
    let dir_guard = tmp_dir("bad");
    let dir = dir_guard.path();
    let m = mlp();
    let e = m.save_keras_weights(dir.join("x.h5")).unwrap_err().to_string();
    assert!(e.contains("x.h5") && e.contains(".weights.h5"), "{e}");
    let e = m.save_keras_weights(dir.join("no-such-dir/x.weights.h5")).unwrap_err().to_string();
    assert!(e.contains("no-such-dir"), "{e}");
    let mut nul = Model::sequential("m", &[2]);
    nul.add(Dense::new("bad\0name", 1, Activation::Linear)).unwrap();
    let e = nul.save_keras_weights(dir.join("nul.weights.h5")).unwrap_err().to_string();
    assert!(e.contains("nul.weights.h5") && e.contains("/layers/dense/vars") && e.contains("NUL"), "{e}");
    assert!(!dir.join("nul.weights.h5").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

fn write_npy(path: &Path, t: &Tensor) {
    let v = t.to_vec::<f32>().unwrap();
    let raw = RawTensor {
        shape: t.dims().to_vec(),
        dtype: DType::F32,
        data: TensorBytes::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    weights_tools::npy::write_npy(path, &raw).unwrap();
}

/// Every non-model layer's weights: (`outer/inner` layer path, index, tensor).
fn layer_weights(m: &Model, prefix: &str, out: &mut Vec<(String, usize, Tensor)>) {
    for l in m.layers() {
        let p = format!("{prefix}{}", l.name());
        match l.as_model() {
            Some(sub) => layer_weights(sub, &format!("{p}/"), out),
            None => {
                for (i, w) in l.weights().iter().enumerate() {
                    out.push((p.clone(), i, w.tensor.clone()));
                }
            }
        }
    }
}

/// Writes, per case, the weights file, the model (a config or the `.keras` it came from), the
/// expected weights as `.npy` and an input with tlx's output, for `tests/keras/check_weights_h5.py`.
#[test]
fn dump_for_keras_check() {
    let Ok(dir) = std::env::var("TLX_KERAS_CHECK_DIR") else { return };
    let dir = PathBuf::from(dir);
    let x_for = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            (0..n).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect::<Vec<f32>>(),
            shape.to_vec(),
        )
        .unwrap()
    };
    let mut cases: Vec<(&str, Model, Option<PathBuf>, Tensor)> = vec![
        ("mlp", mlp(), None, x_for(&[4, 8])),
        ("functional", functional(), None, x_for(&[4, 6])),
        ("cnn", cnn(), None, x_for(&[2, 6, 6, 2])),
    ];
    for stem in ["small_cnn", "small_resnet"] {
        let keras = fixtures().join(format!("{stem}.keras"));
        let x = weights_tools::npy::read_npy(fixtures().join(format!("{stem}.input.npy"))).unwrap();
        let x = Tensor::from_shared_bytes(x.data.into_shared(), 0, x.dtype, x.shape).unwrap();
        cases.push((stem, Model::from_keras_file(&keras).unwrap(), Some(keras), x));
    }
    for (i, (name, m, keras, x)) in cases.into_iter().enumerate() {
        // "Fine-tuned": weights unlike the initial or stored ones.
        randomize(&m, 100 + i as u64);
        let d = dir.join(name);
        std::fs::create_dir_all(d.join("expected")).unwrap();
        m.save_keras_weights(d.join("model.weights.h5")).unwrap();
        let mut all = Vec::new();
        layer_weights(&m, "", &mut all);
        let mut expected = Vec::new();
        for (k, (layer, index, t)) in all.iter().enumerate() {
            let file = format!("expected/{k}.npy");
            write_npy(&d.join(&file), t);
            expected.push(json!({"layer": layer, "index": index, "npy": file}));
        }
        write_npy(&d.join("input.npy"), &x);
        write_npy(&d.join("output.npy"), &m.predict(&x).unwrap());
        let model = match keras {
            Some(k) => json!({"keras": k.canonicalize().unwrap()}),
            None => {
                std::fs::write(d.join("model.json"), m.to_keras_config().to_string()).unwrap();
                json!({"config": "model.json"})
            }
        };
        let case = json!({"model": model, "weights": "model.weights.h5", "expected": expected,
                          "input": "input.npy", "output": "output.npy"});
        std::fs::write(d.join("case.json"), serde_json::to_string_pretty(&case).unwrap()).unwrap();
    }
}
