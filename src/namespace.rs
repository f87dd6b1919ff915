//! Namespaces: their handlers, their sockets and rooms, and broadcast fan-out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::adapter::{BoxFuture, ClusterBroadcast, ClusterNamespace, SessionRecord, SocketInfo};
use crate::emitter::{Broadcast, Context, EmitError, EmitReport, SlowConsumerPolicy};
use crate::engine::{CloseReason, EngineSocket, SendError};
use crate::packet::{self, Encoded, Payload};
use crate::protocol::socketio::PacketKind;
use crate::recovery::Recovery;
use crate::rooms::{Filter, Room, RoomRegistry, Target};
use crate::socket::{AckSender, DisconnectReason, Socket};
use crate::state::{StateMap, StateShared};

/// One outgoing event, before encoding.
pub(crate) struct Outgoing<'a> {
    pub event: &'a str,
    pub attachments: &'a [Bytes],
    pub target: &'a Target,
    pub volatile: bool,
    /// Keyed-state coalescing key: a queued packet with the same key is replaced.
    pub keyed: Option<&'a Arc<str>>,
    /// Matched against subscription filters (the event name, or the state key).
    pub filter_key: &'a str,
}

/// An event received from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name (first element of the packet's array).
    pub name: String,
    /// The remaining arguments and binary attachments.
    pub payload: Payload,
}

/// A connect handler's refusal: the client gets CONNECT_ERROR with this message and data.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// Shown to the client as `err.message`.
    pub message: String,
    /// Shown to the client as `err.data`.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message and no data.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: None,
        }
    }

    /// Attach data for the client.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// A boxed future of a connect decision.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>;

type SyncConnect = dyn Fn(&Socket) -> Result<(), ConnectError> + Send + Sync;
type AsyncConnect = dyn Fn(Socket) -> ConnectFuture + Send + Sync;
/// An event handler: the socket, the event, and an ack sender when the client asked for one.
pub type EventHandler = Arc<dyn Fn(&Socket, Event, Option<AckSender>) + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(&Socket, DisconnectReason) + Send + Sync>;

#[derive(Clone)]
pub(crate) enum ConnectHook {
    Sync(Arc<SyncConnect>),
    Async(Arc<AsyncConnect>),
}

#[derive(Default)]
struct Handlers {
    connect: Option<ConnectHook>,
    events: HashMap<String, EventHandler>,
    any: Option<EventHandler>,
    disconnect: Option<DisconnectHandler>,
}

/// A Socket.IO namespace (`/`, `/admin`, ...). Obtain it from
/// [`crate::Server::namespace`]; handlers may be added at any time.
pub struct Namespace {
    name: Arc<str>,
    handlers: RwLock<Handlers>,
    registry: RwLock<RoomRegistry>,
    pub(crate) ctx: Arc<Context>,
    recovery: Option<Recovery>,
    states: RwLock<HashMap<String, Arc<StateShared>>>,
    /// The cluster link of this namespace; empty with the local adapter, so the local
    /// paths pay one atomic load.
    cluster: OnceLock<Arc<dyn ClusterNamespace>>,
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
        let ns = Self {
            name: name.into(),
            handlers: RwLock::new(Handlers::default()),
            registry: RwLock::new(RoomRegistry::default()),
            recovery: ctx.recovery.clone().map(Recovery::new),
            states: RwLock::new(HashMap::new()),
            cluster: OnceLock::new(),
            ctx,
        };
        if let Some(node) = ns.ctx.cluster.get() {
            ns.attach_cluster(node.namespace(name, &ns.ctx.stats));
        }
        ns
    }

    /// Attach the cluster link (once; later calls change nothing).
    pub(crate) fn attach_cluster(&self, cluster: Arc<dyn ClusterNamespace>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster link, if a cluster adapter is set.
    pub(crate) fn cluster(&self) -> Option<&Arc<dyn ClusterNamespace>> {
        self.cluster.get()
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// The recovery settings, when recovery is on.
    pub(crate) fn recovery_config(&self) -> Option<&crate::RecoveryConfig> {
        self.recovery.as_ref().map(|r| &r.config)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// The names of the state maps this node has opened.
    pub(crate) fn state_names(&self) -> Vec<String> {
        self.states.read().keys().cloned().collect()
    }

    /// The state map `name`, shared part (created on first use).
    pub(crate) fn state_shared(&self, name: &str) -> Arc<StateShared> {
        if let Some(shared) = self.states.read().get(name) {
            return shared.clone();
        }
        let mut created = false;
        let shared = self
            .states
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                created = true;
                Arc::new(StateShared::new(name))
            })
            .clone();
        if created {
            if let Some(cluster) = self.cluster() {
                cluster.state_opened(name);
            }
        }
        shared
    }

    /// Whether connection state recovery is on for this namespace.
    pub fn recovery_enabled(&self) -> bool {
        self.recovery.is_some()
    }

    /// The keyed state map `name` of this namespace (created on first use).
    pub fn state(self: &Arc<Self>, name: &str) -> StateMap {
        StateMap::new(self.clone(), self.state_shared(name))
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.ctx.runtime()
    }

    /// Decide on every CONNECT: return `Err` to refuse. Runs on the connection's reader
    /// before the client learns it is connected; emits to the socket made here are sent
    /// right after the CONNECT reply.
    pub fn on_connect<F>(&self, f: F) -> &Self
    where
        F: Fn(&Socket) -> Result<(), ConnectError> + Send + Sync + 'static,
    {
        self.handlers.write().connect = Some(ConnectHook::Sync(Arc::new(f)));
        self
    }

    /// Like [`Namespace::on_connect`] for a decision that needs to wait (a database, a
    /// handler on another thread).
    pub fn on_connect_async<F>(&self, f: F) -> &Self
    where
        F: Fn(Socket) -> ConnectFuture + Send + Sync + 'static,
    {
        self.handlers.write().connect = Some(ConnectHook::Async(Arc::new(f)));
        self
    }

    /// Handle a named event. Runs on the connection's reader, in wire order: do not
    /// block (spawn, or hand over to a thread, for long work).
    pub fn on<F>(&self, event: &str, f: F) -> &Self
    where
        F: Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    {
        self.handlers
            .write()
            .events
            .insert(event.to_string(), Arc::new(f));
        self
    }

    /// Handle every event that has no handler of its own.
    pub fn on_any<F>(&self, f: F) -> &Self
    where
        F: Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    {
        self.handlers.write().any = Some(Arc::new(f));
        self
    }

    /// Called once when a socket leaves the namespace, with the reason.
    pub fn on_disconnect<F>(&self, f: F) -> &Self
    where
        F: Fn(&Socket, DisconnectReason) + Send + Sync + 'static,
    {
        self.handlers.write().disconnect = Some(Arc::new(f));
        self
    }

    pub(crate) fn connect_hook(&self) -> Option<ConnectHook> {
        self.handlers.read().connect.clone()
    }

    pub(crate) fn event_handler(&self, event: &str) -> Option<EventHandler> {
        let handlers = self.handlers.read();
        handlers
            .events
            .get(event)
            .or(handlers.any.as_ref())
            .cloned()
    }

    /// Register a socket before its connect handler runs, so rooms and broadcasts work
    /// inside the handler.
    pub(crate) fn add_socket(&self, socket: Socket) {
        let sid = socket.id_arc();
        self.registry.write().insert(socket);
        self.touch_session(&sid);
    }

    /// With a cluster and recovery, keep the shared copy of a live socket's session up
    /// to date (rooms, filters), so that another node can recover it even if this one
    /// dies without a goodbye.
    pub(crate) fn touch_session(&self, sid: &str) {
        let (Some(cluster), Some(_)) = (self.cluster(), &self.recovery) else {
            return;
        };
        if let Some(record) = self.session_record(sid) {
            cluster.persist_session(record, false);
        }
    }

    /// The session of a live socket, as it would be kept for recovery.
    pub(crate) fn session_record(&self, sid: &str) -> Option<SessionRecord> {
        let registry = self.registry.read();
        let socket = registry.get(sid)?;
        let pid = socket.pid()?.to_string();
        let (rooms, filters) = registry.memberships(sid);
        Some(SessionRecord {
            pid,
            sid: socket.id_arc(),
            rooms,
            filters,
            auth: socket.auth().cloned(),
        })
    }
    /// Remove a socket and call the disconnect handler (once). With recovery on, a
    /// socket lost to the network keeps its session for `max_disconnection_duration`.
    pub(crate) fn remove_socket(&self, socket: &Socket, reason: DisconnectReason) {
        let removed = self.registry.write().remove(socket.id());
        if let (Some(cluster), Some(pid), Some(removed)) = (self.cluster(), socket.pid(), &removed)
        {
            if reason.is_recoverable() && self.recovery.is_some() {
                let record = SessionRecord {
                    pid: pid.to_string(),
                    sid: socket.id_arc(),
                    rooms: removed.rooms.clone(),
                    filters: removed.filters.clone(),
                    auth: socket.auth().cloned(),
                };
                cluster.persist_session(record, true);
            } else {
                cluster.drop_session(pid);
            }
        } else if let (Some(recovery), Some(pid), Some(removed)) =
            (&self.recovery, socket.pid(), removed)
        {
            if reason.is_recoverable() {
                recovery.persist(pid, socket.id_arc(), removed.rooms, removed.filters);
            }
        }
        if socket.mark_disconnected() {
            self.ctx.stats.disconnect();
            let handler = self.handlers.read().disconnect.clone();
            if let Some(h) = handler {
                h(socket, reason);
            }
        }
    }

    /// Remove a socket whose connect was refused: no disconnect handler.
    pub(crate) fn drop_refused(&self, socket: &Socket) {
        self.registry.write().remove(socket.id());
        if let (Some(cluster), Some(pid)) = (self.cluster(), socket.pid()) {
            cluster.drop_session(pid);
        }
        socket.mark_disconnected();
    }

    pub(crate) fn join(&self, sid: &str, room: Room) {
        let joined = self.registry.write().join(sid, room);
        if joined {
            self.touch_session(sid);
        }
    }

    pub(crate) fn leave(&self, sid: &str, room: &str) {
        self.registry.write().leave(sid, room);
        self.touch_session(sid);
    }

    /// Join a room with an optional subscription filter.
    pub(crate) fn subscribe_room(&self, sid: &str, room: &Room, filter: Option<Filter>) {
        {
            let mut registry = self.registry.write();
            registry.join(sid, room.clone());
            registry.set_filter(sid, room, filter);
        }
        self.touch_session(sid);
    }

    pub(crate) fn rooms_of(&self, sid: &str) -> Vec<String> {
        self.registry.read().rooms_of(sid)
    }

    /// Add a socket (by id) to a room. Returns false for a socket unknown on this node;
    /// with a cluster adapter the request then goes to the node that holds it.
    pub fn join_room(&self, sid: &str, room: impl Into<Room>) -> bool {
        let room = room.into();
        if self.registry.write().join(sid, room.clone()) {
            self.touch_session(sid);
            return true;
        }
        if let Some(cluster) = self.cluster() {
            cluster.sockets_join(&Target::room(sid), &[room]);
        }
        false
    }

    /// Remove a socket (by id) from a room (on whichever node holds it).
    pub fn leave_room(&self, sid: &str, room: &str) {
        if self.registry.read().get(sid).is_some() {
            self.leave(sid, room);
        } else if let Some(cluster) = self.cluster() {
            cluster.sockets_leave(&Target::room(sid), &[room.into()]);
        }
    }

    /// Empty a room.
    pub fn close_room(&self, room: &str) {
        self.registry.write().clear_room(room);
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
        let remote = match (local.is_empty(), self.cluster()) {
            (true, Some(cluster)) => Some(cluster.fetch_sockets(&Target::room(sid))),
            _ => None,
        };
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
        self.registry.read().get(sid).cloned()
    }

    /// Every connected socket.
    pub fn sockets(&self) -> Vec<Socket> {
        self.registry.read().sockets().cloned().collect()
    }

    /// Number of connected sockets.
    pub fn len(&self) -> usize {
        self.registry.read().len()
    }

    /// Whether no socket is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Disconnect a socket by id; false if unknown on this node (with a cluster
    /// adapter the request then goes to the node that holds it).
    pub fn disconnect(&self, sid: &str) -> bool {
        match self.socket(sid) {
            Some(s) => {
                s.disconnect();
                true
            }
            None => {
                if let Some(cluster) = self.cluster() {
                    cluster.disconnect_sockets(&Target::room(sid), false);
                }
                false
            }
        }
    }

    /// What [`Broadcast::fetch_sockets`] reports of a local socket.
    pub(crate) fn socket_info(&self, socket: &Socket) -> SocketInfo {
        SocketInfo {
            id: socket.id().to_string(),
            rooms: self.rooms_of(socket.id()),
            auth: socket.auth().cloned().unwrap_or(Value::Null),
            local: true,
        }
    }

    /// Local sockets the target reaches join `rooms` (no cluster message).
    pub(crate) fn local_sockets_join(&self, target: &Target, rooms: &[Room]) {
        let sids = self.target_ids(target);
        {
            let mut registry = self.registry.write();
            for sid in &sids {
                for room in rooms {
                    registry.join(sid, room.clone());
                }
            }
        }
        for sid in &sids {
            self.touch_session(sid);
        }
    }

    /// Local sockets the target reaches leave `rooms` (no cluster message).
    pub(crate) fn local_sockets_leave(&self, target: &Target, rooms: &[Room]) {
        let sids = self.target_ids(target);
        {
            let mut registry = self.registry.write();
            for sid in &sids {
                for room in rooms {
                    registry.leave(sid, room);
                }
            }
        }
        for sid in &sids {
            self.touch_session(sid);
        }
    }

    /// Disconnect the local sockets the target reaches (no cluster message).
    pub(crate) fn local_disconnect(&self, target: &Target, close: bool) {
        let mut sockets = Vec::new();
        self.for_each_target(target, |s| sockets.push(s.clone()));
        for socket in sockets {
            if close {
                socket.close_connection();
            } else {
                socket.disconnect();
            }
        }
    }

    fn target_ids(&self, target: &Target) -> Vec<Arc<str>> {
        let mut sids = Vec::new();
        self.for_each_target(target, |s| sids.push(s.id_arc()));
        sids
    }

    /// Number of local sockets the target reaches now.
    fn count_target(&self, target: &Target) -> usize {
        let mut n = 0;
        self.for_each_target(target, |_| n += 1);
        n
    }

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
    ) -> Result<EmitReport, crate::EmitError> {
        Broadcast::new(self).emit(event, data)
    }

    pub(crate) fn for_each_target(&self, target: &Target, f: impl FnMut(&Socket)) {
        self.registry.read().for_each_target(target, None, f);
    }

    /// A connected socket with no client behind it: packets emitted to it wait in its
    /// queue until [`Socket::drain_detached`]. Benchmarks measure fan-out with these.
    #[doc(hidden)]
    pub fn attach_detached_socket(self: &Arc<Self>, queue_packets: usize) -> Socket {
        let session = crate::engine::detached_session(queue_packets, usize::MAX / 4);
        let socket = Socket::new(self.clone(), EngineSocket(session), None);
        self.add_socket(socket.clone());
        if let Ok(reply) = packet::encode_control(PacketKind::Connect, self.name(), None) {
            socket.mark_connected(&reply);
        }
        socket
    }

    /// Encode an event once and push it to every socket the target reaches. With
    /// recovery on, the packet gets the next offset and a place in the replay buffer,
    /// both under the buffer's lock, which also orders concurrent emits.
    pub(crate) fn publish(
        &self,
        out: &Outgoing<'_>,
        write_args: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Result<EmitReport, EmitError> {
        if let Some(cluster) = self.cluster.get() {
            return self.publish_clustered(cluster, out, write_args);
        }
        let (report, slow) = match self.recovery.as_ref().filter(|_| !out.volatile) {
            Some(recovery) => {
                let mut buffer = recovery.buffer.lock();
                let offset = buffer.next_offset().to_string();
                let encoded = packet::encode_event_with(
                    self.name(),
                    out.event,
                    None,
                    out.attachments,
                    write_args,
                    Some(&offset),
                )?;
                buffer.push(out.target, &encoded, &recovery.config);
                self.fan_out(&encoded, out)
            }
            None => {
                let encoded = packet::encode_event_with(
                    self.name(),
                    out.event,
                    None,
                    out.attachments,
                    write_args,
                    None,
                )?;
                self.fan_out(&encoded, out)
            }
        };
        self.close_slow(slow);
        Ok(report)
    }

    /// Apply the slow-consumer policy. Call outside every lock: closing a socket runs
    /// its disconnect path.
    fn close_slow(&self, slow: Vec<Socket>) {
        if self.ctx.slow_consumer == SlowConsumerPolicy::Disconnect {
            for socket in slow {
                self.ctx.stats.slow_consumer();
                socket.0.engine.close_with(CloseReason::SlowConsumer);
            }
        }
    }

    /// The cluster path of [`Namespace::publish`]: the arguments are serialised once,
    /// for the local encoding and for the cluster message. With recovery on, a
    /// non-volatile broadcast is delivered here too only once the shared log has
    /// ordered it (its offset is the log id, the same on every node); the report then
    /// counts the local sockets it targets now.
    fn publish_clustered(
        &self,
        cluster: &Arc<dyn ClusterNamespace>,
        out: &Outgoing<'_>,
        write_args: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Result<EmitReport, EmitError> {
        let mut tail = Vec::with_capacity(64);
        write_args(&mut tail).map_err(packet::EncodeError::from)?;
        let msg = ClusterBroadcast {
            event: out.event.to_string(),
            tail,
            attachments: out.attachments.to_vec(),
            target: out.target.clone(),
            volatile: out.volatile,
            keyed: out.keyed.cloned(),
            filter_key: out.filter_key.to_string(),
        };
        if self.recovery.is_some() && !out.volatile && cluster.ordered() {
            // Refuse what cannot be encoded now rather than in the log reader.
            packet::encode_event_with(self.name(), out.event, None, &[], |_| Ok(()), None)?;
            let report = EmitReport {
                delivered: self.count_target(out.target),
                ..EmitReport::default()
            };
            cluster.publish(msg, true);
            return Ok(report);
        }
        let encoded = packet::encode_event_with(
            self.name(),
            out.event,
            None,
            out.attachments,
            |buf| {
                buf.extend_from_slice(&msg.tail);
                Ok(())
            },
            None,
        )?;
        let (report, slow) = self.fan_out(&encoded, out);
        cluster.publish(msg, false);
        self.close_slow(slow);
        Ok(report)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Deliver a broadcast that came through the cluster to this node's sockets, with
    /// its log offset when it has one. Keyed-state deltas are applied by the caller.
    pub(crate) fn deliver_cluster(
        &self,
        msg: &ClusterBroadcast,
        offset: Option<&str>,
    ) -> Result<EmitReport, EmitError> {
        let encoded = self.encode_cluster(msg, offset)?;
        let out = Outgoing {
            event: &msg.event,
            attachments: &msg.attachments,
            target: &msg.target,
            volatile: msg.volatile,
            keyed: msg.keyed.as_ref(),
            filter_key: &msg.filter_key,
        };
        let (report, slow) = self.fan_out(&encoded, &out);
        self.close_slow(slow);
        Ok(report)
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Encode a broadcast that came through the cluster, with its offset.
    pub(crate) fn encode_cluster(
        &self,
        msg: &ClusterBroadcast,
        offset: Option<&str>,
    ) -> Result<Encoded, packet::EncodeError> {
        packet::encode_event_with(
            self.name(),
            &msg.event,
            None,
            &msg.attachments,
            |buf| {
                buf.extend_from_slice(&msg.tail);
                Ok(())
            },
            offset,
        )
    }

    /// Send an event to one local socket only, without the cluster and without a
    /// recovery offset (a state snapshot in cluster mode).
    pub(crate) fn send_local(
        &self,
        socket: &Socket,
        out: &Outgoing<'_>,
        write_args: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Result<(), EmitError> {
        let encoded = packet::encode_event_with(
            self.name(),
            out.event,
            None,
            out.attachments,
            write_args,
            None,
        )?;
        match socket.send_frames(&encoded.frames) {
            Ok(()) => Ok(()),
            Err(SendError::QueueFull) => {
                self.close_slow(vec![socket.clone()]);
                Err(EmitError::QueueFull(socket.id().to_string()))
            }
            Err(SendError::Closed) => Err(EmitError::Disconnected(socket.id().to_string())),
        }
    }

    /// Push one encoded packet to every socket the target reaches. The bytes are shared,
    /// never copied per recipient; a full queue never makes the caller wait. Returns the
    /// report and the sockets whose queue was full (non-volatile).
    fn fan_out(&self, encoded: &Encoded, out: &Outgoing<'_>) -> (EmitReport, Vec<Socket>) {
        let mut report = EmitReport::default();
        let mut slow = Vec::new();
        {
            let registry = self.registry.read();
            registry.for_each_target(out.target, Some(out.filter_key), |socket| {
                let pushed = match (out.keyed, encoded.frames.first()) {
                    (Some(key), Some(frame)) if encoded.frames.len() == 1 => {
                        socket.send_keyed(key, frame)
                    }
                    _ => socket.send_frames(&encoded.frames),
                };
                match pushed {
                    Ok(()) => report.delivered += 1,
                    Err(SendError::QueueFull) if out.volatile => report.volatile_dropped += 1,
                    Err(SendError::QueueFull) => {
                        report.full.push(socket.id_arc());
                        slow.push(socket.clone());
                    }
                    // Disconnecting right now: its disconnect is being handled.
                    Err(SendError::Closed) => {}
                }
            });
        }
        self.ctx.stats.record_emit(&report, encoded.size());
        (report, slow)
    }

    /// Bring back the socket of a client that reconnects with `pid` and the last
    /// `offset` it saw: same id, same rooms, the CONNECT reply and then every packet it
    /// missed, before any new one. None when the session or the packets are gone.
    pub(crate) fn recover(
        self: &Arc<Self>,
        engine: &EngineSocket,
        pid: &str,
        offset: &str,
        auth: Option<Value>,
    ) -> Option<Socket> {
        let recovery = self.recovery.as_ref()?;
        let session = recovery.take_session(pid)?;
        let buffer = recovery.buffer.lock();
        let missed = buffer.missed(offset, &session.sid, &session.rooms)?;
        let socket = self.restore_socket(
            engine,
            auth,
            session.sid,
            pid,
            session.rooms,
            session.filters,
            &missed,
        );
        drop(buffer);
        socket
    }

    /// With a cluster adapter and recovery on, recovery asks the shared log: this
    /// returns the future that does it (None: recover in-process with
    /// [`Namespace::recover`]).
    pub(crate) fn recover_clustered(
        self: &Arc<Self>,
        engine: &EngineSocket,
        pid: &str,
        offset: &str,
        auth: Option<Value>,
    ) -> Option<BoxFuture<Option<Socket>>> {
        self.recovery.as_ref()?;
        let cluster = self.cluster()?;
        Some(cluster.recover(
            self.clone(),
            engine.clone(),
            pid.to_string(),
            offset.to_string(),
            auth,
        ))
    }

    /// Register a recovered socket (same id, rooms and filters), send the CONNECT reply
    /// and then the missed packets, before anything else can be queued to it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn restore_socket(
        self: &Arc<Self>,
        engine: &EngineSocket,
        auth: Option<Value>,
        sid: Arc<str>,
        pid: &str,
        rooms: Vec<Room>,
        filters: Vec<(Room, Filter)>,
        missed: &[Encoded],
    ) -> Option<Socket> {
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
        {
            let mut registry = self.registry.write();
            registry.insert(socket.clone());
            for room in rooms {
                if *room != *sid {
                    registry.join(&sid, room);
                }
            }
            for (room, filter) in filters {
                registry.set_filter(&sid, &room, Some(filter));
            }
        }
        socket.mark_connected(&reply);
        for packet in missed {
            socket.replay(packet);
        }
        self.touch_session(&sid);
        self.ctx.stats.recovered();
        Some(socket)
    }
}
