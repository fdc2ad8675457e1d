//! File loaders end to end: an image folder written by the test (PNG and JPEG, sub-folders,
//! hidden and foreign files) loaded with resizing and a Keras-identical seeded validation
//! split; CIFAR binary batches; NPY and NPZ; and the errors for corrupt, truncated and
//! mismatched files.

mod common;

use image::{ImageBuffer, Luma, Rgb, Rgba};
use std::path::{Path, PathBuf};
use tlx_data::cifar::{load_cifar10, load_cifar100, read_cifar_batch, CifarKind};
use tlx_data::folder::{
    image_dataset_from_directory, image_dataset_from_directory_split, index_directory, ColorMode,
    FolderOptions, Subset,
};
use tlx_data::resize::Interpolation;
use tlx_data::{arrays, BatchConfig, Split};
use tlx_tensor::DType;
use weights_tools::{RawTensor, TensorBytes};

/// A directory for one test's files, removed when the test ends.
fn fresh_dir(name: &str) -> tempfile::TempDir {
    common::temp_dir(&format!("tlx-data-{name}"))
}

fn solid_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ImageBuffer::from_pixel(w, h, Rgb(rgb)).save_with_format(path, image::ImageFormat::Png).unwrap();
}

fn solid_jpeg(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ImageBuffer::from_pixel(w, h, Rgb(rgb)).save_with_format(path, image::ImageFormat::Jpeg).unwrap();
}

/// Ten images in three classes, listed in Keras's (unshuffled) order, with the colour of each.
fn write_folder(root: &Path) -> Vec<(String, i64, [u8; 3])> {
    let files: Vec<(&str, i64, [u8; 3])> = vec![
        ("cats/a.png", 0, [200, 10, 10]),
        ("cats/b.png", 0, [190, 20, 10]),
        ("cats/sub/c.png", 0, [180, 30, 10]),
        ("dogs/A.JPG", 1, [10, 200, 10]),
        ("dogs/b.jpeg", 1, [10, 190, 20]),
        ("dogs/c.PNG", 1, [10, 180, 30]),
        ("dogs/d.jpg", 1, [10, 170, 40]),
        ("zebra/1.png", 2, [10, 10, 200]),
        ("zebra/2.png", 2, [20, 10, 190]),
        ("zebra/3.jpg", 2, [30, 10, 180]),
    ];
    for (i, (name, _, rgb)) in files.iter().enumerate() {
        let p = root.join(name);
        let (w, h) = (6 + i as u32, 9 - (i as u32 % 4));
        if name.to_lowercase().ends_with(".png") {
            solid_png(&p, w, h, *rgb);
        } else {
            solid_jpeg(&p, w, h, *rgb);
        }
    }
    std::fs::write(root.join("dogs/notes.txt"), "not an image").unwrap();
    solid_png(&root.join(".hidden/x.png"), 3, 3, [0, 0, 0]);
    solid_png(&root.join("top-level.png"), 3, 3, [0, 0, 0]);
    files.into_iter().map(|(n, l, c)| (n.to_string(), l, c)).collect()
}

#[test]
fn image_folder_with_resize_and_keras_split() {
    let root_guard = fresh_dir("folder");
    let root = root_guard.path();
    let files = write_folder(root);
    let opts = FolderOptions {
        image_size: (4, 5),
        seed: Some(1337),
        validation_split: Some(0.2),
        subset: Some(Subset::Training),
        ..FolderOptions::default()
    };
    // NumPy: RandomState(1337).shuffle(list(range(10))) == [6, 3, 0, 4, 5, 2, 1, 9, 8, 7].
    let perm = [6, 3, 0, 4, 5, 2, 1, 9, 8, 7];
    let (paths, labels, classes) = index_directory(root, &opts).unwrap();
    assert_eq!(classes, ["cats", "dogs", "zebra"]);
    let want: Vec<PathBuf> = perm.iter().map(|&i| root.join(&files[i].0)).collect();
    assert_eq!(paths, want);
    assert_eq!(labels, perm.iter().map(|&i| files[i].1).collect::<Vec<_>>());

    let train = image_dataset_from_directory(root, &opts).unwrap();
    let val = image_dataset_from_directory(
        root,
        &FolderOptions { subset: Some(Subset::Validation), ..opts.clone() },
    )
    .unwrap();
    let (t2, v2) = image_dataset_from_directory_split(root, &opts).unwrap();
    assert_eq!((train.len(), val.len()), (8, 2));
    assert_eq!((t2.classes(), v2.classes()), (train.classes(), val.classes()));
    assert_eq!(val.classes().unwrap(), [files[8].1, files[7].1]);
    assert_eq!(train.class_names().unwrap(), ["cats", "dogs", "zebra"]);
    assert_eq!(train.example_shape(), [4, 5, 3]);

    // Solid colours survive bilinear resizing exactly (PNG) or nearly (JPEG).
    let batches = train.batches(BatchConfig::new(3).prefetch(1)).unwrap();
    let mut seen = 0;
    for batch in batches.epoch(0) {
        let batch = batch.unwrap();
        let x = batch.x.to_vec::<f32>().unwrap();
        for (k, &pos) in batch.positions.iter().enumerate() {
            let (name, _, rgb) = &files[perm[pos]];
            let img = &x[k * 60..(k + 1) * 60];
            let tol = if name.to_lowercase().ends_with(".png") { 0.0 } else { 4.0 };
            for px in img.chunks(3) {
                for c in 0..3 {
                    assert!((px[c] - rgb[c] as f32).abs() <= tol, "{name}: {px:?} vs {rgb:?}");
                }
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 8);
}

#[test]
fn folder_options_colour_modes_and_interpolation() {
    let root_guard = fresh_dir("folder-modes");
    let root = root_guard.path();
    // A 2×2 checker (PNG) and an RGBA image in one class, a grey PNG in another.
    let checker =
        ImageBuffer::from_fn(
            2,
            2,
            |x, y| if (x + y) % 2 == 0 { Rgb([255u8, 0, 0]) } else { Rgb([0, 0, 255]) },
        );
    std::fs::create_dir_all(root.join("a")).unwrap();
    checker.save(root.join("a/checker.png")).unwrap();
    ImageBuffer::from_pixel(3, 3, Rgba([10u8, 20, 30, 40])).save(root.join("a/rgba.png")).unwrap();
    std::fs::create_dir_all(root.join("b")).unwrap();
    ImageBuffer::from_pixel(5, 5, Luma([77u8])).save(root.join("b/grey.png")).unwrap();
    let base = FolderOptions { image_size: (4, 4), shuffle: false, ..FolderOptions::default() };

    let nearest = FolderOptions { interpolation: Interpolation::Nearest, ..base.clone() };
    let ds = image_dataset_from_directory(root, &nearest).unwrap();
    let x = ds.x(0).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&x[..6], &[255., 0., 0., 255., 0., 0.], "each checker cell becomes 2×2");
    assert_eq!(&x[6..9], &[0., 0., 255.]);

    let rgba = FolderOptions { color_mode: ColorMode::Rgba, ..base.clone() };
    let ds = image_dataset_from_directory(root, &rgba).unwrap();
    assert_eq!(ds.example_shape(), [4, 4, 4]);
    assert_eq!(&ds.x(1).unwrap().to_vec::<f32>().unwrap()[..4], &[10., 20., 30., 40.]);
    assert_eq!(&ds.x(2).unwrap().to_vec::<f32>().unwrap()[..4], &[77., 77., 77., 255.]);

    let grey = FolderOptions { color_mode: ColorMode::Grayscale, crop_to_aspect_ratio: true, ..base.clone() };
    let ds = image_dataset_from_directory(root, &grey).unwrap();
    let v = ds.x(1).unwrap().to_vec::<f32>().unwrap()[0];
    assert_eq!(v, ((9798 * 10 + 19235 * 20 + 3735 * 30) >> 15) as f32);
    assert_eq!(ds.x(2).unwrap().to_vec::<f32>().unwrap()[0], 77.0);
    let padded = FolderOptions { pad_to_aspect_ratio: true, image_size: (2, 4), ..base.clone() };
    let ds = image_dataset_from_directory(root, &padded).unwrap();
    assert_eq!(ds.example_shape(), [2, 4, 3]);
    ds.to_tensors().unwrap();

    // Keras's argument rules.
    let e = image_dataset_from_directory(
        root,
        &FolderOptions {
            validation_split: Some(0.5),
            subset: Some(Subset::Training),
            ..FolderOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("seed"), "{e}");
    let e =
        image_dataset_from_directory(root, &FolderOptions { validation_split: Some(0.5), ..base.clone() })
            .unwrap_err()
            .to_string();
    assert!(e.contains("subset"), "{e}");
    let named = FolderOptions { class_names: Some(vec!["b".into(), "a".into()]), ..base.clone() };
    assert_eq!(image_dataset_from_directory(root, &named).unwrap().classes().unwrap(), [0, 1, 1]);
    let wrong = FolderOptions { class_names: Some(vec!["a".into()]), ..base.clone() };
    assert!(image_dataset_from_directory(root, &wrong).is_err());
}

#[test]
fn folder_errors_name_the_file() {
    let root_guard = fresh_dir("folder-bad");
    let root = root_guard.path();
    solid_png(&root.join("ok/good.png"), 4, 4, [1, 2, 3]);
    std::fs::write(root.join("ok/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let ds =
        image_dataset_from_directory(root, &FolderOptions { shuffle: false, ..FolderOptions::default() })
            .unwrap();
    let errs: Vec<String> = ds
        .batches(BatchConfig::new(2))
        .unwrap()
        .epoch(0)
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("broken.png") && errs[0].contains("cannot decode"), "{}", errs[0]);
    assert!(ds.cache().is_err());

    let e = image_dataset_from_directory(root.join("missing"), &FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
    let empty_guard = fresh_dir("folder-empty");
    let empty = empty_guard.path();
    std::fs::create_dir_all(empty.join("a")).unwrap();
    let e = image_dataset_from_directory(empty, &FolderOptions::default()).unwrap_err().to_string();
    assert!(e.contains("no images found"), "{e}");
}

fn cifar_record(label: &[u8], seed: u8) -> Vec<u8> {
    let mut r = label.to_vec();
    r.extend((0..3072).map(|i| (i as u8).wrapping_mul(seed)));
    r
}

#[test]
fn cifar_batches() {
    let dir_guard = fresh_dir("cifar10");
    let dir = dir_guard.path();
    for b in 1..=5u8 {
        let bytes: Vec<u8> = [cifar_record(&[b], 3), cifar_record(&[9 - b], 5)].concat();
        std::fs::write(dir.join(format!("data_batch_{b}.bin")), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), cifar_record(&[0], 7)).unwrap();
    std::fs::write(
        dir.join("batches.meta.txt"),
        "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
    )
    .unwrap();
    let train = load_cifar10(dir, Split::Train).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(train.example_shape(), [32, 32, 3]);
    assert_eq!(train.classes().unwrap(), [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    assert_eq!(train.class_names().unwrap()[9], "truck");
    // Pixel (0, 0): red plane byte 0, green byte 1024, blue byte 2048 (times the seed).
    let x = train.x(0).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(&x[..3], &[0.0, (1024u32 * 3 % 256) as f32, (2048u32 * 3 % 256) as f32]);
    assert_eq!(load_cifar10(dir, Split::Test).unwrap().len(), 1);

    // Truncated batch, label out of range, missing file.
    std::fs::write(dir.join("data_batch_3.bin"), &cifar_record(&[1], 1)[..2000]).unwrap();
    let e = load_cifar10(dir, Split::Train).unwrap_err().to_string();
    assert!(e.contains("data_batch_3.bin") && e.contains("3073-byte"), "{e}");
    std::fs::write(dir.join("data_batch_3.bin"), cifar_record(&[12], 1)).unwrap();
    let e = load_cifar10(dir, Split::Train).unwrap_err().to_string();
    assert!(e.contains("label 12"), "{e}");
    std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
    assert!(load_cifar10(dir, Split::Train).unwrap_err().to_string().contains("data_batch_3.bin"));

    let d100_guard = fresh_dir("cifar100");
    let d100 = d100_guard.path();
    std::fs::write(d100.join("train.bin"), [cifar_record(&[3, 77], 1), cifar_record(&[19, 99], 2)].concat())
        .unwrap();
    assert_eq!(load_cifar100(d100, Split::Train, true).unwrap().classes().unwrap(), [77, 99]);
    assert_eq!(load_cifar100(d100, Split::Train, false).unwrap().classes().unwrap(), [3, 19]);
    let (x, y) = read_cifar_batch(d100.join("train.bin"), CifarKind::Cifar100Fine).unwrap();
    assert_eq!((x.len(), y.len()), (2 * 3072, 2));
}

fn raw(shape: Vec<usize>, dtype: DType, bytes: Vec<u8>) -> RawTensor {
    RawTensor { shape, dtype, data: TensorBytes::Owned(bytes) }
}

#[test]
fn npy_and_npz() {
    let dir_guard = fresh_dir("npy");
    let dir = dir_guard.path();
    let (xp, yp) = (dir.join("x.npy"), dir.join("y.npy"));
    weights_tools::npy::write_npy(&xp, &raw(vec![4, 2, 2, 1], DType::U8, (0..16).collect())).unwrap();
    let y: Vec<u8> = [3i64, 1, 4, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
    weights_tools::npy::write_npy(&yp, &raw(vec![4], DType::I64, y)).unwrap();
    let ds = arrays::load_npy(&xp, &yp).unwrap();
    assert_eq!((ds.len(), ds.example_shape()), (4, &[2usize, 2, 1][..]));
    assert_eq!(ds.classes().unwrap(), [3, 1, 4, 1]);
    assert_eq!(ds.x(1).unwrap().to_vec::<f32>().unwrap(), [4., 5., 6., 7.]);

    let y3: Vec<u8> = [0i64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    weights_tools::npy::write_npy(&yp, &raw(vec![3], DType::I64, y3)).unwrap();
    let e = arrays::load_npy(&xp, &yp).unwrap_err().to_string();
    assert!(e.contains("x.npy") && e.contains("y.npy") && e.contains("[4, 2, 2, 1]"), "{e}");
    std::fs::write(&xp, b"\x93NUMPY garbage").unwrap();
    let e = arrays::load_npy(&xp, &yp).unwrap_err().to_string();
    assert!(e.contains("x.npy"), "{e}");

    // tests/fixtures/tiny.npz was written by np.savez_compressed.
    let npz = common::fixtures_dir().join("tiny.npz");
    let train = arrays::load_npz(&npz, "x_train", "y_train").unwrap();
    assert_eq!(train.classes().unwrap(), [2, 0, 1]);
    assert_eq!(train.example_shape(), [2, 2]);
    let test = arrays::load_npz(&npz, "x_test", "y_test").unwrap();
    assert_eq!(test.to_tensors().unwrap().1.to_vec::<f32>().unwrap(), [0.5, 1.5]);
    let e = arrays::load_npz(&npz, "x", "y").unwrap_err().to_string();
    assert!(e.contains("no array `x`") && e.contains("x_train"), "{e}");
}
