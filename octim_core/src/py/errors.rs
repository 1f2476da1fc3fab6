//! The one place where Rust errors become Python exceptions.
//!
//! Every `CoreError` variant maps onto a class defined in `octim/errors.py`,
//! so Python code catches `octim.errors.OctimError` subclasses, never a bare
//! `Exception`. The match is exhaustive: a new variant does not compile until
//! it is mapped here.

use pyo3::prelude::*;

use crate::error::CoreError;

fn python_class(err: &CoreError) -> &'static str {
    match err {
        CoreError::InvalidKey(_) => "InvalidKey",
        CoreError::InvalidArgument(_) => "InvalidArgument",
    }
}

fn to_py_err(py: Python<'_>, err: CoreError) -> PyErr {
    let class = python_class(&err);
    let message = err.to_string();
    let built = py
        .import("octim.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1((message,)));
    match built {
        Ok(exc) => PyErr::from_value(exc),
        // octim.errors failed to import: report that instead of hiding it.
        Err(import_err) => import_err,
    }
}

pub(crate) trait IntoPyResult<T> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, CoreError> {
    fn into_py_result(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py_err(py, e))
    }
}
