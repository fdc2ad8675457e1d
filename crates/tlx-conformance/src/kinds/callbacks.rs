//! `reduce_lr_on_plateau` and `early_stopping` cases: a Keras callback built from the case's
//! `config`, driven epoch by epoch with the logs the case lists, through `tlx_train`.
//!
//! Each epoch's logs hold every per-epoch series of the case (a top-level list of numbers whose
//! name does not start with `expected`, e.g. `val_loss`), a null entry meaning "absent that
//! epoch". The reported error is, for `reduce_lr_on_plateau`, the normwise relative error of the
//! learning-rate sequence (the README's measure, against the case's `tol`); for
//! `early_stopping`, whose results are epoch indices compared exactly, it is 0.

use crate::arrays::{field, tolerance, CaseResult, Checker};
use serde_json::Value;
use tlx_train::{EarlyStopping, Logs, ReduceLROnPlateau};

/// A list of numbers (nulls allowed: `None`).
fn series(v: &Value, name: &str) -> CaseResult<Vec<Option<f64>>> {
    v.as_array()
        .ok_or_else(|| format!("'{name}' must be a list"))?
        .iter()
        .map(|x| match x {
            Value::Null => Ok(None),
            other => {
                other.as_f64().map(Some).ok_or_else(|| format!("'{name}' must hold numbers, got {other}"))
            }
        })
        .collect()
}

/// The per-epoch logs: one map per epoch from every metric series of the case.
fn epoch_logs(case: &Value) -> CaseResult<Vec<Logs>> {
    let fields = case.as_object().ok_or("case is not an object")?;
    let mut epochs: Vec<Logs> = Vec::new();
    for (name, value) in fields {
        let is_series = !name.starts_with("expected")
            && value
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x.is_number() || x.is_null()));
        if !is_series {
            continue;
        }
        let values = series(value, name)?;
        if epochs.len() < values.len() {
            epochs.resize(values.len(), Logs::new());
        }
        for (logs, v) in epochs.iter_mut().zip(values) {
            if let Some(v) = v {
                logs.insert(name.clone(), v);
            }
        }
    }
    if epochs.is_empty() {
        return Err("case has no per-epoch series (e.g. 'val_loss')".into());
    }
    Ok(epochs)
}

/// Runs one `reduce_lr_on_plateau` case: the learning rate after each epoch's end, the
/// optimizer holding it as a float32 variable.
pub fn run_reduce_lr(case: &Value) -> CaseResult<f64> {
    let mut cb = ReduceLROnPlateau::from_keras_config(field(case, "config")?).map_err(|e| e.to_string())?;
    let initial = field(case, "initial_lr")?.as_f64().ok_or("'initial_lr' must be a number")?;
    let want: Vec<f64> = series(field(case, "expected_lr")?, "expected_lr")?
        .into_iter()
        .map(|v| v.ok_or("'expected_lr' must not hold nulls"))
        .collect::<Result<_, _>>()?;
    let epochs = epoch_logs(case)?;
    if epochs.len() < want.len() {
        return Err(format!(
            "{} expected learning rates but only {} epochs of logs",
            want.len(),
            epochs.len()
        ));
    }
    cb.on_train_begin();
    let mut lr = initial as f32;
    let mut got = Vec::with_capacity(want.len());
    for (epoch, mut logs) in epochs.into_iter().take(want.len()).enumerate() {
        logs.insert("learning_rate".into(), lr as f64);
        if let Some(new_lr) = cb.on_epoch_end(epoch, &logs, lr as f64) {
            lr = new_lr as f32;
        }
        got.push(lr as f64);
    }
    let mut c = Checker::new(tolerance(case));
    c.check_values("learning rates", &got, &want)?;
    Ok(c.worst)
}

/// Runs one `early_stopping` case: the epoch after which training stops (or none) and the best
/// epoch, compared exactly.
pub fn run_early_stopping(case: &Value) -> CaseResult<f64> {
    let mut cb = EarlyStopping::from_keras_config(field(case, "config")?).map_err(|e| e.to_string())?;
    let want_stop = match case.get("expected_stop_epoch") {
        None => return Err("case has no 'expected_stop_epoch'".into()),
        Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or("'expected_stop_epoch' must be an epoch index or null")? as usize),
    };
    let want_best = field(case, "expected_best_epoch")?
        .as_u64()
        .ok_or("'expected_best_epoch' must be an epoch index")? as usize;
    cb.on_train_begin();
    let mut stopped = None;
    for (epoch, logs) in epoch_logs(case)?.iter().enumerate() {
        if cb.on_epoch_end(epoch, logs).stop {
            stopped = Some(epoch);
            break;
        }
    }
    let show = |e: Option<usize>| e.map_or("never".to_string(), |e| format!("after epoch {e}"));
    if stopped != want_stop {
        return Err(format!("stopped {} but Keras stopped {}", show(stopped), show(want_stop)));
    }
    if cb.best_epoch() != want_best {
        return Err(format!("best epoch {} but Keras's is {want_best}", cb.best_epoch()));
    }
    Ok(0.0)
}
