//! `train_steps`: a small MLP (Dense `h` → optional BatchNormalization `bn` → Dense `out`)
//! with the case's weights, regularizer, constraint, frozen layers, optimizer (learning rate
//! possibly a schedule) and loss, trained step by step on batch `s % 2`; after every step
//! the loss and every weight (BatchNorm moving statistics included) are compared.

use crate::arrays::{field, load_array, tolerance, CaseResult, Checker};
use serde_json::{json, Value};
use std::path::Path;
use tlx_nn::layers::from_keras;
use tlx_nn::{LayerSelector, Model};
use tlx_train::Trainer;

fn build_model(spec: &Value, input_dim: usize) -> CaseResult<Model> {
    let get = |k: &str| spec.get(k).cloned().unwrap_or(Value::Null);
    let units =
        |k: &str| get(k).as_u64().map(|u| u as usize).ok_or(format!("model.{k} must be a positive integer"));
    let mut m = Model::sequential("train_steps_mlp", &[input_dim]);
    let hidden = json!({
        "name": "h", "units": units("hidden")?, "activation": get("hidden_activation"),
        "kernel_regularizer": get("kernel_regularizer"), "kernel_constraint": get("kernel_constraint"),
    });
    let add = |m: &mut Model, class: &str, cfg: Value| -> CaseResult<()> {
        let layer = from_keras(class, &cfg).map_err(|e| e.to_string())?;
        m.add_boxed(layer).map_err(|e| e.to_string())?;
        Ok(())
    };
    add(&mut m, "Dense", hidden)?;
    if get("batch_norm").as_bool().unwrap_or(false) {
        add(&mut m, "BatchNormalization", json!({"name": "bn"}))?;
    }
    add(
        &mut m,
        "Dense",
        json!({"name": "out", "units": units("out")?, "activation": get("out_activation")}),
    )?;
    Ok(m)
}

/// Runs one `train_steps` case.
pub fn run(dir: &Path, case: &Value) -> CaseResult<f64> {
    let batches = field(case, "batches")?.as_array().ok_or("'batches' must be a list")?;
    let data: Vec<(tlx_tensor::Tensor, tlx_tensor::Tensor)> = batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Ok((
                load_array(dir, field(b, "x")?, &format!("batches[{i}].x"))?,
                load_array(dir, field(b, "y")?, &format!("batches[{i}].y"))?,
            ))
        })
        .collect::<CaseResult<_>>()?;
    let first = data.first().ok_or("no batches")?;
    let input_dim = *first.0.dims().last().ok_or("batch x must have a feature axis")?;
    let mut model = build_model(field(case, "model")?, input_dim)?;
    let names: Vec<String> = field(case, "weight_names")?
        .as_array()
        .ok_or("'weight_names' must be a list")?
        .iter()
        .map(|v| v.as_str().map(str::to_string).ok_or("weight names must be strings".to_string()))
        .collect::<CaseResult<_>>()?;
    let ours: Vec<String> = model.named_weights().into_iter().map(|(n, _)| n).collect();
    if ours != names {
        return Err(format!("weights are {ours:?}, the case lists {names:?}"));
    }
    let initial: Vec<tlx_tensor::Tensor> = field(case, "initial_weights")?
        .as_array()
        .ok_or("'initial_weights' must be a list")?
        .iter()
        .enumerate()
        .map(|(i, v)| load_array(dir, v, &format!("initial_weights[{i}]")))
        .collect::<CaseResult<_>>()?;
    model.set_all_weights(&initial).map_err(|e| e.to_string())?;
    let frozen: Vec<String> = case
        .get("frozen")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if !frozen.is_empty() {
        model.set_trainable_where(&LayerSelector::Names(frozen), false).map_err(|e| e.to_string())?;
    }
    let mut trainer = Trainer::compile_keras(model, field(case, "optimizer")?, field(case, "loss")?, &[])
        .map_err(|e| e.to_string())?;
    let steps = field(case, "steps")?.as_u64().ok_or("'steps' must be an integer")? as usize;
    let want_loss = field(case, "expected_loss")?.as_array().ok_or("'expected_loss' must be a list")?;
    let want_weights =
        field(case, "expected_weights")?.as_array().ok_or("'expected_weights' must be a list")?;
    let mut c = Checker::new(tolerance(case));
    for s in 0..steps {
        let (x, y) = &data[s % data.len()];
        let out = trainer.train_step(x, y, None).map_err(|e| format!("step {s}: {e}"))?;
        let want = want_loss.get(s).and_then(Value::as_f64).ok_or(format!("no expected_loss[{s}]"))?;
        c.check_values(&format!("step {s} loss"), &[out.loss], &[want])?;
        let ws = want_weights.get(s).and_then(Value::as_array).ok_or(format!("no expected_weights[{s}]"))?;
        let got = trainer.model().get_weights().map_err(|e| e.to_string())?;
        if ws.len() != got.len() {
            return Err(format!("step {s}: {} expected weights, model has {}", ws.len(), got.len()));
        }
        for (i, (g, w)) in got.iter().zip(ws).enumerate() {
            let w = load_array(dir, w, &format!("expected_weights[{s}][{i}]"))?;
            c.check(&format!("step {s} {}", names[i]), g, &w)?;
        }
    }
    Ok(c.worst)
}
