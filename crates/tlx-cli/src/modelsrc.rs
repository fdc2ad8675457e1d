//! Where `tlx predict` and `tlx evaluate` get their model and how they feed it: a whole model
//! file (`--model`: a Keras `model.save` `.h5`, a `.keras`, or a tlx `.safetensors` that carries
//! its model config), or an application (`--arch` with `--weights` from any Keras weights file
//! or a tlx `.safetensors`), plus the input pipeline flags shared by both (`--rescale`,
//! `--preprocess`).

use clap::ArgAction;
use std::path::{Path, PathBuf};
use tlx_models::{build, AppOptions, Arch, Pooling, PreprocessMode};
use tlx_nn::{Activation, Model};
use tlx_tensor::Tensor;
use weights_tools::{KerasFile, KerasFormat};

/// The model flags of `predict` and `evaluate`.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// A whole model: Keras `model.save` file (.h5, .keras) or a tlx .safetensors with its config.
    #[arg(long, value_name = "FILE", conflicts_with = "arch", required_unless_present = "arch")]
    pub model: Option<PathBuf>,
    /// An application instead of --model: vgg16, vgg19, resnet50 or mobilenetv2.
    #[arg(long, value_name = "NAME")]
    pub arch: Option<String>,
    /// Weights for --arch: any Keras weights file (.h5, .weights.h5, .keras) or a tlx .safetensors.
    #[arg(long, value_name = "FILE", requires = "arch")]
    pub weights: Option<PathBuf>,
    /// With --arch: keep the classifier (default: as the weights file has it).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub include_top: Option<bool>,
    /// With --arch and no top: pooling after the last block (none, avg, max).
    #[arg(long, value_name = "MODE", default_value = "none")]
    pub pooling: String,
    /// With --arch and the top: number of classes.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub classes: usize,
    /// With --arch mobilenetv2: the width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Input height and width (N or HxW): the application's size with --arch (default 224), the
    /// image size for a --model whose input size is not fixed.
    #[arg(long, value_name = "N|HxW")]
    pub input_size: Option<String>,
    /// Multiply inputs by this factor first (e.g. 1/255 or 0.00392).
    #[arg(long, value_name = "F")]
    pub rescale: Option<String>,
    /// preprocess_input mode applied to inputs: auto (the application's with --arch, none with
    /// --model), none, caffe, torch or tf.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub preprocess: String,
}

/// A model ready to run, with what the inputs need.
pub struct Loaded {
    pub model: Model,
    /// Whether the outputs are class scores (false for an application without its top).
    pub classifier: bool,
    /// Spatial size and channels of the input when the model fixes them (or --input-size does).
    pub input_hw: Option<(usize, usize)>,
    pub channels: Option<usize>,
    /// What inputs go through before the model.
    pub prep: Prep,
}

/// The input pipeline: a rescale factor, then `preprocess_input`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prep {
    pub rescale: Option<f32>,
    pub preprocess: Option<PreprocessMode>,
}

impl Prep {
    /// Applies the rescale factor, then `preprocess_input`.
    pub fn apply(&self, x: Tensor) -> Result<Tensor, String> {
        let mut x = x;
        if let Some(r) = self.rescale {
            x = x.mul_scalar(f64::from(r)).map_err(|e| e.to_string())?;
        }
        if let Some(mode) = self.preprocess {
            x = tlx_models::preprocess_input(&x, mode).map_err(|e| e.to_string())?;
        }
        Ok(x)
    }
}

/// Parses `224` or `224x160` (height × width).
pub fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--input-size '{s}': expected N or HxW, e.g. 224 or 224x160");
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let nums: Vec<usize> =
        parts.iter().map(|p| p.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| bad())?;
    match nums.as_slice() {
        [n] if *n > 0 => Ok((*n, *n)),
        [h, w] if *h > 0 && *w > 0 => Ok((*h, *w)),
        _ => Err(bad()),
    }
}

/// Parses a factor: a number or `a/b`.
pub fn parse_factor(s: &str) -> Result<f32, String> {
    let bad = || format!("--rescale '{s}': expected a number such as 0.00392 or 1/255");
    let v = match s.split_once('/') {
        Some((a, b)) => {
            let (a, b): (f64, f64) =
                (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            if b == 0.0 {
                return Err(bad());
            }
            a / b
        }
        None => s.trim().parse::<f64>().map_err(|_| bad())?,
    };
    if !v.is_finite() {
        return Err(bad());
    }
    Ok(v as f32)
}

fn is_safetensors(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// A whole model from a tlx safetensors file written by `checkpoint::save_weights`.
fn model_from_safetensors(path: &Path) -> Result<Model, String> {
    let st = weights_tools::safetensors::read(path).map_err(|e| e.to_string())?;
    let config = st.metadata.get("model_config").ok_or_else(|| {
        format!(
            "{}: this safetensors file has no model config (use --arch NAME --weights FILE)",
            path.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(config)
        .map_err(|e| format!("{}: the model config is not JSON: {e}", path.display()))?;
    let model = Model::from_keras_config(&v).map_err(|e| format!("{}: {e}", path.display()))?;
    tlx_train::checkpoint::load_weights(&model, path).map_err(|e| e.to_string())?;
    Ok(model)
}

/// Loads weights from a Keras file or a tlx safetensors into `model`.
fn load_weights(model: &mut Model, path: &Path) -> Result<(), String> {
    if is_safetensors(path) {
        tlx_train::checkpoint::load_weights(model, path).map_err(|e| e.to_string())?;
    } else {
        model.load_keras_weights(path).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Whether a weights file holds the classifier, when its layer names tell (`predictions`).
fn file_has_top(path: &Path) -> Option<bool> {
    if is_safetensors(path) {
        let st = weights_tools::safetensors::read(path).ok()?;
        return Some(st.tensors.iter().any(|(n, _)| n.starts_with("predictions/")));
    }
    let f = KerasFile::open(path).ok()?;
    match f.format {
        KerasFormat::LegacyWeights | KerasFormat::LegacyModel => Some(f.layer("predictions").is_some()),
        KerasFormat::WeightsH5 | KerasFormat::KerasZip => None,
    }
}

/// Builds and loads the model of `a`.
pub fn load(a: &ModelArgs) -> Result<Loaded, String> {
    let size = a.input_size.as_deref().map(parse_size).transpose()?;
    let rescale = a.rescale.as_deref().map(parse_factor).transpose()?;
    let (model, classifier) = match (&a.model, &a.arch) {
        (Some(path), _) => {
            if !path.exists() {
                return Err(format!("{}: no such file", path.display()));
            }
            let model = if is_safetensors(path) {
                model_from_safetensors(path)?
            } else {
                Model::from_keras_file(path).map_err(|e| e.to_string())?
            };
            (model, true)
        }
        (None, Some(name)) => {
            let arch = Arch::from_name(name).map_err(|e| e.to_string())?;
            let weights = a.weights.as_ref().ok_or_else(|| {
                format!("--arch {name} needs --weights FILE (a Keras weights file or a tlx .safetensors)")
            })?;
            if !weights.exists() {
                return Err(format!("{}: no such file", weights.display()));
            }
            build_app(a, arch, size, weights)?
        }
        (None, None) => return Err("give --model FILE, or --arch NAME with --weights FILE".into()),
    };
    let spec = model.inputs().first().map(|i| i.shape.clone()).unwrap_or_default();
    let (mut input_hw, channels) = match spec.as_slice() {
        [_, Some(h), Some(w), c] => (Some((*h, *w)), *c),
        [_, _, _, c] => (None, *c),
        _ => (None, None),
    };
    if let Some(s) = size {
        match input_hw {
            Some(hw) if hw != s => {
                return Err(format!(
                    "--input-size {}x{} does not match the model's input {}x{}",
                    s.0, s.1, hw.0, hw.1
                ))
            }
            _ => input_hw = Some(s),
        }
    }
    let preprocess = match a.preprocess.as_str() {
        "auto" => a
            .arch
            .as_deref()
            .map(Arch::from_name)
            .transpose()
            .map_err(|e| e.to_string())?
            .map(Arch::preprocess_mode),
        "none" => None,
        m => Some(PreprocessMode::from_name(m).map_err(|e| format!("--preprocess: {e} (or auto, none)"))?),
    };
    Ok(Loaded { model, classifier, input_hw, channels, prep: Prep { rescale, preprocess } })
}

/// The application with its weights, and whether it has the top (given, else as the weights
/// file has it; `--pooling` implies no top).
fn build_app(
    a: &ModelArgs,
    arch: Arch,
    size: Option<(usize, usize)>,
    weights: &Path,
) -> Result<(Model, bool), String> {
    let pooling = Pooling::from_name(&a.pooling).map_err(|e| format!("--pooling: {e}"))?;
    let (h, w) = size.unwrap_or((224, 224));
    let options = |top: bool| {
        AppOptions::new()
            .include_top(top)
            .input_shape([h, w, 3])
            .pooling(if top { Pooling::None } else { pooling })
            .classes(a.classes)
            .classifier_activation(Activation::Softmax { axis: -1 })
            .alpha(a.alpha)
    };
    let attempt = |top: bool| -> Result<(Model, bool), String> {
        if top && pooling != Pooling::None {
            return Err("--pooling applies only with --include-top false".into());
        }
        let mut model = build(arch, &options(top)).map_err(|e| e.to_string())?;
        load_weights(&mut model, weights)?;
        Ok((model, top))
    };
    let implied = (pooling != Pooling::None).then_some(false);
    match a.include_top.or(implied).or_else(|| file_has_top(weights)) {
        Some(top) => attempt(top),
        // The file does not say: with the top, else without (the first error is the one shown).
        None => attempt(true).or_else(|e| attempt(false).map_err(|_| e)),
    }
}
