//! Images as Keras's `keras.utils.load_img(path, color_mode, target_size, interpolation)`
//! loads them: decode, convert the colour mode the way PIL's `Image.convert` does, then resize
//! with PIL's `Image.resize` on the 8-bit pixels — nearest neighbour by default (PIL's scaling
//! transform: source index `⌊(x + ½)·in/out⌋` accumulated in double precision), or PIL's
//! separable resampling filters (`bilinear`, `bicubic`, `lanczos`, `box`, `hamming`: support
//! scaled by the reduction factor, weights in 22-bit fixed point, rounded to 8 bits after each
//! pass). Values come out as f32 0–255, like `img_to_array`.
//!
//! Known difference: JPEG decoding (zune-jpeg) can differ from libjpeg by a few levels.

use std::path::Path;
use tlx_data::folder::{decode_image, ColorMode};

/// PIL's resampling filters, by the names `load_img(interpolation=…)` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
    Box,
    Hamming,
}

impl Resample {
    /// Parses Keras's name.
    pub fn from_name(name: &str) -> Result<Resample, String> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "nearest" => Resample::Nearest,
            "bilinear" => Resample::Bilinear,
            "bicubic" => Resample::Bicubic,
            "lanczos" => Resample::Lanczos,
            "box" => Resample::Box,
            "hamming" => Resample::Hamming,
            _ => {
                return Err(format!(
                    "unknown interpolation '{name}' (nearest, bilinear, bicubic, lanczos, box, hamming)"
                ))
            }
        })
    }

    /// The filter and its support (in source pixels at scale 1).
    fn filter(self) -> (fn(f64) -> f64, f64) {
        match self {
            Resample::Nearest | Resample::Box => (box_filter, 0.5),
            Resample::Bilinear => (bilinear_filter, 1.0),
            Resample::Bicubic => (bicubic_filter, 2.0),
            Resample::Lanczos => (lanczos_filter, 3.0),
            Resample::Hamming => (hamming_filter, 1.0),
        }
    }
}

fn box_filter(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn bicubic_filter(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        1.0
    } else if x >= 1.0 {
        0.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x * (0.54 + 0.46 * x.cos())
    }
}

/// An 8-bit image, `h × w × c`, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image8 {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// Decodes `path` and converts it to `channels` (1: PIL's `L`, 3: `RGB`, 4: `RGBA`).
pub fn decode(path: &Path, channels: usize) -> Result<Image8, String> {
    let mode = match channels {
        1 | 3 => ColorMode::Rgb,
        4 => ColorMode::Rgba,
        c => return Err(format!("images can feed models with 1, 3 or 4 input channels, not {c}")),
    };
    let img = decode_image(path, mode).map_err(|e| e.to_string())?;
    let rgb: Vec<u8> = img.data.iter().map(|v| *v as u8).collect();
    let data = if channels == 1 {
        // PIL's RGB → L: (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (exact on grey images).
        rgb.chunks_exact(3)
            .map(|p| ((19595 * p[0] as u32 + 38470 * p[1] as u32 + 7471 * p[2] as u32 + 0x8000) >> 16) as u8)
            .collect()
    } else {
        rgb
    };
    Ok(Image8 { height: img.height, width: img.width, channels, data })
}

/// `load_img(path, target_size=(h, w), interpolation=…)` then `img_to_array`: HWC f32 0–255.
pub fn load_img(
    path: &Path,
    channels: usize,
    size: (usize, usize),
    method: Resample,
) -> Result<Vec<f32>, String> {
    let img = decode(path, channels)?;
    let out = resize(&img, size, method).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out.data.into_iter().map(f32::from).collect())
}

/// PIL's `Image.resize(size=(w, h), resample)` for `size = (h, w)`; the same size is a copy.
pub fn resize(img: &Image8, size: (usize, usize), method: Resample) -> Result<Image8, String> {
    let (th, tw) = size;
    if th == 0 || tw == 0 || img.height == 0 || img.width == 0 {
        return Err(format!("cannot resize a {}x{} image to {th}x{tw}", img.height, img.width));
    }
    if (th, tw) == (img.height, img.width) {
        return Ok(img.clone());
    }
    if method == Resample::Nearest {
        return Ok(nearest(img, th, tw));
    }
    let mut out = img.clone();
    if tw != img.width {
        out = pass(&out, tw, method, true);
    }
    if th != img.height {
        out = pass(&out, th, method, false);
    }
    Ok(out)
}

/// PIL's `ImagingScaleAffine` source indices: `xo = ½·s`, then `xo += s`, truncated.
fn nearest_indices(input: usize, output: usize) -> Vec<usize> {
    let s = input as f64 / output as f64;
    let mut xo = s * 0.5;
    (0..output)
        .map(|_| {
            let i = (xo as usize).min(input - 1);
            xo += s;
            i
        })
        .collect()
}

fn nearest(img: &Image8, th: usize, tw: usize) -> Image8 {
    let (ys, xs) = (nearest_indices(img.height, th), nearest_indices(img.width, tw));
    let c = img.channels;
    let mut data = Vec::with_capacity(th * tw * c);
    for &y in &ys {
        for &x in &xs {
            let at = (y * img.width + x) * c;
            data.extend_from_slice(&img.data[at..at + c]);
        }
    }
    Image8 { height: th, width: tw, channels: c, data }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output index, the first source
/// index and the fixed-point weights.
fn coefficients(input: usize, output: usize, method: Resample) -> Vec<(usize, Vec<i32>)> {
    let (filter, support) = method.filter();
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let ss = 1.0 / filterscale;
    (0..output)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64).max(xmin as i64) as usize;
            let mut w: Vec<f64> = (xmin..xmax).map(|x| filter((x as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            let one = f64::from(1u32 << PRECISION_BITS);
            let k = w
                .into_iter()
                .map(|v| if v < 0.0 { (-0.5 + v * one) as i32 } else { (0.5 + v * one) as i32 })
                .collect();
            (xmin, k)
        })
        .collect()
}

/// One resampling pass along the width (`horizontal`) or the height, rounding to 8 bits.
fn pass(img: &Image8, out_len: usize, method: Resample, horizontal: bool) -> Image8 {
    let c = img.channels;
    let (h, w) = (img.height, img.width);
    let coeffs = coefficients(if horizontal { w } else { h }, out_len, method);
    let (oh, ow) = if horizontal { (h, out_len) } else { (out_len, w) };
    let mut data = vec![0u8; oh * ow * c];
    for y in 0..oh {
        for x in 0..ow {
            let (start, k) = if horizontal { &coeffs[x] } else { &coeffs[y] };
            for ch in 0..c {
                let mut acc: i64 = 1 << (PRECISION_BITS - 1);
                for (i, &kv) in k.iter().enumerate() {
                    let (sy, sx) = if horizontal { (y, start + i) } else { (start + i, x) };
                    acc += i64::from(img.data[(sy * w + sx) * c + ch]) * i64::from(kv);
                }
                data[(y * ow + x) * c + ch] = (acc >> PRECISION_BITS).clamp(0, 255) as u8;
            }
        }
    }
    Image8 { height: oh, width: ow, channels: c, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(h: usize, w: usize) -> Image8 {
        let data = (0..h * w).map(|i| ((i * 37) % 256) as u8).collect();
        Image8 { height: h, width: w, channels: 1, data }
    }

    #[test]
    fn nearest_picks_pixel_centres_like_pil() {
        // PIL: Image.resize((2,), NEAREST) of 4 pixels takes 1 and 3; 3 → 5 takes 0,0,1,1,2.
        assert_eq!(nearest_indices(4, 2), vec![1, 3]);
        assert_eq!(nearest_indices(3, 5), vec![0, 0, 1, 2, 2]);
        assert_eq!(nearest_indices(7, 7), (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn filters_keep_constants_and_same_size_is_a_copy() {
        let flat = Image8 { height: 5, width: 7, channels: 3, data: vec![200; 105] };
        for m in [Resample::Bilinear, Resample::Bicubic, Resample::Lanczos, Resample::Box, Resample::Hamming]
        {
            let r = resize(&flat, (3, 11), m).unwrap();
            assert_eq!((r.height, r.width, r.channels), (3, 11, 3));
            assert!(r.data.iter().all(|&v| v == 200), "{m:?}");
        }
        let g = gradient(4, 6);
        assert_eq!(resize(&g, (4, 6), Resample::Bicubic).unwrap(), g);
    }

    #[test]
    fn bilinear_halving_averages_pairs() {
        // Downscaling by 2 with PIL's bilinear: support 2, weights ¼ ¾ ¾ ¼ around each pair.
        let img = Image8 { height: 1, width: 4, channels: 1, data: vec![0, 100, 200, 40] };
        let r = resize(&img, (1, 2), Resample::Bilinear).unwrap();
        // Output 0: centre 1.0, taps x=0..2 weights (0.75, 0.75, 0.25)/1.75.
        let e0 = ((0.0 * 0.75 + 100.0 * 0.75 + 200.0 * 0.25) / 1.75f64).round() as u8;
        assert_eq!(r.data[0], e0);
        assert!(Resample::from_name("cubic").is_err());
    }
}
