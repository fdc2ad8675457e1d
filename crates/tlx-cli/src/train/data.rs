//! Where `tlx train` reads its data: an image folder (one sub-folder per class, resized like
//! Keras's `image_dataset_from_directory`), an IDX directory (MNIST, Fashion-MNIST), a CIFAR-10
//! binary directory, or `.npy` arrays — with the validation data from a split or a second
//! source, and the class names when known.

use std::path::{Path, PathBuf};
use tlx_data::folder::{image_dataset_from_directory, image_dataset_from_directory_split, FolderOptions};
use tlx_data::{Dataset, Split};

/// The training and validation data of a run.
pub struct RunData {
    pub train: Dataset,
    pub val: Option<Dataset>,
    /// What was read, for the log.
    pub description: String,
    /// The number of classes (for the head), when labels are classes.
    pub classes: Option<usize>,
}

/// What kind of source a directory is.
#[derive(Debug, PartialEq, Eq)]
pub enum SourceKind {
    Folder,
    Idx,
    Cifar10,
}

/// Recognises a data directory by its files.
pub fn kind_of(dir: &Path) -> Result<SourceKind, String> {
    let has = |names: &[&str]| names.iter().any(|n| dir.join(n).exists());
    if has(&["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]) {
        return Ok(SourceKind::Idx);
    }
    if has(&["data_batch_1.bin", "cifar-10-batches-bin/data_batch_1.bin"]) {
        return Ok(SourceKind::Cifar10);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if entries.flatten().any(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.')) {
        return Ok(SourceKind::Folder);
    }
    Err(format!(
        "{}: not an image folder (one sub-folder per class), an IDX directory (train-images-idx3-ubyte.gz) or a CIFAR-10 directory (data_batch_1.bin)",
        dir.display()
    ))
}

/// Options of [`load`].
pub struct DataOptions {
    pub data: Option<PathBuf>,
    pub val_data: Option<PathBuf>,
    pub x: Option<PathBuf>,
    pub y: Option<PathBuf>,
    pub validation_split: Option<f64>,
    /// `(height, width)` images are resized to (folders).
    pub image_size: (usize, usize),
    pub seed: u64,
    /// Use at most this many training examples.
    pub limit: Option<usize>,
}

fn folder_options(o: &DataOptions) -> FolderOptions {
    FolderOptions { image_size: o.image_size, seed: Some(o.seed as u32), ..FolderOptions::default() }
}

fn load_one(dir: &Path, o: &DataOptions, split: Split) -> Result<Dataset, String> {
    let e = |e: tlx_data::Error| e.to_string();
    Ok(match kind_of(dir)? {
        SourceKind::Folder => image_dataset_from_directory(dir, &folder_options(o)).map_err(e)?,
        SourceKind::Idx => tlx_data::idx::load_mnist(dir, split).map_err(e)?,
        SourceKind::Cifar10 => {
            let d = if dir.join("cifar-10-batches-bin").is_dir() {
                dir.join("cifar-10-batches-bin")
            } else {
                dir.into()
            };
            tlx_data::cifar::load_cifar10(d, split).map_err(e)?
        }
    })
}

/// Reads the training (and validation) data as the flags say.
pub fn load(o: &DataOptions) -> Result<RunData, String> {
    let (mut train, mut val, description) = match (&o.data, &o.x, &o.y) {
        (Some(dir), None, None) => {
            let kind = kind_of(dir)?;
            match (kind, o.validation_split) {
                (SourceKind::Folder, Some(split)) => {
                    let fo = FolderOptions { validation_split: Some(split), ..folder_options(o) };
                    let (t, v) = image_dataset_from_directory_split(dir, &fo).map_err(|e| e.to_string())?;
                    (t, Some(v), format!("image folder {} ({split} held out for validation)", dir.display()))
                }
                (kind, _) => {
                    let t = load_one(dir, o, Split::Train)?;
                    (t, None, format!("{kind:?} data in {}", dir.display()).to_lowercase())
                }
            }
        }
        (None, Some(x), Some(y)) => {
            let t = tlx_data::arrays::load_npy(x, y).map_err(|e| e.to_string())?;
            (t, None, format!("arrays {} and {}", x.display(), y.display()))
        }
        (None, None, None) => return Err("no data: give --data DIR or --x X.npy --y Y.npy".into()),
        _ => return Err("give either --data DIR or both --x X.npy and --y Y.npy".into()),
    };
    if let Some(dir) = &o.val_data {
        val = Some(load_one(dir, o, Split::Test)?);
    }
    if let Some(n) = o.limit {
        train = train.take(n.min(train.len()));
    }
    if val.is_none() {
        if let Some(split) = o.validation_split {
            let (t, v) = train.split(split).map_err(|e| e.to_string())?;
            train = t;
            val = Some(v);
        }
    }
    if train.is_empty() {
        return Err(format!("{description}: no training examples"));
    }
    // Decode image files once when they fit in memory (1 GiB of f32 values).
    let values = |d: &Dataset| d.len() * d.example_shape().iter().product::<usize>();
    let from_files = o.data.as_deref().is_some_and(|d| kind_of(d).ok() == Some(SourceKind::Folder));
    if from_files && values(&train) + val.as_ref().map_or(0, values) < (1 << 28) {
        train = train.cache().map_err(|e| e.to_string())?;
        if let Some(v) = val.take() {
            val = Some(v.cache().map_err(|e| e.to_string())?);
        }
    }
    let classes = match train.num_classes() {
        Ok(n) => Some(n.max(val.as_ref().and_then(|v| v.num_classes().ok()).unwrap_or(0))),
        Err(_) => None,
    };
    Ok(RunData { train, val, description, classes })
}
