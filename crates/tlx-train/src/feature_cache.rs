//! The feature cache: when every layer below the trainable head is frozen and deterministic
//! (see `Model::frozen_prefix_cut`), `fit` runs that base once over the training (and
//! validation) examples, keeps its outputs — in memory, or in a memory-mapped temporary file
//! when they are large — and trains the head on them. The examples keep their positions, so
//! shuffles, batches and weights are the same as without the cache, and so are the results.
//! Augmentation turns it off (the base's input changes every epoch).

use crate::error::{Error, Result};
use crate::fit::FitOptions;
use crate::trainer::{mix, StepOutput, Trainer};
use crate::Logs;
use std::sync::Arc;
use tlx_data::{BatchConfig, Dataset, Examples, Labels};
use tlx_tensor::{DType, Tensor};

/// Whether `fit` caches a frozen base's outputs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum FeatureCache {
    /// When the model has a frozen prefix and no augmentation is asked for.
    #[default]
    Auto,
    /// Never.
    Off,
}

/// Features above this many bytes go to a memory-mapped temporary file.
pub const IN_MEMORY_LIMIT: usize = 2 << 30;

/// Cached features stored in a memory-mapped file (for sets larger than memory wants).
struct MappedExamples {
    map: memmap2::Mmap,
    shape: Vec<usize>,
    n: usize,
    stride: usize,
    _file: tempfile_guard::TempFile,
}

mod tempfile_guard {
    /// A file deleted when dropped.
    pub struct TempFile(pub std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Examples for MappedExamples {
    fn len(&self) -> usize {
        self.n
    }
    fn example_shape(&self) -> &[usize] {
        &self.shape
    }
    fn read(&self, i: usize, out: &mut [f32]) -> tlx_data::Result<()> {
        let bytes = &self.map[i * self.stride * 4..(i + 1) * self.stride * 4];
        for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        format!("{} × {:?} f32 cached features (memory-mapped)", self.n, self.shape)
    }
}

/// A frozen base's outputs for the training set, and how to train the head on them.
pub struct CachedFeatures {
    /// The node the base ends at.
    pub cut: usize,
    /// Training features with the original labels, in the original positions.
    pub train: Dataset,
    /// Whether the features live in a memory-mapped file.
    pub on_disk: bool,
}

/// Decides whether to cache and, if so, computes the training features.
pub fn prepare(trainer: &Trainer, train: &Dataset, opts: &FitOptions) -> Result<Option<CachedFeatures>> {
    if opts.feature_cache == FeatureCache::Off || opts.augment.is_some() {
        return Ok(None);
    }
    let Some(cut) = trainer.model().frozen_prefix_cut() else { return Ok(None) };
    let (train, on_disk) = compute(trainer, cut, train, opts)?;
    Ok(Some(CachedFeatures { cut, train, on_disk }))
}

fn compute(trainer: &Trainer, cut: usize, data: &Dataset, opts: &FitOptions) -> Result<(Dataset, bool)> {
    let model = trainer.model();
    let shape: Vec<usize> = model
        .node_output_shape(cut)?
        .iter()
        .skip(1)
        .map(|d| {
            d.ok_or_else(|| Error::Invalid("feature cache: the base's output has unknown dimensions".into()))
        })
        .collect::<Result<_>>()?;
    let stride: usize = shape.iter().product();
    let n = data.len();
    let bytes = n * stride * 4;
    let mut config = BatchConfig::new(opts.batch_size.clamp(1, 256)).prefetch(2);
    if let Some(r) = opts.rescale {
        config = config.rescale(r);
    }
    let batches = data.batches(config)?;
    let labels_classes = matches!(data.labels(), Labels::Classes(_));
    let mut ys_i: Vec<i64> = Vec::new();
    let mut ys_f: Vec<f32> = Vec::new();
    let mut width = 0;
    let on_disk = bytes > IN_MEMORY_LIMIT;
    let mut mem: Vec<f32> = Vec::new();
    let mut file_out: Option<(std::io::BufWriter<std::fs::File>, std::path::PathBuf)> = None;
    if on_disk {
        let path = std::env::temp_dir().join(format!(
            "tlx-features-{}-{}.bin",
            std::process::id(),
            mix(opts.seed, n as u64)
        ));
        let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        file_out = Some((std::io::BufWriter::with_capacity(1 << 22, f), path));
    } else {
        mem.reserve_exact(n * stride);
    }
    for batch in batches.epoch(0) {
        let b = batch?;
        let f = model.forward_to(cut, &crate::fit::preprocessed(opts, b.x)?)?.contiguous()?;
        let v = f.to_vec::<f32>()?;
        match &mut file_out {
            Some((w, path)) => {
                use std::io::Write;
                let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                w.write_all(&raw).map_err(|e| Error::io(path, e))?;
            }
            None => mem.extend_from_slice(&v),
        }
        if labels_classes {
            ys_i.extend(b.y.to_vec::<i64>()?);
        } else {
            width = b.y.dims().get(1).copied().unwrap_or(1);
            ys_f.extend(b.y.to_dtype(DType::F32)?.to_vec::<f32>()?);
        }
    }
    let labels = if labels_classes { Labels::Classes(ys_i) } else { Labels::Values { data: ys_f, width } };
    let examples: Arc<dyn Examples> = match file_out {
        Some((w, path)) => {
            let f = w.into_inner().map_err(|e| Error::io(&path, e.into_error()))?;
            drop(f);
            let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            // SAFETY: the file is private to this process (a fresh name in the temp dir), fully
            // written and closed before mapping, and never modified while mapped.
            let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(&path, e))?;
            Arc::new(MappedExamples {
                map,
                shape: shape.clone(),
                n,
                stride,
                _file: tempfile_guard::TempFile(path),
            })
        }
        None => {
            let mut full = vec![n];
            full.extend(&shape);
            Arc::new(tlx_data::ArrayExamples::from_f32(mem, &full)?)
        }
    };
    Ok((Dataset::new(examples, labels)?, on_disk))
}

impl CachedFeatures {
    /// Features of another dataset (validation) through the same base.
    pub fn features_of(&self, trainer: &Trainer, data: &Dataset, opts: &FitOptions) -> Result<Dataset> {
        Ok(compute(trainer, self.cut, data, opts)?.0)
    }

    /// One training step of the head on a batch of features.
    pub fn train_step(
        &self,
        trainer: &mut Trainer,
        f: &Tensor,
        y: &Tensor,
        sw: Option<&Tensor>,
    ) -> Result<StepOutput> {
        let batch_size = f.dims().first().copied().unwrap_or(1);
        let cut = self.cut;
        trainer.step_on(batch_size, y, sw, |m, ctx| Ok(m.forward_from(cut, f, ctx)?.swap_remove(0)))
    }

    /// Loss and metrics of the head on cached features (inference mode).
    pub fn evaluate(&self, trainer: &Trainer, data: &Dataset, batch_size: usize) -> Result<Logs> {
        let cut = self.cut;
        trainer.evaluate_batches(data, BatchConfig::new(batch_size).prefetch(1), |t, f, y| {
            let batch_size = f.dims().first().copied().unwrap_or(1);
            t.test_on(batch_size, y, None, |m, ctx| Ok(m.forward_from(cut, f, ctx)?.swap_remove(0)))
        })
    }
}
