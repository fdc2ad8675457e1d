//! Shared helpers of the integration tests: where the Keras conformance files are.

#![allow(dead_code)]

use std::path::PathBuf;

/// The directory holding Keras files and `h5-listing.json`, and whether it is the full shared
/// set (`true`) or the small committed subset (`false`).
pub fn keras_dir() -> (PathBuf, bool) {
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let shared = match std::env::var_os("TLX_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => ws.join("../shared/conformance/keras"),
    };
    if shared.join("h5-listing.json").exists() {
        (shared, true)
    } else {
        (ws.join("tests/fixtures/keras"), false)
    }
}

/// A file of the shared set, if present (large files are never committed).
pub fn shared_file(name: &str) -> Option<PathBuf> {
    let (dir, full) = keras_dir();
    let p = dir.join(name);
    (full && p.exists()).then_some(p)
}

/// A small committed fixture (always present).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keras").join(name)
}

/// A fixture of this crate (`weights-tools/tests/fixtures`).
pub fn local_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A fresh directory `<tmp>/<prefix>…` for one test's files, removed with everything in it
/// when dropped (test runs leave nothing behind).
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("{prefix}-")).tempdir().expect("temporary directory")
}
