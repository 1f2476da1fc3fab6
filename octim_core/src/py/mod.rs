//! The thin PyO3 layer: converts arguments, calls the pure core, maps errors.
//! Nothing here holds logic of its own.

mod errors;
mod fanout;
mod scorer;
mod storable;
mod textsearch;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::keys;
use errors::IntoPyResult;

/// Encode one `(scope, seq)` store key.
#[pyfunction]
fn encode_key<'py>(py: Python<'py>, scope: &str, seq: u64) -> PyResult<Bound<'py, PyBytes>> {
    let key = keys::encode(scope, seq).into_py_result(py)?;
    Ok(PyBytes::new(py, &key))
}

/// Decode a store key into `(scope, seq)`.
#[pyfunction]
fn decode_key(py: Python<'_>, key: &[u8]) -> PyResult<(String, u64)> {
    keys::decode(key).into_py_result(py)
}

/// Encode the keys `first .. first + count` of one scope as one flat buffer.
#[pyfunction]
fn encode_key_run<'py>(
    py: Python<'py>,
    scope: &str,
    first: u64,
    count: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let run = keys::encode_run(scope, first, count).into_py_result(py)?;
    Ok(PyBytes::new(py, &run))
}

/// The half-open byte range `(lo, hi)` holding every key of `scope`.
#[pyfunction]
fn scope_bounds<'py>(
    py: Python<'py>,
    scope: &str,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let (lo, hi) = keys::scope_bounds(scope).into_py_result(py)?;
    Ok((PyBytes::new(py, &lo), PyBytes::new(py, &hi)))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::VERSION)?;
    m.add("SOURCE_DIGEST", crate::SOURCE_DIGEST)?;
    m.add("MAX_SCOPE_LEN", keys::MAX_SCOPE_LEN)?;
    m.add_class::<fanout::FanoutHub>()?;
    m.add_class::<textsearch::TextIndex>()?;
    m.add_function(wrap_pyfunction!(scorer::assign_batch, m)?)?;
    m.add_function(wrap_pyfunction!(encode_key, m)?)?;
    m.add_function(wrap_pyfunction!(decode_key, m)?)?;
    m.add_function(wrap_pyfunction!(encode_key_run, m)?)?;
    m.add_function(wrap_pyfunction!(scope_bounds, m)?)?;
    m.add_function(wrap_pyfunction!(storable::check_json, m)?)?;
    m.add_function(wrap_pyfunction!(storable::check_msgpack, m)?)?;
    Ok(())
}
