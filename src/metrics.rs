//! Counters and histograms the server keeps as it runs: a [`Metrics`] snapshot for the
//! Rust API, and the Prometheus text of `GET /metrics`.
//!
//! Hot paths touch only relaxed atomics (one add per emit, not per recipient, and one
//! per flush); the Prometheus registry is built at scrape time from them.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Live counters.
#[derive(Debug)]
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
    rate_limited: AtomicU64,
    tcp_refused: AtomicU64,
    write_timeouts: AtomicU64,
    bytes_out: AtomicU64,
    frames_out: AtomicU64,
    flushes: AtomicU64,
    /// Cluster link (adapter): see `ClusterMetrics`.
    cluster_publish_failures: AtomicU64,
    cluster_reconnects: AtomicU64,
    cluster_remote: AtomicU64,
    cluster_late: AtomicU64,
    cluster_malformed: AtomicU64,
    /// Frames per WebSocket flush or polling response.
    batch_sizes: Histogram,
    /// Seconds from a PING to its PONG.
    ping_rtt: Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            emits: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            bytes_queued: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
            dropped_volatile: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            connect_refused: AtomicU64::new(0),
            slow_consumers: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            tcp_refused: AtomicU64::new(0),
            write_timeouts: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            cluster_publish_failures: AtomicU64::new(0),
            cluster_reconnects: AtomicU64::new(0),
            cluster_remote: AtomicU64::new(0),
            cluster_late: AtomicU64::new(0),
            cluster_malformed: AtomicU64::new(0),
            batch_sizes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            ping_rtt: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    /// One emit: `delivered` recipients got `packet_bytes` each, `full` could not take
    /// it, `volatile_dropped` volatile deliveries were dropped.
    pub fn record_emit(
        &self,
        delivered: usize,
        full: usize,
        volatile_dropped: usize,
        packet_bytes: usize,
    ) {
        add(&self.emits, 1);
        if delivered > 0 {
            add(&self.deliveries, delivered as u64);
            add(&self.bytes_queued, (delivered * packet_bytes) as u64);
        }
        if full > 0 {
            add(&self.dropped_full, full as u64);
        }
        if volatile_dropped > 0 {
            add(&self.dropped_volatile, volatile_dropped as u64);
        }
    }

    /// One write to a transport: `frames` frames, `bytes` bytes, one flush.
    pub fn record_write(&self, frames: usize, bytes: usize) {
        add(&self.frames_out, frames as u64);
        add(&self.bytes_out, bytes as u64);
        add(&self.flushes, 1);
        self.batch_sizes.observe(frames as f64);
    }

    pub fn record_ping_rtt(&self, seconds: f64) {
        self.ping_rtt.observe(seconds);
    }

    pub fn connect(&self) {
        add(&self.connects, 1);
    }

    pub fn disconnect(&self) {
        add(&self.disconnects, 1);
    }

    pub fn refuse(&self) {
        add(&self.connect_refused, 1);
    }

    pub fn slow_consumer(&self) {
        add(&self.slow_consumers, 1);
    }

    pub fn recovered(&self) {
        add(&self.recoveries, 1);
    }

    /// An incoming message over a connection's rate limit (dropped, or its connection
    /// closed).
    pub fn rate_limited(&self) {
        add(&self.rate_limited, 1);
    }

    /// A TCP connection refused because the server holds `max_connections`.
    pub fn tcp_refused(&self) {
        add(&self.tcp_refused, 1);
    }

    /// A connection closed because a write made no progress for the write timeout.
    pub fn write_timeout(&self) {
        add(&self.write_timeouts, 1);
    }

    /// Messages that could not be handed to the cluster.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_publish_failed(&self, n: u64) {
        add(&self.cluster_publish_failures, n);
    }

    /// A cluster connection came back.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_reconnected(&self) {
        add(&self.cluster_reconnects, 1);
    }

    /// A broadcast from another node was delivered here.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_remote_delivery(&self) {
        add(&self.cluster_remote, 1);
    }

    /// An ordered broadcast of this node was delivered without the log.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_late_delivery(&self, n: u64) {
        add(&self.cluster_late, n);
    }

    /// A malformed cluster message was dropped.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_malformed(&self) {
        add(&self.cluster_malformed, 1);
    }

    pub fn cluster_snapshot(&self) -> ClusterMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClusterMetrics {
            publish_failures: get(&self.cluster_publish_failures),
            reconnects: get(&self.cluster_reconnects),
            remote_deliveries: get(&self.cluster_remote),
            late_deliveries: get(&self.cluster_late),
            malformed: get(&self.cluster_malformed),
        }
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
            rate_limited: get(&self.rate_limited),
            connections_refused: get(&self.tcp_refused),
            write_timeouts: get(&self.write_timeouts),
            bytes_out: get(&self.bytes_out),
            frames_out: get(&self.frames_out),
            flushes: get(&self.flushes),
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
    /// Incoming messages over a connection's rate limit.
    pub rate_limited: u64,
    /// TCP connections refused because the server held `max_connections`.
    pub connections_refused: u64,
    /// Connections closed because a write made no progress for the write timeout.
    pub write_timeouts: u64,
    /// Bytes written to transports (WebSocket frames and polling responses).
    pub bytes_out: u64,
    /// Engine.IO packets written to transports.
    pub frames_out: u64,
    /// Writes to transports: WebSocket flushes plus polling responses. Frames per flush
    /// is the write coalescing at work.
    pub flushes: u64,
}

/// Counters of the cluster link (all zero with the local adapter). Also in
/// `GET /metrics` as `swarmcast_cluster_*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterMetrics {
    /// Messages (broadcasts, room operations, sessions, state changes) that could not
    /// be handed to Redis: they reached this node's sockets only, or nobody.
    pub publish_failures: u64,
    /// Times a Redis connection was lost and established again.
    pub reconnects: u64,
    /// Broadcasts from other nodes delivered to this node's sockets.
    pub remote_deliveries: u64,
    /// This node's ordered broadcasts delivered late or without a log offset because the
    /// log did not return them in time (Redis outage).
    pub late_deliveries: u64,
    /// Malformed cluster messages that were logged and dropped.
    pub malformed: u64,
}

/// What only the server knows at scrape time.
pub(crate) struct Gauges {
    /// (namespace, transport) -> sockets.
    pub connections: Vec<(String, &'static str, i64)>,
    pub sessions: i64,
    /// Open TCP connections (HTTP and WebSocket).
    pub tcp_connections: i64,
    pub queued_frames: i64,
    pub max_queue_depth: i64,
}

/// Render the Prometheus text exposition (OpenMetrics flavour, which Prometheus reads).
pub(crate) fn render(stats: &Stats, gauges: &Gauges) -> String {
    let m = stats.snapshot();
    let mut registry = Registry::with_prefix("swarmcast");
    let counter = |registry: &mut Registry, name: &str, help: &str, v: u64| {
        registry.register(name, help, ConstCounter::new(v));
    };
    counter(
        &mut registry,
        "events_emitted",
        "Emit calls (broadcasts count once)",
        m.emits,
    );
    counter(
        &mut registry,
        "events_delivered",
        "Packets queued to sockets, one per recipient",
        m.deliveries,
    );
    // The registry is built afresh per scrape, so a new counter incremented by the
    // running total reports that total.
    let dropped = Family::<Vec<(String, String)>, Counter>::default();
    for (reason, v) in [
        ("queue_full", m.dropped_queue_full),
        ("volatile", m.dropped_volatile),
    ] {
        dropped
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc_by(v);
    }
    registry.register("events_dropped", "Deliveries not made, by reason", dropped);
    counter(
        &mut registry,
        "bytes_out",
        "Bytes written to transports",
        m.bytes_out,
    );
    counter(
        &mut registry,
        "frames_out",
        "Engine.IO packets written to transports",
        m.frames_out,
    );
    counter(
        &mut registry,
        "flushes",
        "Transport writes (WebSocket flushes, polling responses)",
        m.flushes,
    );
    counter(
        &mut registry,
        "connects",
        "Namespace connections accepted",
        m.connects,
    );
    counter(
        &mut registry,
        "disconnects",
        "Namespace connections ended",
        m.disconnects,
    );
    counter(
        &mut registry,
        "connects_refused",
        "Namespace connections refused",
        m.connects_refused,
    );
    counter(
        &mut registry,
        "slow_consumers",
        "Clients disconnected because their queue filled",
        m.slow_consumers,
    );
    counter(
        &mut registry,
        "recoveries",
        "Clients that recovered their session",
        m.recoveries,
    );
    counter(
        &mut registry,
        "rate_limited",
        "Incoming messages over a connection's rate limit",
        m.rate_limited,
    );
    counter(
        &mut registry,
        "connections_refused",
        "TCP connections refused at max_connections",
        m.connections_refused,
    );
    counter(
        &mut registry,
        "write_timeouts",
        "Connections closed because a write made no progress for the write timeout",
        m.write_timeouts,
    );

    let c = stats.cluster_snapshot();
    for (name, help, v) in [
        (
            "cluster_publish_failures",
            "Cluster messages that could not be handed to Redis (local delivery went on)",
            c.publish_failures,
        ),
        (
            "cluster_reconnects",
            "Redis connections lost and established again",
            c.reconnects,
        ),
        (
            "cluster_remote_deliveries",
            "Broadcasts from other nodes delivered to this node's sockets",
            c.remote_deliveries,
        ),
        (
            "cluster_late_deliveries",
            "Ordered broadcasts of this node delivered without the Redis log (outage)",
            c.late_deliveries,
        ),
        (
            "cluster_malformed",
            "Malformed cluster messages dropped",
            c.malformed,
        ),
    ] {
        counter(&mut registry, name, help, v);
    }

    let connections = Family::<Vec<(String, String)>, Gauge>::default();
    for (namespace, transport, n) in &gauges.connections {
        connections
            .get_or_create(&vec![
                ("namespace".to_string(), namespace.clone()),
                ("transport".to_string(), transport.to_string()),
            ])
            .set(*n);
    }
    registry.register(
        "connections",
        "Connected sockets by namespace and transport",
        connections,
    );
    registry.register(
        "sessions",
        "Open Engine.IO sessions",
        ConstGauge::new(gauges.sessions),
    );
    registry.register(
        "tcp_connections",
        "Open TCP connections (HTTP and WebSocket)",
        ConstGauge::new(gauges.tcp_connections),
    );
    registry.register(
        "queued_frames",
        "Frames waiting in outbound queues",
        ConstGauge::new(gauges.queued_frames),
    );
    registry.register(
        "max_queue_depth",
        "Frames waiting in the fullest outbound queue",
        ConstGauge::new(gauges.max_queue_depth),
    );
    registry.register(
        "batch_size",
        "Frames per transport write",
        stats.batch_sizes.clone(),
    );
    registry.register(
        "ping_rtt_seconds",
        "Round-trip time from a server PING to the client's PONG",
        stats.ping_rtt.clone(),
    );
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}
