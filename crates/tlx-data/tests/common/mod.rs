//! Helpers shared by the integration tests: locating the Keras conformance directory, reading
//! arrays of a manifest (inline `{shape, data}` or the name of an `.npy` beside it), and the
//! README's normwise comparison.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};

/// `$TLX_CONFORMANCE_DIR`, else `<workspace root>/../shared/conformance/keras`.
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("TLX_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/keras"),
    }
}

/// The committed fixtures of this crate.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The `manifest.*.json` files of `dir`, sorted.
pub fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        n.starts_with("manifest.") && n.ends_with(".json")
    });
    v.sort();
    v
}

/// An array field: `{shape, data}` inline, or a string naming an `.npy` in `dir`.
pub fn array(v: &Value, dir: &Path) -> Result<(Vec<usize>, Vec<f32>), String> {
    match v {
        Value::String(name) => {
            let t = weights_tools::npy::read_npy(dir.join(name)).map_err(|e| e.to_string())?;
            Ok((t.shape.clone(), t.to_f32_vec()))
        }
        Value::Object(o) => {
            let shape = o
                .get("shape")
                .and_then(|s| s.as_array())
                .ok_or("array without shape")?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or("bad dimension"))
                .collect::<Result<Vec<_>, _>>()?;
            let data = o
                .get("data")
                .and_then(|s| s.as_array())
                .ok_or("array without data")?
                .iter()
                .map(|d| d.as_f64().map(|d| d as f32).ok_or("bad value"))
                .collect::<Result<Vec<_>, _>>()?;
            if shape.iter().product::<usize>() != data.len() {
                return Err(format!("shape {shape:?} does not fit {} values", data.len()));
            }
            Ok((shape, data))
        }
        _ => Err(format!("not an array: {v}")),
    }
}

/// ‖got − want‖₂ / max(‖want‖₂, 1e-12) (NaN when any value is NaN).
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let d: f64 = got.iter().zip(want).map(|(&g, &w)| (g as f64 - w as f64).powi(2)).sum::<f64>().sqrt();
    let n: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
    if got.iter().chain(want).any(|v| v.is_nan()) {
        return f64::NAN;
    }
    d / n.max(1e-12)
}

/// A fresh directory `<tmp>/<prefix>…` for one test's files, removed with everything in it
/// when dropped (test runs leave nothing behind).
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("{prefix}-")).tempdir().expect("temporary directory")
}
