//! The adapter seam: the one way a broadcast (or any operation on a set of sockets)
//! leaves a namespace.
//!
//! Every namespace broadcasts, keeps rooms, lists and disconnects sockets, keeps keyed
//! state and keeps the sessions of clients that may come back. It does each of these by
//! calling its [`NamespaceAdapter`], never by itself. The [`LocalAdapter`] (the default)
//! does it all in-process; a cluster adapter (`RedisAdapter`, cargo feature `redis`)
//! does the same locally and also reaches the other nodes:
//!
//! | operation | local | cluster |
//! |---|---|---|
//! | broadcast (all, rooms, except) | fan-out to local sockets | also appended to the broadcast log; every other node fans it out to its own sockets |
//! | broadcast with acknowledgements | local sockets' answers | also asks every other node, which sends to its sockets and forwards their answers ([`acks`]) |
//! | `join_room`/`leave_room`/`disconnect` by target | local registry | also forwarded to the other nodes |
//! | socket listing, rooms of a socket | local registry | [`Broadcast::fetch_sockets`](crate::Broadcast::fetch_sockets) asks every node |
//! | recovery session | replay buffer in memory | session and packets in the shared log: any node recovers the client |
//! | keyed state | map in memory | map in the shared store, deltas in the log |
//!
//! An adapter reaches the namespaces of this node only through the narrow
//! [`LocalNamespace`] and [`Namespaces`] traits (fan out an encoded packet, change
//! memberships, restore a socket...), never through a namespace's internals. The
//! traits are crate-internal for now: implementing them needs the encoded-packet
//! internals. The public face is the opaque [`Adapter`], made from a [`LocalAdapter`]
//! or a `RedisAdapter` and given to [`crate::Server::set_adapter`].

pub(crate) mod acks;
mod local;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use serde_json::Value;

pub use self::acks::{AckReply, BroadcastAckError, BroadcastAckFuture, BroadcastAcks};
pub use self::local::LocalAdapter;
use crate::engine::EngineSocket;
use crate::socketio::context::Context;
use crate::socketio::emitter::{EmitError, EmitReport};
use crate::socketio::namespace::Outgoing;
use crate::socketio::packet::{EncodeError, Encoded};
use crate::socketio::recovery::RecoveryConfig;
use crate::socketio::rooms::{Filter, Room, Target};
use crate::socketio::socket::Socket;
use crate::socketio::state::StateShared;

/// A boxed future, as the cluster operations return.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The adapter a server uses, made from a [`LocalAdapter`] or (feature `redis`) a
/// `RedisAdapter`. Give it to [`crate::Server::set_adapter`].
#[derive(Clone)]
pub struct Adapter {
    pub(crate) node: Arc<dyn AdapterNode>,
}

impl Default for Adapter {
    fn default() -> Self {
        LocalAdapter.into()
    }
}

impl std::fmt::Debug for Adapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Adapter({})", self.node.kind())
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

/// Whether a node serves as a full member of its cluster: `GET /readyz` answers 200
/// when `ready`, 503 otherwise, with `detail` as its JSON body. A node that is not ready
/// still serves its own clients (liveness, `GET /healthz`, is another matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Joined to the cluster (always true for the [`LocalAdapter`]).
    pub ready: bool,
    /// Why not, in words (empty when ready).
    pub reason: String,
    /// What the adapter reports: connection states, stream lag, buffered bytes.
    pub detail: Value,
}

impl Readiness {
    /// Ready, with nothing to report beyond the adapter's kind.
    pub fn ready(kind: &str) -> Self {
        Self {
            ready: true,
            reason: String::new(),
            detail: serde_json::json!({ "adapter": kind }),
        }
    }
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

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl ClusterBroadcast {
    /// Serialise an outgoing broadcast's arguments once, for the wire between nodes.
    pub fn from_outgoing(out: &Outgoing<'_>) -> Result<Self, EncodeError> {
        let mut tail = Vec::with_capacity(64);
        (out.args)(&mut tail)?;
        Ok(Self {
            event: out.event.to_string(),
            tail,
            attachments: out.attachments.to_vec(),
            target: out.target.clone(),
            volatile: out.volatile,
            keyed: out.keyed.cloned(),
            filter_key: out.filter_key.to_string(),
        })
    }

    /// Hand `out` a view of this broadcast as an outgoing packet.
    pub fn with_outgoing<R>(&self, f: impl FnOnce(&Outgoing<'_>) -> R) -> R {
        let args = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&self.tail);
            Ok(())
        };
        f(&Outgoing {
            event: &self.event,
            args: &args,
            attachments: &self.attachments,
            target: &self.target,
            volatile: self.volatile,
            keyed: self.keyed.as_ref(),
            filter_key: &self.filter_key,
            wait: true,
        })
    }
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

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
/// The outcome of a recovery attempt: known at once (in-process), or later (a
/// cluster asks the shared log).
pub(crate) enum Recovered {
    /// Decided now: the restored socket, or None (connect afresh).
    Now(Option<Socket>),
    /// Decided when the future resolves.
    Later(BoxFuture<Option<Socket>>),
}

/// The namespaces of this node, as an adapter sees them.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) trait Namespaces: Send + Sync {
    /// A declared namespace.
    fn get(&self, name: &str) -> Option<Arc<dyn LocalNamespace>>;
    /// Every declared namespace.
    fn all(&self) -> Vec<Arc<dyn LocalNamespace>>;
}

/// What an adapter may do with one namespace of this node: the narrow face of a
/// namespace, with nothing of its handlers or its internals.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) trait LocalNamespace: Send + Sync {
    /// The namespace name.
    fn name(&self) -> &str;
    /// Recovery settings, when connection state recovery is on.
    fn recovery_config(&self) -> Option<&RecoveryConfig>;
    /// Push one encoded packet to every local socket the target reaches. Returns the
    /// report and the sockets whose queue was full; hand those to
    /// [`LocalNamespace::drop_slow`] outside every lock.
    fn fan_out(&self, encoded: &Encoded, out: &Outgoing<'_>) -> (EmitReport, Vec<Socket>);
    /// Apply the slow-consumer policy to sockets [`LocalNamespace::fan_out`] found full.
    fn drop_slow(&self, slow: Vec<Socket>);
    /// Refuse a packet larger than a client's outbound queue can ever hold (an error
    /// to the emitter, logged), before it is kept or sent anywhere.
    fn admit(&self, frames: usize, bytes: usize) -> Result<(), EmitError>;
    /// Send straight to one local socket, without an offset or a replay copy.
    fn send_direct(&self, socket: &Socket, out: &Outgoing<'_>) -> Result<(), EmitError>;
    /// Number of local sockets the target reaches.
    fn count(&self, target: &Target) -> usize;
    /// The local sockets the target reaches whose subscription filters let
    /// `filter_key` through (as a broadcast's fan-out selects them).
    fn targets(&self, target: &Target, filter_key: &str) -> Vec<Socket>;
    /// The local sockets the target reaches, as listings report them.
    fn socket_infos(&self, target: &Target) -> Vec<SocketInfo>;
    /// Local sockets the target reaches join `rooms`.
    fn join(&self, target: &Target, rooms: &[Room]);
    /// Local sockets the target reaches leave `rooms`.
    fn leave(&self, target: &Target, rooms: &[Room]);
    /// Disconnect the local sockets the target reaches (`close`: their whole
    /// connection).
    fn disconnect(&self, target: &Target, close: bool);
    /// The recovery session of a live local socket (None without recovery).
    fn session_record(&self, sid: &str) -> Option<SessionRecord>;
    /// The recovery sessions of every live local socket.
    fn session_records(&self) -> Vec<SessionRecord>;
    /// Register a recovered socket on `engine` (same id, rooms and filters), send the
    /// CONNECT reply and then `missed`, before anything else can reach it.
    fn restore(
        self: Arc<Self>,
        engine: &EngineSocket,
        session: SessionRecord,
        missed: &[Encoded],
    ) -> Option<Socket>;
    /// The keyed state map `name` (created on first use).
    fn state(&self, name: &str) -> Arc<StateShared>;
    /// Replace this node's copy of state map `name` with the shared store's (version
    /// and entries), resending a snapshot to its subscribers here if that skips
    /// versions.
    fn load_state(
        &self,
        name: &str,
        version: u64,
        entries: serde_json::Map<String, serde_json::Value>,
    );
    /// The names of the state maps opened here.
    fn state_names(&self) -> Vec<String>;

    /// Encode a broadcast as this namespace sends it, with its log offset.
    fn encode(&self, msg: &ClusterBroadcast, offset: Option<&str>) -> Result<Encoded, EncodeError> {
        msg.with_outgoing(|out| out.encode(self.name(), offset))
    }

    /// Deliver a broadcast that came through the cluster to the local sockets.
    fn deliver(
        &self,
        msg: &ClusterBroadcast,
        offset: Option<&str>,
    ) -> Result<EmitReport, EmitError> {
        let encoded = self.encode(msg, offset)?;
        self.admit(encoded.frames.len(), encoded.size())?;
        let (report, slow) = msg.with_outgoing(|out| self.fan_out(&encoded, out));
        self.drop_slow(slow);
        Ok(report)
    }
}

/// An adapter for the whole server (one per process): makes the adapter of each
/// namespace and runs whatever the adapter needs in the background.
pub(crate) trait AdapterNode: Send + Sync {
    /// `"local"`, `"redis"`...
    fn kind(&self) -> &'static str;
    /// The adapter of one namespace, made when the namespace is created (or when the
    /// adapter is set).
    fn namespace(&self, name: &str, ctx: &Context) -> Arc<dyn NamespaceAdapter>;
    /// Start the background tasks on the server's runtime.
    fn start(&self, namespaces: Weak<dyn Namespaces>, runtime: tokio::runtime::Handle);
    /// Resolves once the node has loaded the shared state it serves (bounded).
    fn ready(&self) -> BoxFuture<()>;
    /// Say goodbye to the cluster and stop the tasks (best effort, does not wait).
    fn stop(&self);
    /// Whether [`AdapterNode::start`] may run again after [`AdapterNode::stop`].
    fn restartable(&self) -> bool;
    /// Whether this node is joined to its cluster now (`GET /readyz`). In-process
    /// adapters are always ready.
    fn readiness(&self) -> Readiness {
        Readiness::ready(self.kind())
    }
}

/// The operations of one namespace that may reach beyond this node. `ns` is always the
/// namespace the adapter belongs to.
pub(crate) trait NamespaceAdapter: Send + Sync {
    /// Encode `out` once and deliver it to every socket it targets (on every node).
    fn broadcast(
        &self,
        ns: &dyn LocalNamespace,
        out: &Outgoing<'_>,
    ) -> Result<EmitReport, EmitError>;
    /// Send `out` to every socket it targets (on every node) with an ack request, and
    /// collect their answers until all came or `timeout` passed. Never stored for
    /// recovery (an ack cannot be answered after a reconnection).
    fn broadcast_with_ack(
        &self,
        ns: &dyn LocalNamespace,
        out: &Outgoing<'_>,
        timeout: std::time::Duration,
    ) -> Result<BroadcastAckFuture, BroadcastAckError>;
    /// Send a state snapshot to one local socket, ordered before the deltas that follow.
    fn send_snapshot(
        &self,
        ns: &dyn LocalNamespace,
        socket: &Socket,
        out: &Outgoing<'_>,
    ) -> Result<(), EmitError>;
    /// Make the sockets the target reaches join `rooms`.
    fn sockets_join(&self, ns: &dyn LocalNamespace, target: &Target, rooms: &[Room]);
    /// Make the sockets the target reaches leave `rooms`.
    fn sockets_leave(&self, ns: &dyn LocalNamespace, target: &Target, rooms: &[Room]);
    /// Disconnect the sockets the target reaches.
    fn disconnect_sockets(&self, ns: &dyn LocalNamespace, target: &Target, close: bool);
    /// The sockets the target reaches, this node's first.
    fn fetch_sockets(&self, ns: &dyn LocalNamespace, target: &Target)
        -> BoxFuture<Vec<SocketInfo>>;
    /// A live socket's memberships changed (keep a recoverable copy where needed).
    fn session_changed(&self, ns: &dyn LocalNamespace, sid: &str);
    /// A socket left (or was refused): keep its session for recovery (`recoverable`)
    /// or forget it. `session` is None when recovery is off.
    fn socket_left(&self, session: Option<SessionRecord>, recoverable: bool);
    /// Bring back the socket of a client that reconnects with `pid` and the last
    /// `offset` it saw.
    fn recover(
        &self,
        ns: Arc<dyn LocalNamespace>,
        engine: &EngineSocket,
        pid: &str,
        offset: &str,
        auth: Option<Value>,
    ) -> Recovered;
    /// Set (`Some`) or delete (`None`) a key of a keyed state map and stream the
    /// change to its subscribers. Returns whether the key existed.
    fn state_change(
        &self,
        ns: &dyn LocalNamespace,
        map: &StateShared,
        key: &str,
        value: Option<Value>,
    ) -> Result<bool, EmitError>;
    /// A state map was created on this node.
    fn state_opened(&self, map: &str);
}
