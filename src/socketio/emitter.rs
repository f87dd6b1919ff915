//! Emitting from anywhere: the [`Emitter`] handle and the [`Broadcast`] builder.
//!
//! An emit encodes its packet once and pushes the shared bytes into the bounded queue of
//! every socket it targets, on the caller's thread. Nothing in it waits for a client:
//! a full queue is reported, never waited on. Emits from one thread reach each client
//! in the order they were made.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use crate::metrics::{ClusterMetrics, Metrics};
use crate::socketio::adapter::{BroadcastAckError, BroadcastAckFuture, BroadcastAcks, SocketInfo};
use crate::socketio::context::IoCore;
use crate::socketio::namespace::{Namespace, Outgoing};
use crate::socketio::packet::{self, EncodeError, Payload, WriteArgs};
use crate::socketio::rooms::{target_builders, Room, Target};
use crate::socketio::socket::Socket;
use crate::socketio::state::StateMap;

/// Why an emit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// No such namespace was declared.
    #[error("no namespace `{0}` is declared")]
    UnknownNamespace(String),
    /// The payload could not be encoded.
    #[error("{0}")]
    Encode(String),
    /// The socket's outbound queue is full: the client does not keep up.
    #[error("the outbound queue of socket {0} is full")]
    QueueFull(String),
    /// The socket is gone.
    #[error("socket {0} is disconnected")]
    Disconnected(String),
    /// The call needs the server's runtime, which is not running.
    #[error("the server is not running")]
    NotRunning,
    /// The packet is larger than a client's outbound queue can ever hold
    /// (`EngineConfig::queue_bytes`): no client could take it.
    #[error("the packet ({bytes} bytes) is larger than a client's outbound queue ({limit} bytes)")]
    TooLarge {
        /// Size of the encoded packet.
        bytes: usize,
        /// The per-client queue bound it exceeds.
        limit: usize,
    },
}

impl From<EncodeError> for EmitError {
    fn from(e: EncodeError) -> Self {
        EmitError::Encode(e.to_string())
    }
}

/// What a broadcast reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitReport {
    /// Sockets the packet was queued to.
    pub delivered: usize,
    /// Sockets whose queue was full: they did not get the packet.
    pub full: Vec<Arc<str>>,
    /// Volatile packets dropped at full queues.
    pub volatile_dropped: usize,
}

impl EmitReport {
    /// Whether every targeted socket got the packet.
    pub fn is_complete(&self) -> bool {
        self.full.is_empty() && self.volatile_dropped == 0
    }
}

/// What happens to a socket whose outbound queue is full when a (non-volatile,
/// non-keyed) packet arrives for it. Volatile packets are always dropped and keyed
/// state is always coalesced in place; this decides the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// Disconnect the client (reason "slow consumer"): it reconnects, and with
    /// connection state recovery gets what it missed. The emit also reports it.
    #[default]
    Disconnect,
    /// Keep the client; the packet is not delivered to it and the emit reports it.
    Report,
}

/// A cheap, cloneable handle that emits from any thread, inside or outside tokio.
///
/// ```
/// let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
/// let emitter = server.emitter();
/// std::thread::spawn(move || {
///     // Nobody is connected yet: delivered to 0 sockets, and it never blocks.
///     let report = emitter.emit("tick", &serde_json::json!({"seq": 1})).unwrap();
///     assert_eq!(report.delivered, 0);
/// }).join().unwrap();
/// ```
#[derive(Clone)]
pub struct Emitter {
    pub(crate) core: Arc<IoCore>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

impl Emitter {
    /// Emit `event` with one argument to every socket of the main namespace `/`.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<EmitReport, EmitError> {
        Broadcast::new(self.core.root()).emit(event, data)
    }

    /// A broadcast on namespace `name`. Emitting on an undeclared namespace fails with
    /// [`EmitError::UnknownNamespace`].
    pub fn of(&self, name: &str) -> Broadcast<'static> {
        match self.core.get(name) {
            Some(ns) => Broadcast::owned(ns),
            None => Broadcast::missing(name),
        }
    }

    /// A broadcast on `/` to one room (or one socket id).
    pub fn to(&self, room: impl Into<Room>) -> Broadcast<'_> {
        Broadcast::new(self.core.root()).to(room)
    }

    /// A connected socket by namespace and id.
    pub fn socket(&self, namespace: &str, sid: &str) -> Option<Socket> {
        self.core.get(namespace)?.socket(sid)
    }

    /// A namespace, if declared.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.core.get(name)
    }

    /// The keyed state map `name` of namespace `/`.
    pub fn state(&self, name: &str) -> StateMap {
        self.core.root().state(name)
    }

    /// The server's counters.
    pub fn metrics(&self) -> Metrics {
        self.core.ctx.stats.snapshot()
    }

    /// The counters of the cluster link (all zero with the local adapter).
    pub fn cluster_metrics(&self) -> ClusterMetrics {
        self.core.ctx.stats.cluster_snapshot()
    }

    /// What waits to be written to this node's clients, over every namespace: for a
    /// producer that paces itself (emits wait on their own; see [`Broadcast::emit`]).
    pub fn backlog(&self) -> Backlog {
        let mut backlog = Backlog::default();
        for ns in self.core.all() {
            for socket in ns.sockets() {
                let (packets, bytes) = socket.backlog();
                backlog.sockets += 1;
                backlog.packets += packets;
                backlog.bytes += bytes;
                backlog.max_packets = backlog.max_packets.max(packets);
                backlog.max_bytes = backlog.max_bytes.max(bytes);
            }
        }
        backlog
    }
}

/// What waits in the outbound queues of this node's clients ([`Emitter::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Sockets counted (one per client and namespace).
    pub sockets: usize,
    /// Packets waiting, summed over sockets.
    pub packets: usize,
    /// Bytes waiting (payload plus 64 per packet), summed over sockets.
    pub bytes: usize,
    /// Packets waiting for the most backed-up socket.
    pub max_packets: usize,
    /// Bytes waiting for the most backed-up socket.
    pub max_bytes: usize,
}

enum NsRef<'a> {
    Borrowed(&'a Namespace),
    Owned(Arc<Namespace>),
    Missing(String),
}

/// Builds a broadcast: a namespace, rooms to reach, rooms or sockets to leave out,
/// volatility. Finish with [`Broadcast::emit`] or [`Broadcast::emit_payload`].
///
/// ```
/// # let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
/// # let emitter = server.emitter();
/// emitter.to("agents").to("dashboards").except("muted").emit("status", &"busy").unwrap();
/// ```
pub struct Broadcast<'a> {
    ns: NsRef<'a>,
    target: Target,
    volatile: bool,
    wait: bool,
}

impl<'a> Broadcast<'a> {
    pub(crate) fn new(ns: &'a Namespace) -> Self {
        Self {
            ns: NsRef::Borrowed(ns),
            target: Target::default(),
            volatile: false,
            wait: true,
        }
    }

    fn owned(ns: Arc<Namespace>) -> Self {
        Self {
            ns: NsRef::Owned(ns),
            target: Target::default(),
            volatile: false,
            wait: true,
        }
    }

    fn missing(name: &str) -> Self {
        Self {
            ns: NsRef::Missing(name.to_string()),
            target: Target::default(),
            volatile: false,
            wait: true,
        }
    }

    target_builders!();

    /// Use a whole target at once.
    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    fn namespace(&self) -> Result<&Namespace, EmitError> {
        match &self.ns {
            NsRef::Borrowed(ns) => Ok(ns),
            NsRef::Owned(ns) => Ok(ns),
            NsRef::Missing(name) => Err(EmitError::UnknownNamespace(name.clone())),
        }
    }

    fn outgoing<'b>(
        &'b self,
        event: &'b str,
        args: WriteArgs<'b>,
        attachments: &'b [bytes::Bytes],
    ) -> Outgoing<'b> {
        Outgoing::event(
            event,
            args,
            attachments,
            &self.target,
            self.volatile,
            self.wait,
        )
    }

    /// The largest packet a client's queue of this namespace can hold (see
    /// [`EmitError::TooLarge`]); fails on an undeclared namespace.
    pub(crate) fn packet_limit(&self) -> Result<usize, EmitError> {
        Ok(self.namespace()?.packet_limit())
    }

    /// Never wait for slow clients: a full queue is handled by the slow-consumer policy
    /// at once (the emit of versions before backpressure). For emits from code that
    /// must not block at all.
    pub fn no_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    /// [`Broadcast::emit`] that never waits for slow clients (see [`Broadcast::no_wait`]).
    pub fn try_emit<T: Serialize + ?Sized>(
        self,
        event: &str,
        data: &T,
    ) -> Result<EmitReport, EmitError> {
        self.no_wait().emit(event, data)
    }

    /// Wait (as a task) until every local socket this broadcast targets has room under
    /// its backpressure watermark, at most `max_wait`, so that async code can pace
    /// itself before [`Broadcast::emit`]ting without blocking a runtime thread. Returns
    /// the ids of the sockets still behind at the deadline.
    pub async fn ready(&self, max_wait: std::time::Duration) -> Result<Vec<String>, EmitError> {
        let sockets = self.namespace()?.local_targets(&self.target);
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut behind = Vec::new();
        for socket in sockets {
            if !socket.room_for(1, 0, deadline).await {
                behind.push(socket.id().to_string());
            }
        }
        Ok(behind)
    }

    /// Emit `event` with one argument. On a thread that may wait (not a runtime
    /// thread), the emit waits for clients whose queue it finds full or leaves above
    /// its watermark, at most the server's `emit_max_wait` (backpressure: a producer
    /// faster than the network slows to its pace); a client still behind then is
    /// handled by the slow-consumer policy. On a runtime thread it never waits; async
    /// code paces itself with [`Broadcast::ready`].
    pub fn emit<T: Serialize + ?Sized>(
        self,
        event: &str,
        data: &T,
    ) -> Result<EmitReport, EmitError> {
        let ns = self.namespace()?;
        ns.publish(&self.outgoing(event, &packet::write_one(data), &[]))
    }

    /// Emit `event` with any arguments and binary attachments.
    pub fn emit_payload(self, event: &str, payload: &Payload) -> Result<EmitReport, EmitError> {
        let ns = self.namespace()?;
        ns.publish(&self.outgoing(
            event,
            &packet::write_args(&payload.args),
            &payload.attachments,
        ))
    }

    /// Emit `event` with an acknowledgement request to every socket this broadcast
    /// reaches, on every node of the cluster, and collect the answers: the future
    /// resolves once every client answered, or when `timeout` passed, with what came
    /// and who did not answer ([`BroadcastAcks`]). A reply is the first argument of
    /// the client's ack, as socket.io reports broadcast acks.
    ///
    /// The event is sent at once (on the caller's thread, never waiting for a slow
    /// client); await the future inside the server's runtime, or use
    /// [`Broadcast::emit_with_ack_callback`] from other threads. Not stored for
    /// connection state recovery (an ack cannot be answered after a reconnection).
    ///
    /// ```no_run
    /// # async fn run(emitter: swarmcast::Emitter) {
    /// use std::time::Duration;
    /// let question = swarmcast::Payload::new(vec![serde_json::json!({"q": "ready?"})]);
    /// let acks = emitter
    ///     .to("agents")
    ///     .emit_with_ack("poll", &question, Duration::from_secs(2))
    ///     .await
    ///     .unwrap();
    /// for reply in &acks.replies {
    ///     println!("{:?} answered {}", reply.socket, reply.data.args[0]);
    /// }
    /// println!("no answer from {:?} (+{})", acks.timed_out, acks.timed_out_unnamed);
    /// # }
    /// ```
    pub fn emit_with_ack(
        self,
        event: &str,
        payload: &Payload,
        timeout: std::time::Duration,
    ) -> BroadcastAckFuture {
        let started = self
            .namespace()
            .map_err(BroadcastAckError::from)
            .and_then(|ns| {
                let args = packet::write_args(&payload.args);
                let out = self.outgoing(event, &args, &payload.attachments);
                ns.adapter().broadcast_with_ack(ns, &out, timeout)
            });
        match started {
            Ok(collecting) => collecting,
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    /// Like [`Broadcast::emit_with_ack`], calling `callback` on a runtime thread with
    /// the outcome. Usable from any thread.
    pub fn emit_with_ack_callback<F>(
        self,
        event: &str,
        payload: &Payload,
        timeout: std::time::Duration,
        callback: F,
    ) where
        F: FnOnce(Result<BroadcastAcks, BroadcastAckError>) + Send + 'static,
    {
        let runtime = self.namespace().ok().and_then(Namespace::runtime);
        let Some(runtime) = runtime else {
            let e = match self.namespace() {
                Err(e) => e,
                Ok(_) => EmitError::NotRunning,
            };
            return callback(Err(e.into()));
        };
        let collecting = self.emit_with_ack(event, payload, timeout);
        runtime.spawn(async move { callback(collecting.await) });
    }

    /// The ids of the sockets of this node this broadcast reaches whose queue is above
    /// its backpressure watermark now: those an [`Broadcast::emit`] from a thread that
    /// may wait would wait for. Never waits. Code that must not block (an event loop)
    /// emits with [`Broadcast::no_wait`] when this is empty, and otherwise paces
    /// itself first ([`Broadcast::ready`], or a waiting emit on another thread).
    pub fn behind(&self) -> Result<Vec<String>, EmitError> {
        Ok(self
            .namespace()?
            .local_targets(&self.target)
            .into_iter()
            .filter(Socket::is_behind)
            .map(|s| s.id().to_string())
            .collect())
    }

    /// The sockets of this node this broadcast would reach now.
    pub fn sockets(&self) -> Result<Vec<Socket>, EmitError> {
        Ok(self.namespace()?.local_targets(&self.target))
    }

    /// The sockets this broadcast would reach now on every node of the cluster (this
    /// node's first). With the local adapter, the same as [`Broadcast::sockets`].
    /// Nodes that do not answer within the adapter's request timeout are left out.
    pub fn fetch_sockets(
        &self,
    ) -> impl Future<Output = Result<Vec<SocketInfo>, EmitError>> + Send + 'static {
        let found = self
            .namespace()
            .map(|ns| ns.adapter().fetch_sockets(ns, &self.target));
        async move { Ok(found?.await) }
    }

    /// Make every socket this broadcast reaches, on every node, join `room`.
    pub fn sockets_join(&self, room: impl Into<Room>) -> Result<(), EmitError> {
        let ns = self.namespace()?;
        ns.adapter().sockets_join(ns, &self.target, &[room.into()]);
        Ok(())
    }

    /// Make every socket this broadcast reaches, on every node, leave `room`.
    pub fn sockets_leave(&self, room: impl Into<Room>) -> Result<(), EmitError> {
        let ns = self.namespace()?;
        ns.adapter().sockets_leave(ns, &self.target, &[room.into()]);
        Ok(())
    }

    /// Disconnect every socket this broadcast reaches, on every node (`close`: close
    /// their whole connection, not only this namespace).
    pub fn disconnect_sockets(&self, close: bool) -> Result<(), EmitError> {
        let ns = self.namespace()?;
        ns.adapter().disconnect_sockets(ns, &self.target, close);
        Ok(())
    }
}
