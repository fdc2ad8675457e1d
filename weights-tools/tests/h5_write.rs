//! The HDF5 writer: everything written reads back through `H5File` (groups, string attributes,
//! datasets of every dtype and shape), random trees round-trip (proptest), big groups get
//! multi-level B-trees, many strings span several global heap collections, bad input is an
//! error, and files are replaced atomically.
//!
//! Set `TLX_H5_DUMP_DIR` to also write the files of `dump_for_h5py` with a JSON description of
//! their content, then check them with h5py: `python tests/h5_write_check.py $TLX_H5_DUMP_DIR`.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tlx_core::DType;
use weights_tools::hdf5::{AttrValue, H5File, H5Writer, Object};

/// A dataset: dtype, shape, bytes and attributes.
type Ds = (DType, Vec<usize>, Vec<u8>, BTreeMap<String, String>);

/// What a file should hold: path → (dataset: dtype, shape, bytes) or group, with attributes.
#[derive(Clone, Debug, Default, PartialEq)]
struct Expect {
    groups: BTreeMap<String, BTreeMap<String, String>>,
    datasets: BTreeMap<String, Ds>,
}

impl Expect {
    fn group(&mut self, path: &str) {
        let mut p = String::new();
        self.groups.entry("/".into()).or_default();
        for part in path.split('/').filter(|s| !s.is_empty()) {
            p = format!("{p}/{part}");
            self.groups.entry(p.clone()).or_default();
        }
    }
}

/// Everything the reader sees in `bytes`.
fn read_back(bytes: Vec<u8>) -> Expect {
    let f = H5File::from_bytes("written.h5", bytes).unwrap();
    assert_eq!(f.superblock_version(), 0);
    let mut out = Expect::default();
    for o in f.walk().unwrap() {
        let attrs: BTreeMap<String, String> = o
            .attributes()
            .unwrap()
            .into_iter()
            .map(|a| {
                assert_eq!(a.shape, Some(vec![]), "attribute {} is a scalar", a.name);
                match a.value {
                    AttrValue::Strings(mut v) if v.len() == 1 => (a.name, v.remove(0)),
                    other => panic!("attribute {}: {other:?}", a.name),
                }
            })
            .collect();
        match &o {
            Object::Group(g) => {
                out.groups.insert(g.path().to_string(), attrs);
            }
            Object::Dataset(d) => {
                assert_eq!(d.layout_name(), "contiguous");
                let t = d.read().unwrap();
                out.datasets.insert(
                    d.path().to_string(),
                    (t.dtype, t.shape.clone(), t.data.as_bytes().to_vec(), attrs),
                );
            }
        }
    }
    out
}

fn le_bytes(dtype: DType, n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        x >> 11
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let r = next();
        match dtype {
            DType::F32 => out.extend((r as f32 / 3.0 - 1e6).to_le_bytes()),
            DType::F64 => out.extend((r as f64 / 7.0 - 1e12).to_le_bytes()),
            DType::F16 => out.extend(half::f16::from_f32((r % 60000) as f32 / 3.0).to_le_bytes()),
            DType::I64 => out.extend((r as i64 - (1 << 52)).to_le_bytes()),
            DType::I32 => out.extend((r as i32).to_le_bytes()),
            DType::U8 => out.push(r as u8),
            DType::BF16 => unreachable!(),
        }
    }
    out
}

/// A Keras-like file with every feature: nested groups, non-ASCII names and attributes,
/// scalars, zero-size and rank-5 datasets of every dtype, attributes on datasets.
fn sample() -> (H5Writer<'static>, Expect) {
    let mut w = H5Writer::new();
    let mut e = Expect::default();
    e.group("/");
    let groups =
        [("vars", "model"), ("layers/dense/vars", "dense_1"), ("layers/ünï/vars", "名前/with slash")];
    for (g, name) in groups {
        w.group(g).unwrap();
        w.attr_str(g, "name", name).unwrap();
        e.group(g);
        e.groups.get_mut(&format!("/{g}")).unwrap().insert("name".into(), name.into());
    }
    w.group("empty/deeper").unwrap();
    e.group("empty/deeper");
    w.attr_str("/", "root attr", "").unwrap();
    w.attr_str("/", "ключ", "значение ✓").unwrap();
    let root = e.groups.get_mut("/").unwrap();
    root.insert("root attr".into(), String::new());
    root.insert("ключ".into(), "значение ✓".into());
    let shapes: [&[usize]; 6] = [&[], &[1], &[3, 4], &[0, 5], &[2, 0, 3], &[2, 1, 3, 1, 2]];
    let dtypes = [DType::F32, DType::F64, DType::F16, DType::I64, DType::I32, DType::U8];
    for (i, dtype) in dtypes.iter().enumerate() {
        for (j, shape) in shapes.iter().enumerate() {
            let path = format!("/layers/dense/vars/{}", i * shapes.len() + j);
            let bytes = le_bytes(*dtype, shape.iter().product(), (i * 10 + j) as u64);
            w.dataset_bytes(&path, *dtype, shape, bytes.clone()).unwrap();
            e.datasets.insert(path, (*dtype, shape.to_vec(), bytes, BTreeMap::new()));
        }
    }
    let kernel = le_bytes(DType::F32, 6, 99);
    let k2 = kernel.clone();
    w.dataset_with("layers/ünï/vars/0", DType::F32, &[2, 3], move |out| out.write_all(&k2)).unwrap();
    w.attr_str("layers/ünï/vars/0", "dtype", "float32").unwrap();
    let attrs = BTreeMap::from([("dtype".to_string(), "float32".to_string())]);
    e.datasets.insert("/layers/ünï/vars/0".into(), (DType::F32, vec![2, 3], kernel, attrs));
    (w, e)
}

#[test]
fn everything_written_reads_back() {
    let (w, e) = sample();
    let bytes = w.to_bytes().unwrap();
    let got = read_back(bytes.clone());
    assert_eq!(got.groups, e.groups);
    assert_eq!(got.datasets.keys().collect::<Vec<_>>(), e.datasets.keys().collect::<Vec<_>>());
    for (p, want) in &e.datasets {
        assert_eq!(&got.datasets[p], want, "{p}");
    }
    // Writing twice gives the same bytes.
    assert_eq!(w.to_bytes().unwrap(), bytes);
    // The superblock's end-of-file address is the file size.
    assert_eq!(u64::from_le_bytes(bytes[40..48].try_into().unwrap()), bytes.len() as u64);
}

#[test]
fn dataset_bytes_are_aligned_and_zero_copy_from_a_file() {
    let dir = std::env::temp_dir().join(format!("tlx-h5w-align-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.weights.h5");
    let (w, _) = sample();
    w.write(&path).unwrap();
    let f = H5File::open(&path).unwrap();
    let t = f.dataset("/layers/dense/vars/2").unwrap().read().unwrap();
    assert!(t.data.is_mapped(), "contiguous data is a view into the mapping");
    if let weights_tools::TensorBytes::Mapped { range, .. } = &t.data {
        assert_eq!(range.start % 64, 0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn big_groups_get_multi_level_btrees() {
    // 8 names per symbol node, 32 nodes per B-tree node: 300 needs two levels, 8300 three.
    for n in [0usize, 1, 8, 9, 256, 257, 300, 8300] {
        let mut w = H5Writer::new();
        w.group("g").unwrap();
        for i in 0..n {
            w.dataset_i64(&format!("g/{i}"), &[], &[i as i64]).unwrap();
        }
        let f = H5File::from_bytes("big.h5", w.to_bytes().unwrap()).unwrap();
        let names = f.group("/g").unwrap().member_names().unwrap();
        let mut want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        want.sort();
        assert_eq!(names, want, "{n} members");
        for i in [0, n / 2, n.saturating_sub(1)].into_iter().filter(|_| n > 0) {
            let t = f.dataset(&format!("/g/{i}")).unwrap().read().unwrap();
            assert_eq!(t.data.as_bytes(), (i as i64).to_le_bytes(), "member {i} of {n}");
        }
    }
}

#[test]
fn many_strings_span_several_global_heap_collections() {
    // Over 65535 strings (the object index limit of one collection) and some long ones.
    let mut w = H5Writer::new();
    let mut want = BTreeMap::new();
    for g in 0..3 {
        w.group(&format!("g{g}")).unwrap();
        for i in 0..22_000 {
            let (name, value) = (format!("a{i}"), format!("value {g}/{i}"));
            w.attr_str(&format!("g{g}"), &name, &value).unwrap();
            want.insert((g, name), value);
        }
    }
    let long = "x".repeat(10_000);
    w.attr_str("/", "long", &long).unwrap();
    let f = H5File::from_bytes("strings.h5", w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.root().unwrap().attr("long").unwrap().unwrap().as_str(), Some(long.as_str()));
    for g in 0..3 {
        for a in f.group(&format!("/g{g}")).unwrap().attributes().unwrap() {
            assert_eq!(Some(a.as_str().unwrap()), want.get(&(g, a.name.clone())).map(|s| s.as_str()));
        }
    }
}

#[test]
fn bad_input_is_an_error_naming_what_and_where() {
    let mut w = H5Writer::new();
    let err = |r: weights_tools::Result<()>| r.unwrap_err().to_string();
    assert!(err(w.group("a//b")).contains("empty member name"));
    assert!(err(w.group("a/./b")).contains("'.'"));
    assert!(err(w.group("a/b\0c")).contains("NUL"));
    assert!(err(w.dataset_f32("", &[], &[1.0])).contains("needs a name"));
    assert!(err(w.dataset_f32("x", &[2, 2], &[1.0; 3])).contains("needs 16 bytes, got 12"));
    assert!(err(w.dataset_bytes("x", DType::BF16, &[1], vec![0u8; 2])).contains("BF16"));
    assert!(err(w.dataset_bytes("x", DType::F32, &[1; 33], vec![0u8; 4])).contains("rank 33"));
    let huge = [usize::MAX / 2, 4];
    assert!(err(w.dataset_with("x", DType::F64, &huge, |_| Ok(()))).contains("too large"));
    w.dataset_f32("d", &[1], &[1.0]).unwrap();
    assert!(err(w.dataset_f32("d", &[1], &[1.0])).contains("already taken"));
    assert!(err(w.group("d/e")).contains("/d is a dataset"));
    assert!(err(w.dataset_f32("d/e", &[1], &[1.0])).contains("/d is a dataset"));
    assert!(err(w.attr_str("nope", "name", "v")).contains("no such group or dataset"));
    assert!(err(w.attr_str("nope/deeper", "name", "v")).contains("no group /nope"));
    assert!(err(w.attr_str("d", "", "v")).contains("attribute name"));
    assert!(err(w.attr_str("d", "name", "a\0b")).contains("NUL"));
    assert!(err(w.attr_str("d", &"n".repeat(70_000), "v")).contains("at most"));
    // The failed calls left nothing behind.
    let f = H5File::from_bytes("ok.h5", w.to_bytes().unwrap()).unwrap();
    let paths: Vec<String> = f.walk().unwrap().iter().map(|o| o.path().to_string()).collect();
    assert_eq!(paths, ["/", "/d"]);
}

#[test]
fn a_producer_that_writes_the_wrong_size_fails_the_write_and_leaves_no_file() {
    let dir = std::env::temp_dir().join(format!("tlx-h5w-short-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("short.weights.h5");
    std::fs::write(&path, b"old content").unwrap();
    let mut w = H5Writer::new();
    w.dataset_with("layers/dense/vars/0", DType::F32, &[4], |out| out.write_all(&[0u8; 12])).unwrap();
    let e = w.write(&path).unwrap_err().to_string();
    assert!(
        e.contains("short.weights.h5") && e.contains("/layers/dense/vars/0") && e.contains("12 bytes"),
        "{e}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old content", "the old file is untouched");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
    // A good write replaces the file.
    let mut w = H5Writer::new();
    w.dataset_f32("x", &[1], &[2.5]).unwrap();
    w.write(&path).unwrap();
    let t = H5File::open(&path).unwrap().dataset("/x").unwrap().read().unwrap();
    assert_eq!(t.data.as_bytes(), 2.5f32.to_le_bytes());
    // An unwritable place is an I/O error naming the file.
    let e = w.write(dir.join("missing-dir/x.h5")).unwrap_err().to_string();
    assert!(e.contains("missing-dir"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A random tree: groups and datasets with random names, shapes and dtypes.
#[derive(Clone, Debug)]
enum Tree {
    Group(Vec<(String, Tree)>, Vec<(String, String)>),
    Data(DType, Vec<usize>, u64, Vec<(String, String)>),
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,12}",
        "[0-9]{1,3}",
        "[ -.0-~]{1,6}".prop_filter("not '.'", |s| s != "."),
        "[é名ü ]{1,4}",
    ]
}

fn attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((name(), "[^\u{0}]{0,40}"), 0..3)
}

fn tree() -> impl Strategy<Value = Tree> {
    let dtype = prop_oneof![
        Just(DType::F32),
        Just(DType::F64),
        Just(DType::I64),
        Just(DType::I32),
        Just(DType::F16),
        Just(DType::U8)
    ];
    let leaf = (dtype, proptest::collection::vec(0usize..5, 0..5), any::<u64>(), attrs())
        .prop_map(|(d, s, seed, a)| Tree::Data(d, s, seed, a));
    leaf.prop_recursive(4, 64, 12, |inner| {
        (proptest::collection::vec((name(), inner), 0..12), attrs()).prop_map(|(c, a)| Tree::Group(c, a))
    })
}

fn build(w: &mut H5Writer<'static>, e: &mut Expect, path: &str, t: &Tree) {
    match t {
        Tree::Group(children, attrs) => {
            w.group(path).unwrap();
            e.group(path);
            for (k, v) in attrs {
                w.attr_str(path, k, v).unwrap();
                e.groups
                    .get_mut(if path.is_empty() { "/" } else { path })
                    .unwrap()
                    .insert(k.clone(), v.clone());
            }
            for (n, c) in children {
                let p = format!("{path}/{n}");
                if e.groups.contains_key(&p) || e.datasets.contains_key(&p) {
                    continue; // a repeated random name
                }
                build(w, e, &p, c);
            }
        }
        Tree::Data(dtype, shape, seed, attrs) => {
            let bytes = le_bytes(*dtype, shape.iter().product(), *seed);
            w.dataset_bytes(path, *dtype, shape, bytes.clone()).unwrap();
            let mut a = BTreeMap::new();
            for (k, v) in attrs {
                w.attr_str(path, k, v).unwrap();
                a.insert(k.clone(), v.clone());
            }
            e.datasets.insert(path.to_string(), (*dtype, shape.clone(), bytes, a));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(t in tree()) {
        let t = match t { g @ Tree::Group(..) => g, d => Tree::Group(vec![("only".into(), d)], vec![]) };
        let mut w = H5Writer::new();
        let mut e = Expect::default();
        build(&mut w, &mut e, "", &t);
        let got = read_back(w.to_bytes().unwrap());
        prop_assert_eq!(got, e);
    }
}

/// Writes sample files and their expected content for `tests/h5_write_check.py` (h5py).
#[test]
fn dump_for_h5py() {
    let Ok(dir) = std::env::var("TLX_H5_DUMP_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let describe = |e: &Expect| -> Value {
        let ds: serde_json::Map<String, Value> = e
            .datasets
            .iter()
            .map(|(p, (dtype, shape, bytes, attrs))| {
                (
                    p.clone(),
                    json!({"dtype": format!("{dtype:?}"), "shape": shape, "hex": hex(bytes), "attrs": attrs}),
                )
            })
            .collect();
        json!({"groups": e.groups, "datasets": ds})
    };
    let (w, e) = sample();
    w.write(dir.join("sample.h5")).unwrap();
    std::fs::write(dir.join("sample.json"), describe(&e).to_string()).unwrap();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for i in 0..40 {
        let t = tree().new_tree(&mut runner).unwrap().current();
        let t = match t {
            g @ Tree::Group(..) => g,
            d => Tree::Group(vec![("only".into(), d)], vec![]),
        };
        let (mut w, mut e) = (H5Writer::new(), Expect::default());
        build(&mut w, &mut e, "", &t);
        w.write(dir.join(format!("random{i}.h5"))).unwrap();
        std::fs::write(dir.join(format!("random{i}.json")), describe(&e).to_string()).unwrap();
    }
    let mut w = H5Writer::new();
    let mut e = Expect::default();
    e.group("big");
    for i in 0..9000 {
        let p = format!("/big/{i}");
        w.dataset_i64(&p, &[], &[i]).unwrap();
        e.datasets.insert(p, (DType::I64, vec![], i.to_le_bytes().to_vec(), BTreeMap::new()));
    }
    for i in 0..1000 {
        w.attr_str("big", &format!("a{i}"), &format!("v{i}")).unwrap();
        e.groups.get_mut("/big").unwrap().insert(format!("a{i}"), format!("v{i}"));
    }
    w.write(dir.join("big.h5")).unwrap();
    std::fs::write(dir.join("big.json"), describe(&e).to_string()).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
