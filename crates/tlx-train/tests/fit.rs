//! `fit` end to end on small synthetic problems: learning, validation, class weights,
//! callbacks, checkpoints with exact resumption, the feature cache, and the errors users hit.

use serde_json::json;
use tlx_data::{Dataset, Labels};
use tlx_nn::layers::{from_keras, Dense};
use tlx_nn::{Activation, LayerSelector, Loss, Model};
use tlx_optim::Optimizer;
use tlx_tensor::{Rng, Tensor};
use tlx_train::fit::{CsvLogger, EarlyStoppingCallback, ModelCheckpoint, ReduceLrCallback, TerminateOnNaN};
use tlx_train::{checkpoint, Callback, FeatureCache, FitOptions, Metric, Trainer, Validation, Verbosity};

/// Three Gaussian blobs in 4-D: learnable, with some overlap.
fn blobs(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let centers = [[2.0, 0.0, 0.0, 1.0], [-1.0, 2.0, 0.0, -1.0], [0.0, -2.0, 1.5, 0.0]];
    let mut x = Vec::with_capacity(n * 4);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % 3;
        for center in centers[c] {
            x.push((center + rng.normal() * 0.8) as f32);
        }
        y.push(c as i64);
    }
    Dataset::from_f32(x, &[n, 4], Labels::Classes(y)).unwrap()
}

fn mlp(seed: u64, dropout: bool) -> Model {
    let mut m = Model::sequential("mlp", &[4]).with_seed(seed);
    m.add(Dense::new("h1", 16, Activation::from_name("relu").unwrap())).unwrap();
    if dropout {
        m.add_boxed(from_keras("Dropout", &json!({"name": "drop", "rate": 0.3})).unwrap()).unwrap();
    }
    m.add(Dense::new("h2", 8, Activation::from_name("tanh").unwrap())).unwrap();
    m.add(Dense::new("out", 3, Activation::from_name("softmax").unwrap())).unwrap();
    m
}

fn trainer(m: Model, lr: f64) -> Trainer {
    let loss = Loss::from_keras(&json!("sparse_categorical_crossentropy")).unwrap();
    Trainer::compile(m, Optimizer::adam(lr).unwrap(), loss, vec![Metric::Accuracy]).unwrap()
}

fn quiet(epochs: usize) -> FitOptions {
    FitOptions { epochs, batch_size: 16, seed: 7, verbose: Verbosity::Silent, ..FitOptions::default() }
}

fn weights_bits(t: &Trainer) -> Vec<Vec<u32>> {
    t.model()
        .get_weights()
        .unwrap()
        .iter()
        .map(|w| w.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// A directory for one test's files, removed (with everything in it) when the test ends.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("tlx-fit-{name}-")).tempdir().expect("temporary directory")
}

#[test]
fn fit_learns_and_reports_keras_history() {
    let data = blobs(300, 1);
    let mut t = trainer(mlp(1, false), 0.01);
    let opts = FitOptions { validation: Validation::Split(0.2), ..quiet(15) };
    let h = t.fit(&data, &opts, &mut []).unwrap();
    assert_eq!(h.epochs, (0..15).collect::<Vec<_>>());
    for k in ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"] {
        assert_eq!(h.series(k).len(), 15, "{k}");
    }
    let loss = h.series("loss");
    assert!(loss[14] < loss[0] * 0.5, "loss did not fall: {loss:?}");
    assert!(h.last("val_accuracy").unwrap() > 0.85, "{:?}", h.series("val_accuracy"));
    // evaluate agrees with the last validation numbers (same weights, inference mode).
    let (_, val) = data.split(0.2).unwrap();
    let e = t.evaluate(&val, 64).unwrap();
    assert!((e["loss"] - h.last("val_loss").unwrap()).abs() < 1e-6);
    let p = t.predict(&val, 64).unwrap();
    assert_eq!(p.dims(), &[60, 3]);
}

#[test]
fn class_weights_scale_the_loss_like_keras() {
    let data = blobs(48, 2);
    let (x, y) = data.to_tensors().unwrap();
    let t0 = trainer(mlp(3, false), 0.01);
    let plain = t0.test_step(&x, &y, None).unwrap().loss;
    // Weight 2 on every class doubles the loss (Keras divides by the batch size, not Σw).
    let w = Tensor::full([48], 2.0, tlx_tensor::DType::F32);
    let doubled = t0.test_step(&x, &y, Some(&w)).unwrap().loss;
    assert!((doubled - 2.0 * plain).abs() < 1e-5 * plain.abs());
    // class_weight in fit gives the same first-step loss as explicit sample weights.
    let opts = FitOptions {
        class_weight: Some([(0, 2.0), (1, 2.0), (2, 2.0)].into_iter().collect()),
        shuffle: false,
        batch_size: 48,
        ..quiet(1)
    };
    let mut t1 = trainer(mlp(3, false), 0.01);
    let h = t1.fit(&data, &opts, &mut []).unwrap();
    assert!((h.last("loss").unwrap() - doubled).abs() < 1e-5 * doubled);
}

#[test]
fn interrupted_training_resumes_bit_identically() {
    let data = blobs(200, 3);
    let dir_guard = scratch("resume");
    let dir = dir_guard.path();
    // Dropout makes the result depend on the per-step randomness too.
    let base = FitOptions { checkpoint_dir: Some(dir.to_path_buf()), checkpoint_every_steps: 5, ..quiet(4) };
    let mut full = trainer(mlp(4, true), 0.005);
    full.fit(&data, &FitOptions { checkpoint_dir: None, ..base.clone() }, &mut []).unwrap();
    let mut first = trainer(mlp(4, true), 0.005);
    first.fit(&data, &FitOptions { stop_after_steps: Some(23), ..base.clone() }, &mut []).unwrap();
    // 23 steps ran; the last checkpoint is at step 20.
    let latest = checkpoint::latest(dir).unwrap().unwrap();
    assert!(latest.ends_with("ckpt-000000020"), "{}", latest.display());
    // A fresh process: new model object with other initial weights, resumed from the checkpoint.
    let mut resumed = trainer(mlp(99, true), 0.005);
    let h = resumed.fit(&data, &FitOptions { resume: true, ..base }, &mut []).unwrap();
    assert_eq!(weights_bits(&resumed), weights_bits(&full));
    assert_eq!(h.epochs, vec![0, 1, 2, 3]);
    // Every checkpoint file was replaced atomically: no temp files are left behind, and only
    // the newest checkpoint remains.
    let newest = checkpoint::latest(dir).unwrap().unwrap();
    for d in [dir.to_path_buf(), newest.clone()] {
        let names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }
    let ckpts = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("ckpt-"))
        .count();
    assert_eq!(ckpts, 1);
    assert!(newest.join("weights.safetensors").exists() && newest.join("state.json").exists());
}

#[test]
fn feature_cache_gives_the_same_weights_as_running_the_base() {
    let data = blobs(120, 4);
    let run = |cache: FeatureCache| {
        let mut m = mlp(5, false);
        m.set_trainable_where(&LayerSelector::Names(vec!["h1".into(), "h2".into()]), false).unwrap();
        let mut t = trainer(m, 0.01);
        let opts = FitOptions { feature_cache: cache, validation: Validation::Split(0.25), ..quiet(3) };
        let h = t.fit(&data, &opts, &mut []).unwrap();
        (weights_bits(&t), h)
    };
    let (with_cache, h1) = run(FeatureCache::Auto);
    let (without, h2) = run(FeatureCache::Off);
    assert_eq!(with_cache, without);
    assert_eq!(h1.series("val_loss"), h2.series("val_loss"));
    // The frozen part did not change.
    let fresh = mlp(5, false);
    assert_eq!(
        with_cache[0],
        fresh.get_weights().unwrap()[0]
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
}

#[test]
fn frozen_prefix_is_found_only_when_it_is_frozen_and_deterministic() {
    let mut m = mlp(6, true);
    assert_eq!(m.frozen_prefix_cut(), None);
    m.set_trainable_where(&LayerSelector::Names(vec!["h1".into(), "drop".into(), "h2".into()]), false)
        .unwrap();
    // Dropout is random in training: the base may only end before it.
    assert_eq!(m.frozen_prefix_cut(), Some(0));
    let mut m2 = mlp(6, false);
    m2.set_trainable_where(&LayerSelector::Below("out".into()), false).unwrap();
    assert_eq!(m2.frozen_prefix_cut(), Some(1));
}

#[test]
fn callbacks_drive_training() {
    let data = blobs(150, 5);
    let dir_guard = scratch("callbacks");
    let dir = dir_guard.path();
    let es = EarlyStoppingCallback::from_keras_config(
        &json!({"monitor": "loss", "patience": 0, "min_delta": 10.0, "restore_best_weights": true}),
    )
    .unwrap();
    let rl = ReduceLrCallback::from_keras_config(
        &json!({"monitor": "loss", "factor": 0.5, "patience": 0, "min_delta": 10.0}),
    )
    .unwrap();
    let csv = CsvLogger::new(dir.join("log.csv"), false);
    let ck = ModelCheckpoint::new(
        dir.join("best-{epoch}.safetensors").to_str().unwrap(),
        "loss",
        tlx_train::callbacks::Mode::Auto,
        true,
    )
    .unwrap();
    let mut cbs: Vec<Box<dyn Callback>> = vec![Box::new(rl), Box::new(csv), Box::new(ck), Box::new(es)];
    let mut t = trainer(mlp(7, false), 0.01);
    let h = t.fit(&data, &quiet(10), &mut cbs).unwrap();
    // min_delta 10 means no epoch improves on the first: stop after epoch 1.
    assert_eq!(h.epochs, vec![0, 1]);
    // The learning rate was halved at the end of epoch 1 (patience 0).
    assert_eq!(h.series("learning_rate"), vec![0.01f32 as f64, 0.005f32 as f64]);
    let text = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.starts_with("epoch,accuracy,learning_rate,loss"), "{text}");
    // save_best_only: the first epoch is always an improvement.
    assert!(dir.join("best-01.safetensors").exists());
    // restore_best_weights brought epoch 1's weights back; they equal the checkpoint's.
    let check = mlp(8, false);
    checkpoint::load_weights(&check, &dir.join("best-01.safetensors")).unwrap();
    let a: Vec<Vec<f32>> = check.get_weights().unwrap().iter().map(|w| w.to_vec().unwrap()).collect();
    let b: Vec<Vec<f32>> = t.model().get_weights().unwrap().iter().map(|w| w.to_vec().unwrap()).collect();
    assert_eq!(a, b);
}

#[test]
fn terminate_on_nan_stops_at_the_first_bad_batch() {
    let n = 64;
    let mut x: Vec<f32> = (0..n * 4).map(|i| (i % 7) as f32).collect();
    x[4 * 40] = f32::NAN;
    let data =
        Dataset::from_f32(x, &[n, 4], Labels::Classes((0..n as i64).map(|i| i % 3).collect())).unwrap();
    let mut t = trainer(mlp(9, false), 0.01);
    let mut cbs: Vec<Box<dyn Callback>> = vec![Box::new(TerminateOnNaN::default())];
    let opts = FitOptions { shuffle: false, ..quiet(3) };
    let h = t.fit(&data, &opts, &mut cbs).unwrap();
    assert_eq!(h.epochs, vec![0]);
    assert!(h.last("loss").unwrap().is_nan());
}

#[test]
fn changing_what_trains_needs_a_new_compile() {
    let data = blobs(32, 6);
    let mut t = trainer(mlp(10, false), 0.01);
    t.fit(&data, &quiet(1), &mut []).unwrap();
    t.model_mut().set_trainable_where(&LayerSelector::Names(vec!["h1".into()]), false).unwrap();
    let e = t.fit(&data, &quiet(1), &mut []).unwrap_err().to_string();
    assert!(e.contains("compile again"), "{e}");
    t.recompile(Optimizer::sgd(0.01, 0.0, false).unwrap());
    let before = t.model().get_weights().unwrap()[0].to_vec::<f32>().unwrap();
    t.fit(&data, &quiet(1), &mut []).unwrap();
    assert_eq!(before, t.model().get_weights().unwrap()[0].to_vec::<f32>().unwrap(), "frozen h1 moved");
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let data = blobs(10, 7);
    let mut t = trainer(mlp(11, false), 0.01);
    assert!(t.fit(&data, &FitOptions { batch_size: 0, ..quiet(1) }, &mut []).is_err());
    assert!(t.fit(&data.take(0), &quiet(1), &mut []).is_err());
    // Labels outside the model's 3 classes.
    let bad = Dataset::from_f32(vec![0.0; 8], &[2, 4], Labels::Classes(vec![0, 7])).unwrap();
    assert!(t.fit(&bad, &quiet(1), &mut []).is_err());
    // Inputs of the wrong width.
    let wide = Dataset::from_f32(vec![0.0; 10], &[2, 5], Labels::Classes(vec![0, 1])).unwrap();
    let e = t.fit(&wide, &quiet(1), &mut []).unwrap_err().to_string();
    assert!(e.contains("expects shape"), "{e}");
}

/// Records which thread each training batch ended on.
struct ThreadProbe(std::sync::Arc<std::sync::Mutex<Vec<Option<usize>>>>);

impl Callback for ThreadProbe {
    fn name(&self) -> &str {
        "thread_probe"
    }
    fn on_batch_end(
        &mut self,
        _batch: usize,
        _logs: &tlx_train::Logs,
        _trainer: &mut Trainer,
    ) -> tlx_train::Result<tlx_train::Control> {
        self.0.lock().unwrap().push(rayon::current_thread_index());
        Ok(tlx_train::Control::Continue)
    }
}

#[test]
fn the_training_loop_runs_on_a_thread_of_the_kernels_pool() {
    // From the test's own thread (not one of rayon's), every step runs on a pool thread, so
    // that the step's parallel kernels fork from a worker instead of waking this thread.
    assert_eq!(rayon::current_thread_index(), None);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut cbs: Vec<Box<dyn Callback>> = vec![Box::new(ThreadProbe(seen.clone()))];
    let mut t = trainer(mlp(3, false), 0.01);
    t.fit(&blobs(64, 2), &quiet(2), &mut cbs).unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(Option::is_some), "{seen:?}");
}

#[test]
fn a_training_step_keeps_its_gradient_buffers_for_the_next_step() {
    // A Dense layer of 512×256 weights (512 KiB of gradient, recycled from 256 KiB on): after
    // a step the model keeps the gradient's buffer, the next step's backward pass takes it
    // (and hands it back), the values match a run that keeps nothing, and a forward pass in
    // between (training mode) leaves it alone.
    let build = || {
        let mut m = Model::sequential("wide", &[512]).with_seed(3);
        m.add(Dense::new("d", 256, Activation::from_name("relu").unwrap())).unwrap();
        m.add(Dense::new("out", 3, Activation::from_name("softmax").unwrap())).unwrap();
        trainer(m, 0.05)
    };
    let x = Tensor::rand_uniform([8, 512], -1.0, 1.0, tlx_tensor::DType::F32, &mut Rng::new(4)).unwrap();
    let y = Tensor::from_vec((0..8).map(|i| (i % 3) as i64).collect::<Vec<_>>(), [8]).unwrap();
    let mut a = build();
    let mut b = build();
    for step in 0..3 {
        a.train_step(&x, &y, None).unwrap();
        let kept = a.model().kept_buffer_bytes();
        assert!(kept >= 512 * 256 * 4, "step {step}");
        let mut ctx = tlx_nn::Context::training(step as u64);
        a.model().forward(std::slice::from_ref(&x), &mut ctx).unwrap();
        assert_eq!(a.model().kept_buffer_bytes(), kept, "a training-mode forward pass leaves it");
        b.train_step(&x, &y, None).unwrap();
        b.model().release_kept_buffers();
    }
    assert_eq!(weights_bits(&a), weights_bits(&b), "recycled buffers change no value");
}
