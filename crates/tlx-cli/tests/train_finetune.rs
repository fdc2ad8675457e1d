//! Drives `tlx finetune` / `tlx train` / `tlx demo`: fine-tuning a small base on an image
//! folder the test writes, every output file, Keras-loadable weights, interruption and
//! `--resume` (simulated and a real kill), and bad arguments.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tlx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlx")).args(args).output().expect("run tlx")
}

/// A directory for one test's files, removed (with everything in it) when the test ends.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tlx-train-test-{name}-"))
        .tempdir()
        .expect("temporary directory")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {out}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn small_base() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras/small_resnet.keras");
    p.to_str().unwrap().to_string()
}

/// Two classes of noisy PNG images (reddish vs bluish), 20 each, 24×20 pixels.
fn image_folder(dir: &Path) {
    let mut state = 12345u64;
    let mut noise = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) % 81) as i32 - 40
    };
    for (c, base) in [[200, 50, 50], [50, 50, 200]].iter().enumerate() {
        let d = dir.join(format!("class_{c}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..20 {
            let img = image::RgbImage::from_fn(24, 20, |_, _| {
                image::Rgb([0, 1, 2].map(|k| (base[k] + noise()).clamp(0, 255) as u8))
            });
            img.save(d.join(format!("img_{i:02}.png"))).unwrap();
        }
    }
}

fn finetune_args<'a>(data: &'a str, out: &'a str, base: &'a str) -> Vec<&'a str> {
    vec![
        "finetune",
        "--model",
        base,
        "--base-until",
        "gap",
        "--data",
        data,
        "--validation-split",
        "0.25",
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--augment",
        "flip=horizontal,rotation=10",
        "--finetune-from",
        "b_conv",
        "--finetune-epochs",
        "2",
        "--verbose",
        "0",
        "--out",
        out,
    ]
}

#[test]
fn finetune_on_an_image_folder_writes_every_output() {
    let dir_guard = scratch("folder");
    let dir = dir_guard.path();
    image_folder(&dir.join("images"));
    let out = dir.join("run");
    let base = small_base();
    let images = dir.join("images");
    let mut args = finetune_args(s(&images), s(&out), &base);
    args.push("--json");
    let text = ok(&tlx(&args));
    let summary: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(summary["epochs"], 5);
    assert!(summary["val_accuracy"].as_f64().unwrap() >= 0.9, "{summary}");
    for f in [
        "model.safetensors",
        "model.json",
        "model.weights.h5",
        "history.csv",
        "history.json",
        "history.png",
        "log.csv",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.starts_with("epoch,accuracy,learning_rate,loss,val_accuracy,val_loss"), "{csv}");
    // Phase 2 ran at a tenth of the learning rate.
    assert!(csv.lines().last().unwrap().contains(",0.0000999"), "{csv}");
    let png = image::open(out.join("history.png")).unwrap();
    assert!(png.width() > 300 && png.height() > 200);
    // The saved model runs through `tlx predict`, and the Keras weights load back into tlx.
    let x = dir.join("x.npy");
    let probe = tlx_tensor::Tensor::ones([2, 16, 16, 3], tlx_core::DType::F32);
    let raw = weights_tools::RawTensor {
        shape: vec![2, 16, 16, 3],
        dtype: tlx_core::DType::F32,
        data: weights_tools::TensorBytes::Owned(
            probe.to_vec::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    };
    weights_tools::npy::write_npy(&x, &raw).unwrap();
    ok(&tlx(&[
        "predict",
        "--model",
        s(&out.join("model.safetensors")),
        "--input",
        s(&x),
        "--output",
        s(&dir.join("y.npy")),
    ]));
    let y = weights_tools::npy::read_npy(dir.join("y.npy")).unwrap();
    assert_eq!(y.shape, vec![2, 2]);
    let mut m = tlx_nn::Model::from_keras_config(
        &serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap(),
    )
    .unwrap();
    m.load_keras_weights(out.join("model.weights.h5")).unwrap();
    let again = m.predict(&probe).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(again, y.to_f32_vec());
}

#[test]
fn interrupted_finetune_resumes_to_the_same_weights() {
    let dir_guard = scratch("resume");
    let dir = dir_guard.path();
    image_folder(&dir.join("images"));
    let base = small_base();
    let data = dir.join("images");
    let full = dir.join("full");
    ok(&tlx(&finetune_args(s(&data), s(&full), &base)));
    // Stopped in the second phase (phase 1 has 3 epochs of 4 steps), then resumed.
    let part = dir.join("part");
    let mut first = finetune_args(s(&data), s(&part), &base);
    first.extend(["--checkpoint-every", "1", "--stop-after-steps", "14"]);
    let text = ok(&tlx(&first));
    assert!(text.contains("--resume"), "{text}");
    assert!(!part.join("model.safetensors").exists());
    let mut again = finetune_args(s(&data), s(&part), &base);
    again.push("--resume");
    ok(&tlx(&again));
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(part.join("model.safetensors")).unwrap()
    );
    let h = |d: &Path| std::fs::read_to_string(d.join("history.csv")).unwrap();
    assert_eq!(h(&full), h(&part));
}

#[test]
fn killed_training_resumes_from_its_last_checkpoint() {
    let dir_guard = scratch("kill");
    let dir = dir_guard.path();
    image_folder(&dir.join("images"));
    let base = small_base();
    let data = dir.join("images");
    let args = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            finetune_args(s(&data), s(out), &base).iter().map(|a| a.to_string()).collect();
        for (flag, value) in [("--epochs", "40"), ("--finetune-epochs", "0")] {
            let i = v.iter().position(|a| a == flag).unwrap();
            v[i + 1] = value.into();
        }
        v.extend(["--checkpoint-every", "1"].map(String::from));
        v
    };
    let full = dir.join("full");
    ok(&Command::new(env!("CARGO_BIN_EXE_tlx")).args(args(&full)).output().unwrap());
    let part = dir.join("part");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tlx"))
        .args(args(&part))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few checkpoints exist (or let it finish if it is that fast).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let latest = std::fs::read_to_string(part.join("checkpoints/phase1/latest")).unwrap_or_default();
        if latest.trim() >= "ckpt-000000010" || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut resume = args(&part);
    resume.push("--resume".into());
    ok(&Command::new(env!("CARGO_BIN_EXE_tlx")).args(resume).output().unwrap());
    assert_eq!(
        std::fs::read(full.join("model.safetensors")).unwrap(),
        std::fs::read(part.join("model.safetensors")).unwrap()
    );
}

#[test]
fn train_runs_a_whole_model_file_on_npy_arrays() {
    let dir_guard = scratch("npy");
    let dir = dir_guard.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras");
    // small_cnn's recorded input with made-up class labels.
    let x = fixtures.join("small_cnn.input.npy");
    let n = weights_tools::npy::read_npy(&x).unwrap().shape[0];
    let labels: Vec<u8> = (0..n as i64).flat_map(|i| (i % 3).to_le_bytes()).collect();
    let y = dir.join("y.npy");
    weights_tools::npy::write_npy(
        &y,
        &weights_tools::RawTensor {
            shape: vec![n],
            dtype: tlx_core::DType::I64,
            data: weights_tools::TensorBytes::Owned(labels),
        },
    )
    .unwrap();
    let out = dir.join("run");
    let text = ok(&tlx(&[
        "train",
        "--model",
        s(&fixtures.join("small_cnn.keras")),
        "--no-head",
        "--x",
        s(&x),
        "--y",
        s(&y),
        "--epochs",
        "2",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--opt",
        "momentum=0.9",
        "--schedule",
        "cosine",
        "--verbose",
        "0",
        "--out",
        s(&out),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(v["epochs"], 2);
    assert!(v["loss"].as_f64().unwrap().is_finite());
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let dir_guard = scratch("bad");
    let dir = dir_guard.path();
    image_folder(&dir.join("images"));
    let data = dir.join("images");
    let base = small_base();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["finetune", "--model", &base, "--data", "/no/such/dir"], "/no/such/dir"),
        (vec!["finetune", "--model", "/no/model.keras", "--data", s(&data)], "/no/model.keras"),
        (
            vec!["finetune", "--model", &base, "--data", s(&data), "--optimizer", "lion"],
            "unknown optimizer 'lion'",
        ),
        (
            vec!["finetune", "--model", &base, "--base-until", "gap", "--data", s(&data), "--head", "conv:3"],
            "--head",
        ),
        (vec!["finetune", "--model", &base, "--base-until", "nope", "--data", s(&data)], "no layer 'nope'"),
        (vec!["finetune", "--model", &base, "--data", s(&data), "--schedule", "zigzag"], "unknown schedule"),
        (vec!["finetune", "--model", &base, "--data", s(&data), "--augment", "flip=sideways"], "--augment"),
        (vec!["finetune", "--model", &base, "--data", s(&data), "--freeze", "glob:zzz*"], "no layer"),
        (vec!["finetune", "--data", s(&data)], "no model"),
        (vec!["train", "--model", &base, "--data", s(&data), "--resume"], ""),
    ];
    for (mut args, want) in cases {
        let out = dir.join("out");
        args.extend(["--epochs", "1", "--verbose", "0", "--out", s(&out)]);
        let o = tlx(&args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if want.is_empty() {
            // --resume with no checkpoint yet simply starts from the beginning.
            assert!(o.status.success() || err.lines().count() == 1, "{args:?}: {err}");
            continue;
        }
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
    }
}

#[test]
fn demo_runs_in_reduced_mode_and_prints_json() {
    let text = ok(&tlx(&["demo", "--quick", "--json"]));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    for k in ["acc_A", "acc_B_scratch", "acc_B_on_A", "seconds"] {
        assert!(v[k].as_f64().is_some(), "{k} missing in {v}");
    }
    // Three epochs on 9,000 images already learn task A well beyond chance (1/8).
    assert!(v["acc_A"].as_f64().unwrap() > 0.6, "{v}");
    let bad = tlx(&["demo", "--data", "/no/such/dir"]);
    assert_eq!(bad.status.code(), Some(2));
}
