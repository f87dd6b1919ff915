//! One client's connection to one namespace.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::engine::{new_id, CloseReason, EngineSocket, Frame, RequestInfo, SendError, Transport};
use crate::protocol::socketio::PacketKind;
use crate::socketio::adapter::acks::{first_arg, AckEvent, AckSink};
use crate::socketio::adapter::SessionRecord;
use crate::socketio::emitter::{Broadcast, EmitError};
use crate::socketio::namespace::{wait_budget, Namespace, Outgoing};
use crate::socketio::packet::{self, Encoded, Payload, WriteArgs};
use crate::socketio::rooms::{Filter, Room, Target};
use crate::socketio::serial::Serial;

/// Why a socket left its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The server called [`Socket::disconnect`].
    ServerNamespaceDisconnect,
    /// The client sent DISCONNECT for this namespace.
    ClientNamespaceDisconnect,
    /// The underlying Engine.IO session ended.
    Transport(CloseReason),
}

impl DisconnectReason {
    /// Whether a client lost this way may recover its session (Socket.IO's list, plus
    /// slow consumers and stalled writes, which are disconnected precisely so that they
    /// recover).
    pub fn is_recoverable(self) -> bool {
        matches!(
            self,
            DisconnectReason::Transport(
                CloseReason::TransportClose
                    | CloseReason::TransportError
                    | CloseReason::PingTimeout
                    | CloseReason::ServerShutdown
                    | CloseReason::ServerClose
                    | CloseReason::SlowConsumer
                    | CloseReason::WriteTimeout
            )
        )
    }

    /// The reason string Socket.IO uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::Transport(reason) => reason.as_str(),
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a server-to-client ack did not come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No answer within the timeout.
    #[error("the client did not acknowledge within the timeout")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("the socket disconnected before acknowledging")]
    Disconnected,
    /// The packet could not be sent.
    #[error(transparent)]
    Emit(#[from] EmitError),
}

/// A future resolving to a client's ack.
pub type AckFuture = Pin<Box<dyn Future<Output = Result<Payload, AckError>> + Send>>;

const CONNECTING: u8 = 0;
const CONNECTED: u8 = 1;
const DISCONNECTED: u8 = 2;

pub(crate) struct SocketInner {
    id: Arc<str>,
    pub(crate) ns: Arc<Namespace>,
    pub(crate) engine: EngineSocket,
    auth: Option<Value>,
    /// Private session id for connection state recovery.
    pid: Option<Arc<str>>,
    state: AtomicU8,
    /// Frames emitted to the socket while its connect handler runs: they must follow
    /// the CONNECT reply, which is only sent once the handler accepts.
    pending: Mutex<Vec<Frame>>,
    /// The HTTP request that opened the connection, shared by the connection's sockets
    /// (set by the connection once the socket exists).
    request: std::sync::OnceLock<Arc<RequestInfo>>,
    acks: Mutex<HashMap<u64, AckWaiter>>,
    next_ack: AtomicU64,
    /// The queue of its async handlers, made by the first async event.
    serial: std::sync::OnceLock<Serial>,
}

/// Who waits for an ack this socket asked its client for.
enum AckWaiter {
    /// [`Socket::emit_with_ack`]: one future.
    One(oneshot::Sender<Payload>),
    /// A broadcast with acknowledgements: the answer goes to the round's collector.
    Broadcast(AckSink),
}

/// A client connected to a namespace. Cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<SocketInner>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.0.id)
            .field("namespace", &self.0.ns.name())
            .finish()
    }
}

impl Socket {
    pub(crate) fn new(ns: Arc<Namespace>, engine: EngineSocket, auth: Option<Value>) -> Self {
        let pid = ns.recovery_enabled().then(|| Arc::from(new_id()));
        Self::with_id(ns, engine, auth, new_id().into(), pid)
    }

    pub(crate) fn with_id(
        ns: Arc<Namespace>,
        engine: EngineSocket,
        auth: Option<Value>,
        id: Arc<str>,
        pid: Option<Arc<str>>,
    ) -> Self {
        Socket(Arc::new(SocketInner {
            id,
            ns,
            engine,
            auth,
            pid,
            state: AtomicU8::new(CONNECTING),
            pending: Mutex::new(Vec::new()),
            request: std::sync::OnceLock::new(),
            acks: Mutex::new(HashMap::new()),
            next_ack: AtomicU64::new(0),
            serial: std::sync::OnceLock::new(),
        }))
    }

    /// The socket id (distinct from the Engine.IO session id, as in Socket.IO v5).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub(crate) fn id_arc(&self) -> Arc<str> {
        self.0.id.clone()
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        self.0.ns.name()
    }

    /// The recovery session id, when recovery is on.
    pub(crate) fn pid(&self) -> Option<&str> {
        self.0.pid.as_deref()
    }

    /// The auth payload the client sent with CONNECT.
    pub fn auth(&self) -> Option<&Value> {
        self.0.auth.as_ref()
    }

    /// The handshake request of the connection: query string, headers and remote
    /// address, as the client opened it (Flask-SocketIO's `request.args`/`headers`,
    /// python-socketio's `environ`). `None` only for a socket made without a connection
    /// (a session recovered across nodes whose connection has not attached it yet).
    pub fn request(&self) -> Option<&RequestInfo> {
        self.0.request.get().map(|r| &**r)
    }

    pub(crate) fn set_request(&self, request: &Arc<RequestInfo>) {
        let _ = self.0.request.set(request.clone());
    }

    /// The Engine.IO session id of the underlying connection.
    pub fn engine_sid(&self) -> &str {
        self.0.engine.sid()
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.0.engine.transport()
    }

    /// Whether the socket is still connected.
    pub fn connected(&self) -> bool {
        self.0.state.load(Ordering::Acquire) != DISCONNECTED
    }

    /// Queue frames for this socket. While the connect handler runs they wait behind
    /// the CONNECT reply.
    pub(crate) fn send_frames(&self, frames: &[Frame]) -> Result<(), SendError> {
        self.push_frames(frames).map(|_| ())
    }

    /// [`Socket::send_frames`], telling whether the queue is now above its
    /// backpressure watermark.
    pub(crate) fn push_frames(&self, frames: &[Frame]) -> Result<bool, SendError> {
        self.push_with(frames, |engine| {
            engine.push(frames, false, || self.still_connected())
        })
    }

    /// Bring what a push to this socket reads first (its state, its queue's lock) into
    /// the cache, with loads only. Warming a few recipients at once lets their cache
    /// misses overlap, where pushing one after the other meets each miss alone.
    pub(crate) fn warm(&self) {
        if std::hint::black_box(self.0.state.load(Ordering::Relaxed)) == CONNECTED {
            self.0.engine.warm();
        }
    }

    /// [`Socket::push_frames`], written to the socket at once when its writer waits idle.
    pub(crate) fn push_frames_through(&self, frames: &[Frame]) -> Result<bool, SendError> {
        self.push_with(frames, |engine| {
            engine.push(frames, true, || self.still_connected())
        })
    }

    /// Like [`Socket::push_frames`], waiting (blocking the thread) until `deadline` for
    /// room in a full queue.
    pub(crate) fn push_frames_blocking(
        &self,
        frames: &[Frame],
        deadline: std::time::Instant,
    ) -> Result<bool, SendError> {
        self.push_with(frames, |engine| {
            engine.push_blocking(frames, deadline, || self.still_connected())
        })
    }

    /// Whether the socket is connected now: asked again under the engine queue's lock
    /// as frames go in, so none lands behind the DISCONNECT that [`Socket::disconnect`]
    /// queues once the socket is marked gone (the connection, shared by the client's
    /// namespaces, stays open).
    fn still_connected(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == CONNECTED
    }

    /// Push with `push` once connected; while the connect handler runs, frames wait
    /// behind the CONNECT reply.
    fn push_with(
        &self,
        frames: &[Frame],
        push: impl FnOnce(&EngineSocket) -> Result<bool, SendError>,
    ) -> Result<bool, SendError> {
        match self.0.state.load(Ordering::Acquire) {
            CONNECTED => push(&self.0.engine),
            DISCONNECTED => Err(SendError::Closed),
            _ => {
                let mut pending = self.0.pending.lock();
                // Re-check under the lock: `mark_connected` flips the state while holding it.
                match self.0.state.load(Ordering::Acquire) {
                    CONNECTED => push(&self.0.engine),
                    DISCONNECTED => Err(SendError::Closed),
                    _ => {
                        pending.extend_from_slice(frames);
                        Ok(false)
                    }
                }
            }
        }
    }

    /// Block until the writer has brought the queue back under its watermark; false
    /// when `deadline` passed first.
    pub(crate) fn wait_below_watermark(&self, deadline: std::time::Instant) -> bool {
        self.0.engine.wait_below_watermark(deadline)
    }

    /// Wait (as a task) for room for `frames` frames of `bytes` bytes under the
    /// backpressure watermark; false when `deadline` passed first.
    pub(crate) async fn room_for(
        &self,
        frames: usize,
        bytes: usize,
        deadline: tokio::time::Instant,
    ) -> bool {
        self.0.engine.room_for(frames, bytes, deadline).await
    }

    /// Whether this client's queue is above its backpressure watermark now.
    pub(crate) fn is_behind(&self) -> bool {
        self.0.engine.is_behind()
    }

    /// What waits to be written to this client: (packets, bytes).
    pub(crate) fn backlog(&self) -> (usize, usize) {
        self.0.engine.backlog()
    }

    /// Queue the latest value of a keyed state entry (coalesced in place).
    pub(crate) fn send_keyed(&self, key: &Arc<str>, frame: &Frame) -> Result<(), SendError> {
        if self.0.state.load(Ordering::Acquire) != CONNECTED {
            return self.send_frames(std::slice::from_ref(frame));
        }
        self.0
            .engine
            .send_keyed(key, frame, || self.still_connected())
    }

    /// Queue a replayed packet: exempt from the queue bound, since the replay buffer
    /// that holds it is bounded already.
    pub(crate) fn replay(&self, encoded: &Encoded) {
        self.0.engine.send_replay(&encoded.frames);
    }

    /// Send the CONNECT reply, then whatever was emitted meanwhile.
    pub(crate) fn mark_connected(&self, reply: &Encoded) {
        let mut pending = self.0.pending.lock();
        let _ = self.0.engine.send_frames(&reply.frames);
        if !pending.is_empty() {
            let _ = self.0.engine.send_frames(&pending);
            pending.clear();
        }
        self.0.state.store(CONNECTED, Ordering::Release);
    }

    /// Mark disconnected; returns whether it was connected, i.e. whether the
    /// application saw it connect and must now see it leave (a socket whose connect
    /// decision was pending or refused never connected). Fails pending acks.
    pub(crate) fn mark_disconnected(&self) -> bool {
        let previous = self.0.state.swap(DISCONNECTED, Ordering::AcqRel);
        if previous == DISCONNECTED {
            return false;
        }
        self.0.pending.lock().clear();
        // Dropping the senders wakes the waiters with `Disconnected`.
        self.0.acks.lock().clear();
        previous == CONNECTED
    }

    /// Queue an encoded packet for this client. On a thread that may wait, a full queue
    /// is waited on, and a queue left above its watermark is given time to drain, at
    /// most the server's `emit_max_wait` (backpressure); elsewhere it never waits.
    pub(crate) fn push(&self, encoded: &Encoded) -> Result<(), EmitError> {
        let ctx = &self.0.ns.ctx;
        let sent = match wait_budget(true, ctx.emit_max_wait) {
            None => self.push_frames(&encoded.frames).map(|_| ()),
            Some(deadline) => self
                .push_frames_blocking(&encoded.frames, deadline)
                .map(|above| {
                    if above {
                        self.wait_below_watermark(deadline);
                    }
                }),
        };
        sent.map_err(|e| match e {
            SendError::QueueFull => EmitError::QueueFull(self.id().to_string()),
            SendError::Closed => EmitError::Disconnected(self.id().to_string()),
        })
    }

    /// Emit to this socket alone. With recovery on, the packet still needs an offset
    /// and a place in the replay buffer: it goes through the namespace's adapter as a
    /// broadcast to the socket's own room.
    fn emit_args(
        &self,
        event: &str,
        attachments: &[bytes::Bytes],
        args: WriteArgs<'_>,
    ) -> Result<(), EmitError> {
        if !self.0.ns.recovery_enabled() {
            let encoded =
                packet::encode_event(self.namespace(), event, None, attachments, args, None)?;
            return self.push(&encoded);
        }
        let target = Target::room(self.id_arc());
        let report = self.0.ns.publish(&Outgoing::event(
            event,
            args,
            attachments,
            &target,
            false,
            true,
        ))?;
        if !report.full.is_empty() {
            return Err(EmitError::QueueFull(self.id().to_string()));
        }
        if report.delivered == 0 {
            return Err(EmitError::Disconnected(self.id().to_string()));
        }
        Ok(())
    }

    /// Emit `event` with one argument to this client.
    ///
    /// Fails with [`EmitError::QueueFull`] when the client does not keep up.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitError> {
        self.emit_args(event, &[], &packet::write_one(data))
    }

    /// Emit `event` with any number of arguments and binary attachments.
    pub fn emit_payload(&self, event: &str, payload: &Payload) -> Result<(), EmitError> {
        self.emit_args(
            event,
            &payload.attachments,
            &packet::write_args(&payload.args),
        )
    }

    /// Emit and wait for the client's ack, at most `timeout`. Await it inside the
    /// server's runtime (or use [`Socket::emit_with_ack_callback`] from other threads).
    pub fn emit_with_ack(&self, event: &str, payload: &Payload, timeout: Duration) -> AckFuture {
        let id = self.0.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.0.acks.lock().insert(id, AckWaiter::One(tx));
        let sent = packet::encode_event(
            self.namespace(),
            event,
            Some(id),
            &payload.attachments,
            &packet::write_args(&payload.args),
            None,
        )
        .map_err(EmitError::from)
        .and_then(|encoded| self.push(&encoded));
        let socket = self.clone();
        Box::pin(async move {
            if let Err(e) = sent {
                socket.0.acks.lock().remove(&id);
                return Err(AckError::Emit(e));
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(payload)) => Ok(payload),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => {
                    socket.0.acks.lock().remove(&id);
                    Err(AckError::Timeout)
                }
            }
        })
    }

    /// Like [`Socket::emit_with_ack`], calling `callback` on a runtime thread with the
    /// outcome. Usable from any thread.
    pub fn emit_with_ack_callback<F>(
        &self,
        event: &str,
        payload: &Payload,
        timeout: Duration,
        callback: F,
    ) where
        F: FnOnce(Result<Payload, AckError>) + Send + 'static,
    {
        let fut = self.emit_with_ack(event, payload, timeout);
        match self.0.ns.runtime() {
            Some(rt) => {
                rt.spawn(async move { callback(fut.await) });
            }
            None => callback(Err(AckError::Emit(EmitError::NotRunning))),
        }
    }

    /// An ACK arrived from the client.
    pub(crate) fn resolve_ack(&self, id: u64, payload: Payload) {
        // Taken out first: nothing runs under the socket's lock.
        let waiter = self.0.acks.lock().remove(&id);
        match waiter {
            Some(AckWaiter::One(tx)) => {
                let _ = tx.send(payload);
            }
            Some(AckWaiter::Broadcast(sink)) => {
                let _ = sink.send(AckEvent::Reply {
                    socket: Some(self.id_arc()),
                    data: first_arg(payload),
                    local: true,
                });
            }
            None => {}
        }
    }

    /// Wait for the ack `id` of a broadcast: the answer goes to `sink`.
    pub(crate) fn expect_ack(&self, id: u64, sink: AckSink) {
        self.0.acks.lock().insert(id, AckWaiter::Broadcast(sink));
    }

    /// Stop waiting for the ack `id` (the broadcast's round is over).
    pub(crate) fn forget_ack(&self, id: u64) {
        self.0.acks.lock().remove(&id);
    }

    /// Join a room.
    pub fn join(&self, room: impl Into<Room>) {
        self.0.ns.join(self.id(), room.into());
    }

    /// Leave a room.
    pub fn leave(&self, room: &str) {
        self.0.ns.leave(self.id(), room);
    }

    /// The rooms the socket is in, its own id room first.
    pub fn rooms(&self) -> Vec<String> {
        self.0.ns.rooms_of(self.id())
    }

    /// A broadcast to every other socket of the namespace.
    pub fn broadcast(&self) -> Broadcast<'_> {
        Broadcast::new(&self.0.ns).except(self.id_arc())
    }

    /// A broadcast to a room, leaving this socket out (as `socket.to(room)` in Socket.IO).
    pub fn to(&self, room: impl Into<Room>) -> Broadcast<'_> {
        self.broadcast().to(room)
    }

    /// Disconnect from this namespace: the client gets DISCONNECT ("io server disconnect").
    pub fn disconnect(&self) {
        // Removed (and its reason settled) before the client hears of it: a client that
        // closes its transport at once on the DISCONNECT must not race this thread to
        // `remove_socket` with "transport close" (seen with python-socketio's AsyncClient
        // when this thread was preempted between the two).
        self.0
            .ns
            .remove_socket(self, DisconnectReason::ServerNamespaceDisconnect);
        if let Ok(encoded) = packet::encode_control(PacketKind::Disconnect, self.namespace(), None)
        {
            let _ = self.0.engine.send_frames(&encoded.frames);
        }
    }

    /// Run `job` once this socket's earlier async handlers have finished (the queue of
    /// [`Namespace::on_async`]). A client whose events pile up past
    /// [`crate::socketio::serial::MAX_PENDING`] is disconnected, logged at WARN.
    pub(crate) fn run_in_order(&self, job: impl Future<Output = ()> + Send + 'static) {
        let runtime = self
            .0
            .ns
            .runtime()
            .or_else(|| tokio::runtime::Handle::try_current().ok());
        let queued = match runtime {
            Some(runtime) => self
                .0
                .serial
                .get_or_init(|| Serial::start(&runtime, self.id_arc()))
                .push(Box::pin(job)),
            None => Err(crate::socketio::serial::SerialError::NotRunning),
        };
        if let Err(e) = queued {
            tracing::warn!(
                target: "swarmcast",
                sid = self.id(),
                namespace = self.namespace(),
                error = %e,
                "async event handler not run: disconnecting the client"
            );
            self.disconnect();
        }
    }

    /// Later keyed deltas queue behind what is queued now instead of replacing an
    /// older delta of their key in front of it: what a state snapshot needs.
    pub(crate) fn keyed_barrier(&self) {
        self.0.engine.keyed_barrier();
    }

    /// Take and count what waits in a detached socket's queue (benchmarks).
    #[doc(hidden)]
    pub fn drain_detached(&self) -> usize {
        self.0.engine.drain()
    }

    /// Close the whole underlying connection (every namespace).
    pub fn close_connection(&self) {
        self.0.engine.close();
    }

    /// Close the whole connection with `reason`; false when it was closed already.
    pub(crate) fn close_connection_with(&self, reason: CloseReason) -> bool {
        self.0.engine.close_with(reason)
    }

    /// What recovery keeps of this socket, with the given memberships (None when
    /// recovery is off: the socket has no private id).
    pub(crate) fn session_record(
        &self,
        rooms: Vec<Room>,
        filters: Vec<(Room, Filter)>,
    ) -> Option<SessionRecord> {
        Some(SessionRecord {
            pid: self.pid()?.to_string(),
            sid: self.id_arc(),
            rooms,
            filters,
            auth: self.auth().cloned(),
        })
    }
}

/// Emits an answer must not overtake: those a binding's host handed to its
/// [`crate::Handoff`] before the answer. The host attaches it to its handlers' acks.
pub(crate) trait EarlierEmits: Send + Sync {
    /// Whether some are still waiting to be fanned out.
    fn pending(&self) -> bool;
    /// Wait until they are (at once when none is pending).
    fn wait(&self);
}

/// Answers a client's ack request. Send it from any thread; dropping it sends nothing.
pub struct AckSender {
    socket: Socket,
    id: u64,
    /// Set by a host whose emits go through a handoff: a handler that emits and then
    /// returns expects its client to get the events before the answer.
    earlier: Option<Arc<dyn EarlierEmits>>,
}

impl std::fmt::Debug for AckSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckSender")
            .field("socket", &self.socket)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl AckSender {
    pub(crate) fn new(socket: Socket, id: u64) -> Self {
        Self {
            socket,
            id,
            earlier: None,
        }
    }

    /// This answer leaves after `earlier` (see [`EarlierEmits`]).
    pub(crate) fn after(mut self, earlier: Arc<dyn EarlierEmits>) -> Self {
        self.earlier = Some(earlier);
        self
    }

    /// The ack id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Answer with one argument.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) -> Result<(), EmitError> {
        let value = serde_json::to_value(data).map_err(packet::EncodeError::from)?;
        self.send_payload(&Payload::new(vec![value]))
    }

    /// Answer with any arguments and attachments. On a thread that may wait, a client
    /// behind on its queue is waited for, at most the server's `emit_max_wait`, as an
    /// emit is. Under a [`crate::Host`] that emits through a [`crate::Handoff`], the
    /// emits handed off before this call are fanned out first: the answer does not
    /// overtake them.
    pub fn send_payload(self, payload: &Payload) -> Result<(), EmitError> {
        let encoded = packet::encode_ack(self.socket.namespace(), self.id, payload)?;
        if let Some(earlier) = &self.earlier {
            earlier.wait();
        }
        self.socket.push(&encoded)
    }

    /// Whether [`AckSender::send_payload`] on a thread that may wait would wait now:
    /// the client's queue is above its backpressure watermark, or emits handed off
    /// before the answer are still pending. Never waits.
    pub fn is_behind(&self) -> bool {
        self.socket.is_behind() || self.earlier.as_ref().is_some_and(|e| e.pending())
    }

    /// [`AckSender::send_payload`] that never waits, for code that must not block (an
    /// event loop; check [`AckSender::is_behind`] first to keep backpressure and the
    /// order after handed-off emits): a full queue fails at once with
    /// [`EmitError::QueueFull`].
    pub fn send_payload_no_wait(self, payload: &Payload) -> Result<(), EmitError> {
        let encoded = packet::encode_ack(self.socket.namespace(), self.id, payload)?;
        match self.socket.push_frames(&encoded.frames) {
            Ok(_) => Ok(()),
            Err(SendError::QueueFull) => Err(EmitError::QueueFull(self.socket.id().to_string())),
            Err(SendError::Closed) => Err(EmitError::Disconnected(self.socket.id().to_string())),
        }
    }
}
