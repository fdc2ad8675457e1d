//! Saving a model's weights as a Keras 3 `.weights.h5`, the file `model.save_weights(
//! "x.weights.h5")` writes (Keras 3.15's `saving_lib`, H5IOStore; KERAS-NOTES §6.3), so that
//! a model fine-tuned in tlx goes back to Keras with `model.load_weights(path)`:
//!
//! - `/vars`: the model's own variables (none) with the model's name in its `name` attribute;
//! - `/layers/<key>/vars/<i>` for every layer in `model.layers` order, `<key>` being Keras's
//!   saving key (snake-case class name plus a per-class counter, [`layer_keys`]), weightless
//!   layers included, each `vars` group carrying the real layer name in `name`;
//! - datasets `0, 1, …` in Keras's order (trainable-at-creation, then non-trainable);
//! - nested models recurse: `/layers/<key>/vars` (the nested model's name) and
//!   `/layers/<key>/layers/<key>/vars/<i>`.
//!
//! There is no optimizer state (`/optimizer`): Keras loads such a file into an uncompiled
//! model, or a compiled one whose optimizer has not been built yet. float16 and bfloat16
//! weights are stored as float32 (exact; Keras casts on assignment). The data is streamed
//! from the tensors into the file, written atomically (temp file, fsync, rename).

use super::load::layer_keys;
use super::Model;
use crate::error::{Error, Result};
use crate::layer::Layer;
use std::io::Write;
use std::path::Path;
use tlx_tensor::{DType, StorageElement, Tensor};
use weights_tools::hdf5::H5Writer;

/// Elements converted per write call while streaming a tensor.
const CHUNK: usize = 16 * 1024;

impl Model {
    /// Saves the weights as a Keras 3 `.weights.h5` (Keras's `model.save_weights`), which
    /// Keras 3's `model.load_weights` and tlx's [`Model::load_keras_weights`] read back.
    /// The name must end in `.weights.h5`, as Keras requires (it reads other `.h5` names as
    /// legacy files).
    pub fn save_keras_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = path.display().to_string();
        if !file.ends_with(".weights.h5") {
            return Err(Error::Msg(format!(
                "{file}: a Keras 3 weights file must be named `*.weights.h5` (Keras's load_weights \
                 reads any other `.h5` as a legacy Keras 2 file)"
            )));
        }
        self.keras_weights_writer(&file)?.write(path)?;
        Ok(())
    }

    /// The bytes [`Model::save_keras_weights`] would write.
    pub fn keras_weights_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.keras_weights_writer("(in memory)")?.to_bytes()?)
    }

    /// The file's content, ready to write; `file` names it in errors.
    fn keras_weights_writer(&self, file: &str) -> Result<H5Writer<'static>> {
        let mut w = H5Writer::new();
        add_model(&mut w, self, "", file)?;
        Ok(w)
    }
}

fn wrap<'f>(file: &'f str, what: &str) -> impl Fn(weights_tools::Error) -> Error + 'f {
    let what = what.to_string();
    move |e| Error::Msg(format!("{file}: {what}: {e}"))
}

/// The `vars` group of a layer or model at `prefix` with its name.
fn vars_group(w: &mut H5Writer<'static>, prefix: &str, name: &str, file: &str) -> Result<String> {
    let vars = format!("{prefix}vars");
    let ctx = format!("{name:?} at /{vars}");
    w.group(&vars).map_err(wrap(file, &ctx))?;
    w.attr_str(&vars, "name", name).map_err(wrap(file, &ctx))?;
    Ok(vars)
}

fn add_model(w: &mut H5Writer<'static>, m: &Model, prefix: &str, file: &str) -> Result<()> {
    vars_group(w, prefix, m.name(), file)?;
    for (layer, key) in m.layers.iter().zip(layer_keys(m)) {
        let at = format!("{prefix}layers/{key}/");
        match layer.as_model() {
            Some(sub) => add_model(w, sub, &at, file)?,
            None => add_layer(w, layer.as_ref(), &at, file)?,
        }
    }
    Ok(())
}

fn add_layer(w: &mut H5Writer<'static>, layer: &dyn Layer, prefix: &str, file: &str) -> Result<()> {
    let vars = vars_group(w, prefix, layer.name(), file)?;
    for (i, weight) in layer.weights().iter().enumerate() {
        let path = format!("{vars}/{i}");
        let ctx = format!("layer {:?} weight {:?} at /{path}", layer.name(), weight.name);
        let t = weight.tensor.detach();
        let dims = t.dims().to_vec();
        let r = match t.dtype() {
            DType::F32 => {
                w.dataset_with(&path, DType::F32, &dims, move |o| stream::<f32, 4>(&t, o, f32::to_le_bytes))
            }
            DType::F64 => {
                w.dataset_with(&path, DType::F64, &dims, move |o| stream::<f64, 8>(&t, o, f64::to_le_bytes))
            }
            DType::I64 => {
                w.dataset_with(&path, DType::I64, &dims, move |o| stream::<i64, 8>(&t, o, i64::to_le_bytes))
            }
            DType::I32 => {
                w.dataset_with(&path, DType::I32, &dims, move |o| stream::<i32, 4>(&t, o, i32::to_le_bytes))
            }
            DType::U8 => w.dataset_with(&path, DType::U8, &dims, move |o| stream::<u8, 1>(&t, o, |v| [v])),
            DType::F16 | DType::BF16 => {
                let t = t.to_dtype(DType::F32).map_err(|e| Error::Msg(format!("{file}: {ctx}: {e}")))?;
                w.dataset_with(&path, DType::F32, &dims, move |o| stream::<f32, 4>(&t, o, f32::to_le_bytes))
            }
        };
        r.map_err(wrap(file, &ctx))?;
    }
    Ok(())
}

/// Writes a tensor's elements little-endian, C order, a chunk at a time.
fn stream<T: StorageElement, const N: usize>(
    t: &Tensor,
    out: &mut dyn Write,
    le: fn(T) -> [u8; N],
) -> std::io::Result<()> {
    let res = t.with_slice::<T, _>(|s| {
        let mut buf = Vec::with_capacity(CHUNK.min(s.len()) * N);
        for chunk in s.chunks(CHUNK) {
            buf.clear();
            for &v in chunk {
                buf.extend_from_slice(&le(v));
            }
            out.write_all(&buf)?;
        }
        Ok(())
    });
    res.map_err(|e| std::io::Error::other(e.to_string()))?
}
