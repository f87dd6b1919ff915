//! Namespaces: their handlers, their sockets and rooms, and broadcast fan-out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{json, Value};

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
        Self {
            name: name.into(),
            handlers: RwLock::new(Handlers::default()),
            registry: RwLock::new(RoomRegistry::default()),
            recovery: ctx.recovery.clone().map(Recovery::new),
            states: RwLock::new(HashMap::new()),
            ctx,
        }
    }

    /// Whether connection state recovery is on for this namespace.
    pub fn recovery_enabled(&self) -> bool {
        self.recovery.is_some()
    }

    /// The keyed state map `name` of this namespace (created on first use).
    pub fn state(self: &Arc<Self>, name: &str) -> StateMap {
        let existing = self.states.read().get(name).cloned();
        let shared = match existing {
            Some(shared) => shared,
            None => self
                .states
                .write()
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(StateShared::new(name)))
                .clone(),
        };
        StateMap::new(self.clone(), shared)
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
        self.registry.write().insert(socket);
    }

    /// Remove a socket and call the disconnect handler (once). With recovery on, a
    /// socket lost to the network keeps its session for `max_disconnection_duration`.
    pub(crate) fn remove_socket(&self, socket: &Socket, reason: DisconnectReason) {
        let removed = self.registry.write().remove(socket.id());
        if let (Some(recovery), Some(pid), Some(removed)) = (&self.recovery, socket.pid(), removed)
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
        socket.mark_disconnected();
    }

    pub(crate) fn join(&self, sid: &str, room: Room) {
        self.registry.write().join(sid, room);
    }

    pub(crate) fn leave(&self, sid: &str, room: &str) {
        self.registry.write().leave(sid, room);
    }

    /// Join a room with an optional subscription filter.
    pub(crate) fn subscribe_room(&self, sid: &str, room: &Room, filter: Option<Filter>) {
        let mut registry = self.registry.write();
        registry.join(sid, room.clone());
        registry.set_filter(sid, room, filter);
    }

    pub(crate) fn rooms_of(&self, sid: &str) -> Vec<String> {
        self.registry.read().rooms_of(sid)
    }

    /// Add a socket (by id) to a room. Returns false for an unknown socket.
    pub fn join_room(&self, sid: &str, room: impl Into<Room>) -> bool {
        self.registry.write().join(sid, room.into())
    }

    /// Remove a socket (by id) from a room.
    pub fn leave_room(&self, sid: &str, room: &str) {
        self.leave(sid, room);
    }

    /// Empty a room.
    pub fn close_room(&self, room: &str) {
        self.registry.write().clear_room(room);
    }

    /// The rooms of a socket (its own id first); empty for an unknown socket.
    pub fn rooms(&self, sid: &str) -> Vec<String> {
        self.rooms_of(sid)
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

    /// Disconnect a socket by id; false if unknown.
    pub fn disconnect(&self, sid: &str) -> bool {
        match self.socket(sid) {
            Some(s) => {
                s.disconnect();
                true
            }
            None => false,
        }
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
        // Outside every lock: closing a socket runs its disconnect path.
        if self.ctx.slow_consumer == SlowConsumerPolicy::Disconnect {
            for socket in slow {
                self.ctx.stats.slow_consumer();
                socket.0.engine.close_with(CloseReason::SlowConsumer);
            }
        }
        Ok(report)
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
        let socket = Socket::with_id(
            self.clone(),
            engine.clone(),
            auth,
            session.sid.clone(),
            Some(pid.into()),
        );
        {
            let mut registry = self.registry.write();
            registry.insert(socket.clone());
            for room in session.rooms {
                registry.join(&session.sid, room);
            }
            for (room, filter) in session.filters {
                registry.set_filter(&session.sid, &room, Some(filter));
            }
        }
        let reply = packet::encode_control(
            PacketKind::Connect,
            self.name(),
            Some(&json!({"sid": &*session.sid, "pid": pid})),
        )
        .ok()?;
        socket.mark_connected(&reply);
        for packet in &missed {
            socket.replay(packet);
        }
        drop(buffer);
        self.ctx.stats.recovered();
        Some(socket)
    }
}
