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
//! ## Three ways to run
//!
//! 1. **On its own runtime**, from any program, async or not: [`Server::start`] binds,
//!    runs on `worker_threads` threads of its own and returns a [`ServerHandle`] at
//!    once; [`ServerHandle::stop`] shuts down and gives the [`Server`] back (as above).
//! 2. **Inside your tokio runtime**, on a port of its own: [`Server::serve`] (or
//!    [`Server::serve_on`] with a listener you bound) and
//!    [`ServerHandle::shutdown`]`.await`:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = swarmcast::ServerConfig::default();
//! config.port = 0;
//! let running = swarmcast::Server::new(config).serve().await?;
//! println!("Socket.IO on {}", running.local_addr());
//! running.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! 3. **As a tower layer in your axum or hyper application** (cargo feature `tower`),
//!    on the application's port, listener and runtime: `Server::into_layer` gives a
//!    `SocketIoLayer` that answers `/socket.io/` (both transports, the upgrade,
//!    recovery) and hands every other request to your routes. See
//!    `examples/rust/axum_app.rs` and `examples/rust/hyper_app.rs`.
//!
//! ```ignore
//! let (layer, running) = swarmcast::Server::new(config).into_layer().await?;
//! let app = axum::Router::new().route("/", get(index)).layer(layer);
//! axum::serve(listener, app).await?;
//! ```
//!
//! ## Handlers: sync or async
//!
//! [`Namespace::on`] runs a closure on the connection's reader, in wire order: it must
//! not block. [`Namespace::on_async`] takes an `async` handler: its futures run on the
//! server's runtime, one socket's events one after the other in arrival order (acks
//! too), sockets concurrently; spawn inside it for concurrency within a socket.
//! [`Namespace::on_connect_async`] decides on a CONNECT asynchronously.
//!
//! ```no_run
//! # let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
//! server.namespace("/").on_async("save", |socket, event, ack| async move {
//!     tokio::time::sleep(std::time::Duration::from_millis(2)).await; // a database write
//!     if let Some(ack) = ack {
//!         let _ = ack.send(&serde_json::json!({"saved": event.payload.args}));
//!     }
//!     // From async code an emit never blocks the runtime; `ready` paces a producer.
//!     let _ = socket.broadcast().ready(std::time::Duration::from_secs(1)).await;
//!     let _ = socket.emit("saved", &true);
//! });
//! ```
//!
//! ## Cargo features
//!
//! - `redis`: the Redis cluster adapter and `RedisEmitter` (below).
//! - `redis-tls`: `rediss://` URLs.
//! - `tower`: `Server::into_layer`, `SocketIoLayer`, `SocketIoService`, `ServiceHandle`.
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
    HostState, Reply, ReplyDropped, ReplySender, TeardownGuard, Ticket, WeakHost, WorkerPool,
};
pub use metrics::{ClusterMetrics, Metrics};
pub use server::{
    AppBody, AppFuture, AppRequest, AppResponse, HttpApp, Limits, ResponseBody, Server,
    ServerConfig, ServerError, ServerHandle,
};
#[cfg(feature = "tower")]
pub use server::{NotFound, ServiceFuture, ServiceHandle, SocketIoLayer, SocketIoService};
pub use socketio::adapter::{AckReply, BroadcastAckError, BroadcastAckFuture, BroadcastAcks};
pub use socketio::adapter::{Adapter, LocalAdapter, Readiness, SocketInfo};
pub use socketio::emitter::{
    Backlog, Broadcast, EmitError, EmitReport, Emitter, SlowConsumerPolicy,
};
pub use socketio::handoff::{Fence, Handoff, PreparedEmit, HANDOFF_BYTES, HANDOFF_CAPACITY};
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
