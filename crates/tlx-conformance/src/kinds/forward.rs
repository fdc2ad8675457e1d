//! `forward_model`: rebuild a whole Keras model from its own file (a Keras 2/3 `.h5` or a
//! `.keras`), optionally load a Keras 3 `.weights.h5` into it instead, run inference and
//! compare with Keras's output.

use crate::arrays::{array, field, tolerance, CaseResult, Checker};
use serde_json::Value;
use std::path::Path;
use tlx_nn::Model;

/// Runs one `forward_model` case.
pub fn run_model(dir: &Path, case: &Value) -> CaseResult<f64> {
    let file = field(case, "model")?.as_str().ok_or("'model' must be a file name")?;
    let mut model = Model::from_keras_file(dir.join(file)).map_err(|e| e.to_string())?;
    if let Some(w) = case.get("weights").and_then(Value::as_str) {
        model.load_keras_weights(dir.join(w)).map_err(|e| e.to_string())?;
    }
    let x = array(dir, case, "input")?;
    let want = array(dir, case, "expected")?;
    let got = model.predict(&x).map_err(|e| e.to_string())?;
    let mut c = Checker::new(tolerance(case));
    c.check("output", &got, &want)?;
    Ok(c.worst)
}
