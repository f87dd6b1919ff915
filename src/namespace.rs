//! Namespaces: their handlers, their sockets and rooms, and broadcast fan-out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::emitter::{Broadcast, Context, EmitReport};
use crate::packet::{Encoded, Payload};
use crate::rooms::{Room, RoomRegistry, Target};
use crate::socket::{AckSender, DisconnectReason, Socket};

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
            ctx,
        }
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

    /// Remove a socket and call the disconnect handler (once).
    pub(crate) fn remove_socket(&self, socket: &Socket, reason: DisconnectReason) {
        self.registry.write().remove(socket.id());
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
        self.registry.read().for_each_target(target, f);
    }

    /// Push one encoded packet to every socket the target reaches. The bytes are shared,
    /// never copied per recipient; a full queue never makes the caller wait.
    pub(crate) fn fan_out(&self, encoded: &Encoded, target: &Target, volatile: bool) -> EmitReport {
        let mut report = EmitReport::default();
        {
            let registry = self.registry.read();
            registry.for_each_target(target, |socket| {
                match socket.send_frames(&encoded.frames) {
                    Ok(()) => report.delivered += 1,
                    Err(crate::engine::SendError::QueueFull) if volatile => {
                        report.volatile_dropped += 1
                    }
                    Err(crate::engine::SendError::QueueFull) => report.full.push(socket.id_arc()),
                    // Disconnecting right now: its disconnect is being handled.
                    Err(crate::engine::SendError::Closed) => {}
                }
            });
        }
        self.ctx.stats.record_emit(&report, encoded.size());
        report
    }
}
