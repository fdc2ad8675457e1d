//! `augment` cases: Keras 2's `ImageDataGenerator.apply_transform(x, params)` on one HWC image
//! with the case's fill mode, cval and interpolation order, through `tlx_data::apply_transform`.

use crate::arrays::{array, field, tolerance, CaseResult, Checker};
use serde_json::Value;
use std::path::Path;
use tlx_data::{apply_transform, FillMode, TransformParams, Warp};
use tlx_tensor::Tensor;

/// The transform parameters of a case: Keras's `transform_parameters` keys, numbers or
/// booleans (null entries are absent).
fn params(v: &Value) -> CaseResult<TransformParams> {
    let entries = v.as_object().ok_or("'params' must be an object")?;
    let mut p = TransformParams::default();
    for (key, value) in entries {
        let x = match value {
            Value::Null => continue,
            Value::Bool(b) => f64::from(u8::from(*b)),
            other => other.as_f64().ok_or_else(|| format!("params.{key}: expected a number, got {other}"))?,
        };
        p.set(key, x).map_err(|e| format!("params.{key}: {e}"))?;
    }
    Ok(p)
}

/// The resampling settings of a case (Keras's defaults where absent: `nearest`, 0, order 1).
fn warp(case: &Value) -> CaseResult<Warp> {
    let fill_mode = match case.get("fill_mode").and_then(Value::as_str) {
        Some(name) => FillMode::from_name(name).map_err(|e| format!("fill_mode: {e}"))?,
        None => FillMode::default(),
    };
    let cval = match case.get("cval") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v.as_f64().ok_or_else(|| format!("cval: expected a number, got {v}"))?,
    };
    let order = match case.get("interpolation_order") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|o| u8::try_from(o).ok())
            .ok_or_else(|| format!("interpolation_order: expected 0 or 1, got {v}"))?,
    };
    Ok(Warp { fill_mode, cval, order })
}

/// Runs one `augment` case.
pub fn run(dir: &Path, case: &Value) -> CaseResult<f64> {
    let p = params(field(case, "params")?)?;
    let warp = warp(case)?;
    let input = array(dir, case, "input")?;
    let dims: [usize; 3] = input
        .dims()
        .try_into()
        .map_err(|_| format!("input: shape {} is not one HWC image", input.shape()))?;
    let pixels = input.to_vec_f32().map_err(|e| format!("input: {e}"))?;
    let out = apply_transform(&pixels, dims, &p, &warp).map_err(|e| e.to_string())?;
    let out = Tensor::from_vec(out, dims.to_vec()).map_err(|e| e.to_string())?;
    let mut c = Checker::new(tolerance(case));
    c.check("transformed image", &out, &array(dir, case, "expected")?)?;
    Ok(c.worst)
}
