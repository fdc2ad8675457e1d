//! The Model API users call directly: building in code (Sequential, Functional with shared
//! layers and nested models), Keras's `model.layers` order, freezing selectors, truncation,
//! Monte Carlo dropout, cloning and weight copies.

use serde_json::json;
use tlx_nn::layers::{from_keras, Dense};
use tlx_nn::model::Functional;
use tlx_nn::{Activation, Context, Layer, LayerSelector, Model};
use tlx_tensor::{DType, Rng, Tensor};

fn layer(class: &str, cfg: serde_json::Value) -> Box<dyn Layer> {
    from_keras(class, &cfg).unwrap()
}

fn relu() -> Activation {
    Activation::from_name("relu").unwrap()
}

fn x(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape.to_vec(), -1.0, 1.0, DType::F32, &mut Rng::new(seed)).unwrap()
}

#[test]
fn functional_layers_follow_keras_order_and_shared_layers_share_weights() {
    let mut g = Functional::new("resblock").with_seed(3);
    let inp = g.input("inp", &[6]);
    let a = g.call(Dense::new("a", 6, relu()), &[inp]).unwrap();
    let b = g.call(Dense::new("b", 6, relu()), &[a]).unwrap();
    let shortcut = g.call(Dense::new("shortcut", 6, Activation::Linear), &[inp]).unwrap();
    let sum = g.call_boxed(layer("Add", json!({"name": "add"})), &[shortcut, b]).unwrap();
    let again = g.call_shared("b", &[sum]).unwrap();
    let m = g.build(&[inp], &[again]).unwrap();
    let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
    // Keras's map_graph: depth inp 4, a 3, b 2 (its deepest call), shortcut 2, add 1; ties in
    // order of discovery from the output, where the shared `b` is met first.
    assert_eq!(names, ["inp", "a", "b", "shortcut", "add"]);
    assert_eq!(m.named_weights().len(), 6, "the shared layer's weights count once");
    let y = m.predict(&x(&[3, 6], 1)).unwrap();
    assert_eq!(y.dims(), &[3, 6]);
    assert!(m.summary().contains("Connected to"));
}

#[test]
fn freezing_selectors_and_trainable_weights() {
    let mut base = Model::sequential("base", &[4]);
    for n in ["c1", "c2", "c3"] {
        base.add(Dense::new(n, 4, relu())).unwrap();
    }
    let mut m = Model::sequential("top", &[4]);
    m.add(base).unwrap();
    m.add(Dense::new("head", 2, Activation::Linear)).unwrap();
    let trainable = |m: &Model| m.trainable_weights().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(trainable(&m).len(), 8);
    m.set_trainable_where(&LayerSelector::Names(vec!["base".into()]), false).unwrap();
    assert_eq!(trainable(&m), ["head/kernel", "head/bias"]);
    m.fine_tune_from("c3").unwrap();
    assert_eq!(trainable(&m), ["base/c3/kernel", "base/c3/bias", "head/kernel", "head/bias"]);
    m.set_trainable_where(&LayerSelector::Glob("c[12]".into()), true).unwrap();
    assert_eq!(trainable(&m).len(), 8);
    m.set_trainable_where(&LayerSelector::parse("below:head").unwrap(), false).unwrap();
    assert_eq!(trainable(&m), ["head/kernel", "head/bias"]);
    let (total, train, frozen) = m.param_counts();
    assert_eq!((total, train, frozen), (3 * 20 + 10, 10, 60));
    assert!(m.set_trainable_where(&LayerSelector::Names(vec!["nope".into()]), true).is_err());
    // Requires-grad follows, so a frozen base records no graph.
    m.sync_requires_grad().unwrap();
    assert!(m.named_weights().iter().all(|(n, w)| w.tensor.requires_grad() == n.starts_with("head")));
}

#[test]
fn truncation_keeps_what_the_cut_needs() {
    let mut g = Functional::new("f");
    let i = g.input("i", &[3]);
    let h = g.call(Dense::new("h", 5, relu()), &[i]).unwrap();
    let o = g.call(Dense::new("o", 2, Activation::Linear), &[h]).unwrap();
    let m = g.build(&[i], &[o]).unwrap();
    let probe = x(&[2, 3], 4);
    let before = m.layer("h").unwrap().call(std::slice::from_ref(&probe), &mut Context::inference()).unwrap();
    let cut = m.truncated("h").unwrap();
    assert_eq!(cut.layers().len(), 2);
    assert_eq!(cut.predict(&probe).unwrap().to_vec::<f32>().unwrap(), before.to_vec::<f32>().unwrap());
    let seq = {
        let mut s = Model::sequential("s", &[3]);
        s.add(Dense::new("a", 4, relu())).unwrap();
        s.add(Dense::new("b", 2, relu())).unwrap();
        s
    };
    assert_eq!(seq.truncated("a").unwrap().layers().len(), 1);
}

#[test]
fn monte_carlo_dropout_averages_random_passes() {
    let mut m = Model::sequential("mc", &[8]).with_seed(1);
    m.add(Dense::new("h", 32, relu())).unwrap();
    m.add_boxed(layer("Dropout", json!({"name": "d", "rate": 0.5}))).unwrap();
    m.add(Dense::new("o", 3, Activation::Linear)).unwrap();
    let probe = x(&[4, 8], 2);
    let plain = m.predict(&probe).unwrap().to_vec::<f32>().unwrap();
    let (mean, std) = m.predict_mc_dropout(&probe, 200, 7).unwrap();
    assert!(std.to_vec::<f32>().unwrap().iter().all(|&s| s > 0.0));
    // Inverted dropout: the average of many passes approaches the deterministic prediction.
    let mean = mean.to_vec::<f32>().unwrap();
    let err: f32 = mean.iter().zip(&plain).map(|(a, b)| (a - b).abs()).sum::<f32>() / plain.len() as f32;
    let scale: f32 = plain.iter().map(|v| v.abs()).sum::<f32>() / plain.len() as f32;
    assert!(err < 0.25 * scale.max(0.05), "mean {mean:?} vs {plain:?}");
    // Same seed, same result; no passes is an error.
    let (again, _) = m.predict_mc_dropout(&probe, 200, 7).unwrap();
    assert_eq!(again.to_vec::<f32>().unwrap(), mean);
    assert!(m.predict_mc_dropout(&probe, 0, 7).is_err());
}

#[test]
fn clones_and_weight_copies() {
    let mut m = Model::sequential("m", &[3]).with_seed(9);
    m.add(Dense::new("a", 4, relu())).unwrap();
    m.add_boxed(layer("BatchNormalization", json!({"name": "bn"}))).unwrap();
    let fresh = m.clone_architecture(123).unwrap();
    assert_eq!(fresh.to_keras_config(), m.to_keras_config());
    let w0 = m.get_weights().unwrap()[0].to_vec::<f32>().unwrap();
    assert_ne!(fresh.get_weights().unwrap()[0].to_vec::<f32>().unwrap(), w0);
    fresh.set_all_weights(&m.get_weights().unwrap()).unwrap();
    assert_eq!(fresh.get_weights().unwrap()[0].to_vec::<f32>().unwrap(), w0);
    // Copies are independent.
    let copy = m.deep_clone().unwrap();
    copy.named_weights()[0].1.tensor.assign(&Tensor::zeros([3, 4], DType::F32)).unwrap();
    assert_eq!(m.get_weights().unwrap()[0].to_vec::<f32>().unwrap(), w0);
    let e = fresh.set_all_weights(&[Tensor::zeros([2], DType::F32)]).unwrap_err().to_string();
    assert!(e.contains("weights"), "{e}");
}

/// A layer that passes its input through and records the rayon thread it ran on.
struct ThreadProbe {
    base: tlx_nn::LayerBase,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Option<usize>>>>,
}

impl Layer for ThreadProbe {
    fn base(&self) -> &tlx_nn::LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut tlx_nn::LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        "ThreadProbe"
    }
    fn build(&mut self, _input_shapes: &[tlx_nn::ShapeSpec], _rng: &mut Rng) -> tlx_nn::Result<()> {
        Ok(())
    }
    fn output_shape(&self, input_shapes: &[tlx_nn::ShapeSpec]) -> tlx_nn::Result<tlx_nn::ShapeSpec> {
        Ok(input_shapes[0].clone())
    }
    fn call(&self, inputs: &[Tensor], _ctx: &mut Context) -> tlx_nn::Result<Tensor> {
        self.seen.lock().unwrap().push(rayon::current_thread_index());
        Ok(inputs[0].clone())
    }
    fn config(&self) -> serde_json::Value {
        json!({"name": self.base.name})
    }
}

#[test]
fn predict_runs_on_a_thread_of_the_kernels_pool() {
    // Called from the test's own thread, the pass runs on a pool thread (its parallel kernels
    // then fork from a worker instead of waking the caller), and gives the same values.
    assert_eq!(rayon::current_thread_index(), None);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut m = Model::sequential("probe", &[6]);
    m.add(Dense::new("d", 3, relu())).unwrap();
    m.add(ThreadProbe { base: tlx_nn::LayerBase::new("probe"), seen: seen.clone() }).unwrap();
    let input = x(&[5, 6], 4);
    let y = m.predict(&input).unwrap();
    assert!(seen.lock().unwrap().iter().all(Option::is_some), "{:?}", seen.lock().unwrap());
    assert_eq!(seen.lock().unwrap().len(), 1);
    let _g = tlx_tensor::no_grad();
    let direct = m.forward(std::slice::from_ref(&input), &mut Context::inference()).unwrap().remove(0);
    assert_eq!(y.to_vec::<f32>().unwrap(), direct.to_vec::<f32>().unwrap());
}

#[test]
fn a_model_keeps_freed_activation_buffers_for_its_next_pass() {
    // Activations of 1 MiB (recycled from 256 KiB on): the first pass's freed buffers stay
    // with the model for the next one (up to 4 MiB), which gives the same values; releasing
    // frees them.
    let mut m = Model::sequential("convs", &[64, 64, 8]);
    for i in 0..3 {
        let cfg = json!({"name": format!("c{i}"), "filters": 32, "kernel_size": [3, 3],
                         "padding": "same", "activation": "relu"});
        m.add_boxed(layer("Conv2D", cfg)).unwrap();
    }
    m.add_boxed(layer("GlobalAveragePooling2D", json!({"name": "gap"}))).unwrap();
    assert_eq!(m.kept_buffer_bytes(), 0);
    let input = x(&[2, 64, 64, 8], 5);
    let first = m.predict(&input).unwrap().to_vec::<f32>().unwrap();
    let kept = m.kept_buffer_bytes();
    assert!(kept >= 2 * 64 * 64 * 32 * 4, "kept {kept} bytes");
    let second = m.predict(&input).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(first, second);
    assert_eq!(m.kept_buffer_bytes(), kept, "each pass hands back what it freed");
    // A larger batch: the old buffers are too small to take and go after one pass; its own
    // two 2 MiB buffers fill what is carried (4 MiB), and 8 MiB ones are not carried.
    m.predict(&x(&[4, 64, 64, 8], 6)).unwrap();
    assert_eq!(m.kept_buffer_bytes(), 2 * (4 * 64 * 64 * 32 * 4), "the batch of 4's two buffers");
    m.predict(&x(&[16, 64, 64, 8], 7)).unwrap();
    assert_eq!(m.kept_buffer_bytes(), 0, "8 MiB buffers are not carried");
    m.predict(&input).unwrap();
    assert_eq!(m.kept_buffer_bytes(), kept);
    m.release_kept_buffers();
    assert_eq!(m.kept_buffer_bytes(), 0);
}
