//! The Engine.IO v4 layer: sessions, heartbeat and the state both transports share.
//!
//! It can serve on its own, as Node's `engine.io` package does: implement
//! [`EngineHandler`] and mount it with [`crate::Server::engine_endpoint`]. The Socket.IO
//! layer is such a handler.
//!
//! ```no_run
//! use std::sync::Arc;
//! use swarmcast::engine::{ConnectionHandler, EngineHandler, EngineSocket, Incoming, RequestInfo, CloseReason};
//!
//! /// Sends every message straight back.
//! struct Echo;
//! struct EchoConnection(EngineSocket);
//!
//! impl EngineHandler for Echo {
//!     fn on_open(&self, socket: EngineSocket, _req: &RequestInfo) -> Arc<dyn ConnectionHandler> {
//!         Arc::new(EchoConnection(socket))
//!     }
//! }
//! impl ConnectionHandler for EchoConnection {
//!     fn on_message(&self, message: Incoming<'_>) {
//!         let _ = match message {
//!             Incoming::Text(text) => self.0.send_text(text),
//!             Incoming::Binary(bytes) => self.0.send_binary(bytes),
//!         };
//!     }
//!     fn on_close(&self, _reason: CloseReason) {}
//! }
//!
//! let mut server = swarmcast::Server::new(swarmcast::ServerConfig::default());
//! server.engine_endpoint("/engine.io", Arc::new(Echo));
//! ```

mod queue;
mod session;
mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio_util::task::TaskTracker;

use crate::metrics::Stats;
use crate::protocol::engineio::Handshake;

pub use queue::Frame;
pub(crate) use queue::{FrameData, WriteThrough, Written, FRAME_OVERHEAD};
use queue::{PushError, QueueLimits};
pub(crate) use session::Session;
pub use socket::EngineSocket;

/// A message received from a client.
#[derive(Debug, Clone, Copy)]
pub enum Incoming<'a> {
    /// A text message (the Engine.IO `4` prefix removed).
    Text(&'a str),
    /// A binary message.
    Binary(&'a Bytes),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the transport or sent a CLOSE packet.
    TransportClose,
    /// The transport failed (reset connection, write error).
    TransportError,
    /// No PONG within `ping_timeout` of a PING.
    PingTimeout,
    /// The client broke the protocol (malformed packet, overlapping requests, oversized message).
    ParseError,
    /// The application closed the session.
    ServerClose,
    /// The server is shutting down.
    ServerShutdown,
    /// The upper layer gave up on the client (for example it never sent a Socket.IO CONNECT).
    ConnectTimeout,
    /// The client did not keep up: its outbound queue filled.
    SlowConsumer,
    /// The client sent more than its rate limit allows (policy `disconnect`).
    RateLimited,
    /// A write to the client made no progress for the write timeout.
    WriteTimeout,
}

impl CloseReason {
    /// The reason string Socket.IO reports for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ServerClose => "forced close",
            CloseReason::ServerShutdown => "server shutting down",
            CloseReason::ConnectTimeout => "connect timeout",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::RateLimited => "rate limited",
            CloseReason::WriteTimeout => "write timeout",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a frame could not be sent to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session's outbound queue is full (a slow or stalled client).
    #[error("the client's outbound queue is full")]
    QueueFull,
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
}

impl From<PushError> for SendError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Full => SendError::QueueFull,
            PushError::Closed => SendError::Closed,
        }
    }
}

/// What the HTTP layer knows about the request that opened a session.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// Remote address, when known.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The request's query string (without `?`).
    pub query: String,
    /// Request headers.
    pub headers: hyper::HeaderMap,
}

impl RequestInfo {
    /// The request's information, with header values copied out of the request: the
    /// request's own are slices of the connection's read buffer, which would keep that
    /// buffer (8 KiB) alive for as long as the session keeps this.
    pub fn new(
        remote_addr: Option<std::net::SocketAddr>,
        query: String,
        headers: &hyper::HeaderMap,
    ) -> Self {
        let mut owned = hyper::HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if let Ok(value) = hyper::header::HeaderValue::from_bytes(value.as_bytes()) {
                owned.append(name.clone(), value);
            }
        }
        Self {
            remote_addr,
            query,
            headers: owned,
        }
    }
}

/// Serves the sessions of one Engine.IO endpoint.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session was opened (handshake done). Returns the object that receives its
    /// messages. Runs on a runtime worker: do not block.
    fn on_open(&self, socket: EngineSocket, request: &RequestInfo) -> Arc<dyn ConnectionHandler>;
}

/// Receives one session's messages. Calls for one session never overlap and come in
/// wire order.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// A message arrived. Runs on the connection's reader: do not block.
    fn on_message(&self, message: Incoming<'_>);
    /// The session ended; called exactly once.
    fn on_close(&self, reason: CloseReason);
}

/// The transport a session currently writes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl Transport {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// How long the next GET of an ended polling session gets the packet owed to it (NOOP
/// after the client's CLOSE, CLOSE after the server's), rather than "unknown session".
const FINAL_PACKET_GRACE: Duration = Duration::from_millis(500);

/// Engine.IO settings of one endpoint.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Interval between server PINGs.
    pub ping_interval: Duration,
    /// How long to wait for a PONG before closing.
    pub ping_timeout: Duration,
    /// Largest accepted message or polling body, in bytes.
    pub max_payload: usize,
    /// Most packets in one long-polling response (python-engineio refuses more than 16).
    pub max_polling_packets: usize,
    /// Outbound queue bound per session, in packets: a backstop far above what the
    /// byte bound lets through for ordinary packets.
    pub queue_packets: usize,
    /// Outbound queue bound per session, in bytes: each packet counts its payload plus
    /// 64 bytes of bookkeeping. A client whose queue stays at this bound is a slow
    /// consumer.
    pub queue_bytes: usize,
    /// Backpressure watermark, in packets: an emit that leaves a client's queue above
    /// this (or above `backpressure_bytes`) waits, on threads that may wait, until the
    /// client's writer has brought it back under (at most the server's `emit_max_wait`).
    /// This is what slows an eager producer to the pace of the network instead of
    /// disconnecting its clients.
    pub backpressure_packets: usize,
    /// Backpressure watermark, in bytes (see `backpressure_packets`).
    pub backpressure_bytes: usize,
    /// Whether WebSocket is offered (handshake and upgrade).
    pub allow_websocket: bool,
    /// Whether long-polling is accepted.
    pub allow_polling: bool,
    /// After a WebSocket write, wait this long before the next one so that more frames
    /// go out together. Zero (the default) writes as soon as the writer is free, which
    /// already coalesces everything queued meanwhile. The first packet after a quiet
    /// period is never delayed.
    pub batch_window: Duration,
    /// Most frames in one WebSocket write.
    pub max_batch: usize,
    /// Whether an emit after a quiet millisecond writes to the sockets of idle
    /// WebSocket clients itself (one non-blocking `send` each, on the emitting thread)
    /// rather than waking each connection's task to do it: at low rates that wake-up is
    /// about a third of what a delivery costs. Emits in quick succession are queued and
    /// written in batches either way. Only with a zero `batch_window`.
    pub write_through: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            max_polling_packets: 16,
            queue_packets: 65_536,
            queue_bytes: 16 * 1024 * 1024,
            backpressure_packets: 64,
            backpressure_bytes: 256 * 1024,
            allow_websocket: true,
            allow_polling: true,
            batch_window: Duration::ZERO,
            max_batch: 1024,
            write_through: true,
        }
    }
}

/// One Engine.IO endpoint: its config, handler and live sessions.
pub(crate) struct Engine {
    pub config: EngineConfig,
    handler: Arc<dyn EngineHandler>,
    sessions: RwLock<HashMap<Arc<str>, Arc<Session>>>,
    /// Polling sessions that ended with one packet still owed to their client's next
    /// GET, and when (see `owe_final_packet`).
    owed_final: Mutex<HashMap<Arc<str>, (Instant, &'static str)>>,
    /// Every task of this endpoint's sessions, joined on shutdown.
    pub tasks: TaskTracker,
    pub stats: Arc<Stats>,
}

impl Engine {
    pub fn new(
        config: EngineConfig,
        handler: Arc<dyn EngineHandler>,
        tasks: TaskTracker,
        stats: Arc<Stats>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config,
            handler,
            sessions: RwLock::new(HashMap::new()),
            owed_final: Mutex::new(HashMap::new()),
            tasks,
            stats,
        })
    }

    /// A polling client sent CLOSE with no GET pending here: for a short while, its
    /// GET still in flight on another connection is answered NOOP (once) rather than
    /// "unknown session".
    pub(crate) fn remember_client_close(&self, sid: &Arc<str>) {
        self.owe_final_packet(sid, "6");
    }

    /// The server closed a polling session whose last GET carried frames: that answer
    /// went without CLOSE, and the client's next GET gets it (once, for a short while).
    /// In one answer, socket.io-client would handle the CLOSE before the events in
    /// front of it (it hands events to the socket a tick later), so the socket would
    /// see them only after its disconnect and report an older recovery offset: the
    /// server would replay them and the application see them twice. The reference
    /// server, too, sends what is queued before it closes.
    pub(crate) fn owe_close(&self, sid: &Arc<str>) {
        self.owe_final_packet(sid, "1");
    }

    fn owe_final_packet(&self, sid: &Arc<str>, packet: &'static str) {
        let now = Instant::now();
        let mut owed = self.owed_final.lock();
        owed.retain(|_, (at, _)| now.duration_since(*at) < FINAL_PACKET_GRACE);
        owed.insert(sid.clone(), (now, packet));
    }

    /// The packet owed to the next GET of the ended session `sid`, if any; once.
    pub(crate) fn take_owed_final_packet(&self, sid: &str) -> Option<&'static str> {
        self.owed_final
            .lock()
            .remove(sid)
            .filter(|(at, _)| at.elapsed() < FINAL_PACKET_GRACE)
            .map(|(_, packet)| packet)
    }

    /// (frames queued in all sessions, frames queued in the fullest one).
    pub fn queue_depths(&self) -> (usize, usize) {
        self.sessions
            .read()
            .values()
            .map(|s| s.queued())
            .fold((0, 0), |(sum, max), n| (sum + n, max.max(n)))
    }

    /// A live session by id. A session past its PONG deadline is closed here and not
    /// returned, so that a request never finds a session the heartbeat is about to end.
    pub fn session(&self, sid: &str) -> Option<Arc<Session>> {
        let session = self.sessions.read().get(sid).cloned()?;
        (!session.check_deadline()).then_some(session)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    /// Create a session, tell the handler, and start its heartbeat. Returns the session
    /// and the encoded OPEN packet to send first.
    pub fn open(
        self: &Arc<Self>,
        transport: Transport,
        request: &RequestInfo,
    ) -> (Arc<Session>, String) {
        let sid: Arc<str> = new_id().into();
        let session = Session::new(
            sid.clone(),
            QueueLimits {
                max_packets: self.config.queue_packets,
                max_bytes: self.config.queue_bytes,
                soft_packets: self.config.backpressure_packets,
                soft_bytes: self.config.backpressure_bytes,
            },
            transport,
            self.config
                .ping_interval
                .saturating_add(self.config.ping_timeout),
            Arc::downgrade(self),
        );
        let upgrades = if transport == Transport::Polling && self.config.allow_websocket {
            vec!["websocket".to_string()]
        } else {
            Vec::new()
        };
        let open = Handshake {
            sid: sid.to_string(),
            upgrades,
            ping_interval: self.config.ping_interval.as_millis() as u64,
            ping_timeout: self.config.ping_timeout.as_millis() as u64,
            max_payload: self.config.max_payload as u64,
        }
        .encode();
        self.sessions.write().insert(sid, session.clone());
        let handler = self
            .handler
            .on_open(EngineSocket::new(session.clone()), request);
        session.set_handler(handler);
        self.tasks.spawn(session::heartbeat(
            session.clone(),
            self.config.ping_interval,
            self.stats.clone(),
        ));
        (session, open)
    }

    /// Whether some open long-polling session holds frames its client has not fetched
    /// yet (a shutdown lets the next GET take them before closing).
    pub fn polling_backlog(&self) -> bool {
        self.sessions
            .read()
            .values()
            .any(|s| s.transport() == Transport::Polling && !s.is_closed() && s.queued() > 0)
    }

    /// Close every session (server shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        let sessions: Vec<_> = self.sessions.read().values().cloned().collect();
        for session in sessions {
            session.close(reason);
        }
    }

    pub(crate) fn remove(&self, sid: &str) {
        self.sessions.write().remove(sid);
    }
}

/// A session with no transport and no endpoint: its queue fills as a connected
/// client's would and is drained by hand. For benchmarks of the fan-out path.
pub(crate) fn detached_session(queue_packets: usize, queue_bytes: usize) -> EngineSocket {
    EngineSocket::new(Session::new(
        new_id().into(),
        QueueLimits {
            max_packets: queue_packets,
            max_bytes: queue_bytes,
            soft_packets: queue_packets,
            soft_bytes: queue_bytes,
        },
        Transport::WebSocket,
        Duration::MAX,
        Weak::new(),
    ))
}

/// Random, URL-safe, unguessable identifier (session and socket ids).
pub(crate) fn new_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
