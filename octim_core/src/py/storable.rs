//! `check_json` / `check_msgpack`: the storable scan over a frame's bytes.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::storable::{self, Problem};

/// Where the first problem is and its reason's name; None when storable.
type Verdict = Option<(usize, &'static str)>;

fn answer(result: Result<(), Problem>) -> Verdict {
    result.err().map(|p| (p.offset, p.reason.name()))
}

/// `None` if the JSON text (str or bytes) is storable, else `(offset, reason)`.
#[pyfunction]
pub(crate) fn check_json(
    data: &Bound<'_, PyAny>,
    max_depth: usize,
    max_nodes: usize,
) -> PyResult<Verdict> {
    if let Ok(text) = data.cast::<PyString>() {
        return Ok(match text.to_str() {
            Ok(utf8) => answer(storable::check_json(utf8.as_bytes(), max_depth, max_nodes)),
            // A str that has no UTF-8 form holds a lone surrogate.
            Err(_) => Some((0, "bad_text")),
        });
    }
    let bytes = data.cast::<PyBytes>()?;
    Ok(answer(storable::check_json(
        bytes.as_bytes(),
        max_depth,
        max_nodes,
    )))
}

/// `None` if the msgpack value is storable, else `(offset, reason)`.
#[pyfunction]
pub(crate) fn check_msgpack(data: &[u8], max_depth: usize, max_nodes: usize) -> Verdict {
    answer(storable::check_msgpack(data, max_depth, max_nodes))
}
