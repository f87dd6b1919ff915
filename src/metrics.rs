//! Counters the server keeps as it runs, readable as a [`Metrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::emitter::EmitReport;

/// Live counters, updated with relaxed atomics (one add per emit, not per recipient).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    emits: AtomicU64,
    deliveries: AtomicU64,
    bytes_queued: AtomicU64,
    dropped_full: AtomicU64,
    dropped_volatile: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    connect_refused: AtomicU64,
    slow_consumers: AtomicU64,
    recoveries: AtomicU64,
}

impl Stats {
    pub fn record_emit(&self, report: &EmitReport, packet_bytes: usize) {
        self.emits.fetch_add(1, Ordering::Relaxed);
        if report.delivered > 0 {
            self.deliveries
                .fetch_add(report.delivered as u64, Ordering::Relaxed);
            self.bytes_queued
                .fetch_add((report.delivered * packet_bytes) as u64, Ordering::Relaxed);
        }
        if !report.full.is_empty() {
            self.dropped_full
                .fetch_add(report.full.len() as u64, Ordering::Relaxed);
        }
        if report.volatile_dropped > 0 {
            self.dropped_volatile
                .fetch_add(report.volatile_dropped as u64, Ordering::Relaxed);
        }
    }

    pub fn connect(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn disconnect(&self) {
        self.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refuse(&self) {
        self.connect_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn recovered(&self) {
        self.recoveries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            emits: get(&self.emits),
            deliveries: get(&self.deliveries),
            bytes_queued: get(&self.bytes_queued),
            dropped_queue_full: get(&self.dropped_full),
            dropped_volatile: get(&self.dropped_volatile),
            connects: get(&self.connects),
            disconnects: get(&self.disconnects),
            connects_refused: get(&self.connect_refused),
            slow_consumers: get(&self.slow_consumers),
            recoveries: get(&self.recoveries),
        }
    }
}

/// A snapshot of the server's counters since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Emit calls that reached fan-out.
    pub emits: u64,
    /// Packets queued to sockets (one per recipient).
    pub deliveries: u64,
    /// Bytes queued to sockets, summed over recipients.
    pub bytes_queued: u64,
    /// Deliveries refused because a socket's queue was full.
    pub dropped_queue_full: u64,
    /// Volatile deliveries dropped because a socket's queue was full.
    pub dropped_volatile: u64,
    /// Namespace connections accepted.
    pub connects: u64,
    /// Namespace connections ended.
    pub disconnects: u64,
    /// Namespace connections refused by a connect handler or an unknown namespace.
    pub connects_refused: u64,
    /// Clients disconnected because their queue filled.
    pub slow_consumers: u64,
    /// Clients that came back and recovered their session.
    pub recoveries: u64,
}
