//! Checkpoints: everything needed to resume training exactly, written so that a crash never
//! leaves a half-written one.
//!
//! A checkpoint directory holds `ckpt-<step>/` folders, each with `weights.safetensors`
//! (tensors named `layer/weight`, model config and Keras version in the metadata),
//! `optimizer.safetensors` (the optimizer's state in Keras's order) and `state.json` (epoch,
//! batch, step, seeds, the running epoch means, the history so far). Each file is written to a
//! temp file, fsynced and renamed; then the small file `latest` is replaced the same way to
//! name the new folder, and older folders are removed. Resuming reads `latest`.

use crate::error::{Error, Result};
use crate::fit::History;
use crate::trainer::Trainer;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tlx_nn::Model;
use tlx_tensor::{DType, Tensor};
use weights_tools::safetensors;
use weights_tools::{RawTensor, TensorBytes};

/// A tensor as safetensors bytes.
fn raw(t: &Tensor) -> Result<RawTensor> {
    let t = t.detach().contiguous_copy()?;
    let bytes: Vec<u8> = match t.dtype() {
        DType::F32 => t.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F64 => t.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I64 => t.to_vec::<i64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I32 => t.to_vec::<i32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::U8 => t.to_vec::<u8>()?,
        DType::F16 => t.to_vec::<half::f16>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::BF16 => t.to_vec::<half::bf16>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    Ok(RawTensor { shape: t.dims().to_vec(), dtype: t.dtype(), data: TensorBytes::Owned(bytes) })
}

fn to_tensor(r: &RawTensor) -> Result<Tensor> {
    Ok(Tensor::from_shared_bytes(r.data.clone().into_shared(), 0, r.dtype, r.shape.clone())?)
}

/// Writes a model's weights as safetensors (`layer/weight` names, config in the metadata).
pub fn save_weights(model: &Model, path: &Path) -> Result<()> {
    let named = model.named_weights();
    let raws: Vec<(String, RawTensor)> =
        named.iter().map(|(n, w)| Ok((n.clone(), raw(&w.tensor)?))).collect::<Result<_>>()?;
    let refs: Vec<(String, &RawTensor)> = raws.iter().map(|(n, r)| (n.clone(), r)).collect();
    let mut meta = BTreeMap::new();
    meta.insert("format".into(), "tlx".into());
    meta.insert("model_config".into(), model.to_keras_config().to_string());
    meta.insert("keras_version".into(), "3 (written by tlx)".into());
    safetensors::write(path, &refs, &meta)?;
    Ok(())
}

/// Loads weights saved by [`save_weights`] (or `tlx convert`) into `model`, by name; every
/// model weight must be present with its shape.
pub fn load_weights(model: &Model, path: &Path) -> Result<usize> {
    let st = safetensors::read(path)?;
    let mut n = 0;
    for (name, w) in model.named_weights() {
        let r = st.get(&name).ok_or_else(|| {
            Error::Invalid(format!("{}: no tensor '{name}' for model '{}'", path.display(), model.name()))
        })?;
        if r.shape != w.tensor.dims() {
            return Err(Error::Invalid(format!(
                "{}: tensor '{name}' has shape {:?}, the model's weight has {:?}",
                path.display(),
                r.shape,
                w.tensor.dims()
            )));
        }
        let src = to_tensor(r)?;
        let src = if src.dtype() == w.tensor.dtype() { src } else { src.to_dtype(w.tensor.dtype())? };
        w.tensor.adopt_storage(&src)?;
        n += 1;
    }
    Ok(n)
}

/// Where an interrupted `fit` stands.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Batches of that epoch already done.
    pub batch: usize,
    /// Training steps done in total.
    pub steps_done: u64,
    /// The trainer's seed.
    pub seed: u64,
    /// Running sums of the epoch so far: `(key, total, count)`.
    pub running: Vec<(String, f64, f64)>,
    /// Completed epochs' logs.
    pub history: History,
}

impl TrainState {
    fn to_json(&self) -> Value {
        json!({
            "epoch": self.epoch, "batch": self.batch, "steps_done": self.steps_done, "seed": self.seed,
            "running": self.running.iter().map(|(k, t, c)| json!([k, t, c])).collect::<Vec<_>>(),
            "history": self.history.to_json(),
        })
    }

    fn from_json(v: &Value) -> Result<TrainState> {
        let u = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::Invalid(format!("checkpoint state: missing '{k}'")))
        };
        let running = v
            .get("running")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        Some((e.get(0)?.as_str()?.to_string(), e.get(1)?.as_f64()?, e.get(2)?.as_f64()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(TrainState {
            epoch: u("epoch")? as usize,
            batch: u("batch")? as usize,
            steps_done: u("steps_done")?,
            seed: u("seed")?,
            running,
            history: History::from_json(v.get("history").unwrap_or(&Value::Null)).unwrap_or_default(),
        })
    }
}

/// Saves a training checkpoint into `dir` and points `dir/latest` at it.
pub fn save(dir: &Path, trainer: &Trainer, state: &TrainState) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = format!("ckpt-{:09}", state.steps_done);
    let ckpt = dir.join(&name);
    std::fs::create_dir_all(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
    save_weights(trainer.model(), &ckpt.join("weights.safetensors"))?;
    let opt_state = trainer.optimizer().state()?;
    let raws: Vec<(String, RawTensor)> =
        opt_state.iter().map(|(n, t)| Ok((n.clone(), raw(t)?))).collect::<Result<_>>()?;
    let refs: Vec<(String, &RawTensor)> = raws.iter().map(|(n, r)| (n.clone(), r)).collect();
    let mut meta = BTreeMap::new();
    meta.insert("optimizer_config".into(), trainer.optimizer().to_keras_config().to_string());
    safetensors::write(ckpt.join("optimizer.safetensors"), &refs, &meta)?;
    let st = serde_json::to_string_pretty(&state.to_json()).expect("JSON");
    safetensors::write_atomic(&ckpt.join("state.json"), st.as_bytes())?;
    safetensors::write_atomic(&dir.join("latest"), name.as_bytes())?;
    // Older checkpoints go once the new one is in place.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("ckpt-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(ckpt)
}

/// The checkpoint folder `dir/latest` names, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    let p = dir.join("latest");
    if !p.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let name = name.trim();
    if !name.starts_with("ckpt-") || name.contains(['/', '\\']) {
        return Err(Error::Invalid(format!("{}: does not name a checkpoint ('{name}')", p.display())));
    }
    let ckpt = dir.join(name);
    if !ckpt.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: names {}, which does not exist",
            p.display(),
            ckpt.display()
        )));
    }
    Ok(Some(ckpt))
}

/// The training position saved in a checkpoint folder (without restoring anything).
pub fn read_state(ckpt: &Path) -> Result<TrainState> {
    let p = ckpt.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: not JSON: {e}", p.display())))?;
    TrainState::from_json(&v)
}

/// Restores weights, optimizer state and the training position from a checkpoint folder.
pub fn restore(ckpt: &Path, trainer: &mut Trainer) -> Result<TrainState> {
    load_weights(trainer.model(), &ckpt.join("weights.safetensors"))?;
    let trainable = trainer.prepare()?;
    let _ = trainable;
    let st = safetensors::read(ckpt.join("optimizer.safetensors"))?;
    let state: Vec<(String, Tensor)> =
        st.tensors.iter().map(|(n, r)| Ok((n.clone(), to_tensor(r)?))).collect::<Result<_>>()?;
    trainer.optimizer_mut().load_state(&state)?;
    let s = read_state(ckpt)?;
    trainer.seed = s.seed;
    trainer.steps_done = s.steps_done;
    Ok(s)
}
