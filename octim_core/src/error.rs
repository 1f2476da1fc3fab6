//! The one error type of the pure core. Every variant maps onto exactly one
//! Python exception class in `octim/errors.py` (see `py/errors.rs`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A store key, or a part of one, is malformed.
    InvalidKey(String),
    /// An argument is out of its allowed range.
    InvalidArgument(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidKey(reason) => write!(f, "invalid key: {reason}"),
            CoreError::InvalidArgument(reason) => write!(f, "invalid argument: {reason}"),
        }
    }
}

impl std::error::Error for CoreError {}

pub type CoreResult<T> = Result<T, CoreError>;
