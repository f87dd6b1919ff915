//! Namespaces (`/`, `/admin`, ...): the public [`Namespace`] handle, made of its
//! handlers, its local members, its keyed state maps and its adapter.
//!
//! Everything that reaches a set of sockets (broadcasts, room changes by target,
//! listings, recovery, state changes) goes through the namespace's adapter, the
//! [`crate::LocalAdapter`] unless a cluster adapter was set; the namespace itself only
//! knows its local members.

mod handlers;
mod members;
mod publisher;

use std::future::Future;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Value};

pub(crate) use self::handlers::ConnectHook;
pub(crate) use self::handlers::Handlers;
pub use self::handlers::{ConnectError, ConnectFuture, Event, EventHandler};
use self::members::Members;
pub(crate) use self::publisher::{wait_budget, Outgoing};
use crate::engine::EngineSocket;
use crate::protocol::socketio::PacketKind;
use crate::socketio::adapter::{
    LocalNamespace, NamespaceAdapter, Recovered, SessionRecord, SocketInfo,
};
use crate::socketio::context::{Context, CATCH_ALL};
use crate::socketio::emitter::{Broadcast, EmitError, EmitReport};
use crate::socketio::packet::{self, Encoded};
use crate::socketio::recovery::RecoveryConfig;
use crate::socketio::rooms::{Filter, Room, Target};
use crate::socketio::socket::{AckSender, DisconnectReason, Socket};
use crate::socketio::state::{StateMap, StateMaps, StateShared};

/// A Socket.IO namespace (`/`, `/admin`, ...). Obtain it from
/// [`crate::Server::namespace`]; handlers may be added at any time.
pub struct Namespace {
    name: Arc<str>,
    /// For `*`, also in the context: every namespace falls back to them.
    handlers: Arc<Handlers>,
    /// Made on demand from the catch-all namespace `*`.
    dynamic: bool,
    members: Members,
    write_through: publisher::WriteThroughGate,
    states: StateMaps,
    /// Replaced only when the server's adapter is set (before it starts).
    adapter: RwLock<Arc<dyn NamespaceAdapter>>,
    pub(crate) ctx: Arc<Context>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .finish()
    }
}

impl Namespace {
    pub(crate) fn new(name: &str, ctx: Arc<Context>) -> Self {
        let adapter = ctx.adapter().namespace(name, &ctx);
        let handlers: Arc<Handlers> = Arc::default();
        if name == CATCH_ALL {
            ctx.set_catch_all(handlers.clone());
        }
        Self {
            name: name.into(),
            handlers,
            dynamic: false,
            members: Members::default(),
            write_through: publisher::WriteThroughGate::new(),
            states: StateMaps::default(),
            adapter: RwLock::new(adapter),
            ctx,
        }
    }

    /// A namespace made on demand for a client, because the catch-all namespace `*`
    /// is declared: its own members, rooms and state; the handlers of `*`.
    pub(crate) fn dynamic(name: &str, ctx: Arc<Context>) -> Self {
        let mut ns = Self::new(name, ctx);
        ns.dynamic = true;
        ns
    }

    /// Use the adapter of the server's (new) adapter node.
    pub(crate) fn set_adapter(&self, adapter: Arc<dyn NamespaceAdapter>) {
        *self.adapter.write() = adapter;
    }

    /// The namespace's adapter, cloned out so that no lock is held while it works.
    pub(crate) fn adapter(&self) -> Arc<dyn NamespaceAdapter> {
        self.adapter.read().clone()
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the namespace was made on demand for a client of the catch-all
    /// namespace `*` (whose handlers it shares).
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// Whether connection state recovery is on for this namespace.
    pub fn recovery_enabled(&self) -> bool {
        self.ctx.recovery.is_some()
    }

    pub(crate) fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.ctx.runtime()
    }

    // --- handlers ---------------------------------------------------------------

    /// Decide on every CONNECT: return `Err` to refuse. Runs on the connection's reader
    /// before the client learns it is connected; emits to the socket made here are sent
    /// right after the CONNECT reply.
    pub fn on_connect<F>(&self, f: F) -> &Self
    where
        F: Fn(&Socket) -> Result<(), ConnectError> + Send + Sync + 'static,
    {
        self.handlers.set_connect(ConnectHook::Sync(Arc::new(f)));
        self
    }

    /// Like [`Namespace::on_connect`] for a decision that needs to wait (a database, a
    /// handler on another thread).
    pub fn on_connect_async<F>(&self, f: F) -> &Self
    where
        F: Fn(Socket) -> ConnectFuture + Send + Sync + 'static,
    {
        self.handlers.set_connect(ConnectHook::Async(Arc::new(f)));
        self
    }

    /// Handle a named event. Runs on the connection's reader, in wire order: do not
    /// block (spawn, or hand over to a thread, for long work).
    pub fn on<F>(&self, event: &str, f: F) -> &Self
    where
        F: Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    {
        self.handlers.set_event(event, Arc::new(f));
        self
    }

    /// Handle a named event with an async handler: the future runs on the server's
    /// runtime, and the events of one socket are handled one after the other, in the
    /// order they arrived (each handler's future completes before the next one starts;
    /// acks sent from them go out in that order), while sockets run concurrently. For
    /// events of one socket handled concurrently, spawn inside the handler. Up to
    /// 1,024 events of a socket may wait; a client that sends more while its
    /// handlers are behind is disconnected (logged at WARN). Sync handlers
    /// ([`Namespace::on`]) of the same socket run at once, as they arrive, not in this
    /// queue.
    ///
    /// ```no_run
    /// # let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
    /// server.namespace("/").on_async("lookup", |_socket, event, ack| async move {
    ///     let key = event.payload.args.first().cloned();
    ///     tokio::time::sleep(std::time::Duration::from_millis(5)).await; // a query
    ///     if let Some(ack) = ack {
    ///         let _ = ack.send(&key);
    ///     }
    /// });
    /// ```
    pub fn on_async<F, Fut>(&self, event: &str, f: F) -> &Self
    where
        F: Fn(Socket, Event, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on(event, in_order(f))
    }

    /// [`Namespace::on_any`] with an async handler, in the queue of
    /// [`Namespace::on_async`].
    pub fn on_any_async<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Socket, Event, Option<AckSender>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_any(in_order(f))
    }

    /// Handle every event that has no handler of its own.
    pub fn on_any<F>(&self, f: F) -> &Self
    where
        F: Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    {
        self.handlers.set_any(Arc::new(f));
        self
    }

    /// Called once when a socket leaves the namespace, with the reason.
    pub fn on_disconnect<F>(&self, f: F) -> &Self
    where
        F: Fn(&Socket, DisconnectReason) + Send + Sync + 'static,
    {
        self.handlers.set_disconnect(Arc::new(f));
        self
    }

    /// The handlers of the catch-all namespace `*`, which every other namespace falls
    /// back to (python-socketio's resolution: `ns[event]`, `ns["*"]`, `"*"[event]`,
    /// `"*"["*"]`).
    fn fallback(&self) -> Option<&Arc<Handlers>> {
        if &*self.name == CATCH_ALL {
            return None;
        }
        self.ctx.catch_all()
    }

    pub(crate) fn connect_hook(&self) -> Option<ConnectHook> {
        self.handlers
            .connect()
            .or_else(|| self.fallback()?.connect())
    }

    pub(crate) fn event_handler(&self, event: &str) -> Option<EventHandler> {
        self.handlers
            .event(event)
            .or_else(|| self.fallback()?.event(event))
    }

    // --- sockets and rooms ------------------------------------------------------------

    /// Register a socket before its connect handler runs, so rooms and broadcasts work
    /// inside the handler.
    pub(crate) fn add_socket(&self, socket: Socket) {
        let sid = socket.id_arc();
        self.members.insert(socket);
        self.adapter().session_changed(self, &sid);
    }

    /// Remove a socket and call the disconnect handler (once). With recovery on, a
    /// socket lost to the network keeps its session for `max_disconnection_duration`.
    pub(crate) fn remove_socket(&self, socket: &Socket, reason: DisconnectReason) {
        if let Some(removed) = self.members.remove(socket.id()) {
            let record = socket.session_record(removed.rooms, removed.filters);
            self.adapter().socket_left(record, reason.is_recoverable());
        }
        if socket.mark_disconnected() {
            self.ctx.stats.disconnect();
            tracing::info!(
                target: "swarmcast",
                sid = socket.id(),
                namespace = self.name(),
                reason = reason.as_str(),
                "disconnected"
            );
            let handler = self
                .handlers
                .disconnect()
                .or_else(|| self.fallback()?.disconnect());
            if let Some(handler) = handler {
                handler(socket, reason);
            }
        }
    }

    /// Remove a socket whose connect was refused: no disconnect handler, no session.
    pub(crate) fn drop_refused(&self, socket: &Socket) {
        self.members.remove(socket.id());
        self.adapter()
            .socket_left(socket.session_record(Vec::new(), Vec::new()), false);
        socket.mark_disconnected();
    }

    pub(crate) fn join(&self, sid: &str, room: Room) {
        if self.members.join(sid, room) {
            self.adapter().session_changed(self, sid);
        }
    }

    pub(crate) fn leave(&self, sid: &str, room: &str) {
        self.members.leave(sid, room);
        self.adapter().session_changed(self, sid);
    }

    /// Join a room with an optional subscription filter.
    pub(crate) fn subscribe_room(&self, sid: &str, room: &Room, filter: Option<Filter>) {
        self.members.subscribe(sid, room, filter);
        self.adapter().session_changed(self, sid);
    }

    /// This node's sockets in `room`, each with its subscription filter there.
    pub(crate) fn subscribers(&self, room: &str) -> Vec<(Socket, Option<Filter>)> {
        self.members.members_of(room)
    }

    pub(crate) fn rooms_of(&self, sid: &str) -> Vec<String> {
        self.members.rooms_of(sid)
    }

    /// Add a socket (by id) to a room, on whichever node holds it. Returns whether the
    /// socket is connected to this node.
    pub fn join_room(&self, sid: &str, room: impl Into<Room>) -> bool {
        let local = self.members.contains(sid);
        self.adapter()
            .sockets_join(self, &Target::room(sid), &[room.into()]);
        local
    }

    /// Remove a socket (by id) from a room (on whichever node holds it). Returns
    /// whether the socket is connected to this node, as [`Namespace::join_room`] does.
    pub fn leave_room(&self, sid: &str, room: &str) -> bool {
        let local = self.members.contains(sid);
        self.adapter()
            .sockets_leave(self, &Target::room(sid), &[room.into()]);
        local
    }

    /// Empty a room.
    pub fn close_room(&self, room: &str) {
        self.members.clear_room(room);
    }

    /// The rooms of a socket of this node (its own id first); empty for an unknown
    /// socket. [`Namespace::fetch_rooms`] also asks the other nodes of a cluster.
    pub fn rooms(&self, sid: &str) -> Vec<String> {
        self.rooms_of(sid)
    }

    /// The rooms of a socket wherever it is connected (its own id first); empty when no
    /// node knows it.
    pub fn fetch_rooms(&self, sid: &str) -> impl Future<Output = Vec<String>> + Send + 'static {
        let local = self.rooms_of(sid);
        let remote = local
            .is_empty()
            .then(|| self.adapter().fetch_sockets(self, &Target::room(sid)));
        let sid = sid.to_string();
        async move {
            match remote {
                None => local,
                Some(remote) => remote
                    .await
                    .into_iter()
                    .find(|s| s.id == sid)
                    .map(|s| s.rooms)
                    .unwrap_or_default(),
            }
        }
    }

    /// A connected socket by id.
    pub fn socket(&self, sid: &str) -> Option<Socket> {
        self.members.get(sid)
    }

    /// Every connected socket.
    pub fn sockets(&self) -> Vec<Socket> {
        self.members.all()
    }

    /// Number of connected sockets.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no socket is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Disconnect a socket by id; false if unknown on this node (the request then goes
    /// through the adapter to the node that holds it).
    pub fn disconnect(&self, sid: &str) -> bool {
        match self.socket(sid) {
            Some(s) => {
                s.disconnect();
                true
            }
            None => {
                self.adapter()
                    .disconnect_sockets(self, &Target::room(sid), false);
                false
            }
        }
    }

    /// The local sockets a target reaches (ignoring subscription filters).
    pub(crate) fn local_targets(&self, target: &Target) -> Vec<Socket> {
        self.members.targets(target)
    }

    // --- emitting -------------------------------------------------------------------

    /// A broadcast builder on this namespace.
    pub fn broadcast(&self) -> Broadcast<'_> {
        Broadcast::new(self)
    }

    /// A broadcast to a room.
    pub fn to(&self, room: impl Into<Room>) -> Broadcast<'_> {
        Broadcast::new(self).to(room)
    }

    /// Emit to every socket of the namespace.
    pub fn emit<T: serde::Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<EmitReport, EmitError> {
        Broadcast::new(self).emit(event, data)
    }

    /// Encode an event once and deliver it to every socket the target reaches, through
    /// the adapter.
    /// The largest packet a client's outbound queue can ever hold, in bytes charged
    /// (`EngineConfig::queue_bytes`; a frame is charged `FRAME_OVERHEAD` more).
    pub(crate) fn packet_limit(&self) -> usize {
        self.ctx.max_packet_bytes
    }

    pub(crate) fn publish(&self, out: &Outgoing<'_>) -> Result<EmitReport, EmitError> {
        self.adapter().broadcast(self, out)
    }

    /// A connected socket with no client behind it: packets emitted to it wait in its
    /// queue until [`Socket::drain_detached`]. Benchmarks measure fan-out with these.
    #[doc(hidden)]
    pub fn attach_detached_socket(self: &Arc<Self>, queue_packets: usize) -> Socket {
        let engine = crate::engine::detached_session(queue_packets, usize::MAX / 4);
        let socket = Socket::new(self.clone(), engine, None);
        self.add_socket(socket.clone());
        if let Ok(reply) = packet::encode_control(PacketKind::Connect, self.name(), None) {
            socket.mark_connected(&reply);
        }
        socket
    }

    // --- keyed state ----------------------------------------------------------------

    /// The keyed state map `name` of this namespace (created on first use).
    pub fn state(self: &Arc<Self>, name: &str) -> StateMap {
        StateMap::new(self.clone(), self.state_shared(name))
    }

    /// The names of the state maps opened so far (by the application, or by changes
    /// from other nodes; never by clients).
    pub fn state_names(&self) -> Vec<String> {
        self.states.names()
    }

    /// The state maps of this namespace.
    pub(crate) fn states(&self) -> &crate::socketio::state::StateMaps {
        &self.states
    }

    /// The shared part of state map `name` (created on first use).
    pub(crate) fn state_shared(&self, name: &str) -> Arc<StateShared> {
        let (shared, created) = self.states.get_or_create(name);
        if created {
            self.adapter().state_opened(name);
        }
        shared
    }

    // --- recovery -------------------------------------------------------------------

    /// Bring back the socket of a client that reconnects with `pid` and the last
    /// `offset` it saw: same id, same rooms, the CONNECT reply and then every packet it
    /// missed, before any new one.
    pub(crate) fn recover(
        self: &Arc<Self>,
        engine: &EngineSocket,
        pid: &str,
        offset: &str,
        auth: Option<Value>,
    ) -> Recovered {
        self.adapter()
            .recover(self.clone(), engine, pid, offset, auth)
    }
}

/// The narrow face the adapters see.
impl LocalNamespace for Namespace {
    fn name(&self) -> &str {
        &self.name
    }

    fn recovery_config(&self) -> Option<&RecoveryConfig> {
        self.ctx.recovery.as_ref()
    }

    fn fan_out(&self, encoded: &Encoded, out: &Outgoing<'_>) -> (EmitReport, Vec<Socket>) {
        let deadline = wait_budget(out.wait, self.ctx.emit_max_wait);
        publisher::fan_out(
            &self.members,
            encoded,
            out,
            &self.ctx.stats,
            deadline,
            &self.write_through,
        )
    }

    fn admit(&self, frames: usize, bytes: usize) -> Result<(), EmitError> {
        let limit = self.ctx.max_packet_bytes;
        let charged = bytes + frames * crate::engine::FRAME_OVERHEAD;
        if charged > limit {
            tracing::warn!(
                namespace = self.name(),
                bytes,
                limit,
                "emit refused: larger than a client's outbound queue can ever hold"
            );
            return Err(EmitError::TooLarge { bytes, limit });
        }
        Ok(())
    }

    fn drop_slow(&self, slow: Vec<Socket>) {
        publisher::drop_slow(self.ctx.slow_consumer, &self.ctx.stats, slow);
    }

    fn send_direct(&self, socket: &Socket, out: &Outgoing<'_>) -> Result<(), EmitError> {
        let encoded = out.encode(self.name(), None)?;
        let sent = socket.push(&encoded);
        if let Err(EmitError::QueueFull(_)) = &sent {
            self.drop_slow(vec![socket.clone()]);
        }
        sent
    }

    fn count(&self, target: &Target) -> usize {
        self.members.count(target)
    }

    fn targets(&self, target: &Target, filter_key: &str) -> Vec<Socket> {
        let mut sockets = Vec::new();
        self.members
            .for_each_target(target, Some(filter_key), |s| sockets.push(s.clone()));
        sockets
    }

    fn socket_infos(&self, target: &Target) -> Vec<SocketInfo> {
        self.members
            .targets(target)
            .iter()
            .map(|s| self.members.info(s))
            .collect()
    }

    fn join(&self, target: &Target, rooms: &[Room]) {
        let adapter = self.adapter();
        for sid in self.members.join_target(target, rooms) {
            adapter.session_changed(self, &sid);
        }
    }

    fn leave(&self, target: &Target, rooms: &[Room]) {
        let adapter = self.adapter();
        for sid in self.members.leave_target(target, rooms) {
            adapter.session_changed(self, &sid);
        }
    }

    fn disconnect(&self, target: &Target, close: bool) {
        for socket in self.members.targets(target) {
            if close {
                socket.close_connection();
            } else {
                socket.disconnect();
            }
        }
    }

    fn session_record(&self, sid: &str) -> Option<SessionRecord> {
        self.members.session_record(sid)
    }

    fn session_records(&self) -> Vec<SessionRecord> {
        self.members
            .all()
            .iter()
            .filter_map(|s| self.members.session_record(s.id()))
            .collect()
    }

    fn restore(
        self: Arc<Self>,
        engine: &EngineSocket,
        session: SessionRecord,
        missed: &[Encoded],
    ) -> Option<Socket> {
        let SessionRecord {
            pid,
            sid,
            rooms,
            filters,
            auth,
        } = session;
        let reply = packet::encode_control(
            PacketKind::Connect,
            self.name(),
            Some(&json!({"sid": &*sid, "pid": pid})),
        )
        .ok()?;
        let socket = Socket::with_id(
            self.clone(),
            engine.clone(),
            auth,
            sid.clone(),
            Some(pid.into()),
        );
        self.members.restore(socket.clone(), rooms, filters);
        socket.mark_connected(&reply);
        for packet in missed {
            socket.replay(packet);
        }
        self.adapter().session_changed(&*self, &sid);
        self.ctx.stats.recovered();
        Some(socket)
    }

    fn state(&self, name: &str) -> Arc<StateShared> {
        self.state_shared(name)
    }

    fn load_state(&self, name: &str, version: u64, entries: serde_json::Map<String, Value>) {
        self.state_shared(name)
            .load_cluster_snapshot(self, version, entries);
    }

    fn state_names(&self) -> Vec<String> {
        self.states.names()
    }
}

/// A sync handler that queues `f`'s future on the socket's ordered queue.
fn in_order<F, Fut>(f: F) -> impl Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static
where
    F: Fn(Socket, Event, Option<AckSender>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    move |socket, event, ack| socket.run_in_order(f(socket.clone(), event, ack))
}
