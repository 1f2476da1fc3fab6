//! Python binding of the routing scorer: typed buffers in, assignments out,
//! the GIL released while it decides.

use pyo3::buffer::{Element, PyBuffer};
use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::error::CoreError;
use crate::scorer::{assign, Agents, Waiting};

fn vec_of<T: Element + Copy>(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<T>> {
    if obj.len()? == 0 {
        return Ok(Vec::new()); // an empty array may have no aligned storage
    }
    PyBuffer::<T>::get(obj)?.to_vec(py)
}

/// Assign a batch of waiting conversations to agents (see `octim_core::scorer`).
///
/// Agent arrays: capacity (u32 'I'), load ('I'), weight (f64 'd'),
/// last_assigned ('d'), available (bytes), queue_offsets ('I', len n+1),
/// queue_ids ('I'). Waiting arrays: queue ('I'), priority (i32 'i'), sla_due
/// ('d'), arrival (u64 'Q'), cost ('I'), preferred ('i', -1 = none),
/// prefer_kind (bytes), wait_until ('d'), exclude ('i', -1 = none).
/// `rankings`: one byte per queue.
/// Returns `(conversations, agents, rules)`: parallel lists in decision order.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (capacity, load, weight, last_assigned, available, queue_offsets, queue_ids,
                    queue, priority, sla_due, arrival, cost, preferred, prefer_kind, wait_until,
                    exclude, rankings, now))]
pub fn assign_batch(
    py: Python<'_>,
    capacity: &Bound<'_, PyAny>,
    load: &Bound<'_, PyAny>,
    weight: &Bound<'_, PyAny>,
    last_assigned: &Bound<'_, PyAny>,
    available: &[u8],
    queue_offsets: &Bound<'_, PyAny>,
    queue_ids: &Bound<'_, PyAny>,
    queue: &Bound<'_, PyAny>,
    priority: &Bound<'_, PyAny>,
    sla_due: &Bound<'_, PyAny>,
    arrival: &Bound<'_, PyAny>,
    cost: &Bound<'_, PyAny>,
    preferred: &Bound<'_, PyAny>,
    prefer_kind: &[u8],
    wait_until: &Bound<'_, PyAny>,
    exclude: &Bound<'_, PyAny>,
    rankings: &[u8],
    now: f64,
) -> PyResult<(Vec<u32>, Vec<u32>, Vec<u8>)> {
    let (capacity, load) = (vec_of::<u32>(py, capacity)?, vec_of::<u32>(py, load)?);
    let (weight, last) = (vec_of::<f64>(py, weight)?, vec_of::<f64>(py, last_assigned)?);
    let (offsets, ids) = (vec_of::<u32>(py, queue_offsets)?, vec_of::<u32>(py, queue_ids)?);
    let (w_queue, w_priority) = (vec_of::<u32>(py, queue)?, vec_of::<i32>(py, priority)?);
    let (w_sla, w_arrival) = (vec_of::<f64>(py, sla_due)?, vec_of::<u64>(py, arrival)?);
    let (w_cost, w_preferred) = (vec_of::<u32>(py, cost)?, vec_of::<i32>(py, preferred)?);
    let (w_wait, w_exclude) = (vec_of::<f64>(py, wait_until)?, vec_of::<i32>(py, exclude)?);
    let (available, prefer_kind, rankings) = (available.to_vec(), prefer_kind.to_vec(), rankings.to_vec());
    let decided = py.detach(|| {
        let agents = Agents { capacity: &capacity, load: &load, weight: &weight, last_assigned: &last,
                              available: &available, queue_offsets: &offsets, queue_ids: &ids };
        let waiting = Waiting { queue: &w_queue, priority: &w_priority, sla_due: &w_sla,
                                arrival: &w_arrival, cost: &w_cost, preferred: &w_preferred,
                                prefer_kind: &prefer_kind, wait_until: &w_wait,
                                exclude: &w_exclude };
        assign(&agents, &waiting, &rankings, now).map_err(CoreError::from)
    });
    let decided = decided.into_py_result(py)?;
    Ok((
        decided.iter().map(|a| a.conversation).collect(),
        decided.iter().map(|a| a.agent).collect(),
        decided.iter().map(|a| a.rule as u8).collect(),
    ))
}
