//! NPY and safetensors round trips, inspect (text and JSON) and convert.

mod common;

use std::collections::BTreeMap;
use weights_tools::{npy, safetensors, RawTensor, TensorBytes};

/// A directory for one test's files, removed when the test ends.
fn tmp_dir(test: &str) -> tempfile::TempDir {
    common::temp_dir(&format!("weights-tools-test-{test}"))
}

#[test]
fn npy_round_trip_zero_copy() {
    let t = RawTensor::from_f32(vec![2, 3], &[1.0, -2.0, 3.5, 0.0, 1e-7, 6.0]);
    let dir_guard = tmp_dir("npy-round-trip");
    let dir = dir_guard.path();
    let p = dir.join("a.npy");
    npy::write_npy(&p, &t).unwrap();
    let back = npy::read_npy(&p).unwrap();
    assert_eq!(back.shape, [2, 3]);
    assert_eq!(back.to_f32_vec(), t.to_f32_vec());
    assert!(back.is_mapped());
    // Scalars and 1-D.
    for shape in [vec![], vec![4usize]] {
        let n = shape.iter().product::<usize>();
        let t = RawTensor::from_f32(shape.clone(), &vec![2.5; n]);
        let b = npy::parse_npy("x.npy", npy::to_npy_bytes(&t)).unwrap();
        assert_eq!(b.shape, shape);
    }
}

#[test]
fn npy_reads_conformance_arrays_and_fortran_big_endian() {
    let (dir, _) = common::keras_dir();
    if let Ok(t) = npy::read_npy(dir.join("../keras/small_cnn.input.npy")) {
        assert_eq!(t.dtype, tlx_core::DType::F32);
    }
    // Hand-made: big-endian int16, Fortran order 2x3: values 0..6 in column-major.
    let header = "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    for v in [0i16, 3, 1, 4, 2, 5] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    let t = npy::parse_npy("f.npy", b).unwrap();
    assert_eq!(t.dtype, tlx_core::DType::I32);
    assert_eq!(t.to_f64_vec(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn safetensors_round_trip_zero_copy_with_metadata() {
    let a = RawTensor::from_f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = RawTensor { shape: vec![3], dtype: tlx_core::DType::I64, data: TensorBytes::Owned(vec![7; 24]) };
    let mut meta = BTreeMap::new();
    meta.insert("keras_version".to_string(), "3.15.1".to_string());
    let dir_guard = tmp_dir("safetensors-round-trip");
    let dir = dir_guard.path();
    let p = dir.join("st-only/x.safetensors");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    safetensors::write(&p, &[("l/kernel".into(), &a), ("l/bias".into(), &b)], &meta).unwrap();
    let st = safetensors::read(&p).unwrap();
    assert_eq!(st.metadata, meta);
    assert_eq!(st.tensors[0].0, "l/kernel");
    assert_eq!(st.get("l/kernel").unwrap().to_f32_vec(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(st.get("l/bias").unwrap().bytes(), &[7; 24][..]);
    assert!(st.tensors.iter().all(|(_, t)| t.is_mapped()));
    // No temp file left behind.
    let leftovers = std::fs::read_dir(p.parent().unwrap())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp"))
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn convert_and_inspect_every_layout() {
    let dir_guard = tmp_dir("convert-every-layout");
    let dir = dir_guard.path();
    for f in
        ["small_cnn.k3.h5", "small_cnn.weights.h5", "small_cnn.keras", "small_resnet.weights.latest-gzip.h5"]
    {
        let src = common::fixture(f);
        let out = dir.join(format!("{f}.safetensors"));
        let rep = weights_tools::convert(&src, &out).unwrap();
        let st = safetensors::read(&out).unwrap();
        assert_eq!(st.tensors.len(), rep.tensors);
        let k = weights_tools::KerasFile::open(&src).unwrap();
        for (n, w) in k.named_weights() {
            assert_eq!(st.get(&n).unwrap_or_else(|| panic!("{f}: {n}")).bytes(), w.tensor.bytes());
        }
        assert_eq!(st.metadata.contains_key("model_config"), k.model_config.is_some());
        let ins = weights_tools::inspect(&src).unwrap();
        let j = ins.to_json();
        assert!(j["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"].is_string() && t["shape"].is_array()));
        assert_eq!(j["tensors"].as_array().unwrap().len(), rep.tensors);
        assert!(ins.to_string().contains("parameters:"));
        // Inspecting the converted file gives the same tensors.
        let ins2 = weights_tools::inspect(&out).unwrap();
        assert_eq!(ins2.tensors, ins.tensors);
        assert_eq!(ins2.keras_version, ins.keras_version);
    }
    let out = dir.join("k3.safetensors");
    weights_tools::convert(common::fixture("small_cnn.k3.h5"), &out).unwrap();
    let st = safetensors::read(&out).unwrap();
    assert_eq!(st.tensors[0].0, "c1/kernel");
    assert_eq!(st.metadata["keras_version"], "3.15.1");
    assert_eq!(st.metadata["source_format"], "legacy-model");
}

#[test]
fn vgg16_converts_block1_conv1_kernel() {
    let Some(p) = common::shared_file("vgg16_notop.h5") else { return };
    let dir_guard = tmp_dir("vgg16-convert");
    let dir = dir_guard.path();
    let out = dir.join("vgg16.safetensors");
    let t0 = std::time::Instant::now();
    let rep = weights_tools::convert(&p, &out).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "vgg16_notop: {} tensors, {:.1} MB in {secs:.3} s = {:.0} MB/s",
        rep.tensors,
        rep.bytes as f64 / 1e6,
        rep.bytes as f64 / 1e6 / secs
    );
    let st = safetensors::read(&out).unwrap();
    assert_eq!(st.get("block1_conv1/kernel").unwrap().shape, [3, 3, 3, 64]);
    assert_eq!(st.get("block1_conv1/bias").unwrap().shape, [64]);
    std::fs::remove_file(&out).ok();
}

#[test]
fn npz_stored_entries_are_mapped_and_deflated_ones_decoded() {
    use std::io::Write;
    let a = RawTensor::from_f32(vec![2], &[1.0, 2.0]);
    let b = RawTensor::from_f32(vec![1, 3], &[3.0, 4.0, 5.0]);
    let dir_guard = tmp_dir("npz-entries");
    let dir = dir_guard.path();
    let p = dir.join("arrays.npz");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let stored =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let deflated =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("a.npy", stored).unwrap();
        z.write_all(&npy::to_npy_bytes(&a)).unwrap();
        z.start_file("b.npy", deflated).unwrap();
        z.write_all(&npy::to_npy_bytes(&b)).unwrap();
        z.finish().unwrap();
    }
    let arrays = npy::read_npz(&p).unwrap();
    assert_eq!(arrays.len(), 2);
    assert_eq!(arrays[0].0, "a");
    assert!(arrays[0].1.is_mapped());
    assert_eq!(arrays[1].1.shape, [1, 3]);
    assert!(!arrays[1].1.is_mapped());
    assert_eq!(arrays[1].1.to_f32_vec(), [3.0, 4.0, 5.0]);
    let ins = weights_tools::inspect(&p).unwrap();
    assert_eq!(ins.format, "npz");
    assert_eq!(ins.parameters, 5);
}

#[test]
fn split_attributes_are_joined() {
    let f = weights_tools::hdf5::H5File::open(common::local_fixture("features_earliest.h5")).unwrap();
    let root = f.root().unwrap();
    assert_eq!(root.attr_strings("layer_names").unwrap().unwrap(), ["a", "b", "c"]);
    assert_eq!(root.attr_strings("fixed").unwrap().unwrap(), ["alpha", "be", "gamma_long"]);
    assert!(root.attr_strings("missing").unwrap().is_none());
}
