//! Compiles every kernel source (`tlx_cuda::nvrtc::SOURCES`) to PTX with NVRTC and checks that
//! every listed kernel is an entry of the PTX. Needs only libnvrtc, not a GPU: CI gets it from
//! the `nvidia-cuda-nvrtc-cu12` wheel (see `.ci/run`). Without libnvrtc the test prints why it
//! skipped and passes — unless `TLX_REQUIRE_NVRTC=1`, which CI sets so that a missing library
//! fails loudly instead of silently skipping.
#![cfg(feature = "cuda")]

use tlx_cuda::nvrtc;

/// The architectures every source is compiled for: Turing (the oldest NVRTC 12.9 compiles for
/// without a deprecation warning), Ampere, Hopper.
const ARCHS: &[i32] = &[75, 80, 90];

#[test]
fn every_kernel_compiles_to_ptx() {
    let version = match tlx_cuda::libs::nvrtc_version() {
        Ok(v) => v,
        Err(e) => {
            if std::env::var("TLX_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
                panic!("TLX_REQUIRE_NVRTC=1 but libnvrtc cannot be loaded: {e}");
            }
            println!("skipped: libnvrtc cannot be loaded: {e}");
            return;
        }
    };
    let supported = nvrtc::supported_archs().expect("supported architectures");
    println!("NVRTC {}.{}; architectures {supported:?}", version.0, version.1);
    let mut failures = Vec::new();
    let mut kernels = 0;
    for &arch in ARCHS {
        let target = nvrtc::arch_for(arch / 10, arch % 10).expect("an architecture NVRTC supports");
        for src in nvrtc::SOURCES {
            match nvrtc::compile_uncached(src, &target) {
                Ok(c) => {
                    let entries = nvrtc::ptx_entries(&c.ptx);
                    for f in src.functions {
                        if !entries.iter().any(|e| e == f) {
                            failures.push(format!(
                                "{} ({target}): `{f}` is not in the PTX (entries: {entries:?})",
                                src.file
                            ));
                        }
                    }
                    for e in &entries {
                        if !src.functions.contains(&e.as_str()) {
                            failures.push(format!(
                                "{} ({target}): kernel `{e}` is not listed in nvrtc::SOURCES",
                                src.file
                            ));
                        }
                    }
                    if !c.log.is_empty() {
                        failures.push(format!("{} ({target}): NVRTC warnings:\n{}", src.file, c.log));
                    }
                    kernels += src.functions.len();
                    println!(
                        "ok {target} {:<16} {:>2} kernels, {:>7} bytes of PTX",
                        src.file,
                        entries.len(),
                        c.ptx.len()
                    );
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
    println!(
        "{kernels} kernel compilations in {} sources × {} architectures",
        nvrtc::SOURCES.len(),
        ARCHS.len()
    );
}
