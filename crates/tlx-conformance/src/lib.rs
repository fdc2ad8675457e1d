//! tlx-conformance: runs the Keras conformance cases.
//!
//! Reads every `manifest.*.json` in a directory (format: the README of
//! `shared/conformance/keras`), runs each case (or only the requested kinds), and reports one
//! line per case with pass/fail and the worst normwise relative error or the reason. A case of
//! a kind tlx does not support is a failure, never a skip; a panic inside a case is caught and
//! reported as that case's failure.

pub mod arrays;
pub mod kinds;

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Errors reading the manifests themselves.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a conformance manifest: {msg}")]
    Manifest { path: PathBuf, msg: String },
    #[error("no manifest.*.json in {0}")]
    NoManifest(PathBuf),
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub manifest: String,
    pub name: String,
    pub kind: String,
    /// `Ok(worst relative error)` or `Err(reason)`.
    pub result: Result<f64, String>,
}

impl CaseOutcome {
    /// True for a passing case.
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }

    /// The report line: `PASS name [kind] worst rel err 1.2e-07` or `FAIL name [kind] reason`.
    pub fn line(&self) -> String {
        match &self.result {
            Ok(err) => format!("PASS  {} [{}]  worst rel err {err:.2e}", self.name, self.kind),
            Err(reason) => format!("FAIL  {} [{}]  {reason}", self.name, self.kind),
        }
    }
}

/// The manifests of a directory, sorted by file name.
pub fn manifests(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("manifest.") && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(Error::NoManifest(dir.into()));
    }
    Ok(found)
}

/// Reads the cases of one manifest.
pub fn read_cases(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.into(), source })?;
    let bad = |msg: String| Error::Manifest { path: path.into(), msg };
    let doc: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    doc.get("cases").and_then(Value::as_array).cloned().ok_or_else(|| bad("no 'cases' list".into()))
}

/// Runs one case (dispatching on its kind).
pub fn run_case(dir: &Path, case: &Value) -> Result<f64, String> {
    let kind = case.get("kind").and_then(Value::as_str).unwrap_or("");
    let run = || match kind {
        "forward_app" => kinds::forward_app::run(dir, case),
        "forward_model" => kinds::forward::run_model(dir, case),
        "augment" => kinds::augment::run(dir, case),
        "early_stopping" => kinds::callbacks::run_early_stopping(case),
        "layer" => kinds::layer::run(dir, case),
        "train_steps" => kinds::train_steps::run(dir, case),
        "loss" => kinds::loss::run(dir, case),
        "preprocess" => kinds::preprocess::run(dir, case),
        "reduce_lr_on_plateau" => kinds::callbacks::run_reduce_lr(case),
        "schedule" => kinds::schedule::run(case),
        "" => Err("case has no 'kind'".into()),
        other => Err(format!("kind '{other}' is not supported by this version of tlx")),
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("panicked: {}", msg.unwrap_or_else(|| "unknown panic".into())))
        }
    }
}

/// Runs every case of every manifest in `dir` whose kind is in `kinds` (all when empty),
/// calling `report` after each.
pub fn run_dir(
    dir: &Path,
    kinds: &[String],
    mut report: impl FnMut(&CaseOutcome),
) -> Result<Vec<CaseOutcome>, Error> {
    let mut out = Vec::new();
    for manifest in manifests(dir)? {
        let mname = manifest.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        for case in read_cases(&manifest)? {
            let kind = case.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            if !kinds.is_empty() && !kinds.contains(&kind) {
                continue;
            }
            let name = case.get("name").and_then(Value::as_str).unwrap_or("(unnamed)").to_string();
            let outcome = CaseOutcome { manifest: mname.clone(), name, kind, result: run_case(dir, &case) };
            report(&outcome);
            out.push(outcome);
        }
    }
    Ok(out)
}

/// The closing line: `N passed, M failed`.
pub fn summary(outcomes: &[CaseOutcome]) -> String {
    let passed = outcomes.iter().filter(|o| o.passed()).count();
    format!("{passed} passed, {} failed", outcomes.len() - passed)
}

/// Where the full Keras reference set lives: `$TLX_CONFORMANCE_DIR`, else
/// `<workspace>/../shared/conformance/keras`, if it exists.
pub fn shared_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("TLX_CONFORMANCE_DIR") {
        return Some(PathBuf::from(d)).filter(|p| p.is_dir());
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/keras");
    ws.is_dir().then_some(ws)
}

/// The small set committed with the repository (for fresh clones).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras")
}
