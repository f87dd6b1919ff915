//! The adapter seam: how a namespace reaches beyond this process.
//!
//! Every namespace broadcasts, keeps rooms, lists and disconnects sockets, and keeps the
//! sessions of clients that may come back. With the [`LocalAdapter`] (the default) all
//! of that happens in-process, exactly as without any adapter: the emit path checks one
//! empty slot and goes on. With a cluster adapter (`RedisAdapter`, cargo feature
//! `redis`) the same operations also go through a [`ClusterNamespace`] attached to each
//! namespace:
//!
//! | operation | local | cluster |
//! |---|---|---|
//! | broadcast (all, rooms, except) | fan-out to local sockets | also appended to the broadcast log; every other node fans it out to its own sockets |
//! | `join_room`/`leave_room`/`disconnect` by socket id | local registry | forwarded to the node that holds the socket |
//! | socket listing, rooms of a socket | local registry | [`Broadcast::fetch_sockets`](crate::Broadcast::fetch_sockets) asks every node |
//! | recovery session | replay buffer in memory | session and packets in the shared log: any node recovers the client |
//! | keyed state | map in memory | map in the shared store, deltas in the log |
//!
//! The trait itself ([`ClusterNamespace`]) is crate-internal for now: implementing it
//! needs the encoded-packet and delivery internals. The public face is the opaque
//! [`Adapter`], made from a [`LocalAdapter`] or a `RedisAdapter` and given to
//! [`crate::Server::set_adapter`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use serde_json::Value;

use crate::emitter::IoCore;
use crate::engine::EngineSocket;
use crate::metrics::Stats;
use crate::namespace::Namespace;
use crate::rooms::{Filter, Room, Target};
use crate::socket::Socket;

#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{RedisAdapter, RedisBroadcast, RedisConfig, RedisEmitter, RedisEmitterError};

/// A boxed future, as the cluster operations return.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Everything in-process: today's behaviour, the default. Broadcasts, rooms, socket
/// listings and recovery sessions stay in this server's memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAdapter;

/// The adapter a server uses, made from a [`LocalAdapter`] or (feature `redis`) a
/// `RedisAdapter`. Give it to [`crate::Server::set_adapter`].
#[derive(Clone, Default)]
pub struct Adapter {
    pub(crate) node: Option<Arc<dyn ClusterNode>>,
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.node.is_some() {
            "Adapter(cluster)"
        } else {
            "Adapter(local)"
        })
    }
}

impl From<LocalAdapter> for Adapter {
    fn from(_: LocalAdapter) -> Self {
        Adapter { node: None }
    }
}

/// A socket as [`Broadcast::fetch_sockets`](crate::Broadcast::fetch_sockets) reports
/// it: on this node or on another one.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketInfo {
    /// The socket id.
    pub id: String,
    /// Its rooms, its own id room first.
    pub rooms: Vec<String>,
    /// The auth payload it connected with (`null` when it sent none or when another
    /// server implementation did not report it).
    pub auth: Value,
    /// Whether the socket is connected to this node.
    pub local: bool,
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

/// One broadcast on its way to the other nodes (and, in ordered mode, back to this one).
/// The arguments are serialised once, as the JSON text that follows the event name.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct ClusterBroadcast {
    pub event: String,
    /// `,arg1,arg2`: each JSON argument preceded by a comma.
    pub tail: Vec<u8>,
    pub attachments: Vec<Bytes>,
    pub target: Target,
    pub volatile: bool,
    pub keyed: Option<Arc<str>>,
    pub filter_key: String,
}

/// What a disconnected socket leaves for a later recovery.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    pub pid: String,
    pub sid: Arc<str>,
    pub rooms: Vec<Room>,
    pub filters: Vec<(Room, Filter)>,
    pub auth: Option<Value>,
}

/// A change to a keyed state map.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone)]
pub(crate) struct StateChange {
    pub map: String,
    pub key: String,
    /// None deletes the key.
    pub value: Option<Value>,
}

/// A cluster link for the whole server (one per process).
pub(crate) trait ClusterNode: Send + Sync {
    /// The link of one namespace, attached when the namespace is created.
    fn namespace(&self, name: &str, stats: &Arc<Stats>) -> Arc<dyn ClusterNamespace>;
    /// Start the background tasks on the server's runtime.
    fn start(&self, core: Weak<IoCore>, runtime: tokio::runtime::Handle);
    /// Resolves once the node has loaded the shared state it serves (bounded).
    fn ready(&self) -> BoxFuture<()>;
    /// Say goodbye to the cluster and stop the tasks (best effort, does not wait).
    fn stop(&self);
}

/// The cluster operations of one namespace.
pub(crate) trait ClusterNamespace: Send + Sync {
    /// Whether local delivery of non-volatile broadcasts waits for the shared log to
    /// order them (so that their offsets are log ids, the same on every node).
    fn ordered(&self) -> bool;
    /// Hand a broadcast to the cluster. In ordered mode this node delivers it when the
    /// log returns it; otherwise it was delivered locally already.
    fn publish(&self, msg: ClusterBroadcast, ordered: bool);
    /// Make the sockets the target reaches on other nodes join `rooms`.
    fn sockets_join(&self, target: &Target, rooms: &[Room]);
    /// Make the sockets the target reaches on other nodes leave `rooms`.
    fn sockets_leave(&self, target: &Target, rooms: &[Room]);
    /// Disconnect the sockets the target reaches on other nodes.
    fn disconnect_sockets(&self, target: &Target, close: bool);
    /// The sockets the target reaches on other nodes.
    fn fetch_sockets(&self, target: &Target) -> BoxFuture<Vec<SocketInfo>>;
    /// Keep a session for recovery: `disconnected` ones expire after the recovery
    /// window; live ones are kept (and refreshed) while the socket lives.
    fn persist_session(&self, session: SessionRecord, disconnected: bool);
    /// Forget a session (the client left for good).
    fn drop_session(&self, pid: &str);
    /// Recover a client's session from the shared log: the socket, registered and sent
    /// every missed packet, or None.
    fn recover(
        &self,
        ns: Arc<Namespace>,
        engine: EngineSocket,
        pid: String,
        offset: String,
        auth: Option<Value>,
    ) -> BoxFuture<Option<Socket>>;
    /// Apply a keyed-state change through the shared store; its delta reaches every
    /// node (this one included) through the log.
    fn state_change(&self, change: StateChange);
    /// A state map was created on this node: load what the cluster knows of it.
    fn state_opened(&self, map: &str);
}
