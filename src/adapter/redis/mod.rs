//! The Redis cluster adapter (cargo feature `redis`), wire-compatible with
//! `@socket.io/redis-streams-adapter` 0.3 and `@socket.io/redis-emitter` 5.
//!
//! One [`RedisAdapter`] per server process ("node"). Its background tasks, on the
//! server's runtime:
//!
//! - the **publisher** drains a bounded queue of commands (broadcasts, room operations,
//!   sessions, state changes) and sends them to Redis in pipelines;
//! - the **reader** follows the stream with `XREAD BLOCK` and delivers what other nodes
//!   broadcast; in ordered mode (recovery on) it also delivers this node's own
//!   broadcasts, so that every node delivers in log order with the log ids as offsets.
//!   It is also where recovering clients are slotted in: between two entries;
//! - the **subscriber** listens on the pub/sub channels for requests (socket listings,
//!   broadcasts with acknowledgements), answers, and what `@socket.io/redis-emitter`
//!   publishes;
//! - the **ticker** sends heartbeats and refreshes the sessions of live sockets.
//!
//! While Redis is unreachable, local delivery goes on at full speed (ordered
//! broadcasts too: they no longer wait for the log), what must cross waits in the
//! publisher's outage buffer (bounded in bytes, [`OutagePolicy`] when full) and goes
//! out in order when Redis returns, the outage is logged once each way, the node
//! reports itself not ready (`GET /readyz`), and the tasks reconnect within half a
//! second. Formats and guarantees: `docs/cluster.md`.

mod acks;
mod commands;
mod config;
mod emitter;
mod link;
mod loader;
mod node;
mod outbox;
mod publisher;
mod reader;
mod recover;
mod reply;
mod status;
mod subscriber;
mod ticker;
pub(crate) mod wire;

use std::sync::Arc;

// The emitter writes what a node writes: it takes these through `super::`.
use self::commands::{state_command, xadd_command};
use self::node::Node;
use self::wire::kind;
use crate::socketio::adapter::{Adapter, AdapterNode};

pub use self::config::{OutagePolicy, RedisConfig};
pub use self::emitter::{RedisBroadcast, RedisEmitter, RedisEmitterError};

/// A change to a keyed state map, on its way to the shared store.
#[derive(Debug, Clone)]
pub(crate) struct StateChange {
    pub map: String,
    pub key: String,
    /// None deletes the key.
    pub value: Option<serde_json::Value>,
}

/// A cluster of swarmcast nodes (and Node socket.io servers using
/// `@socket.io/redis-streams-adapter`) joined through Redis.
///
/// ```no_run
/// use swarmcast::{RedisAdapter, RedisConfig, Server, ServerConfig};
///
/// let mut server = Server::new(ServerConfig::default());
/// server
///     .set_adapter(RedisAdapter::new(RedisConfig::new("redis://127.0.0.1:6379"))?)?;
/// let running = server.start()?;
/// // Reaches the clients of every node.
/// running.emitter().emit("hello", &"world")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisAdapter {
    node: Arc<Node>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.node.uid)
            .field("stream", &self.node.config.stream_name)
            .finish_non_exhaustive()
    }
}

impl RedisAdapter {
    /// An adapter for this configuration. Connects when the server starts (and
    /// reconnects by itself); fails only on an invalid URL.
    pub fn new(config: RedisConfig) -> Result<Self, RedisEmitterError> {
        let client = config.client().map_err(RedisEmitterError::from)?;
        Ok(Self {
            node: Node::new(config, client),
        })
    }

    /// This node's id in the cluster (the `uid` of its messages).
    pub fn uid(&self) -> &str {
        &self.node.uid
    }

    /// Broadcasts with acknowledgements of this node still waiting for answers (each is
    /// forgotten at its timeout), and answers that came for no waiting request (late,
    /// or never asked) since the start.
    #[doc(hidden)]
    pub fn ack_requests(&self) -> (usize, u64) {
        (
            self.node.ack_requests.lock().len(),
            self.node
                .unknown_acks
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Whether this node is joined to its cluster now: every Redis connection up and
    /// the stream reader within `max_reader_lag` (what `GET /readyz` answers).
    pub fn readiness(&self) -> crate::Readiness {
        self.node.readiness()
    }
}

impl From<RedisAdapter> for Adapter {
    fn from(adapter: RedisAdapter) -> Self {
        Adapter {
            node: adapter.node as Arc<dyn AdapterNode>,
        }
    }
}
