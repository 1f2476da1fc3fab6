//! Records a digest of the crate's sources in the build, so that the Python
//! package can tell when the compiled extension is older than the sources
//! beside it (`octim/_version.py` computes the same digest).

use std::fs;
use std::path::{Path, PathBuf};

/// FNV-1a, 64 bits: no dependency, and easy to repeat in Python.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let src = root.join("src");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut named: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|p| (p.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/"), p))
        .collect();
    named.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (name, path) in named {
        hash = fnv1a(hash, name.as_bytes());
        hash = fnv1a(hash, &[0]);
        hash = fnv1a(hash, &fs::read(path).unwrap());
        hash = fnv1a(hash, &[0]);
    }
    println!("cargo:rustc-env=OCTIM_SOURCE_DIGEST={hash:016x}");
}
