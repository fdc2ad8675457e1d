//! Loading Keras weight files into a model, the way Keras pairs them (KERAS-NOTES §6):
//!
//! - legacy `.h5` (application files, `save_weights("x.h5")`, `model.save("x.h5")`): the
//!   file's layers that have weights pair with the model's layers that have weights — by
//!   name when every model layer's name is in the file, otherwise by position as Keras does;
//! - Keras 3 `.weights.h5` and `.keras`: each layer is looked up by its key (snake-case class
//!   name plus a per-class counter in `model.layers` order, nested models recursively), the
//!   layer's real name being the fallback.
//!
//! Within a layer, weights pair by name when the names agree, else by position; shapes must
//! match exactly. Contiguous little-endian f32 data is adopted zero-copy from the mapping.

use super::Model;
use crate::error::{Error, Result};
use crate::layer::{Layer, Weight};
use std::collections::HashMap;
use std::path::Path;
use tlx_tensor::Tensor;
use weights_tools::keras::names::snake_case;
use weights_tools::{KerasFile, KerasFormat, KerasLayer, KerasWeight};

/// What a weights load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Layers that received weights.
    pub layers: usize,
    /// Weights assigned.
    pub weights: usize,
    /// Weights whose data stays in the file's memory mapping (no copy until first written).
    pub zero_copy: usize,
}

fn err(file: &str, msg: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{file}: {msg}"))
}

impl Model {
    /// Rebuilds a whole model from a Keras file that has a model config (a `model.save`
    /// `.h5` of Keras 2 or 3, or a `.keras` archive) and loads its weights.
    pub fn from_keras_file(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let file = KerasFile::open(path)?;
        let config = file.config_json().ok_or_else(|| {
            err(
                &file.path,
                format!(
                    "{} has no model config: build the model in code and load these weights into it",
                    file.format.describe()
                ),
            )
        })?;
        let mut model = Model::from_keras_config(&config).map_err(|e| err(&file.path, e))?;
        model.load_weights_from(&file)?;
        Ok(model)
    }

    /// Loads the weights of any Keras weights file (`.h5` of any layout, `.weights.h5`,
    /// `.keras`) into this model.
    pub fn load_keras_weights(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let path = path.as_ref();
        let mut file = KerasFile::open(path)?;
        if file.format == KerasFormat::WeightsH5 {
            file = KerasFile::open_with_config(path, &self.to_keras_config())?;
        }
        self.load_weights_from(&file)
    }

    /// Loads weights from an opened Keras file.
    pub fn load_weights_from(&mut self, file: &KerasFile) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        match file.format {
            KerasFormat::LegacyWeights | KerasFormat::LegacyModel => load_legacy(self, file, &mut report)?,
            KerasFormat::WeightsH5 | KerasFormat::KerasZip => {
                load_v3(self, &file.layers, &file.path, "", &mut report)?
            }
        }
        Ok(report)
    }
}

/// The model's layers that have weights.
fn weighted_layers(model: &Model) -> Vec<&dyn Layer> {
    model.layers.iter().map(|l| l.as_ref()).filter(|l| !l.weight_paths().is_empty()).collect()
}

fn load_legacy(model: &Model, file: &KerasFile, report: &mut LoadReport) -> Result<()> {
    let ours = weighted_layers(model);
    let theirs = file.layers_with_weights();
    let by_name: Option<Vec<&KerasLayer>> =
        ours.iter().map(|l| theirs.iter().copied().find(|t| t.name == l.name())).collect();
    let pairs: Vec<(&dyn Layer, &KerasLayer)> = match by_name {
        Some(found) if ours.len() == theirs.len() => ours.iter().copied().zip(found).collect(),
        _ => {
            if ours.len() != theirs.len() {
                return Err(err(
                    &file.path,
                    format!(
                        "the file has {} layers with weights ({}), model '{}' has {} ({}); Keras pairs them by position, so the counts must agree",
                        theirs.len(),
                        list(theirs.iter().map(|l| l.name.as_str())),
                        model.name(),
                        ours.len(),
                        list(ours.iter().map(|l| l.name()))
                    ),
                ));
            }
            ours.iter().copied().zip(theirs.iter().copied()).collect()
        }
    };
    for (layer, stored) in pairs {
        let weights: Vec<(String, &KerasWeight)> = stored.all_weights();
        assign_layer(layer, &weights, &file.path, &stored.name, report)?;
    }
    Ok(())
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.len() > 8 {
        format!("{}, … {} more", v[..8].join(", "), v.len() - 8)
    } else {
        v.join(", ")
    }
}

/// Keras 3's saving keys of a model's layers: snake-case class name, `_N` for the N-th repeat.
pub fn layer_keys(model: &Model) -> Vec<String> {
    let mut used: HashMap<String, usize> = HashMap::new();
    model
        .layers
        .iter()
        .map(|l| {
            let base = snake_case(l.class_name());
            let n = used.entry(base.clone()).or_insert(0);
            let key = if *n == 0 { base.clone() } else { format!("{base}_{n}") };
            *n += 1;
            key
        })
        .collect()
}

fn load_v3(
    model: &Model,
    stored: &[KerasLayer],
    file: &str,
    prefix: &str,
    report: &mut LoadReport,
) -> Result<()> {
    let keys = layer_keys(model);
    for (layer, key) in model.layers.iter().zip(keys) {
        let found = stored
            .iter()
            .find(|s| s.group.rsplit('/').next() == Some(key.as_str()))
            .filter(|s| s.name == layer.name() || !stored.iter().any(|o| o.name == layer.name()))
            .or_else(|| stored.iter().find(|s| s.name == layer.name()));
        let path = format!("{prefix}{}", layer.name());
        match (layer.as_model(), found) {
            (Some(sub), Some(s)) if !s.layers.is_empty() => {
                load_v3(sub, &s.layers, file, &format!("{path}/"), report)?;
            }
            (_, Some(s)) => {
                let weights = s.all_weights();
                if layer.weight_paths().is_empty() && weights.is_empty() {
                    continue;
                }
                assign_layer(layer.as_ref(), &weights, file, &s.name, report)?;
            }
            (_, None) => {
                if !layer.weight_paths().is_empty() {
                    return Err(err(
                        file,
                        format!("no weights for layer '{path}' (key '{key}') in the file"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Assigns a stored layer's weights to a model layer (nested models: all their weights).
fn assign_layer(
    layer: &dyn Layer,
    stored: &[(String, &KerasWeight)],
    file: &str,
    stored_name: &str,
    report: &mut LoadReport,
) -> Result<()> {
    let ours: Vec<(String, &Weight)> = layer.weight_paths();
    if ours.len() != stored.len() {
        return Err(err(
            file,
            format!(
                "layer '{}' ({}) has {} weights ({}), the file's layer '{stored_name}' has {} ({})",
                layer.name(),
                layer.class_name(),
                ours.len(),
                list(ours.iter().map(|(n, _)| n.as_str())),
                stored.len(),
                list(stored.iter().map(|(n, _)| n.as_str()))
            ),
        ));
    }
    let names_agree = ours.iter().all(|(n, _)| stored.iter().any(|(s, _)| s == n));
    for (i, (name, w)) in ours.iter().enumerate() {
        let raw: &KerasWeight = if names_agree {
            stored.iter().find(|(s, _)| s == name).expect("checked above").1
        } else {
            stored[i].1
        };
        if raw.tensor.shape != w.tensor.dims() {
            return Err(err(
                file,
                format!(
                    "layer '{}' weight '{name}': the model expects shape {:?}, the file has {:?} ({})",
                    layer.name(),
                    w.tensor.dims(),
                    raw.tensor.shape,
                    raw.stored_name
                ),
            ));
        }
        let src = Tensor::from_shared_bytes(
            raw.tensor.data.clone().into_shared(),
            0,
            raw.tensor.dtype,
            raw.tensor.shape.clone(),
        )
        .map_err(|e| err(file, format!("layer '{}' weight '{name}': {e}", layer.name())))?;
        let src = if src.dtype() == w.tensor.dtype() { src } else { src.to_dtype(w.tensor.dtype())? };
        w.tensor.adopt_storage(&src)?;
        if w.tensor.is_mapped() {
            report.zero_copy += 1;
        }
        report.weights += 1;
    }
    report.layers += 1;
    Ok(())
}
