//! Prefetching from a training loop that runs on a thread of a one-thread global rayon pool
//! (as `Trainer::fit` runs, through `tlx_cpu::on_worker`). The prefetch thread's parallel
//! parts (reading a batch, rescaling it) are queued to that pool: if the loop blocked while
//! waiting for a batch, or for the thread to end when an epoch is dropped early, nothing
//! would run them. Its own test binary, as it sets the global pool's size.

use std::sync::mpsc;
use std::time::Duration;
use tlx_data::{BatchConfig, Dataset, Labels};

#[test]
fn prefetch_waits_without_blocking_a_one_thread_pool() {
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().expect("first use of the global pool");
    // 64 images of 28×28: batches of 16 are read example by example in parallel and
    // rescaled in parallel parts (12,544 values).
    let n = 64;
    let x: Vec<f32> = (0..n * 784).map(|i| (i % 251) as f32).collect();
    let ds = Dataset::from_f32(x, &[n, 28, 28, 1], Labels::Classes((0..n as i64).map(|i| i % 10).collect()))
        .unwrap();
    let config = BatchConfig::new(16).shuffle(3).rescale(1.0 / 255.0);
    let direct = ds.batches(config.clone()).unwrap();
    let ahead = ds.batches(config.prefetch(2)).unwrap();
    let expected: Vec<Vec<f32>> = direct.epoch(1).map(|b| b.unwrap().x.to_vec::<f32>().unwrap()).collect();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let got = rayon::scope(|_| {
            assert!(rayon::current_thread_index().is_some(), "the loop runs on the pool's thread");
            // An epoch dropped after one batch: its thread is joined mid-epoch.
            let mut early = ahead.epoch(0);
            assert!(early.next().unwrap().is_ok());
            drop(early);
            ahead.epoch(1).map(|b| b.unwrap().x.to_vec::<f32>().unwrap()).collect::<Vec<_>>()
        });
        let _ = tx.send(got);
    });
    let got = rx.recv_timeout(Duration::from_secs(120)).expect("prefetching deadlocked the one-thread pool");
    assert_eq!(got, expected);
}
