//! Links numpy's bundled OpenBLAS (`libscipy_openblas64_*.so` under benches/peers/.venv), or
//! the library named by `OPENBLAS_LIB`, with an rpath to its folder.
use std::path::PathBuf;

fn find_in(dir: &std::path::Path, depth: usize) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("libscipy_openblas64_") && name.ends_with(".so") {
            return Some(path);
        }
        if depth > 0 && path.is_dir() {
            if let Some(found) = find_in(&path, depth - 1) {
                return Some(found);
            }
        }
    }
    None
}

fn main() {
    println!("cargo:rerun-if-env-changed=OPENBLAS_LIB");
    let lib = std::env::var_os("OPENBLAS_LIB")
        .map(PathBuf::from)
        .or_else(|| find_in(std::path::Path::new("../.venv/lib"), 4));
    let lib = lib.expect("no libscipy_openblas64_*.so: run benches/peers/setup.sh or set OPENBLAS_LIB");
    let lib = lib.canonicalize().expect("OpenBLAS library path");
    println!("cargo:rustc-link-arg={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.parent().unwrap().display());
}
