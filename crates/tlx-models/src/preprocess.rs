//! Keras's `preprocess_input` for the applications (`applications/imagenet_utils.py`,
//! `_preprocess_numpy_input`, channels last), in its three modes:
//!
//! - `caffe` (VGG16, VGG19, ResNet50): RGB → BGR (the channel axis reversed), then the BGR
//!   means `[103.939, 116.779, 123.68]` subtracted; no scaling.
//! - `torch` (DenseNet): `x / 255`, then `(x − mean) / std` per RGB channel with
//!   mean `[0.485, 0.456, 0.406]` and std `[0.229, 0.224, 0.225]`.
//! - `tf` (MobileNetV2, Inception, Xception): `x / 127.5 − 1`, into `[−1, 1]`.
//!
//! The arithmetic is Keras's on a float32 array, operation by operation: every constant is
//! rounded to the array's precision first and each step rounds (`x /= 255.0`, then
//! `x[..., c] -= mean[c]`, then `x[..., c] /= std[c]`), so results agree with Keras bit for bit.
//! An f64 input is computed in f64 (as NumPy keeps float64); every other dtype is computed and
//! returned as f32 (Keras converts integer arrays to float32).

use crate::{Error, Result};
use std::fmt;
use std::ops::{Div, Sub};
use tlx_tensor::{DType, Tensor};

/// The `caffe` means, in BGR order (subtracted after the RGB → BGR swap).
pub const CAFFE_MEAN_BGR: [f64; 3] = [103.939, 116.779, 123.68];
/// The `torch` means, in RGB order (of values already divided by 255).
pub const TORCH_MEAN_RGB: [f64; 3] = [0.485, 0.456, 0.406];
/// The `torch` standard deviations, in RGB order.
pub const TORCH_STD_RGB: [f64; 3] = [0.229, 0.224, 0.225];

/// Names accepted by [`PreprocessMode::for_architecture`], for error messages.
const KNOWN_ARCHITECTURES: &str = "vgg16, vgg19, resnet50, mobilenetv2";

/// One of Keras's `preprocess_input` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PreprocessMode {
    /// RGB → BGR, minus the ImageNet BGR means (VGG16, VGG19, ResNet50).
    Caffe,
    /// Scale to [0, 1], then normalise each RGB channel by the ImageNet mean and std.
    Torch,
    /// Scale to [−1, 1] (MobileNetV2).
    Tf,
}

impl PreprocessMode {
    /// The mode named as Keras names it: `caffe`, `torch` or `tf`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "caffe" => Ok(PreprocessMode::Caffe),
            "torch" => Ok(PreprocessMode::Torch),
            "tf" => Ok(PreprocessMode::Tf),
            other => Err(Error::UnknownPreprocessMode(other.to_string())),
        }
    }

    /// Keras's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            PreprocessMode::Caffe => "caffe",
            PreprocessMode::Torch => "torch",
            PreprocessMode::Tf => "tf",
        }
    }

    /// The mode the Keras application of that name applies (`keras.applications.<arch>.
    /// preprocess_input`): `vgg16`, `vgg19`, `resnet50` → caffe; `mobilenetv2` → tf. Case,
    /// `_` and `-` are ignored (`MobileNet_V2` is `mobilenetv2`).
    pub fn for_architecture(arch: &str) -> Result<Self> {
        let key: String =
            arch.chars().filter(|c| *c != '_' && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
        match key.as_str() {
            "vgg16" | "vgg19" | "resnet50" => Ok(PreprocessMode::Caffe),
            "mobilenetv2" => Ok(PreprocessMode::Tf),
            _ => Err(Error::UnknownArchitecture { name: arch.to_string(), known: KNOWN_ARCHITECTURES }),
        }
    }
}

impl fmt::Display for PreprocessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PreprocessMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        PreprocessMode::from_name(s)
    }
}

/// The float types the arithmetic runs in: constants are rounded to the type first, as NumPy
/// does with Python floats against a typed array.
trait Float: Copy + Sub<Output = Self> + Div<Output = Self> {
    fn of(v: f64) -> Self;
}

impl Float for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
}

impl Float for f64 {
    fn of(v: f64) -> Self {
        v
    }
}

/// Applies `mode` in place to channels-last values with `channels` values per pixel.
fn apply<T: Float>(values: &mut [T], channels: usize, mode: PreprocessMode) {
    match mode {
        PreprocessMode::Tf => {
            let (scale, one) = (T::of(127.5), T::of(1.0));
            values.iter_mut().for_each(|x| *x = *x / scale - one);
        }
        PreprocessMode::Torch => {
            let scale = T::of(255.0);
            let mean = TORCH_MEAN_RGB.map(T::of);
            let std = TORCH_STD_RGB.map(T::of);
            for pixel in values.chunks_exact_mut(channels) {
                for (c, x) in pixel.iter_mut().enumerate() {
                    *x = (*x / scale - mean[c]) / std[c];
                }
            }
        }
        PreprocessMode::Caffe => {
            let mean = CAFFE_MEAN_BGR.map(T::of);
            for pixel in values.chunks_exact_mut(channels) {
                pixel.reverse();
                for (c, x) in pixel.iter_mut().enumerate() {
                    *x = *x - mean[c];
                }
            }
        }
    }
}

/// Keras's `preprocess_input(x, mode=…)` for a channels-last RGB batch `[n, h, w, c]` or one
/// image `[h, w, c]`, values 0–255. `caffe` and `torch` need exactly 3 channels; `tf` takes
/// any number. Returns a new tensor of the same shape (Keras modifies float arrays in place;
/// tlx leaves the input alone). See the module documentation for the formulas.
pub fn preprocess_input(x: &Tensor, mode: PreprocessMode) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    if dims.len() != 3 && dims.len() != 4 {
        return Err(Error::Shape {
            op: "preprocess_input",
            msg: format!(
                "expected a channels-last batch [n, h, w, c] or image [h, w, c], got shape {}",
                x.shape()
            ),
        });
    }
    let channels = dims[dims.len() - 1];
    if mode != PreprocessMode::Tf && channels != 3 {
        return Err(Error::Shape {
            op: "preprocess_input",
            msg: format!("mode `{mode}` needs 3 RGB channels (channels last), got shape {}", x.shape()),
        });
    }
    if x.dtype() == DType::F64 {
        let mut values = x.to_vec::<f64>()?;
        apply(&mut values, channels, mode);
        Ok(Tensor::from_vec(values, dims)?)
    } else {
        let mut values = x.to_vec_f32()?;
        apply(&mut values, channels, mode);
        Ok(Tensor::from_vec(values, dims)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in [PreprocessMode::Caffe, PreprocessMode::Torch, PreprocessMode::Tf] {
            assert_eq!(PreprocessMode::from_name(mode.name()).unwrap(), mode);
            assert_eq!(mode.to_string().parse::<PreprocessMode>().unwrap(), mode);
        }
    }

    #[test]
    fn caffe_reverses_each_pixel_independently() {
        let mut v = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        apply(&mut v, 3, PreprocessMode::Caffe);
        let m = CAFFE_MEAN_BGR;
        assert_eq!(v, [3.0 - m[0], 2.0 - m[1], 1.0 - m[2], 6.0 - m[0], 5.0 - m[1], 4.0 - m[2]]);
    }
}
