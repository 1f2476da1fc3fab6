//! Python binding of the substring index (`octim_core::textsearch`).

use pyo3::prelude::*;

use crate::textsearch;

/// Texts by slot; `find` returns the slots whose text contains a needle.
#[pyclass(module = "octim._core")]
pub struct TextIndex {
    inner: textsearch::TextIndex,
}

#[pymethods]
impl TextIndex {
    #[new]
    fn new() -> Self {
        Self { inner: textsearch::TextIndex::new() }
    }

    /// Store (or replace) the (already folded) text of `slot`.
    fn set(&mut self, slot: u32, text: &str) {
        self.inner.set(slot, text);
    }

    /// Forget `slot`; True if it held a text.
    fn remove(&mut self, slot: u32) -> bool {
        self.inner.remove(slot)
    }

    /// Every slot whose text contains `needle` (in slot order), the GIL released.
    fn find(&self, py: Python<'_>, needle: &str) -> Vec<u32> {
        let needle = needle.to_owned();
        let inner = &self.inner;
        py.detach(|| inner.find(&needle))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
