//! IDX reading: the real Fashion-MNIST files when present, gzip and raw giving the same tensors,
//! clear errors for corrupt, truncated and mismatched files, and a property test that random
//! corruption of a valid file (raw or gzip) gives an error or a tensor, never a panic.

mod common;

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use std::io::Write;
use std::path::PathBuf;
use tlx_data::idx::{load_idx_pair, load_mnist, parse_idx, read_idx, FASHION_MNIST_CLASSES};
use tlx_data::Split;

fn fashion_dir() -> PathBuf {
    match std::env::var_os("TLX_FASHION_MNIST_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fashion-mnist"),
    }
}

fn idx_bytes(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn real_fashion_mnist() {
    let dir = fashion_dir();
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        println!("skipped: no Fashion-MNIST at {} (set TLX_FASHION_MNIST_DIR)", dir.display());
        return;
    }
    for (split, n) in [(Split::Train, 60000), (Split::Test, 10000)] {
        let ds = load_mnist(&dir, split).unwrap();
        assert_eq!(ds.len(), n);
        assert_eq!(ds.example_shape(), [28, 28, 1]);
        let counts = ds.class_counts().unwrap();
        assert_eq!(counts.keys().copied().collect::<Vec<_>>(), (0..10).collect::<Vec<i64>>());
        // Fashion-MNIST is balanced: 6000 / 1000 of each class.
        assert!(counts.values().all(|&c| c == n / 10), "{counts:?}");
        let x = ds.x(0).unwrap().to_vec::<f32>().unwrap();
        assert!(x.iter().all(|&v| (0.0..=255.0).contains(&v)) && x.iter().any(|&v| v > 0.0));
    }
    assert_eq!(FASHION_MNIST_CLASSES.len(), 10);
    let t = read_idx(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(t.dims(), [10000]);
}

#[test]
fn gzip_and_raw_read_the_same() {
    let data: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
    let raw = idx_bytes(0x08, &[2, 3, 4], &data);
    let dir_guard = common::temp_dir("tlx-data-idx-gzip-raw");
    let dir = dir_guard.path();
    let (p_raw, p_gz) = (dir.join("raw-images"), dir.join("gz-images.gz"));
    std::fs::write(&p_raw, &raw).unwrap();
    std::fs::write(&p_gz, gzip(&raw)).unwrap();
    let a = read_idx(&p_raw).unwrap();
    let b = read_idx(&p_gz).unwrap();
    assert_eq!(a.dims(), [2, 3, 4]);
    assert_eq!(a.to_vec::<u8>().unwrap(), b.to_vec::<u8>().unwrap());
    let labels = dir.join("labels.gz");
    std::fs::write(&labels, gzip(&idx_bytes(0x08, &[2], &[3, 9]))).unwrap();
    let ds = load_idx_pair(&p_gz, &labels).unwrap();
    assert_eq!(ds.example_shape(), [3, 4, 1]);
    assert_eq!(ds.classes().unwrap(), [3, 9]);
}

#[test]
fn clear_errors_for_bad_files() {
    let data = vec![7u8; 2 * 2 * 2];
    let dir_guard = common::temp_dir("tlx-data-idx-bad");
    let dir = dir_guard.path();
    let images = dir.join("bad-images");
    std::fs::write(&images, idx_bytes(0x08, &[2, 2, 2], &data)).unwrap();
    // Count mismatch names both files.
    let labels = dir.join("bad-labels");
    std::fs::write(&labels, idx_bytes(0x08, &[3], &[0, 1, 2])).unwrap();
    let e = load_idx_pair(&images, &labels).unwrap_err().to_string();
    assert!(
        e.contains("bad-images") && e.contains("bad-labels") && e.contains("2 images but 3 labels"),
        "{e}"
    );
    // Wrong magic.
    let mut wrong = idx_bytes(0x08, &[2], &[0, 1]);
    wrong[0] = 0x50;
    std::fs::write(&labels, &wrong).unwrap();
    let e = read_idx(&labels).unwrap_err().to_string();
    assert!(e.contains("bad-labels") && e.contains("magic 50 00 08 01"), "{e}");
    // Truncated gzip stream.
    let gz = gzip(&idx_bytes(0x08, &[1000], &[5; 1000]));
    let cut = dir.join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let e = read_idx(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.gz") && e.contains("truncated"), "{e}");
    // A gzip stream whose checksum is wrong.
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 0xff;
    let e = parse_idx("crc.gz", &bad_crc).unwrap_err().to_string();
    assert!(e.contains("crc.gz") && e.contains("corrupt gzip"), "{e}");
    // Float labels are not classes.
    std::fs::write(&labels, idx_bytes(0x0D, &[2], &[0; 8])).unwrap();
    let e = load_idx_pair(&images, &labels).unwrap_err().to_string();
    assert!(e.contains("expected integers"), "{e}");
    // A missing directory names the files looked for.
    let e = load_mnist(dir.join("nowhere"), Split::Train).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_corruption_never_panics(
        dims in proptest::collection::vec(1u32..5, 1..4),
        ty in prop_oneof![Just(0x08u8), Just(0x09), Just(0x0B), Just(0x0C), Just(0x0D), Just(0x0E)],
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        gz in any::<bool>(),
    ) {
        let size = match ty { 0x08 | 0x09 => 1, 0x0B => 2, 0x0C | 0x0D => 4, _ => 8 };
        let n: usize = dims.iter().map(|&d| d as usize).product::<usize>() * size;
        let valid = idx_bytes(ty, &dims, &vec![3u8; n]);
        let mut bytes = if gz { gzip(&valid) } else { valid.clone() };
        for (at, v) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        match parse_idx("fuzz.idx", &bytes) {
            Ok(t) => prop_assert!(t.rank() >= 1 && t.numel() > 0),
            Err(e) => prop_assert!(e.to_string().starts_with("fuzz.idx: "), "{}", e),
        }
        if flips.is_empty() && cut.is_none() {
            prop_assert!(parse_idx("ok.idx", &bytes).is_ok());
        }
    }
}
