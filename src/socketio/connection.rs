//! The Socket.IO layer on one Engine.IO session: decoding, binary reassembly, the
//! namespace handshake, and dispatch to handlers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::engine::{
    CloseReason, ConnectionHandler, EngineHandler, EngineSocket, Incoming, RequestInfo,
};
use crate::protocol::socketio::{self, CompletePacket, PacketKind, Reassembler};
use crate::socketio::adapter::Recovered;
use crate::socketio::context::IoCore;
use crate::socketio::limits::{AttachmentBudget, RateLimit, RateLimitPolicy, RateLimiter};
use crate::socketio::namespace::{ConnectError, ConnectHook, Event};
use crate::socketio::packet::{self, Payload};
use crate::socketio::socket::{AckSender, DisconnectReason, Socket};
use crate::socketio::subscriptions;

/// Socket.IO settings that are not Engine.IO's.
#[derive(Debug, Clone)]
pub(crate) struct IoConfig {
    pub connect_timeout: Duration,
    pub max_attachments: usize,
    /// Bytes of pending attachments, per connection and in total.
    pub attachments: Arc<AttachmentBudget>,
    pub rate_limit: RateLimit,
    /// Keep each event's arguments as the client sent them (`Event::raw_args`).
    pub keep_raw_args: bool,
}

/// Serves Socket.IO over an Engine.IO endpoint.
pub(crate) struct SocketIoHandler {
    pub core: Arc<IoCore>,
    pub config: IoConfig,
}

impl EngineHandler for SocketIoHandler {
    fn on_open(&self, engine: EngineSocket, request: &RequestInfo) -> Arc<dyn ConnectionHandler> {
        let conn = Arc::new_cyclic(|weak| Connection {
            core: self.core.clone(),
            engine: engine.clone(),
            request: Arc::new(request.clone()),
            state: Mutex::new(ConnState {
                sockets: HashMap::new(),
                reassembler: Reassembler::default(),
                pending_attachment_bytes: 0,
                pending_raw_args: None,
                limiter: RateLimiter::new(&self.config.rate_limit),
            }),
            ever_connected: AtomicBool::new(false),
            max_attachments: self.config.max_attachments,
            attachments: self.config.attachments.clone(),
            keep_raw_args: self.config.keep_raw_args,
            weak: weak.clone(),
        });
        // A client that never sends CONNECT is closed after `connect_timeout`.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&conn);
            let timeout = self.config.connect_timeout;
            let engine = engine.clone();
            rt.spawn(async move {
                tokio::select! {
                    _ = engine.closed() => {}
                    _ = tokio::time::sleep(timeout) => {
                        if let Some(conn) = weak.upgrade() {
                            if !conn.ever_connected.load(Ordering::Acquire) {
                                conn.engine.close_with(CloseReason::ConnectTimeout);
                            }
                        }
                    }
                }
            });
        }
        conn
    }
}

struct ConnState {
    sockets: HashMap<String, Socket>,
    reassembler: Reassembler,
    /// Bytes of the attachments the reassembler holds (reserved in the total too).
    pending_attachment_bytes: usize,
    /// The raw arguments of the binary event waiting for its attachments.
    pending_raw_args: Option<Arc<str>>,
    limiter: Option<RateLimiter>,
}

/// A complete packet, and an event's arguments as they came when those are kept.
struct Admitted {
    complete: CompletePacket,
    raw_args: Option<Arc<str>>,
}

/// What the limits say about one message.
enum Verdict {
    Pass(Option<Admitted>),
    /// An event over the rate limit, policy drop.
    Drop,
    /// Over the rate limit, policy disconnect.
    Disconnect,
    Violation(String),
}

/// One client connection (an Engine.IO session) and its namespace sockets.
pub(crate) struct Connection {
    core: Arc<IoCore>,
    engine: EngineSocket,
    /// The handshake request, kept for the sockets (one copy per connection).
    request: Arc<RequestInfo>,
    state: Mutex<ConnState>,
    ever_connected: AtomicBool,
    max_attachments: usize,
    attachments: Arc<AttachmentBudget>,
    keep_raw_args: bool,
    weak: Weak<Connection>,
}

impl ConnectionHandler for Connection {
    fn on_message(&self, message: Incoming<'_>) {
        match self.admit(message) {
            Verdict::Pass(Some(complete)) => self.dispatch(complete),
            Verdict::Pass(None) => {}
            Verdict::Drop => self.core.ctx.stats.rate_limited(),
            Verdict::Disconnect => {
                self.core.ctx.stats.rate_limited();
                tracing::debug!(sid = self.engine.sid(), "over the rate limit; closing");
                self.engine.close_with(CloseReason::RateLimited);
            }
            Verdict::Violation(e) => self.violation(&e),
        }
    }

    fn on_close(&self, reason: CloseReason) {
        let (sockets, pending) = {
            let mut state = self.state.lock();
            state.reassembler.clear();
            let pending = std::mem::take(&mut state.pending_attachment_bytes);
            let sockets: Vec<Socket> = state.sockets.drain().map(|(_, s)| s).collect();
            (sockets, pending)
        };
        self.attachments.release(pending);
        for socket in sockets {
            socket
                .0
                .ns
                .remove_socket(&socket, DisconnectReason::Transport(reason));
        }
    }
}

impl Connection {
    /// Decode and reassemble one message within the limits: the bytes of pending
    /// attachments (per connection and in total) and the rate limit.
    fn admit(&self, message: Incoming<'_>) -> Verdict {
        let now = Instant::now();
        let mut state = self.state.lock();
        let state = &mut *state;
        let len = match message {
            Incoming::Text(text) => text.len(),
            Incoming::Binary(data) => data.len(),
        };
        if let Some(limiter) = &mut state.limiter {
            limiter.on_bytes(len, now);
        }
        let complete = match message {
            Incoming::Text(text) if self.keep_raw_args => {
                socketio::decode_with_data(text, self.max_attachments).and_then(|(packet, data)| {
                    let is_event =
                        matches!(packet.kind, PacketKind::Event | PacketKind::BinaryEvent);
                    state.pending_raw_args = is_event
                        .then(|| socketio::event_args_text(data))
                        .flatten()
                        .map(Arc::from);
                    state.reassembler.push_packet(packet)
                })
            }
            Incoming::Text(text) => socketio::decode(text, self.max_attachments)
                .and_then(|packet| state.reassembler.push_packet(packet)),
            Incoming::Binary(data) => {
                let held = state.pending_attachment_bytes.saturating_add(data.len());
                if held > self.attachments.per_connection || !self.attachments.reserve(data.len()) {
                    return Verdict::Violation("pending attachments over their byte bound".into());
                }
                state.pending_attachment_bytes = held;
                state.reassembler.push_attachment(data.clone())
            }
        };
        if !state.reassembler.is_pending() && state.pending_attachment_bytes > 0 {
            // The packet is complete (or broken): its attachments are pending no more.
            self.attachments
                .release(std::mem::take(&mut state.pending_attachment_bytes));
        }
        let complete = match complete {
            Ok(Some(complete)) => Admitted {
                complete,
                raw_args: state.pending_raw_args.take(),
            },
            Ok(None) => return Verdict::Pass(None),
            Err(e) => return Verdict::Violation(e.to_string()),
        };
        let Some(limiter) = &mut state.limiter else {
            return Verdict::Pass(Some(complete));
        };
        let is_event = matches!(
            complete.complete.packet.kind,
            PacketKind::Event | PacketKind::BinaryEvent
        );
        let within = if is_event {
            limiter.allow_event(now)
        } else {
            // Acks and the namespace handshake are never dropped, but their bytes count.
            limiter.policy == RateLimitPolicy::Drop || !limiter.bytes_exceeded()
        };
        match (within, limiter.policy) {
            (true, _) => Verdict::Pass(Some(complete)),
            (false, RateLimitPolicy::Drop) => Verdict::Drop,
            (false, RateLimitPolicy::Disconnect) => Verdict::Disconnect,
        }
    }

    fn violation(&self, what: &str) {
        tracing::debug!(
            sid = self.engine.sid(),
            what,
            "socket.io protocol violation; closing"
        );
        self.engine.close_with(CloseReason::ParseError);
    }

    fn socket(&self, namespace: &str) -> Option<Socket> {
        self.state
            .lock()
            .sockets
            .get(namespace)
            .filter(|s| s.connected())
            .cloned()
    }

    fn send(&self, kind: PacketKind, namespace: &str, body: Option<&Value>) {
        if let Ok(encoded) = packet::encode_control(kind, namespace, body) {
            let _ = self.engine.send_frames(&encoded.frames);
        }
    }

    fn dispatch(&self, admitted: Admitted) {
        let Admitted {
            complete:
                CompletePacket {
                    packet,
                    attachments,
                },
            raw_args,
        } = admitted;
        match packet.kind {
            PacketKind::Connect => self.connect(packet.namespace, packet.data),
            PacketKind::Disconnect => {
                let socket = self.state.lock().sockets.remove(&packet.namespace);
                match socket {
                    Some(socket) => socket
                        .0
                        .ns
                        .remove_socket(&socket, DisconnectReason::ClientNamespaceDisconnect),
                    None => self.violation("DISCONNECT for a namespace not joined"),
                }
            }
            PacketKind::Event | PacketKind::BinaryEvent => {
                // An event for a namespace the client has not joined breaks the protocol
                // (the reference server closes the connection too).
                let Some(socket) = self.socket(&packet.namespace) else {
                    return self.violation("EVENT for a namespace not joined");
                };
                let Some(Value::Array(mut args)) = packet.data else {
                    return self.violation("event without an argument array");
                };
                // The name is a string, or a number (the reference parser accepts one and
                // handlers see it as its decimal text).
                let name = match args.first() {
                    Some(Value::String(_) | Value::Number(_)) => match args.remove(0) {
                        Value::String(name) => name,
                        number => number.to_string(),
                    },
                    _ => return self.violation("event without a name"),
                };
                let ack = packet.id.map(|id| AckSender::new(socket.clone(), id));
                let event = Event {
                    name,
                    payload: Payload { args, attachments },
                    raw_args,
                };
                let policy = &self.core.ctx.subscribe;
                if (event.name == "subscribe" || event.name == "unsubscribe") && policy.enabled() {
                    return subscriptions::handle(policy, &socket, event, ack);
                }
                if let Some(handler) = socket.0.ns.event_handler(&event.name) {
                    handler(&socket, event, ack);
                }
            }
            PacketKind::Ack | PacketKind::BinaryAck => {
                let Some(socket) = self.socket(&packet.namespace) else {
                    return self.violation("ACK for a namespace not joined");
                };
                let Some(id) = packet.id else {
                    return self.violation("ACK without an id");
                };
                let args = match packet.data {
                    Some(Value::Array(args)) => args,
                    _ => return self.violation("ack without an argument array"),
                };
                socket.resolve_ack(id, Payload { args, attachments });
            }
            PacketKind::ConnectError => self.violation("CONNECT_ERROR sent by a client"),
        }
    }

    fn connect(&self, namespace: String, auth: Option<Value>) {
        let Some(ns) = self.core.get_or_dynamic(&namespace) else {
            self.core.ctx.stats.refuse();
            self.send(
                PacketKind::ConnectError,
                &namespace,
                Some(&json!({"message": "Invalid namespace"})),
            );
            return;
        };
        if self.state.lock().sockets.contains_key(&namespace) {
            // Already connected (or connecting) to it: a repeated CONNECT breaks the
            // protocol (the reference server closes the connection too).
            return self.violation("CONNECT for a namespace already joined");
        }
        let (auth, recovery) = split_recovery_auth(auth);
        if let Some((pid, offset)) = recovery {
            match ns.recover(&self.engine, &pid, &offset, auth.clone()) {
                Recovered::Now(Some(socket)) => {
                    socket.set_request(&self.request);
                    self.ever_connected.store(true, Ordering::Release);
                    ns.ctx.stats.connect();
                    self.state.lock().sockets.insert(namespace, socket);
                    return;
                }
                Recovered::Now(None) => {}
                // A cluster keeps the session and the missed packets in its shared log:
                // recover asynchronously, then connect afresh if that fails.
                Recovered::Later(fut) => {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        let weak = self.weak.clone();
                        rt.spawn(async move {
                            let recovered = fut.await;
                            if let Some(conn) = weak.upgrade() {
                                conn.finish_recovery(ns, namespace, auth, recovered);
                            } else if let Some(socket) = recovered {
                                socket.0.ns.remove_socket(
                                    &socket,
                                    DisconnectReason::Transport(CloseReason::TransportClose),
                                );
                            }
                        });
                        return;
                    }
                }
            }
        }
        self.connect_fresh(ns, namespace, auth);
    }

    /// The end of an asynchronous (cluster) recovery: keep the recovered socket, or
    /// connect afresh.
    fn finish_recovery(
        &self,
        ns: Arc<crate::Namespace>,
        namespace: String,
        auth: Option<Value>,
        recovered: Option<Socket>,
    ) {
        match recovered {
            Some(socket) => {
                socket.set_request(&self.request);
                self.ever_connected.store(true, Ordering::Release);
                ns.ctx.stats.connect();
                self.state.lock().sockets.insert(namespace, socket.clone());
                if self.engine.is_closed() {
                    // Closed while recovering: on_close may have run already.
                    self.state.lock().sockets.remove(ns.name());
                    ns.remove_socket(
                        &socket,
                        DisconnectReason::Transport(CloseReason::TransportClose),
                    );
                }
            }
            None if !self.engine.is_closed() => self.connect_fresh(ns, namespace, auth),
            None => {}
        }
    }

    fn connect_fresh(&self, ns: Arc<crate::Namespace>, namespace: String, auth: Option<Value>) {
        let socket = Socket::new(ns.clone(), self.engine.clone(), auth);
        socket.set_request(&self.request);
        ns.add_socket(socket.clone());
        self.state.lock().sockets.insert(namespace, socket.clone());
        match ns.connect_hook() {
            None => self.finish_connect(&socket, Ok(())),
            Some(ConnectHook::Sync(hook)) => {
                let decision = hook(&socket);
                self.finish_connect(&socket, decision);
            }
            Some(ConnectHook::Async(hook)) => {
                let fut = hook(socket.clone());
                let weak = self.weak.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn(async move {
                            let decision = fut.await;
                            if let Some(conn) = weak.upgrade() {
                                conn.finish_connect(&socket, decision);
                            }
                        });
                    }
                    Err(_) => {
                        self.finish_connect(&socket, Err(ConnectError::new("server not running")))
                    }
                }
            }
        }
    }

    fn finish_connect(&self, socket: &Socket, decision: Result<(), ConnectError>) {
        let ns = socket.0.ns.clone();
        match decision {
            Ok(()) if socket.connected() && !self.engine.is_closed() => {
                self.ever_connected.store(true, Ordering::Release);
                ns.ctx.stats.connect();
                let body = match socket.pid() {
                    Some(pid) => json!({"sid": socket.id(), "pid": pid}),
                    None => json!({"sid": socket.id()}),
                };
                tracing::info!(
                    target: "swarmcast",
                    sid = socket.id(),
                    namespace = ns.name(),
                    engine_sid = self.engine.sid(),
                    transport = self.engine.transport().as_str(),
                    remote = %RemoteAddr(self.request.remote_addr),
                    "connected"
                );
                match packet::encode_control(PacketKind::Connect, ns.name(), Some(&body)) {
                    Ok(reply) => socket.mark_connected(&reply),
                    Err(e) => tracing::error!(error = %e, "cannot encode CONNECT reply"),
                }
            }
            Ok(()) => {}
            Err(refusal) => {
                tracing::info!(
                    target: "swarmcast",
                    namespace = ns.name(),
                    engine_sid = self.engine.sid(),
                    remote = %RemoteAddr(self.request.remote_addr),
                    refusal = %refusal.message,
                    "connection refused"
                );
                ns.ctx.stats.refuse();
                self.state.lock().sockets.remove(ns.name());
                ns.drop_refused(socket);
                let mut body = json!({"message": refusal.message});
                if let Some(data) = refusal.data {
                    body["data"] = data;
                }
                self.send(PacketKind::ConnectError, ns.name(), Some(&body));
            }
        }
    }
}

/// A remote address for the log (`-` when unknown).
struct RemoteAddr(Option<std::net::SocketAddr>);

impl std::fmt::Display for RemoteAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("-"),
        }
    }
}

/// socket.io-client puts `pid` and `offset` into the CONNECT auth when it wants its
/// session back. They are ours, not the application's: take them out.
fn split_recovery_auth(auth: Option<Value>) -> (Option<Value>, Option<(String, String)>) {
    let Some(Value::Object(mut map)) = auth else {
        return (auth, None);
    };
    let pid = map.remove("pid");
    let offset = map.remove("offset");
    let recovery = match (pid, offset) {
        (Some(Value::String(pid)), Some(Value::String(offset))) => Some((pid, offset)),
        _ => None,
    };
    (Some(Value::Object(map)), recovery)
}
