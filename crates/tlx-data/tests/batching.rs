//! Datasets and batches: subsets and class filters, Keras-style splits, per-epoch seeded
//! shuffles, drop_remainder, prefetch (same batches, early drop, errors), resuming mid-epoch,
//! augmentation that depends only on the seeds, one-hot and float targets, tensors in and out.

use std::sync::Arc;
use tlx_data::{
    ArrayExamples, Augment, BatchConfig, Dataset, Error, Examples, LabelRef, Labels, Result, ShiftRange,
};
use tlx_tensor::{DType, Tensor};

/// `n` 4×4×1 images whose every pixel is the example's index; labels `i % 10`.
fn numbered(n: usize) -> Dataset {
    let x: Vec<f32> = (0..n).flat_map(|i| std::iter::repeat_n(i as f32, 16)).collect();
    Dataset::from_f32(x, &[n, 4, 4, 1], Labels::Classes((0..n as i64).map(|i| i % 10).collect())).unwrap()
}

/// The example indices of each batch of an epoch (read back from the pixels).
fn epoch_ids(b: &tlx_data::Batches, e: u64) -> Vec<Vec<usize>> {
    b.epoch(e)
        .map(|r| {
            let batch = r.unwrap();
            let x = batch.x.to_vec::<f32>().unwrap();
            let y = batch.y.to_vec::<i64>().unwrap();
            let ids: Vec<usize> = x.chunks(16).map(|c| c[0] as usize).collect();
            assert!(ids.iter().zip(&y).all(|(&i, &l)| i as i64 % 10 == l), "labels follow their images");
            ids
        })
        .collect()
}

#[test]
fn batching_shapes_and_remainders() {
    let ds = numbered(10);
    let b = ds.batches(BatchConfig::new(4)).unwrap();
    assert_eq!(b.len(), 3);
    let ids = epoch_ids(&b, 0);
    assert_eq!(ids, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    let first = b.batch(0, 0).unwrap();
    assert_eq!(first.x.dims(), [4, 4, 4, 1]);
    assert_eq!((first.x.dtype(), first.y.dtype()), (DType::F32, DType::I64));
    let b = ds.batches(BatchConfig::new(4).drop_remainder(true)).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(epoch_ids(&b, 0).len(), 2);
    assert!(matches!(ds.batches(BatchConfig::new(0)), Err(Error::Invalid { .. })));
}

#[test]
fn shuffles_are_seeded_and_change_every_epoch() {
    let ds = numbered(50);
    let b = ds.batches(BatchConfig::new(8).shuffle(42)).unwrap();
    let e0 = epoch_ids(&b, 0);
    let e1 = epoch_ids(&b, 1);
    assert_eq!(
        e0,
        epoch_ids(&ds.batches(BatchConfig::new(8).shuffle(42)).unwrap(), 0),
        "same seed, same order"
    );
    assert_ne!(e0, e1, "reshuffled each epoch");
    assert_ne!(e0, epoch_ids(&ds.batches(BatchConfig::new(8).shuffle(43)).unwrap(), 0));
    for e in [&e0, &e1] {
        let mut all: Vec<usize> = e.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>(), "every example once per epoch");
    }
    // Resuming mid-epoch gives the same remaining batches.
    assert_eq!(b.epoch_from(1, 3).map(|r| r.unwrap().positions).collect::<Vec<_>>(), {
        b.epoch(1).skip(3).map(|r| r.unwrap().positions).collect::<Vec<_>>()
    });
}

#[test]
fn prefetch_gives_the_same_batches() {
    let ds = numbered(37);
    let aug =
        Augment { rotation_range: 30.0, width_shift_range: ShiftRange::Uniform(0.2), ..Augment::default() };
    let plain = BatchConfig::new(5).shuffle(1).augment(aug.clone(), 9).rescale(0.5);
    let direct = ds.batches(plain.clone()).unwrap();
    let ahead = ds.batches(plain.prefetch(2)).unwrap();
    for e in 0..3 {
        let a: Vec<Vec<f32>> = direct.epoch(e).map(|r| r.unwrap().x.to_vec::<f32>().unwrap()).collect();
        let b: Vec<Vec<f32>> = ahead.epoch(e).map(|r| r.unwrap().x.to_vec::<f32>().unwrap()).collect();
        assert_eq!(a, b, "epoch {e}");
    }
    // Dropping an epoch early stops its thread (no hang, no leak of a blocked sender).
    let mut it = ahead.epoch(5);
    assert!(it.next().unwrap().is_ok());
    drop(it);
    // The same batches on a one-thread rayon pool: augmentation does not depend on threads.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let one: Vec<Vec<f32>> =
        pool.install(|| direct.epoch(2).map(|r| r.unwrap().x.to_vec::<f32>().unwrap()).collect());
    let many: Vec<Vec<f32>> = direct.epoch(2).map(|r| r.unwrap().x.to_vec::<f32>().unwrap()).collect();
    assert_eq!(one, many);
}

/// A source whose example 3 cannot be read; `.0`: whether it says it is in memory (batches
/// then read on one thread, else in parallel).
struct Flaky(bool);

impl Examples for Flaky {
    fn len(&self) -> usize {
        6
    }
    fn example_shape(&self) -> &[usize] {
        &[2]
    }
    fn read(&self, i: usize, out: &mut [f32]) -> Result<()> {
        if i == 3 {
            return Err(Error::Format { path: "flaky/3.png".into(), what: "broken".into() });
        }
        out.fill(i as f32);
        Ok(())
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
    fn in_memory(&self) -> bool {
        self.0
    }
}

#[test]
fn read_errors_end_the_epoch_with_the_error() {
    // Arrays say they are in memory (and so do reshaped views of them).
    assert!(numbered(4).examples().in_memory());
    assert!(numbered(4).reshape_examples(&[16, 1, 1]).unwrap().examples().in_memory());
    for (in_memory, prefetch) in [(false, 0), (false, 3), (true, 0), (true, 3)] {
        let ds = Dataset::new(Arc::new(Flaky(in_memory)), Labels::Classes(vec![0; 6])).unwrap();
        let b = ds.batches(BatchConfig::new(2).prefetch(prefetch)).unwrap();
        let items: Vec<_> = b.epoch(0).collect();
        assert_eq!(items.len(), 2, "in memory {in_memory}, prefetch {prefetch}");
        assert_eq!(items[0].as_ref().unwrap().x.to_vec::<f32>().unwrap(), [0.0, 0.0, 1.0, 1.0]);
        let e = items[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("flaky/3.png"), "{e}");
    }
}

#[test]
fn subsets_filters_and_splits() {
    let ds = numbered(100);
    // Task A: classes 0-4; task B: classes 5 and 6 relabelled 0/1, 3 examples each.
    let a = ds.filter_classes(&[0, 1, 2, 3, 4]).unwrap();
    assert_eq!(a.len(), 50);
    assert!(a.classes().unwrap().iter().all(|&c| c < 5));
    let b = ds.select_classes(&[5, 6]).unwrap().shuffled(3).take_per_class(3).unwrap();
    assert_eq!(b.len(), 6);
    assert_eq!(b.class_counts().unwrap().into_iter().collect::<Vec<_>>(), [(0, 3), (1, 3)]);
    for p in 0..b.len() {
        let x = b.x(p).unwrap().to_vec::<f32>().unwrap()[0] as i64;
        let LabelRef::Class(c) = b.label(p) else { panic!() };
        assert_eq!(x % 10, c + 5, "labels follow the relabelling");
    }
    assert!(ds.select_classes(&[1, 1]).is_err());
    // Keras's validation_split: the last 20% before shuffling.
    let (train, val) = ds.split(0.2).unwrap();
    assert_eq!((train.len(), val.len()), (80, 20));
    assert_eq!(val.x(0).unwrap().to_vec::<f32>().unwrap()[0], 80.0);
    assert!(ds.split(1.0).is_err());
    let odd = ds.filter(|p, _| p % 2 == 1);
    assert_eq!(odd.len(), 50);
    let relabelled = ds.relabel(|c| (c == 9).then_some(1)).unwrap();
    assert_eq!(relabelled.len(), 10);
    assert_eq!(ds.num_classes().unwrap(), 10);
    assert!(ds.select(&[100]).is_err());
    assert_eq!(ds.select(&[7, 7]).unwrap().classes().unwrap(), [7, 7]);
}

#[test]
fn targets_tensors_and_cache() {
    let ds = numbered(6).with_class_names((0..10).map(|c| format!("c{c}")).collect());
    let hot = ds.one_hot(10).unwrap();
    let batch = hot.batches(BatchConfig::new(4)).unwrap().batch(0, 0).unwrap();
    assert_eq!(batch.y.dims(), [4, 10]);
    assert_eq!(batch.y.to_vec::<f32>().unwrap()[10..20], [0., 1., 0., 0., 0., 0., 0., 0., 0., 0.]);
    assert!(ds.one_hot(3).is_err());
    let (x, y) = ds.to_tensors().unwrap();
    assert_eq!(x.dims(), [6, 4, 4, 1]);
    assert_eq!(y.to_vec::<i64>().unwrap(), [0, 1, 2, 3, 4, 5]);
    let back = Dataset::from_tensors(&x, &y).unwrap();
    assert_eq!(back.to_tensors().unwrap().0.to_vec::<f32>().unwrap(), x.to_vec::<f32>().unwrap());
    let cached = ds.shuffled(1).cache().unwrap();
    assert_eq!(cached.class_names().unwrap()[3], "c3");
    assert_eq!(cached.classes(), ds.shuffled(1).classes());
    let flat = ds.reshape_examples(&[16]).unwrap();
    assert_eq!(flat.to_tensors().unwrap().0.dims(), [6, 16]);
    assert!(ds.reshape_examples(&[15]).is_err());
    // Float targets of width 2, u8 inputs.
    let xt = Tensor::from_vec((0..12u8).collect::<Vec<_>>(), [3, 2, 2]).unwrap();
    let yt = Tensor::from_vec(vec![0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0], [3, 2]).unwrap();
    let reg = Dataset::from_tensors(&xt, &yt).unwrap();
    let (bx, by) = reg.to_tensors().unwrap();
    assert_eq!((bx.dtype(), by.dims()), (DType::F32, &[3usize, 2][..]));
    assert!(reg.class_counts().is_err());
    assert!(Dataset::from_tensors(&xt, &Tensor::from_vec(vec![1i64, 2], [2]).unwrap()).is_err());
    assert!(ArrayExamples::from_u8(vec![0; 5], &[2, 2]).is_err());
}

#[test]
fn augmentation_needs_images() {
    let ds = numbered(4).reshape_examples(&[16]).unwrap();
    let e = ds.batches(BatchConfig::new(2).augment(Augment::default(), 0)).unwrap_err().to_string();
    assert!(e.contains("[h, w, c]"), "{e}");
    let bad = Augment { zoom_range: [1.2, 0.8], ..Augment::default() };
    assert!(numbered(4).batches(BatchConfig::new(2).augment(bad, 0)).is_err());
}

/// A source that counts its reads.
struct Counting(std::sync::atomic::AtomicUsize);

impl Examples for Counting {
    fn len(&self) -> usize {
        20
    }
    fn example_shape(&self) -> &[usize] {
        &[1]
    }
    fn read(&self, i: usize, out: &mut [f32]) -> Result<()> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        out[0] = i as f32;
        Ok(())
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

#[test]
fn prefetch_prepares_batches_ahead_within_its_bound() {
    use std::sync::atomic::Ordering;
    let src = Arc::new(Counting(0.into()));
    let ds = Dataset::new(src.clone(), Labels::Classes(vec![0; 20])).unwrap();
    let b = ds.batches(BatchConfig::new(1).prefetch(2)).unwrap();
    let mut it = b.epoch(0);
    assert!(it.next().unwrap().is_ok());
    // While "the step runs", the thread fills the channel (2 batches) and blocks on the third.
    let start = std::time::Instant::now();
    while src.0.load(Ordering::SeqCst) < 3 && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let read = src.0.load(Ordering::SeqCst);
    assert!((3..=4).contains(&read), "{read} examples read after one batch was taken");
    assert_eq!(
        it.map(|r| r.unwrap().x.to_vec::<f32>().unwrap()[0] as usize).collect::<Vec<_>>(),
        (1..20).collect::<Vec<_>>()
    );
}
