//! Batching: [`BatchConfig`] (batch size, seeded shuffle reshuffled every epoch, drop_remainder,
//! augmentation, rescale, prefetch depth) turns a [`Dataset`] into [`Batches`], whose
//! [`epoch`](Batches::epoch) iterates `Batch { x, y }` tensors (x f32 NHWC; y i64 `[b]` or f32
//! `[b, k]`).
//!
//! Everything is a function of (seed, epoch, batch index): the order of epoch `e` comes from
//! `Rng::new(mix(seed, e))`, and batch `b`'s augmentation from `Rng::new(mix(aug_seed, e, b))` with
//! parameters drawn image by image. Prefetching, rayon's thread count and the point where an
//! epoch is resumed ([`epoch_from`](Batches::epoch_from)) never change a batch.
//!
//! With `prefetch(k)` (k > 0) a background thread prepares up to k batches ahead through a
//! bounded channel while the caller's step runs; dropping the epoch stops and joins it.

use crate::augment::Augment;
use crate::dataset::{Dataset, Labels};
use crate::error::{Error, Result};
use crate::examples::example_len;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver, RecvError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use tlx_tensor::{Rng, Tensor};

/// How a dataset is cut into batches.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Examples per batch (> 0).
    pub batch_size: usize,
    /// Shuffle seed; `None` keeps the dataset's order.
    pub shuffle: Option<u64>,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_remainder: bool,
    /// Batches prepared ahead on a background thread (0: prepared on demand).
    pub prefetch: usize,
    /// Random augmentation of images (`[h, w, c]` examples) and its seed.
    pub augment: Option<(Augment, u64)>,
    /// Multiplies every x value after augmentation (Keras's `rescale`, e.g. 1/255).
    pub rescale: Option<f32>,
}

impl BatchConfig {
    /// Batches of `batch_size` in the dataset's order, no augmentation, no prefetch.
    pub fn new(batch_size: usize) -> BatchConfig {
        BatchConfig {
            batch_size,
            shuffle: None,
            drop_remainder: false,
            prefetch: 0,
            augment: None,
            rescale: None,
        }
    }

    /// Shuffles every epoch, deterministically from `seed` and the epoch number.
    pub fn shuffle(mut self, seed: u64) -> BatchConfig {
        self.shuffle = Some(seed);
        self
    }

    /// Drops a last, smaller batch.
    pub fn drop_remainder(mut self, on: bool) -> BatchConfig {
        self.drop_remainder = on;
        self
    }

    /// Prepares up to `depth` batches ahead on a background thread.
    pub fn prefetch(mut self, depth: usize) -> BatchConfig {
        self.prefetch = depth;
        self
    }

    /// Augments every image with `augment`, drawing from `seed`.
    pub fn augment(mut self, augment: Augment, seed: u64) -> BatchConfig {
        self.augment = Some((augment, seed));
        self
    }

    /// Multiplies x by `factor` after augmentation.
    pub fn rescale(mut self, factor: f32) -> BatchConfig {
        self.rescale = Some(factor);
        self
    }
}

/// One batch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Inputs, f32 `[b, ...example_shape]`.
    pub x: Tensor,
    /// Targets: i64 `[b]` for classes, f32 `[b, k]` for values.
    pub y: Tensor,
    /// The dataset positions of the examples, in batch order.
    pub positions: Vec<usize>,
}

/// A dataset cut into batches; iterate an epoch with [`epoch`](Batches::epoch).
#[derive(Clone, Debug)]
pub struct Batches {
    dataset: Dataset,
    config: Arc<BatchConfig>,
}

/// SplitMix64 of a few words: independent seeds per (seed, epoch, batch).
fn mix(words: &[u64]) -> u64 {
    let mut h = 0x243F_6A88_85A3_08D3u64;
    for &w in words {
        let mut z = (h ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

impl Dataset {
    /// Cuts this dataset into batches as `config` says.
    pub fn batches(&self, config: BatchConfig) -> Result<Batches> {
        if config.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if let Some((aug, _)) = &config.augment {
            aug.validate()?;
            if self.example_shape().len() != 3 {
                return Err(Error::invalid(
                    "augment",
                    format!(
                        "augmentation needs [h, w, c] images, the examples are {:?}",
                        self.example_shape()
                    ),
                ));
            }
        }
        example_len("batches", self.example_shape())?;
        Ok(Batches { dataset: self.clone(), config: Arc::new(config) })
    }
}

impl Batches {
    /// Batches per epoch.
    pub fn len(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_remainder {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// True when an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dataset being batched.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The order of the dataset's positions in epoch `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if let Some(seed) = self.config.shuffle {
            Rng::new(mix(&[seed, epoch])).shuffle(&mut order);
        }
        order
    }

    /// Batch `index` of epoch `epoch` (random access; an epoch iterator avoids recomputing the order).
    pub fn batch(&self, epoch: u64, index: usize) -> Result<Batch> {
        if index >= self.len() {
            return Err(Error::invalid("batch", format!("batch {index} of an epoch of {}", self.len())));
        }
        make_batch(&self.dataset, &self.config, &self.order(epoch), epoch, index)
    }

    /// Iterates the batches of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> Epoch {
        self.epoch_from(epoch, 0)
    }

    /// Iterates the batches of epoch `epoch` from batch `start` on (resuming mid-epoch gives the
    /// same batches as an uninterrupted epoch).
    pub fn epoch_from(&self, epoch: u64, start: usize) -> Epoch {
        let order: Arc<[usize]> = self.order(epoch).into();
        let end = self.len();
        let start = start.min(end);
        if self.config.prefetch == 0 {
            return Epoch {
                inner: Inner::Direct { batches: self.clone(), order, epoch, next: start, end },
                remaining: end - start,
            };
        }
        let (tx, rx) = sync_channel(self.config.prefetch);
        let (ds, cfg) = (self.dataset.clone(), self.config.clone());
        let handle = std::thread::Builder::new().name("tlx-data-prefetch".into()).spawn(move || {
            for b in start..end {
                let r = make_batch(&ds, &cfg, &order, epoch, b);
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    return;
                }
            }
        });
        let inner = match handle {
            Ok(h) => Inner::Prefetch { rx: Some(rx), handle: Some(h) },
            Err(e) => Inner::Failed(Some(Error::Io { path: "prefetch thread".into(), source: e })),
        };
        Epoch { inner, remaining: end - start }
    }
}

enum Inner {
    Direct { batches: Batches, order: Arc<[usize]>, epoch: u64, next: usize, end: usize },
    Prefetch { rx: Option<Receiver<Result<Batch>>>, handle: Option<JoinHandle<()>> },
    Failed(Option<Error>),
}

/// The batches of one epoch, in order. An error ends the epoch.
pub struct Epoch {
    inner: Inner,
    remaining: usize,
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.remaining == 0 {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Direct { batches, order, epoch, next, end } => {
                debug_assert!(*next < *end);
                let r = make_batch(&batches.dataset, &batches.config, order, *epoch, *next);
                *next += 1;
                r
            }
            Inner::Prefetch { rx, .. } => match rx.as_ref().map(receive) {
                Some(Ok(r)) => r,
                _ => Err(Error::invalid("prefetch", "the prefetch thread stopped unexpectedly")),
            },
            Inner::Failed(e) => Err(e.take().unwrap_or_else(|| Error::invalid("prefetch", "no thread"))),
        };
        self.remaining = if item.is_err() { 0 } else { self.remaining - 1 };
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        if let Inner::Prefetch { rx, handle } = &mut self.inner {
            // Closing the channel first makes a blocked send fail, so the thread ends.
            drop(rx.take());
            if let Some(h) = handle.take() {
                if rayon::current_thread_index().is_some() {
                    // The thread may be inside a parallel part queued to this pool.
                    wait_until(|| h.is_finished());
                }
                let _ = h.join();
            }
        }
    }
}

/// The prefetch thread's next batch. The thread prepares batches with rayon, so its parallel
/// parts are queued to the pool; a consumer that is itself one of the pool's threads (a
/// training loop run by `tlx_cpu::on_worker`) must not block while waiting, or a one-thread
/// pool would never run them. It runs the pool's pending work instead.
fn receive<T>(rx: &Receiver<T>) -> std::result::Result<T, RecvError> {
    if rayon::current_thread_index().is_none() {
        return rx.recv();
    }
    let mut item = None;
    wait_until(|| match rx.try_recv() {
        Ok(v) => {
            item = Some(Ok(v));
            true
        }
        Err(TryRecvError::Disconnected) => {
            item = Some(Err(RecvError));
            true
        }
        Err(TryRecvError::Empty) => false,
    });
    item.expect("wait_until returns once the condition held")
}

/// Returns once `done()` holds, running the pool's pending work meanwhile (called on a rayon
/// thread, see [`receive`]), backing off to short sleeps when there is none.
fn wait_until(mut done: impl FnMut() -> bool) {
    let mut idle_rounds = 0u32;
    while !done() {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_rounds = 0;
        } else if idle_rounds < 64 {
            idle_rounds += 1;
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

fn make_batch(ds: &Dataset, cfg: &BatchConfig, order: &[usize], epoch: u64, index: usize) -> Result<Batch> {
    let lo = index * cfg.batch_size;
    let hi = (lo + cfg.batch_size).min(order.len());
    debug_assert!(lo < hi);
    let positions = order[lo..hi].to_vec();
    let mut x = read_x(ds, &positions)?;
    if let Some((aug, seed)) = &cfg.augment {
        let s = ds.example_shape();
        let mut rng = Rng::new(mix(&[*seed, epoch, index as u64]));
        aug.augment_batch(&mut x, [s[0], s[1], s[2]], &mut rng)?;
    }
    if let Some(f) = cfg.rescale {
        if x.len() >= SERIAL_COPY_LIMIT {
            x.par_iter_mut().with_min_len(4096).for_each(|v| *v *= f);
        } else {
            x.iter_mut().for_each(|v| *v *= f);
        }
    }
    let x = x_tensor(ds, x, positions.len())?;
    let y = y_tensor(ds, &positions)?;
    Ok(Batch { x, y, positions })
}

/// Values of a batch below which copying it from memory (or rescaling it) stays on the
/// prefetch thread: handing the parts to the pool costs that thread a sleep and a wake-up,
/// more than copying a Fashion-MNIST batch (32 × 784 values) takes.
const SERIAL_COPY_LIMIT: usize = 1 << 18;

/// Reads the examples at `positions` into one f32 buffer: in parallel when they are decoded
/// or the batch is large.
fn read_x(ds: &Dataset, positions: &[usize]) -> Result<Vec<f32>> {
    let stride = example_len("batch", ds.example_shape())?;
    let total = stride
        .checked_mul(positions.len())
        .ok_or_else(|| Error::invalid("batch", "the batch's size overflows"))?;
    let mut x = vec![0f32; total];
    if stride > 0 {
        if ds.examples().in_memory() && total < SERIAL_COPY_LIMIT {
            x.chunks_mut(stride).zip(positions).try_for_each(|(out, &p)| ds.read_x(p, out))?;
        } else {
            x.par_chunks_mut(stride).zip(positions).try_for_each(|(out, &p)| ds.read_x(p, out))?;
        }
    }
    Ok(x)
}

fn x_tensor(ds: &Dataset, x: Vec<f32>, n: usize) -> Result<Tensor> {
    let mut shape = vec![n];
    shape.extend_from_slice(ds.example_shape());
    Ok(Tensor::from_vec(x, shape)?)
}

fn y_tensor(ds: &Dataset, positions: &[usize]) -> Result<Tensor> {
    Ok(match ds.labels() {
        Labels::Classes(c) => {
            Tensor::from_vec(positions.iter().map(|&p| c[p]).collect::<Vec<i64>>(), [positions.len()])?
        }
        Labels::Values { data, width } => {
            let v: Vec<f32> =
                positions.iter().flat_map(|&p| &data[p * width..(p + 1) * width]).copied().collect();
            Tensor::from_vec(v, [positions.len(), *width])?
        }
    })
}

/// x and y tensors of the examples at `positions`, no augmentation.
pub(crate) fn assemble(ds: &Dataset, positions: &[usize]) -> Result<(Tensor, Tensor)> {
    let x = read_x(ds, positions)?;
    Ok((x_tensor(ds, x, positions.len())?, y_tensor(ds, positions)?))
}
