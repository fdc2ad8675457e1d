//! Drives `tlx predict`, `tlx evaluate` and `tlx bench`: outputs against Keras's, images
//! resized as `load_img` does, preprocessing, ImageNet top-k lines, the Lambda error, missing
//! and corrupt files, bad flags, and the JSON forms scripts depend on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tlx_core::DType;
use weights_tools::npy::{read_npy, write_npy};
use weights_tools::{RawTensor, TensorBytes};

fn tlx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlx")).args(args).output().expect("run tlx")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).to_str().unwrap().to_string()
}

/// A directory for one test's files, removed (with everything in it) when the test ends.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tlx-predict-test-{name}-"))
        .tempdir()
        .expect("temporary directory")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "status {:?}\nstdout: {}\nstderr: {}", o.status, stdout(o), stderr(o));
}

/// Exit status 2, one `tlx: error:` line containing every part of `want`, no panic.
fn one_line_error(o: &Output, want: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tlx: error: "), "{err}");
    for w in want {
        assert!(err.contains(w), "missing '{w}' in: {err}");
    }
}

/// A usage error: status 2, one `tlx: error:` line, no panic.
fn usage_error(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tlx: error:") && err.contains(want), "{err}");
}

fn npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let t = read_npy(path).unwrap();
    (t.shape.clone(), t.to_f32_vec())
}

fn write_f32(path: &Path, shape: Vec<usize>, v: &[f32]) {
    write_npy(path, &RawTensor::from_f32(shape, v)).unwrap();
}

fn write_i64(path: &Path, v: &[i64]) {
    let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    write_npy(path, &RawTensor { shape: vec![v.len()], dtype: DType::I64, data: TensorBytes::Owned(data) })
        .unwrap();
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A pixel value that differs at every position and channel.
fn px(x: u32, y: u32, c: u32) -> u8 {
    ((x * 37 + y * 91 + c * 53) % 256) as u8
}

fn write_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([px(x, y, 0), px(x, y, 1), px(x, y, 2)]))
        .save(path)
        .unwrap();
}

#[test]
fn predict_npy_matches_keras_outputs() {
    let dir_guard = scratch("npy");
    let dir = dir_guard.path();
    for (model, base) in [
        ("small_cnn.keras", "small_cnn"),
        ("small_cnn.k3.h5", "small_cnn"),
        ("small_resnet.keras", "small_resnet"),
    ] {
        let out = dir.join(format!("{model}.npy"));
        let o = tlx(&[
            "predict",
            "--model",
            &fixture(model),
            "--input",
            &fixture(&format!("{base}.input.npy")),
            "--output",
            s(&out),
            "--json",
        ]);
        ok(&o);
        let (shape, got) = npy_f32(&out);
        let (want_shape, want) = npy_f32(&fixtures().join(format!("{base}.output.npy")));
        assert_eq!(shape, want_shape, "{model}");
        assert!(max_diff(&got, &want) < 1e-5, "{model}: max diff {}", max_diff(&got, &want));

        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
        assert_eq!(v["output_shape"], serde_json::json!(want_shape));
        let preds = v["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), want_shape[0]);
        // The first prediction of each row is its arg-max, scores descending.
        let k = want_shape[1];
        for (row, p) in preds.iter().enumerate() {
            let scores: Vec<f64> =
                p.as_array().unwrap().iter().map(|e| e["score"].as_f64().unwrap()).collect();
            assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
            let r = &want[row * k..(row + 1) * k];
            let best = (0..k).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
            assert_eq!(p[0]["index"].as_u64().unwrap() as usize, best);
        }
    }
}

#[test]
fn predict_images_are_resized_like_load_img() {
    // small_cnn takes 20×18×3 (h × w). A 40×36 image halves with PIL's nearest (odd pixels);
    // a 10×9 image doubles (each pixel twice).
    let dir_guard = scratch("images");
    let dir = dir_guard.path();
    let (big, small) = (dir.join("big.png"), dir.join("small.png"));
    write_png(&big, 36, 40);
    write_png(&small, 9, 10);
    let out = dir.join("out.npy");
    let o = tlx(&[
        "predict",
        "--model",
        &fixture("small_cnn.keras"),
        "--input",
        s(&big),
        s(&small),
        "--output",
        s(&out),
        "--top",
        "2",
    ]);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("big.png") && text.contains("small.png"), "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with("1. class")).count(), 2, "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with("3. ")).count(), 0, "{text}");
    let (shape, got) = npy_f32(&out);
    assert_eq!(shape, vec![2, 5]);

    // The same pixels, picked by hand, as an .npy batch.
    let mut x = Vec::new();
    let maps: [fn(u32) -> u32; 2] = [|i| 2 * i + 1, |i| i / 2];
    for src in maps {
        for y in 0..20 {
            for xx in 0..18 {
                x.extend((0..3).map(|c| f32::from(px(src(xx), src(y), c))));
            }
        }
    }
    let xin = dir.join("x.npy");
    write_f32(&xin, vec![2, 20, 18, 3], &x);
    let out2 = dir.join("out2.npy");
    ok(&tlx(&["predict", "--model", &fixture("small_cnn.keras"), "--input", s(&xin), "--output", s(&out2)]));
    assert_eq!(npy_f32(&out2).1, got);

    // Bilinear resampling gives other pixels, hence other outputs.
    let out3 = dir.join("out3.npy");
    let o = tlx(&[
        "predict",
        "--model",
        &fixture("small_cnn.keras"),
        "--input",
        s(&big),
        "--output",
        s(&out3),
        "--interpolation",
        "bilinear",
    ]);
    ok(&o);
    assert_ne!(npy_f32(&out3).1[..5], got[..5]);
}

/// A MobileNetV2 (alpha 0.35, 32×32) saved as tlx safetensors, with or without the top.
fn mobilenet_weights(dir: &Path, top: bool) -> PathBuf {
    use tlx_models::{build, AppOptions, Arch};
    let opts = AppOptions::new().include_top(top).input_shape([32, 32, 3]).alpha(0.35);
    let model = build(Arch::MobileNetV2, &opts).unwrap();
    let path = dir.join(if top { "mnv2.safetensors" } else { "mnv2_notop.safetensors" });
    tlx_train::checkpoint::save_weights(&model, &path).unwrap();
    path
}

#[test]
fn predict_application_prints_imagenet_classes_and_preprocesses() {
    let dir_guard = scratch("app");
    let dir = dir_guard.path();
    let weights = mobilenet_weights(dir, true);
    let img = dir.join("cat.png");
    write_png(&img, 40, 30);
    let app = [
        "predict",
        "--arch",
        "mobilenetv2",
        "--alpha",
        "0.35",
        "--input-size",
        "32",
        "--weights",
        s(&weights),
    ];
    let out = dir.join("probs.npy");
    let o = tlx(&[&app[..], &["--input", s(&img), "--output", s(&out), "--top", "3"]].concat());
    ok(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].ends_with("cat.png"));
    for (i, l) in lines[1..].iter().enumerate() {
        let parts: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(parts[0], format!("{}.", i + 1), "{l}");
        assert!(parts[1].starts_with('n') && parts[1].len() == 9, "wnid in {l}");
    }
    let (shape, probs) = npy_f32(&out);
    assert_eq!(shape, vec![1, 1000]);
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);

    // MobileNetV2's preprocess_input is x / 127.5 − 1: done by hand with --preprocess none, the
    // outputs agree; skipping it changes them. (Compared on pooled features: with random
    // weights the 1000 probabilities are all 0.001.)
    let notop = mobilenet_weights(dir, false);
    let feats =
        ["predict", "--arch", "mobilenetv2", "--alpha", "0.35", "--input-size", "32", "--weights", s(&notop)];
    let f1 = dir.join("f1.npy");
    let o = tlx(&[&feats[..], &["--pooling", "avg", "--input", s(&img), "--output", s(&f1)]].concat());
    ok(&o);
    assert_eq!(stdout(&o), "", "no classes for features");
    let (fshape, f) = npy_f32(&f1);
    assert_eq!(fshape, vec![1, 1280]);
    let scale = f.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    let mut x = Vec::new();
    for y in 0..32u32 {
        for xx in 0..32u32 {
            // Nearest from 30×40 to 32×32: rows ⌊(i + ½)·30/32⌋, columns ⌊(i + ½)·40/32⌋.
            let (sy, sx) =
                (((y as f64 + 0.5) * 30.0 / 32.0) as u32, ((xx as f64 + 0.5) * 40.0 / 32.0) as u32);
            x.extend((0..3).map(|c| f32::from(px(sx, sy, c)) / 127.5 - 1.0));
        }
    }
    let xin = dir.join("pre.npy");
    write_f32(&xin, vec![1, 32, 32, 3], &x);
    let f2 = dir.join("f2.npy");
    ok(&tlx(&[
        &feats[..],
        &["--pooling", "avg", "--input", s(&xin), "--output", s(&f2), "--preprocess", "none"],
    ]
    .concat()));
    assert!(max_diff(&npy_f32(&f2).1, &f) <= scale * 1e-5, "{} vs {scale}", max_diff(&npy_f32(&f2).1, &f));
    let f3 = dir.join("f3.npy");
    ok(&tlx(&[
        &feats[..],
        &["--pooling", "avg", "--input", s(&img), "--output", s(&f3), "--preprocess", "none"],
    ]
    .concat()));
    assert!(max_diff(&npy_f32(&f3).1, &f) > scale * 1e-2, "{} vs {scale}", max_diff(&npy_f32(&f3).1, &f));

    // Without --pooling the notop model gives the last feature map.
    let out4 = dir.join("features.npy");
    ok(&tlx(&[&feats[..], &["--input", s(&img), "--output", s(&out4)]].concat()));
    assert_eq!(npy_f32(&out4).0, vec![1, 1, 1, 1280]);
    // Asking for the top with it names the missing weight.
    let o = tlx(&[
        "predict",
        "--arch",
        "mobilenetv2",
        "--alpha",
        "0.35",
        "--input-size",
        "32",
        "--weights",
        s(&notop),
        "--include-top",
        "--input",
        s(&img),
    ]);
    one_line_error(&o, &["predictions"]);
}

#[test]
fn lambda_models_fail_naming_the_layer_and_class() {
    let mut files = vec![fixtures().join("real-world/keras-2.0.6-sequential-lambda.h5")];
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/keras/real-world");
    if let Ok(rd) = std::fs::read_dir(&shared) {
        files.extend(
            rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.to_string_lossy().contains("lambda")),
        );
    }
    println!("checking {} file(s)", files.len());
    for f in files {
        let o = tlx(&["predict", "--model", s(&f), "--input", &fixture("small_cnn.input.npy")]);
        one_line_error(&o, &["lambda_1", "Lambda"]);
    }
}

#[test]
fn missing_and_corrupt_files_are_one_line_errors() {
    let dir_guard = scratch("bad");
    let dir = dir_guard.path();
    let input = fixture("small_cnn.input.npy");
    let model = fixture("small_cnn.keras");
    one_line_error(
        &tlx(&["predict", "--model", "/nope/model.keras", "--input", &input]),
        &["/nope/model.keras"],
    );
    let junk = dir.join("junk.keras");
    std::fs::write(&junk, b"PK\x03\x04 not really a zip").unwrap();
    one_line_error(&tlx(&["predict", "--model", s(&junk), "--input", &input]), &["junk.keras"]);
    let junk_h5 = dir.join("junk.h5");
    std::fs::write(&junk_h5, b"\x89HDF\r\n\x1a\n truncated").unwrap();
    one_line_error(&tlx(&["predict", "--model", s(&junk_h5), "--input", &input]), &["junk.h5"]);
    one_line_error(&tlx(&["predict", "--model", &model, "--input", "/nope/x.npy"]), &["/nope/x.npy"]);
    let bad_png = dir.join("bad.png");
    std::fs::write(&bad_png, b"\x89PNG\r\n\x1a\n garbage").unwrap();
    one_line_error(&tlx(&["predict", "--model", &model, "--input", s(&bad_png)]), &["bad.png"]);
    one_line_error(&tlx(&["predict", "--model", &model, "--input", "/nope/cat.png"]), &["/nope/cat.png"]);
    let bad_npy = dir.join("bad.npy");
    std::fs::write(&bad_npy, b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (5,").unwrap();
    one_line_error(&tlx(&["predict", "--model", &model, "--input", s(&bad_npy)]), &["bad.npy"]);
    // An input of the wrong shape names the expected one.
    let wrong = dir.join("wrong.npy");
    write_f32(&wrong, vec![1, 4, 4, 3], &[0.0; 48]);
    one_line_error(&tlx(&["predict", "--model", &model, "--input", s(&wrong)]), &["expects shape"]);
    // Nothing is written when the run fails.
    let out = dir.join("never.npy");
    let o = tlx(&["predict", "--model", &model, "--input", s(&wrong), "--output", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
    // Weights that do not fit the application.
    let o = tlx(&[
        "predict",
        "--arch",
        "mobilenetv2",
        "--alpha",
        "0.35",
        "--input-size",
        "32",
        "--weights",
        &fixture("small_cnn.weights.h5"),
        "--input",
        &input,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("panicked") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
}

#[test]
fn bad_flags_exit_with_status_2() {
    let input = fixture("small_cnn.input.npy");
    let model = fixture("small_cnn.keras");
    usage_error(&tlx(&["predict", "--model", &model]), "--input");
    usage_error(
        &tlx(&["predict", "--model", &model, "--arch", "vgg16", "--input", &input]),
        "cannot be used with",
    );
    usage_error(&tlx(&["predict", "--model", &model, "--input", &input, "--frobnicate"]), "--frobnicate");
    usage_error(&tlx(&["predict", "--model", &model, "--input", &input, "--top", "many"]), "many");
    usage_error(&tlx(&["bench", "gemm", "--size", "-3"]), "-3");
    usage_error(&tlx(&["bench", "teleport"]), "teleport");
    one_line_error(&tlx(&["predict", "--arch", "vgg17", "--weights", &model, "--input", &input]), &["vgg17"]);
    one_line_error(&tlx(&["predict", "--arch", "vgg16", "--input", &input]), &["--weights"]);
    one_line_error(
        &tlx(&["predict", "--model", &model, "--input", &input, "--output", "/tmp/out.txt"]),
        &["out.txt", ".npy"],
    );
    one_line_error(
        &tlx(&["predict", "--model", &model, "--input", &input, "--input-size", "2x2x2"]),
        &["2x2x2"],
    );
    one_line_error(
        &tlx(&["predict", "--model", &model, "--input", &input, "--input-size", "30"]),
        &["30x30"],
    );
    one_line_error(
        &tlx(&["predict", "--model", &model, "--input", &input, "--preprocess", "magic"]),
        &["magic"],
    );
    one_line_error(&tlx(&["predict", "--model", &model, "--input", &input, "--interpolation", "x"]), &[]);
    one_line_error(&tlx(&["bench", "gemm", "--size", "16", "--threads", "0"]), &["--threads"]);
    one_line_error(&tlx(&["bench", "model", "--arch", "alexnet"]), &["alexnet"]);
    one_line_error(&tlx(&["evaluate", "--model", &model, "--data", "/nope/dir"]), &["/nope/dir"]);
    one_line_error(
        &tlx(&["evaluate", "--model", &model, "--x", &input, "--y", &input, "--metrics", "vibes"]),
        &["vibes"],
    );
    for cmd in [
        &["predict"][..],
        &["evaluate"],
        &["bench"],
        &["bench", "gemm"],
        &["bench", "model"],
        &["bench", "train"],
    ] {
        let o = tlx(&[cmd, &["--help"]].concat());
        ok(&o);
        assert!(stdout(&o).contains("Example"), "{cmd:?}: {}", stdout(&o));
    }
}

#[test]
fn evaluate_reports_keras_loss_and_metrics() {
    let dir_guard = scratch("eval");
    let dir = dir_guard.path();
    let (shape, probs) = npy_f32(&fixtures().join("small_cnn.output.npy"));
    let k = shape[1];
    // Labels: the arg-max of rows 0 and 1, the arg-min of row 2.
    let rows: Vec<&[f32]> = probs.chunks(k).collect();
    let argmax = |r: &[f32]| (0..k).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
    let argmin = |r: &[f32]| (0..k).min_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
    let labels = [argmax(rows[0]), argmax(rows[1]), argmin(rows[2])];
    let y = dir.join("y.npy");
    write_i64(&y, &labels.map(|l| l as i64));
    let o = tlx(&[
        "evaluate",
        "--model",
        &fixture("small_cnn.keras"),
        "--x",
        &fixture("small_cnn.input.npy"),
        "--y",
        s(&y),
        "--metrics",
        "accuracy,top5",
        "--batch-size",
        "2",
        "--json",
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    let loss: f64 = labels.iter().zip(&rows).map(|(&l, r)| -(r[l] as f64).ln()).sum::<f64>() / 3.0;
    assert!((v["loss"].as_f64().unwrap() - loss).abs() < 1e-5, "{v} vs {loss}");
    assert!((v["accuracy"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{v}");
    assert_eq!(v["top_k_categorical_accuracy"].as_f64(), Some(1.0));
    assert_eq!(v["examples"].as_u64(), Some(3));

    // The human form: Keras's "loss: … - accuracy: …" line.
    let o = tlx(&[
        "evaluate",
        "--model",
        &fixture("small_cnn.keras"),
        "--x",
        &fixture("small_cnn.input.npy"),
        "--y",
        s(&y),
    ]);
    ok(&o);
    assert!(stdout(&o).starts_with("loss: ") && stdout(&o).contains(" - accuracy: 0.6667"), "{}", stdout(&o));

    // An image folder (classes from sub-folders, resized to the model's 20×18).
    let data = dir.join("images");
    for (c, n) in [("ant", 3), ("bee", 2)] {
        std::fs::create_dir_all(data.join(c)).unwrap();
        for i in 0..n {
            write_png(&data.join(c).join(format!("{i}.png")), 24 + i, 20 + i);
        }
    }
    let o = tlx(&[
        "evaluate",
        "--model",
        &fixture("small_cnn.keras"),
        "--data",
        s(&data),
        "--json",
        "--limit",
        "4",
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["examples"].as_u64(), Some(4));
    assert!(v["loss"].as_f64().unwrap().is_finite() && v["accuracy"].is_number(), "{v}");
}

#[test]
fn bench_prints_the_json_forms_scripts_use() {
    let o = tlx(&["bench", "gemm", "--size", "64", "--threads", "1", "--json"]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert!(v["gflops"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!((v["size"].as_u64(), v["threads"].as_u64()), (Some(64), Some(1)));
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    assert!(v["best_gflops"].as_f64().unwrap() >= v["gflops"].as_f64().unwrap(), "{v}");

    let o = tlx(&[
        "bench",
        "model",
        "--arch",
        "mobilenetv2",
        "--batch",
        "1",
        "--threads",
        "1",
        "--input-size",
        "32",
        "--json",
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    let ms = v["ms_per_image"].as_f64().unwrap();
    assert!(ms > 0.0 && (v["images_per_second"].as_f64().unwrap() * ms / 1000.0 - 1.0).abs() < 1e-6, "{v}");
    assert_eq!(v["arch"], "mobilenetv2");
    assert_eq!((v["batch"].as_u64(), v["threads"].as_u64()), (Some(1), Some(1)));
    let least = v["least_ms_per_image"].as_f64().unwrap();
    assert!(least > 0.0 && least <= ms, "{v}");

    // --profile: every layer (fused chains as one) with its time, in the order run.
    let profile = |json: bool| {
        let mut args =
            vec!["bench", "model", "--arch", "vgg16", "--threads", "1", "--input-size", "32", "--reps", "2"];
        args.extend(["--profile"].iter().chain(if json { &["--json"][..] } else { &[] }));
        tlx(&args)
    };
    let o = profile(true);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    let layers = v["layers"].as_array().expect("layers");
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    // VGG16 without top: 13 convolutions (each with its ReLU fused) and 5 poolings.
    assert_eq!(names.len(), 18, "{names:?}");
    assert_eq!((names[0], names[2], names[17]), ("block1_conv1", "block1_pool", "block5_pool"), "{names:?}");
    assert!(layers.iter().all(|l| l["ms"].as_f64().unwrap() > 0.0 && l["layers"].as_u64() == Some(1)), "{v}");
    let sum: f64 = layers.iter().map(|l| l["ms"].as_f64().unwrap()).sum();
    assert!(sum <= v["ms_per_batch"].as_f64().unwrap() * 1.0001, "{v}");
    let o = profile(false);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("block5_conv3") && text.contains("sum of 18 entries"), "{text}");
    one_line_error(
        &tlx(&["bench", "train", "--arch", "mobilenetv2", "--input-size", "32", "--profile"]),
        &["--profile"],
    );

    // A training step of MobileNetV2 (32×32, batch 2, 3 classes), plus `extra` flags.
    let bench_train = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "train",
            "--arch",
            "mobilenetv2",
            "--batch",
            "2",
            "--threads",
            "1",
            "--input-size",
            "32",
            "--classes",
            "3",
            "--reps",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        tlx(&args)
    };
    let o = bench_train(&[]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert!(v["ms_per_step"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["least_ms_per_step"].as_f64().unwrap() <= v["ms_per_step"].as_f64().unwrap(), "{v}");
    // Only the new head trains: 1280 features × 3 classes + 3 biases.
    assert_eq!(v["trainable_params"].as_u64(), Some(1280 * 3 + 3), "{v}");

    // Fine-tuning the top of the base: from MobileNetV2's last conv (Conv_1, 1×1 320→1280,
    // no bias) on, its BatchNorm's γ and β and the head train too.
    let train_from = |layer: &str| bench_train(&["--unfreeze-from", layer]);
    let o = train_from("Conv_1");
    ok(&o);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["trainable_params"].as_u64(), Some(320 * 1280 + 2 * 1280 + 1280 * 3 + 3), "{v}");
    let o = train_from("no_such_layer");
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no_such_layer"), "{o:?}");

    let o = tlx(&["bench", "gemm", "--size", "32", "--threads", "2"]);
    ok(&o);
    assert!(stdout(&o).contains("GFLOP/s"));
}
