//! [`RedisConfig`]: where and how a node talks to Redis, and the names derived
//! from it (pub/sub channels, keyed-state keys, the connection manager's timeouts).
//! Kept apart so that the node and the [`RedisEmitter`](super::RedisEmitter) name
//! channels and keys the same way.

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;

use super::wire;

/// Where and how a node (or a [`RedisEmitter`](super::RedisEmitter)) talks to Redis.
/// The defaults are those of `@socket.io/redis-streams-adapter`, so that Node servers
/// using it join the same cluster unchanged.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS (cargo
    /// feature `redis-tls`; append `#insecure` to skip certificate checks).
    pub url: String,
    /// The stream holding the broadcast log (`streamName`).
    pub stream_name: String,
    /// `MAXLEN ~` bound of the stream (`maxLen`): size it for the recovery window
    /// (see `docs/deployment.md`).
    pub max_len: usize,
    /// Prefix of the pub/sub channels (`channelPrefix`).
    pub channel_prefix: String,
    /// Prefix of the recovery session keys (`sessionKeyPrefix`).
    pub session_key_prefix: String,
    /// Prefix of the keyed-state hashes (swarmcast only).
    pub state_key_prefix: String,
    /// Entries per `XREAD` (`readCount`).
    pub read_count: usize,
    /// `XREAD BLOCK` time (`blockTimeInMs`).
    pub block_time: Duration,
    /// How often the node says it is alive (`heartbeatInterval`).
    pub heartbeat_interval: Duration,
    /// How long a socket listing waits for the other nodes; also how long this node
    /// waits for its clients' answers to another node's broadcast with
    /// acknowledgements that names no timeout.
    pub request_timeout: Duration,
    /// Broadcasts with acknowledgements this node waits on at once, at most: its own
    /// (beyond, `emit_with_ack` fails with `BroadcastAckError::TooManyPending`) and,
    /// counted apart, other nodes' (beyond, it answers that it reached no client).
    /// Each is forgotten at its timeout.
    pub max_ack_requests: usize,
    /// How long one Redis command may take before it counts as failed.
    pub response_timeout: Duration,
    /// Commands waiting to be taken by the publisher task, at most (a hand-off between
    /// emitting threads and the task; what waits for Redis is bounded by
    /// `outage_buffer_bytes`). Beyond, they count as failures.
    pub queue_capacity: usize,
    /// Bytes of cluster messages a node keeps while Redis is unreachable, to publish
    /// them in order when it returns. Beyond, `outage_policy` decides what goes.
    pub outage_buffer_bytes: usize,
    /// What goes when the outage buffer is full (every dropped message is counted in
    /// `swarmcast_cluster_outage_dropped_total`).
    pub outage_policy: OutagePolicy,
    /// A node whose stream reader is further behind than this (Redis clock) reports
    /// itself not ready (`GET /readyz`).
    pub max_reader_lag: Duration,
    /// With recovery on, deliver this node's broadcasts locally in log order (their
    /// offsets are then log ids, recoverable on any node). Off: local delivery is
    /// immediate and offsets of local broadcasts only recover on this node.
    pub ordered_delivery: bool,
}

/// What a node drops when its outage buffer (`RedisConfig::outage_buffer_bytes`) is
/// full. Local delivery never waits either way; the other nodes miss what is dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutagePolicy {
    /// Drop the oldest buffered messages: the other nodes get the latest part of the
    /// outage (live data, where the newest matters most).
    #[default]
    DropOldest,
    /// Refuse new messages: the other nodes get the first part of the outage, without
    /// a hole in its middle.
    DropNewest,
}

impl RedisConfig {
    /// The defaults with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream_name: "socket.io".into(),
            max_len: 10_000,
            channel_prefix: "socket.io".into(),
            session_key_prefix: "sio:session:".into(),
            state_key_prefix: "swarmcast:state:".into(),
            read_count: 100,
            block_time: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            max_ack_requests: 10_000,
            response_timeout: Duration::from_secs(2),
            queue_capacity: 65_536,
            outage_buffer_bytes: 64 << 20,
            outage_policy: OutagePolicy::DropOldest,
            max_reader_lag: Duration::from_secs(5),
            ordered_delivery: true,
        }
    }

    pub(super) fn public_channel(&self, nsp: &str) -> String {
        format!("{}#{nsp}#", self.channel_prefix)
    }

    pub(super) fn private_channel(&self, nsp: &str, uid: &str) -> String {
        format!("{}#{nsp}#{uid}#", self.channel_prefix)
    }

    pub(super) fn emitter_request_channel(&self, nsp: &str) -> String {
        format!("{}-request#{nsp}#", self.channel_prefix)
    }

    pub(super) fn state_entries_key(&self, nsp: &str, map: &str) -> String {
        format!(
            "{}{}:map:{}",
            self.state_key_prefix,
            wire::key_part(nsp),
            wire::key_part(map)
        )
    }

    pub(super) fn state_maps_key(&self, nsp: &str) -> String {
        format!("{}{}:maps", self.state_key_prefix, wire::key_part(nsp))
    }

    pub(super) fn client(&self) -> Result<redis::Client, redis::RedisError> {
        #[cfg(feature = "redis-tls")]
        {
            // rustls needs a process-wide crypto provider; ours unless one is set.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        redis::Client::open(self.url.as_str())
    }

    /// A plain multiplexed connection's settings (the node reconnects by itself).
    pub(super) fn connection_config(&self, response: Duration) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(response))
    }

    pub(super) fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(self.response_timeout))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(3)
    }
}
