//! Python binding of the fan-out hub: payloads are any Python objects, held
//! by reference (one shared payload for many recipients, never copied).

use std::sync::Arc;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::fanout::{Class, Hub, PushReport};

type Payload = Arc<Py<PyAny>>;

/// Above this many recipients a push releases the GIL while it works.
const DETACH_AT: usize = 4096;

/// Bounded per-connection outboxes (see `octim_core::fanout`).
#[pyclass(module = "octim._core")]
pub struct FanoutHub {
    hub: Hub<Payload>,
}

fn recipients(py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    // An empty array may have no (aligned) storage at all.
    if buffer.len()? == 0 {
        return Ok(Vec::new());
    }
    let buffer: PyBuffer<u64> = PyBuffer::get(buffer)?;
    buffer.to_vec(py)
}

fn class_of(droppable: bool) -> Class {
    if droppable {
        Class::Droppable
    } else {
        Class::Critical
    }
}

#[pymethods]
impl FanoutHub {
    #[new]
    fn new() -> Self {
        FanoutHub { hub: Hub::new() }
    }

    /// Create the outbox of connection `conn` holding at most `capacity` frames.
    fn open(&mut self, py: Python<'_>, conn: u64, capacity: usize) -> PyResult<()> {
        self.hub.open(conn, capacity).into_py_result(py)
    }

    /// Remove a connection's outbox; returns whether it existed.
    fn close(&mut self, conn: u64) -> bool {
        self.hub.close(conn)
    }

    /// Push `payload` to the connections in `recipients` (a buffer of u64,
    /// e.g. `array('Q')`). Returns `(woken, overflowed)` connection ids.
    #[pyo3(signature = (payload, recipients, droppable = false, key = None))]
    fn push(
        &mut self,
        py: Python<'_>,
        payload: Py<PyAny>,
        recipients: &Bound<'_, PyAny>,
        droppable: bool,
        key: Option<u64>,
    ) -> PyResult<(Vec<u64>, Vec<u64>)> {
        let conns = self::recipients(py, recipients)?;
        let payload = Arc::new(payload);
        let mut report = PushReport::default();
        let hub = &mut self.hub;
        if conns.len() >= DETACH_AT {
            py.detach(|| hub.push(&payload, &conns, class_of(droppable), key, &mut report));
        } else {
            hub.push(&payload, &conns, class_of(droppable), key, &mut report);
        }
        Ok((report.woken, report.overflowed))
    }

    /// Push several `(payload, recipients, droppable, key)` items in one call.
    fn push_many(
        &mut self,
        py: Python<'_>,
        items: Vec<(Py<PyAny>, Bound<'_, PyAny>, bool, Option<u64>)>,
    ) -> PyResult<(Vec<u64>, Vec<u64>)> {
        let mut report = PushReport::default();
        for (payload, buffer, droppable, key) in items {
            let conns = recipients(py, &buffer)?;
            self.hub.push(&Arc::new(payload), &conns, class_of(droppable), key, &mut report);
        }
        Ok((report.woken, report.overflowed))
    }

    /// Up to `max` frames of a connection, oldest first.
    fn drain(&mut self, py: Python<'_>, conn: u64, max: usize) -> Vec<Py<PyAny>> {
        self.hub.drain(conn, max).into_iter().map(|p| p.as_ref().clone_ref(py)).collect()
    }

    /// Frames waiting for `conn`.
    fn pending(&self, conn: u64) -> usize {
        self.hub.pending(conn)
    }

    /// Whether `conn` overflowed and must be disconnected.
    fn is_overflowed(&self, conn: u64) -> bool {
        self.hub.is_overflowed(conn)
    }

    /// Number of open outboxes.
    fn connections(&self) -> usize {
        self.hub.connections()
    }

    /// `{"pushed", "coalesced", "dropped", "overflows"}` counters.
    fn statistics(&self) -> std::collections::HashMap<&'static str, u64> {
        let s = self.hub.stats();
        [("pushed", s.pushed), ("coalesced", s.coalesced), ("dropped", s.dropped),
         ("overflows", s.overflows)]
            .into_iter()
            .collect()
    }
}
