//! `forward_app`: build a `keras.applications` architecture in code with Keras's layer names
//! (`tlx_models::build`), load a Keras weights file into it, apply `preprocess_input` of the
//! case's mode, run inference (BatchNorm on moving statistics) and compare with Keras.
//!
//! Fields: `arch`, `include_top`, `input_shape` `[h, w, c]` (absent: the input's own size
//! without the top, Keras's 224×224×3 with it), optional `alpha` (default 1.0), `weights`,
//! `preprocess` (absent: the architecture's own mode), `input` (raw 0–255 NHWC), `expected`.
//! Optional `pooling` (`avg`/`max`), `classes` and `classifier_activation` are honoured too.

use crate::arrays::{array, field, tolerance, CaseResult, Checker};
use serde_json::Value;
use std::path::Path;
use tlx_models::{build, preprocess_input, AppOptions, Arch, Pooling, PreprocessMode};
use tlx_nn::Activation;
use tlx_tensor::Tensor;

/// Runs one `forward_app` case.
pub fn run(dir: &Path, case: &Value) -> CaseResult<f64> {
    let arch = field(case, "arch")?.as_str().ok_or("'arch' must be a string")?;
    let arch = Arch::from_name(arch).map_err(|e| e.to_string())?;
    let x = array(dir, case, "input")?;
    let options = options(case, &x)?;
    let mut model = build(arch, &options).map_err(|e| format!("building {arch}: {e}"))?;
    let weights = field(case, "weights")?.as_str().ok_or("'weights' must be a file name")?;
    model.load_keras_weights(dir.join(weights)).map_err(|e| format!("loading {weights}: {e}"))?;
    let mode = match case.get("preprocess").and_then(Value::as_str) {
        Some(name) => PreprocessMode::from_name(name).map_err(|e| e.to_string())?,
        None => arch.preprocess_mode(),
    };
    let x = preprocess_input(&x, mode).map_err(|e| e.to_string())?;
    let got = model.predict(&x).map_err(|e| e.to_string())?;
    let mut c = Checker::new(tolerance(case));
    c.check("output", &got, &array(dir, case, "expected")?)?;
    Ok(c.worst)
}

/// The application options a case asks for; `x` is the case's input batch.
fn options(case: &Value, x: &Tensor) -> CaseResult<AppOptions> {
    let include_top = field(case, "include_top")?.as_bool().ok_or("'include_top' must be true or false")?;
    let mut options = AppOptions::new().include_top(include_top);
    match case.get("input_shape").filter(|v| !v.is_null()) {
        Some(v) => {
            let dims: Vec<usize> = v
                .as_array()
                .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
                .ok_or_else(|| format!("'input_shape' must be [h, w, c], got {v}"))?;
            let shape: [usize; 3] = dims
                .try_into()
                .map_err(|d: Vec<usize>| format!("'input_shape' must be [h, w, c], got {d:?}"))?;
            options = options.input_shape(shape);
        }
        None if !include_top => match x.dims() {
            [_, h, w, c] => options = options.input_shape([*h, *w, *c]),
            other => return Err(format!("'input' must be an NHWC batch, got shape {other:?}")),
        },
        None => {}
    }
    if let Some(alpha) = case.get("alpha").filter(|v| !v.is_null()) {
        options =
            options.alpha(alpha.as_f64().ok_or_else(|| format!("'alpha' must be a number, got {alpha}"))?);
    }
    if let Some(p) = case.get("pooling").filter(|v| !v.is_null()) {
        let name = p.as_str().ok_or_else(|| format!("'pooling' must be a string, got {p}"))?;
        options = options.pooling(Pooling::from_name(name).map_err(|e| e.to_string())?);
    }
    if let Some(n) = case.get("classes").filter(|v| !v.is_null()) {
        options = options
            .classes(n.as_u64().ok_or_else(|| format!("'classes' must be a count, got {n}"))? as usize);
    }
    if let Some(a) = case.get("classifier_activation") {
        let activation =
            Activation::from_keras(Some(a)).map_err(|e| format!("'classifier_activation': {e}"))?;
        options = options.classifier_activation(activation);
    }
    Ok(options)
}
