//! `tlx predict`: runs a whole-model Keras file or an application on an `.npy` batch or on
//! image files (loaded as Keras's `load_img(target_size=…)` loads them, at the model's input
//! size), writes the outputs to `.npy` (float32) and prints the top classes of each input —
//! with ImageNet names for 1000-class outputs.

use crate::images::{load_img, Resample};
use crate::modelsrc::{self, Loaded, ModelArgs};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tlx_tensor::Tensor;
use weights_tools::RawTensor;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    src: ModelArgs,
    /// One .npy batch [N, H, W, C] (any numeric dtype), or image files (PNG, JPEG, BMP, GIF).
    #[arg(long, value_name = "FILE", num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Where to write the model's outputs (.npy, float32, one row per input).
    #[arg(long, value_name = "Y.npy")]
    output: Option<PathBuf>,
    /// Classes printed per input (0: none). ImageNet names for 1000-class outputs.
    #[arg(long, value_name = "K", default_value_t = 5)]
    top: usize,
    /// Image resampling, as load_img: nearest (Keras's default), bilinear, bicubic, lanczos,
    /// box, hamming.
    #[arg(long, value_name = "METHOD", default_value = "nearest")]
    interpolation: String,
    /// Inputs per forward pass.
    #[arg(long, value_name = "N", default_value_t = 32)]
    batch_size: usize,
    /// Print one JSON object (inputs, output_shape, output, predictions, seconds).
    #[arg(long)]
    json: bool,
}

/// The inputs as one f32 batch: values, shape (first dimension N), a name per row.
struct Batch {
    data: Vec<f32>,
    shape: Vec<usize>,
    names: Vec<String>,
}

fn is_npy(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

fn read_inputs(a: &Args, m: &Loaded) -> Result<Batch, String> {
    if a.input.iter().any(|p| is_npy(p)) {
        let [path] = a.input.as_slice() else {
            return Err("--input takes one .npy file, or image files, not both or several .npy".into());
        };
        let raw = weights_tools::npy::read_npy(path).map_err(|e| e.to_string())?;
        let n = *raw.shape.first().ok_or_else(|| format!("{}: a scalar, not a batch", path.display()))?;
        if n == 0 {
            return Err(format!("{}: an empty batch (shape {:?})", path.display(), raw.shape));
        }
        let names = (0..n).map(|i| format!("{}[{i}]", path.display())).collect();
        return Ok(Batch { data: raw.to_f32_vec(), shape: raw.shape.clone(), names });
    }
    let method = Resample::from_name(&a.interpolation)?;
    let (h, w) = m
        .input_hw
        .ok_or("the model's input size is not fixed: pass --input-size HxW to resize the images to")?;
    let c = m.channels.unwrap_or(3);
    let mut data = Vec::with_capacity(a.input.len() * h * w * c);
    for p in &a.input {
        data.extend(load_img(p, c, (h, w), method)?);
    }
    let names = a.input.iter().map(|p| p.display().to_string()).collect();
    Ok(Batch { data, shape: vec![a.input.len(), h, w, c], names })
}

/// Runs the model over the batch in chunks; returns the outputs and their shape.
fn run_model(m: &Loaded, b: &Batch, batch_size: usize) -> Result<(Vec<f32>, Vec<usize>), String> {
    let n = b.shape[0];
    let per = b.shape[1..].iter().product::<usize>();
    let mut out = Vec::new();
    let mut out_shape = Vec::new();
    for start in (0..n).step_by(batch_size.max(1)) {
        let rows = batch_size.min(n - start);
        let mut shape = b.shape.clone();
        shape[0] = rows;
        let x = Tensor::from_vec(b.data[start * per..(start + rows) * per].to_vec(), shape)
            .map_err(|e| e.to_string())?;
        let y = m.model.predict(&m.prep.apply(x)?).map_err(|e| e.to_string())?;
        out_shape = y.dims().to_vec();
        out.extend(
            y.to_dtype(tlx_tensor::DType::F32).and_then(|t| t.to_vec::<f32>()).map_err(|e| e.to_string())?,
        );
    }
    if let Some(first) = out_shape.first_mut() {
        *first = n;
    }
    Ok((out, out_shape))
}

/// One printed class: index, optional ImageNet (wnid, name), score.
struct Pick {
    index: usize,
    imagenet: Option<(&'static str, &'static str)>,
    score: f64,
}

fn top_k(out: &[f32], shape: &[usize], k: usize) -> Result<Vec<Vec<Pick>>, String> {
    let [n, classes] = *shape else { return Ok(Vec::new()) };
    if k == 0 || classes < 2 {
        return Ok(Vec::new());
    }
    if classes == 1000 {
        let t = Tensor::from_vec(out.to_vec(), [n, classes]).map_err(|e| e.to_string())?;
        let decoded = tlx_models::decode_predictions(&t, k).map_err(|e| e.to_string())?;
        return Ok(decoded
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|p| Pick { index: p.index, imagenet: Some((p.wnid, p.name)), score: p.score })
                    .collect()
            })
            .collect());
    }
    Ok(out
        .chunks_exact(classes)
        .map(|row| {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&i, &j| row[j].total_cmp(&row[i]));
            order
                .into_iter()
                .take(k)
                .map(|i| Pick { index: i, imagenet: None, score: row[i] as f64 })
                .collect()
        })
        .collect())
}

pub fn run(a: Args) -> Result<ExitCode, String> {
    if a.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if let Some(o) = &a.output {
        if !is_npy(o) {
            return Err(format!(
                "--output {}: the outputs are written as .npy; name the file *.npy",
                o.display()
            ));
        }
    }
    Resample::from_name(&a.interpolation)?;
    let start = Instant::now();
    let m = modelsrc::load(&a.src)?;
    if m.model.output_shapes().len() > 1 {
        eprintln!("tlx predict: the model has {} outputs; using the first", m.model.output_shapes().len());
    }
    let batch = read_inputs(&a, &m)?;
    let (out, shape) = run_model(&m, &batch, a.batch_size)?;
    if let Some(path) = &a.output {
        weights_tools::npy::write_npy(path, &RawTensor::from_f32(shape.clone(), &out))
            .map_err(|e| e.to_string())?;
    }
    let picks = if m.classifier { top_k(&out, &shape, a.top)? } else { Vec::new() };
    let seconds = start.elapsed().as_secs_f64();
    if a.json {
        let preds: Vec<Value> = picks
            .iter()
            .map(|row| {
                Value::Array(
                    row.iter()
                        .map(|p| match p.imagenet {
                            Some((wnid, name)) => {
                                json!({"index": p.index, "wnid": wnid, "name": name, "score": p.score})
                            }
                            None => json!({"index": p.index, "score": p.score}),
                        })
                        .collect(),
                )
            })
            .collect();
        let o = json!({
            "inputs": batch.names,
            "output_shape": shape,
            "output": a.output.as_ref().map(|p| p.display().to_string()),
            "predictions": preds,
            "seconds": seconds,
        });
        println!("{o}");
    } else {
        for (name, row) in batch.names.iter().zip(&picks) {
            println!("{name}");
            for (rank, p) in row.iter().enumerate() {
                match p.imagenet {
                    Some((wnid, label)) => {
                        println!("  {:>2}. {wnid} {label:<24} {:.4}", rank + 1, p.score)
                    }
                    None => println!("  {:>2}. class {:<5} {:.4}", rank + 1, p.index, p.score),
                }
            }
        }
        if picks.is_empty() && shape.len() == 2 && shape[1] == 1 {
            for (name, v) in batch.names.iter().zip(&out) {
                println!("{name}: {v:.4}");
            }
        }
        let written = a.output.as_ref().map(|p| format!(", written to {}", p.display())).unwrap_or_default();
        eprintln!(
            "tlx predict: {} input(s), output shape {shape:?}{written} ({seconds:.2} s)",
            batch.names.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
