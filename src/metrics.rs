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
    writes_through: AtomicU64,
    /// Cluster link (adapter): see `ClusterMetrics`.
    cluster_publish_failures: AtomicU64,
    cluster_reconnects: AtomicU64,
    cluster_remote: AtomicU64,
    cluster_late: AtomicU64,
    cluster_malformed: AtomicU64,
    cluster_outage_dropped: AtomicU64,
    cluster_outage_published: AtomicU64,
    cluster_stream_resets: AtomicU64,
    /// Recoveries that started a fresh session, by [`RecoveryMiss`].
    cluster_recovery_misses: [AtomicU64; 4],
    /// Gauges the cluster adapter sets (see [`ClusterGauge`]).
    cluster_gauges: [AtomicU64; ClusterGauge::COUNT],
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
            writes_through: AtomicU64::new(0),
            cluster_publish_failures: AtomicU64::new(0),
            cluster_reconnects: AtomicU64::new(0),
            cluster_remote: AtomicU64::new(0),
            cluster_late: AtomicU64::new(0),
            cluster_malformed: AtomicU64::new(0),
            cluster_outage_dropped: AtomicU64::new(0),
            cluster_outage_published: AtomicU64::new(0),
            cluster_stream_resets: AtomicU64::new(0),
            cluster_recovery_misses: Default::default(),
            cluster_gauges: Default::default(),
            batch_sizes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            ping_rtt: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
        }
    }
}

/// Why a recovery in a cluster started a fresh session instead.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecoveryMiss {
    /// No session in Redis (expired, never written, or lost with Redis's data).
    NoSession = 0,
    /// The client's offset is no longer in the stream (trimmed, or lost with Redis's
    /// data): what it missed cannot be known.
    OffsetGone = 1,
    /// Redis did not answer.
    Redis = 2,
    /// The stream reader did not reach the client's offset in time.
    Timeout = 3,
}

impl RecoveryMiss {
    const ALL: [RecoveryMiss; 4] = [
        RecoveryMiss::NoSession,
        RecoveryMiss::OffsetGone,
        RecoveryMiss::Redis,
        RecoveryMiss::Timeout,
    ];

    fn label(self) -> &'static str {
        match self {
            RecoveryMiss::NoSession => "no_session",
            RecoveryMiss::OffsetGone => "offset_gone",
            RecoveryMiss::Redis => "redis",
            RecoveryMiss::Timeout => "timeout",
        }
    }
}

/// A gauge of the cluster link, set by the adapter as it runs.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClusterGauge {
    /// 1 once a cluster adapter runs (the cluster gauges are rendered only then).
    Enabled = 0,
    /// 1 while every Redis connection of the node is up.
    RedisConnected,
    OutageBufferBytes,
    OutageBufferMessages,
    StreamLagEntries,
    StreamLagMs,
    Peers,
    ReplayWindowEntries,
    ReplayWindowMs,
}

impl ClusterGauge {
    const COUNT: usize = 9;
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

    /// A write an emitting thread made itself (write-through); also a write above.
    pub fn record_write_through(&self, frames: usize, bytes: usize) {
        self.record_write(frames, bytes);
        add(&self.writes_through, 1);
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

    /// Messages dropped from a full outage buffer.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_outage_dropped(&self, n: u64) {
        add(&self.cluster_outage_dropped, n);
    }

    /// Messages published to Redis after waiting out an outage in the buffer.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_outage_published(&self, n: u64) {
        add(&self.cluster_outage_published, n);
    }

    /// Redis came back without the stream this node had read (data lost).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_stream_reset(&self) {
        add(&self.cluster_stream_resets, 1);
    }

    /// A recovery that started a fresh session.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_recovery_miss(&self, why: RecoveryMiss) {
        add(&self.cluster_recovery_misses[why as usize], 1);
    }

    /// Set a cluster gauge.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub fn cluster_gauge(&self, gauge: ClusterGauge, v: u64) {
        self.cluster_gauges[gauge as usize].store(v, Ordering::Relaxed);
    }

    pub fn cluster_snapshot(&self) -> ClusterMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauge = |g: ClusterGauge| get(&self.cluster_gauges[g as usize]);
        ClusterMetrics {
            publish_failures: get(&self.cluster_publish_failures),
            reconnects: get(&self.cluster_reconnects),
            remote_deliveries: get(&self.cluster_remote),
            late_deliveries: get(&self.cluster_late),
            malformed: get(&self.cluster_malformed),
            outage_dropped: get(&self.cluster_outage_dropped),
            outage_published: get(&self.cluster_outage_published),
            stream_resets: get(&self.cluster_stream_resets),
            recovery_misses: self.cluster_recovery_misses.iter().map(get).sum(),
            redis_connected: gauge(ClusterGauge::RedisConnected) == 1,
            outage_buffer_bytes: gauge(ClusterGauge::OutageBufferBytes),
            outage_buffer_messages: gauge(ClusterGauge::OutageBufferMessages),
            stream_lag_entries: gauge(ClusterGauge::StreamLagEntries),
            stream_lag_ms: gauge(ClusterGauge::StreamLagMs),
            peers: gauge(ClusterGauge::Peers),
            replay_window_entries: gauge(ClusterGauge::ReplayWindowEntries),
            replay_window_ms: gauge(ClusterGauge::ReplayWindowMs),
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
            writes_through: get(&self.writes_through),
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
    /// Of `flushes`, the WebSocket writes an emitting thread made itself, to a client
    /// whose writer was idle, instead of waking the writer (`EngineConfig::write_through`).
    pub writes_through: u64,
}

/// Counters and gauges of the cluster link (all zero with the local adapter). Also in
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
    /// Messages dropped because the outage buffer was full (the other nodes missed
    /// them; `RedisConfig::outage_policy` says which ones).
    pub outage_dropped: u64,
    /// Messages published late, after waiting out a Redis outage in the buffer.
    pub outage_published: u64,
    /// Times Redis came back without the stream entries this node had read (a restart
    /// without persistence): recoveries from older offsets then start afresh.
    pub stream_resets: u64,
    /// Recoveries that started a fresh session (no session, offset gone, Redis
    /// unreachable, reader too slow); by reason in `/metrics`.
    pub recovery_misses: u64,
    /// Gauge: every Redis connection of this node is up.
    pub redis_connected: bool,
    /// Gauge: bytes waiting in the outage buffer.
    pub outage_buffer_bytes: u64,
    /// Gauge: messages waiting in the outage buffer.
    pub outage_buffer_messages: u64,
    /// Gauge: stream entries not yet read by this node (Redis 7 and later).
    pub stream_lag_entries: u64,
    /// Gauge: how far the stream reader is behind the newest entry, in ms.
    pub stream_lag_ms: u64,
    /// Gauge: other nodes seen in the stream recently (3 heartbeats, at least 15 s).
    pub peers: u64,
    /// Gauge: entries the stream holds (the replay window, in entries).
    pub replay_window_entries: u64,
    /// Gauge: ms between the oldest and the newest entry of the stream (the replay
    /// window, in time): a client disconnected longer than this cannot recover.
    pub replay_window_ms: u64,
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
        "writes_through",
        "WebSocket writes made by the emitting thread to an idle client (write-through)",
        m.writes_through,
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
    if stats.cluster_gauges[ClusterGauge::Enabled as usize].load(Ordering::Relaxed) == 1 {
        render_cluster(&mut registry, stats, &c);
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

/// The cluster link's extra counters and gauges (only with a cluster adapter).
fn render_cluster(registry: &mut Registry, stats: &Stats, c: &ClusterMetrics) {
    for (name, help, v) in [
        (
            "cluster_outage_dropped",
            "Cluster messages dropped because the outage buffer was full",
            c.outage_dropped,
        ),
        (
            "cluster_outage_published",
            "Cluster messages published late, after waiting out a Redis outage",
            c.outage_published,
        ),
        (
            "cluster_stream_resets",
            "Redis came back without the stream entries this node had read",
            c.stream_resets,
        ),
    ] {
        registry.register(name, help, ConstCounter::new(v));
    }
    let misses = Family::<Vec<(String, String)>, Counter>::default();
    for why in RecoveryMiss::ALL {
        misses
            .get_or_create(&vec![("reason".to_string(), why.label().to_string())])
            .inc_by(stats.cluster_recovery_misses[why as usize].load(Ordering::Relaxed));
    }
    registry.register(
        "cluster_recovery_misses",
        "Recoveries that started a fresh session, by reason",
        misses,
    );
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (name, help, v) in [
        (
            "cluster_redis_connected",
            "1 while every Redis connection of this node is up",
            u64::from(c.redis_connected),
        ),
        (
            "cluster_outage_buffer_bytes",
            "Bytes of cluster messages waiting for Redis",
            c.outage_buffer_bytes,
        ),
        (
            "cluster_outage_buffer_messages",
            "Cluster messages waiting for Redis",
            c.outage_buffer_messages,
        ),
        (
            "cluster_stream_lag_entries",
            "Stream entries not yet read by this node (Redis 7 and later)",
            c.stream_lag_entries,
        ),
        (
            "cluster_stream_lag_milliseconds",
            "How far the stream reader is behind the newest entry",
            c.stream_lag_ms,
        ),
        (
            "cluster_peers",
            "Other nodes seen in the stream recently",
            c.peers,
        ),
        (
            "cluster_replay_window_entries",
            "Entries the stream holds",
            c.replay_window_entries,
        ),
        (
            "cluster_replay_window_milliseconds",
            "Time between the oldest and the newest entry of the stream",
            c.replay_window_ms,
        ),
    ] {
        registry.register(name, help, ConstGauge::new(as_i64(v)));
    }
}
