//! Drives the `tlx` binary: conformance output and exit codes, inspect, convert, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tlx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlx")).args(args).output().expect("run tlx")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras")
}

/// A directory for one test's files, removed (with everything in it) when the test ends.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("tlx-cli-test-{name}-")).tempdir().expect("temporary directory")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn conformance_prints_one_line_per_case_and_a_summary() {
    let out = tlx(&["conformance", fixtures().to_str().unwrap(), "--kind", "loss", "--kind", "schedule"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8 + 9 + 1, "{text}");
    assert!(lines[..lines.len() - 1].iter().all(|l| l.starts_with("PASS  ")), "{text}");
    assert_eq!(*lines.last().unwrap(), "17 passed, 0 failed");
}

#[test]
fn unknown_kinds_and_broken_cases_fail_with_nonzero_status() {
    let dir_guard = scratch("fail");
    let dir = dir_guard.path();
    let manifest = serde_json::json!({"version": 1, "cases": [
        {"name": "future", "kind": "teleport"},
        {"name": "bad_layer", "kind": "layer", "layer": {"class_name": "Lambda", "config": {"name": "lam"}},
         "input": {"shape": [1], "data": [1.0]}},
        {"name": "no_kind"}
    ]});
    std::fs::write(dir.join("manifest.test.json"), manifest.to_string()).unwrap();
    let out = tlx(&["conformance", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  future [teleport]  kind 'teleport' is not supported"), "{text}");
    assert!(text.contains("unknown layer class 'Lambda' (layer 'lam')"), "{text}");
    assert!(text.trim_end().ends_with("0 passed, 3 failed"), "{text}");
}

#[test]
fn missing_or_corrupt_manifests_are_one_line_errors() {
    let out = tlx(&["conformance", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("tlx: error: cannot read /definitely/not/here"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let dir_guard = scratch("corrupt");
    let dir = dir_guard.path();
    std::fs::write(dir.join("manifest.x.json"), "{\"cases\": [").unwrap();
    let out = tlx(&["conformance", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest.x.json: not a conformance manifest"));

    let empty_guard = scratch("empty");
    let empty = empty_guard.path();
    let out = tlx(&["conformance", empty.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest.*.json"));
}

#[test]
fn inspect_and_convert_round_trip() {
    let model = fixtures().join("small_cnn.k3.h5");
    let out = tlx(&["inspect", model.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    let tensors = info["tensors"].as_array().expect("tensors list");
    assert!(!tensors.is_empty());
    assert!(tensors.iter().all(|t| t["name"].is_string() && t["shape"].is_array() && t["dtype"].is_string()));

    let dir_guard = scratch("convert");
    let dir = dir_guard.path();
    let st = dir.join("small_cnn.safetensors");
    let out = tlx(&["convert", model.to_str().unwrap(), st.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = tlx(&["inspect", st.to_str().unwrap(), "--json"]);
    let info2: serde_json::Value = serde_json::from_str(&stdout(&back)).unwrap();
    let names = |v: &serde_json::Value| {
        let mut n: Vec<String> = v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&info).len(), names(&info2).len());
    assert!(names(&info2).iter().all(|n| n.contains('/')), "{:?}", names(&info2));

    let human = tlx(&["inspect", model.to_str().unwrap()]);
    assert!(stdout(&human).contains("format:"));
}

#[test]
fn bad_files_and_arguments() {
    let dir_guard = scratch("bad");
    let dir = dir_guard.path();
    let junk = dir.join("junk.h5");
    std::fs::write(&junk, b"this is not hdf5 at all").unwrap();
    let out = tlx(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("tlx: error:") && err.contains("junk.h5"), "{err}");
    let out = tlx(&["convert", "/nope.h5", dir.join("o.safetensors").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.join("o.safetensors").exists());
    let out = tlx(&["frobnicate"]);
    assert!(!out.status.success());
    let help = tlx(&["conformance", "--help"]);
    assert!(stdout(&help).contains("Example:"));
}
