//! # swarmcast
//!
//! Embeddable real-time push: a Socket.IO server (Engine.IO v4, Socket.IO v5) over
//! WebSocket and HTTP long-polling, with an emitter you can call from any thread.
//! Any official Socket.IO client connects to it unchanged.
//!
//! ## A server in a few lines
//!
//! ```no_run
//! use swarmcast::{ConnectError, Server, ServerConfig};
//!
//! let mut config = ServerConfig::default();
//! config.port = 5000;
//! config.cors_allowed_origins = vec!["http://127.0.0.1:8050".into()];
//! let server = Server::new(config);
//!
//! // Refuse clients without the right token; answer acks; join rooms.
//! let admin = server.namespace("/admin");
//! admin.on_connect(|socket| match socket.auth() {
//!     Some(auth) if auth["token"] == "secret" => Ok(()),
//!     _ => Err(ConnectError::new("unauthorized")),
//! });
//! server.namespace("/").on("join", |socket, event, ack| {
//!     if let Some(room) = event.payload.args.first().and_then(|r| r.as_str()) {
//!         socket.join(room);
//!     }
//!     if let Some(ack) = ack {
//!         let _ = ack.send(&socket.rooms());
//!     }
//! });
//!
//! // Runs on its own threads; `start` returns at once.
//! let running = server.start().expect("bind");
//!
//! // Emit from any thread: encoded once, never blocks on a slow client.
//! let emitter = running.emitter().clone();
//! std::thread::spawn(move || {
//!     for seq in 0..10 {
//!         let _ = emitter.to("agents").emit("status", &serde_json::json!({"seq": seq}));
//!     }
//! });
//! running.stop();
//! ```
//!
//! Inside an existing tokio runtime, use [`Server::serve`] instead of [`Server::start`].
//!
//! ## Several nodes
//!
//! With the cargo feature `redis`, servers join a cluster through Redis:
//! `server.set_adapter(RedisAdapter::new(RedisConfig::new("redis://127.0.0.1:6379"))?)`
//! before starting, and broadcasts, rooms, socket listings
//! ([`Broadcast::fetch_sockets`]), disconnects, connection state recovery and keyed
//! state work across nodes; `RedisEmitter` publishes from processes without a server.
//! The default [`LocalAdapter`] keeps everything in-process. See `docs/cluster.md` and
//! `docs/deployment.md`.
//!
//! ## Layers
//! Each layer uses only the ones above it in this list (`scripts/check-layers.py`
//! checks it in CI):
//! - [`protocol`]: the sans-IO codecs (Engine.IO and Socket.IO packets), no IO at all.
//! - [`engine`]: Engine.IO sessions, their bounded queues, heartbeat and the
//!   polling -> WebSocket upgrade; usable on their own ([`Server::engine_endpoint`]).
//! - the Socket.IO layer: [`Namespace`], [`Socket`], [`Emitter`], [`StateMap`], and the
//!   adapter seam ([`LocalAdapter`] by default) through which every broadcast leaves a
//!   namespace.
//! - cluster adapters (`RedisAdapter`, feature `redis`).
//! - [`Server`]: hyper + tokio-tungstenite transports, CORS, `/healthz`, `/metrics`,
//!   `/api/emit`.
//! - [`Host`]: what a binding for another language drives: the lifecycle (start, stop,
//!   start again; [`ServerHandle::stop`] gives the server back), handlers on the
//!   [`Dispatcher`]'s threads keyed by socket, connect / disconnect gating, acks routed
//!   to handler threads. The Python and C bindings are conversions over it.
//!
//! Counters ([`Metrics`]) are a leaf every layer may use.

#![warn(missing_docs)]

pub mod engine;
pub mod protocol;

mod adapter;
mod batch;
pub mod host;
mod metrics;
mod server;
mod socketio;

#[cfg(feature = "redis")]
pub use adapter::{
    OutagePolicy, RedisAdapter, RedisBroadcast, RedisConfig, RedisEmitter, RedisEmitterError,
};
pub use engine::{CloseReason, EngineConfig, RequestInfo, Transport};
pub use host::{
    is_reserved_event, on_dispatcher_thread, wait_for_teardown, Dispatcher, Host, HostError,
    HostState, TeardownGuard, WeakHost,
};
pub use metrics::{ClusterMetrics, Metrics};
pub use server::{
    AppBody, AppFuture, AppRequest, AppResponse, HttpApp, Limits, Server, ServerConfig,
    ServerError, ServerHandle,
};
pub use socketio::adapter::{AckReply, BroadcastAckError, BroadcastAckFuture, BroadcastAcks};
pub use socketio::adapter::{Adapter, LocalAdapter, Readiness, SocketInfo};
pub use socketio::emitter::{
    Backlog, Broadcast, EmitError, EmitReport, Emitter, SlowConsumerPolicy,
};
pub use socketio::limits::{RateLimit, RateLimitPolicy};
pub use socketio::namespace::{ConnectError, ConnectFuture, Event, EventHandler, Namespace};
pub use socketio::packet::{EncodeError, Payload};
pub use socketio::recovery::RecoveryConfig;
pub use socketio::rooms::{Room, Target};
pub use socketio::socket::{AckError, AckFuture, AckSender, DisconnectReason, Socket};
pub use socketio::state::{StateMap, DELTA_EVENT, SNAPSHOT_EVENT};
pub use socketio::subscriptions::Subscription;

/// The guide (`docs/guide.md`), compiled here so that its examples stay true.
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}
