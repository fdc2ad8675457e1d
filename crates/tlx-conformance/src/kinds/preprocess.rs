//! `preprocess` cases: Keras's `preprocess_input` in the case's mode (`caffe`, `torch`, `tf`)
//! on a channels-last RGB batch, through `tlx_models::preprocess_input`.

use crate::arrays::{array, field, tolerance, CaseResult, Checker};
use serde_json::Value;
use std::path::Path;
use tlx_models::{preprocess_input, PreprocessMode};

/// Runs one `preprocess` case.
pub fn run(dir: &Path, case: &Value) -> CaseResult<f64> {
    let mode = field(case, "mode")?.as_str().ok_or("'mode' must be a string")?;
    let mode = PreprocessMode::from_name(mode).map_err(|e| e.to_string())?;
    let out = preprocess_input(&array(dir, case, "input")?, mode).map_err(|e| e.to_string())?;
    let mut c = Checker::new(tolerance(case));
    c.check("preprocessed input", &out, &array(dir, case, "expected")?)?;
    Ok(c.worst)
}
