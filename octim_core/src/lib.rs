//! OctIM's Rust core.
//!
//! Pure modules only: no pyo3, no IO, no threads, no clock (time is an argument).
//! The Python binding lives in `py/` behind the `python` feature so that
//! `cargo test` builds and runs without a Python interpreter.

pub mod error;
pub mod fanout;
pub mod scorer;
pub mod keys;
pub mod storable;
pub mod textsearch;

#[cfg(feature = "python")]
mod py;

pub use error::CoreError;

/// The crate version; the Python package refuses to load an extension whose
/// version differs from its own (a stale build shadowing a new checkout).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A digest of the crate's sources at build time (see `build.rs`); the Python
/// package compares it with the sources of a checkout to catch a stale build.
pub const SOURCE_DIGEST: &str = env!("OCTIM_SOURCE_DIGEST");
