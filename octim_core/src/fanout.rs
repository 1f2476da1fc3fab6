//! The fan-out hub: bounded per-connection outboxes for outgoing frames.
//!
//! The engine encodes a frame once and pushes the *same* payload to every
//! recipient connection (payloads are cheap handles, `P: Clone`). Each
//! outbox holds at most `capacity` frames in arrival order, in two classes:
//!
//! * **critical** frames (messages, acks, events) are never dropped: when an
//!   outbox is full of critical frames the connection is a slow consumer; its
//!   outbox is cleared and marked overflowed, the push reports it, and the
//!   gateway disconnects it (the client catches up with `sync`);
//! * **droppable** frames (typing, presence) go first when room is needed,
//!   oldest first, and a droppable frame with a coalescing key replaces the
//!   pending frame with the same key instead of queueing behind it.
//!
//! A push reports which outboxes went from empty to non-empty (their writer
//! tasks need waking) and which overflowed. Pure Rust: no IO, no clock.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use crate::error::{CoreError, CoreResult};

/// Whether a frame may be dropped when its outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Critical,
    Droppable,
}

/// What one or more pushes did to the outboxes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Connections whose outbox went from empty to non-empty.
    pub woken: Vec<u64>,
    /// Connections that just became slow consumers.
    pub overflowed: Vec<u64>,
}

/// Counters over the hub's life.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    pub pushed: u64,
    pub coalesced: u64,
    pub dropped: u64,
    pub overflows: u64,
}

struct Outbox<P> {
    critical: VecDeque<(u64, P)>,
    droppable: VecDeque<(u64, P, Option<u64>)>,
    /// Absolute index of `droppable[0]`; coalescing keys point at absolute indexes.
    droppable_head: u64,
    keys: HashMap<u64, u64>,
    capacity: usize,
    overflowed: bool,
}

impl<P> Outbox<P> {
    fn new(capacity: usize) -> Self {
        Outbox {
            critical: VecDeque::new(),
            droppable: VecDeque::new(),
            droppable_head: 0,
            keys: HashMap::default(),
            capacity,
            overflowed: false,
        }
    }

    fn len(&self) -> usize {
        self.critical.len() + self.droppable.len()
    }

    fn pop_droppable(&mut self) -> Option<P> {
        let (_, payload, key) = self.droppable.pop_front()?;
        if let Some(key) = key {
            if self.keys.get(&key) == Some(&self.droppable_head) {
                self.keys.remove(&key);
            }
        }
        self.droppable_head += 1;
        Some(payload)
    }

    fn clear(&mut self) {
        self.critical.clear();
        self.droppable.clear();
        self.keys.clear();
    }
}

/// Outboxes by connection id. See the module documentation.
pub struct Hub<P> {
    outboxes: HashMap<u64, Outbox<P>>,
    next_order: u64,
    stats: HubStats,
}

impl<P: Clone> Default for Hub<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Clone> Hub<P> {
    pub fn new() -> Self {
        Hub { outboxes: HashMap::default(), next_order: 0, stats: HubStats::default() }
    }

    /// Create the outbox of a new connection.
    pub fn open(&mut self, conn: u64, capacity: usize) -> CoreResult<()> {
        if capacity == 0 {
            return Err(CoreError::InvalidArgument("outbox capacity must be positive".into()));
        }
        if self.outboxes.contains_key(&conn) {
            return Err(CoreError::InvalidArgument(format!("connection {conn} already has an outbox")));
        }
        self.outboxes.insert(conn, Outbox::new(capacity));
        Ok(())
    }

    /// Remove a connection's outbox; returns whether it existed.
    pub fn close(&mut self, conn: u64) -> bool {
        self.outboxes.remove(&conn).is_some()
    }

    /// Push one payload to many connections (unknown or overflowed ones are skipped).
    pub fn push(
        &mut self,
        payload: &P,
        recipients: &[u64],
        class: Class,
        key: Option<u64>,
        report: &mut PushReport,
    ) {
        let order = self.next_order;
        self.next_order += 1;
        for &conn in recipients {
            let Some(outbox) = self.outboxes.get_mut(&conn) else { continue };
            if outbox.overflowed {
                continue;
            }
            let was_empty = outbox.len() == 0;
            match class {
                Class::Droppable => {
                    if let Some(&index) = key.as_ref().and_then(|k| outbox.keys.get(k)) {
                        let slot = (index - outbox.droppable_head) as usize;
                        outbox.droppable[slot].1 = payload.clone();
                        self.stats.coalesced += 1;
                        continue;
                    }
                    if outbox.len() >= outbox.capacity {
                        if outbox.pop_droppable().is_none() {
                            self.stats.dropped += 1; // full of critical frames: drop this one
                            continue;
                        }
                        self.stats.dropped += 1;
                    }
                    if let Some(k) = key {
                        outbox.keys.insert(k, outbox.droppable_head + outbox.droppable.len() as u64);
                    }
                    outbox.droppable.push_back((order, payload.clone(), key));
                }
                Class::Critical => {
                    if outbox.len() >= outbox.capacity {
                        if outbox.pop_droppable().is_some() {
                            self.stats.dropped += 1;
                        } else {
                            outbox.clear();
                            outbox.overflowed = true;
                            self.stats.overflows += 1;
                            report.overflowed.push(conn);
                            continue;
                        }
                    }
                    outbox.critical.push_back((order, payload.clone()));
                }
            }
            self.stats.pushed += 1;
            if was_empty {
                report.woken.push(conn);
            }
        }
    }

    /// Take up to `max` frames from a connection's outbox, in arrival order.
    pub fn drain(&mut self, conn: u64, max: usize) -> Vec<P> {
        let Some(outbox) = self.outboxes.get_mut(&conn) else { return Vec::new() };
        let mut out = Vec::with_capacity(max.min(outbox.len()));
        while out.len() < max {
            let take_critical = match (outbox.critical.front(), outbox.droppable.front()) {
                (Some(c), Some(d)) => c.0 < d.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_critical {
                out.push(outbox.critical.pop_front().unwrap().1);
            } else {
                out.push(outbox.pop_droppable().unwrap());
            }
        }
        out
    }

    /// Frames waiting in a connection's outbox (0 for unknown connections).
    pub fn pending(&self, conn: u64) -> usize {
        self.outboxes.get(&conn).map_or(0, Outbox::len)
    }

    /// Whether the connection overflowed (and must be disconnected).
    pub fn is_overflowed(&self, conn: u64) -> bool {
        self.outboxes.get(&conn).is_some_and(|o| o.overflowed)
    }

    /// Open outboxes.
    pub fn connections(&self) -> usize {
        self.outboxes.len()
    }

    pub fn stats(&self) -> HubStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(conns: &[u64], capacity: usize) -> Hub<u32> {
        let mut h = Hub::new();
        for &c in conns {
            h.open(c, capacity).unwrap();
        }
        h
    }

    #[test]
    fn shared_payload_reaches_every_recipient_in_order() {
        let mut h = hub(&[1, 2, 3], 8);
        let mut r = PushReport::default();
        h.push(&10, &[1, 2, 3], Class::Critical, None, &mut r);
        h.push(&11, &[1, 3], Class::Critical, None, &mut r);
        assert_eq!(r.woken, vec![1, 2, 3]);
        assert_eq!(h.drain(1, 10), vec![10, 11]);
        assert_eq!(h.drain(2, 10), vec![10]);
        assert_eq!(h.drain(3, 1), vec![10]);
        assert_eq!(h.drain(3, 1), vec![11]);
        assert!(h.drain(3, 1).is_empty());
    }

    #[test]
    fn droppable_frames_coalesce_by_key_in_place() {
        let mut h = hub(&[1], 8);
        let mut r = PushReport::default();
        h.push(&1, &[1], Class::Droppable, Some(7), &mut r);
        h.push(&2, &[1], Class::Critical, None, &mut r);
        h.push(&3, &[1], Class::Droppable, Some(7), &mut r);
        assert_eq!(h.drain(1, 10), vec![3, 2]);
        assert_eq!(h.stats().coalesced, 1);
        h.push(&4, &[1], Class::Droppable, Some(7), &mut r); // key freed by the drain
        assert_eq!(h.drain(1, 10), vec![4]);
    }

    #[test]
    fn full_outbox_drops_droppable_first_then_overflows() {
        let mut h = hub(&[1], 3);
        let mut r = PushReport::default();
        h.push(&1, &[1], Class::Droppable, None, &mut r);
        h.push(&2, &[1], Class::Critical, None, &mut r);
        h.push(&3, &[1], Class::Critical, None, &mut r);
        h.push(&4, &[1], Class::Critical, None, &mut r); // drops 1
        assert!(r.overflowed.is_empty());
        h.push(&5, &[1], Class::Droppable, None, &mut r); // no room: dropped itself
        assert_eq!(h.pending(1), 3);
        h.push(&6, &[1], Class::Critical, None, &mut r);
        assert_eq!(r.overflowed, vec![1]);
        assert!(h.is_overflowed(1));
        assert!(h.drain(1, 10).is_empty());
        h.push(&7, &[1], Class::Critical, None, &mut r);
        assert_eq!(r.overflowed, vec![1]); // reported once
    }

    #[test]
    fn unknown_connections_are_skipped_and_open_is_checked() {
        let mut h = hub(&[1], 2);
        let mut r = PushReport::default();
        h.push(&1, &[9, 1], Class::Critical, None, &mut r);
        assert_eq!(r.woken, vec![1]);
        assert!(h.open(1, 2).is_err());
        assert!(h.open(2, 0).is_err());
        assert!(h.close(1));
        assert!(!h.close(1));
        assert_eq!(h.connections(), 0);
    }
}
