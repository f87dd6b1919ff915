//! The tokio IO layer: listener, HTTP routing, transports, lifecycle.

mod app;
mod conn;
mod http;
mod limits;
mod polling;
#[cfg(feature = "tower")]
mod service;
mod websocket;
mod write_through;

pub use self::app::ResponseBody;
#[cfg(feature = "tower")]
pub use self::service::{NotFound, ServiceFuture, SocketIoLayer, SocketIoService};
pub use limits::Limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::app::{AppBody, AppFuture, AppRequest, AppResponse, HttpApp};
use crate::engine::{CloseReason, Engine, EngineConfig, EngineHandler};
use crate::socketio::adapter::Namespaces;
use crate::socketio::connection::{IoConfig, SocketIoHandler};
use crate::socketio::context::{Context, IoCore};
use crate::socketio::emitter::{Emitter, SlowConsumerPolicy};
use crate::socketio::limits::AttachmentBudget;
use crate::socketio::namespace::Namespace;
use crate::socketio::recovery::RecoveryConfig;
use crate::socketio::socket::Socket;
use crate::socketio::state::StateMap;
use crate::socketio::subscriptions::{SubscribePolicy, Subscription};

/// Everything a server can be told. `Default` gives the Socket.IO defaults on
/// 127.0.0.1:5000.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free one (see [`ServerHandle::local_addr`]).
    pub port: u16,
    /// Socket.IO endpoint path.
    pub path: String,
    /// Origins allowed to use the server from a browser: CORS for long-polling, and the
    /// `Origin` check of WebSocket upgrades. `"*"` allows any origin. Empty allows
    /// same-origin pages (and non-browser clients, which send no `Origin`) only, and
    /// same-origin is judged by the `Host` header only when that was checked (see
    /// `allowed_hosts`): on a non-loopback address with neither list set, browsers
    /// cannot open WebSockets (long-polling from the same origin still works).
    pub cors_allowed_origins: Vec<String>,
    /// `Host` names requests may carry (without the port; `"*"` for any). Empty: only
    /// loopback names (`localhost`, `127.0.0.1`, `[::1]`) when the server is bound to a
    /// loopback address, which stops DNS rebinding; any name otherwise. Behind a
    /// reverse proxy that keeps the client's `Host`, list the public name.
    pub allowed_hosts: Vec<String>,
    /// Engine.IO settings: heartbeat, payload limit, queue bounds, transports.
    pub engine: EngineConfig,
    /// How long a client may take to send its first Socket.IO CONNECT.
    pub connect_timeout: Duration,
    /// Most binary attachments in one packet. The default, 10, is the reference
    /// parser's (socket.io-parser `maxAttachments`): a client may make the server hold
    /// this many buffers of up to `max_payload` bytes while it waits for the rest.
    pub max_attachments: usize,
    /// Serve `POST /api/emit` (publish over HTTP). Without an `api_key` it requires
    /// `Content-Type: application/json` (a browser cannot send that cross-site without
    /// a CORS preflight, which the API does not grant), and on a non-loopback address
    /// the server refuses to start without an `api_key`.
    pub publish_api: bool,
    /// Bearer key `POST /api/emit` requires, if any.
    pub api_key: Option<String>,
    /// Serve `GET /metrics` (on by default).
    pub metrics: bool,
    /// Bearer token `GET /metrics` requires, if any.
    pub metrics_token: Option<String>,
    /// Room patterns (`*` wildcards) the application keeps for itself: no client may
    /// subscribe to them with the built-in `subscribe`, whatever `allow_subscribe` says.
    /// A socket's own room (its id) is always refused.
    pub reserved_rooms: Vec<String>,
    /// Connection cap, timeouts, attachment bytes, rate limits.
    pub limits: Limits,
    /// Worker threads of the runtime [`Server::start`] creates.
    pub worker_threads: usize,
    /// How long shutdown waits for connections to drain.
    pub shutdown_timeout: Duration,
    /// What happens to a client whose outbound queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Backpressure: how long an emit may wait for a slow client, on a thread that may
    /// wait (not a runtime thread), before the slow-consumer policy applies to it. The
    /// emit waits when a client's queue is full, or when the emit left it above its
    /// watermark (`EngineConfig::backpressure_packets`/`_bytes`), so that a producer
    /// faster than the network slows to its pace instead of losing clients. A client
    /// that stays behind past this is handled by the policy once; later emits do not
    /// wait on it again until it has caught up. Zero never waits. Default 2 s.
    pub emit_max_wait: Duration,
    /// Connection state recovery (off by default, as in Socket.IO: recovering clients
    /// get an offset as an extra last argument of every event, which clients without
    /// recovery support would see).
    pub recovery: Option<RecoveryConfig>,
    /// Room patterns clients may join with the built-in `subscribe` event (`*` is a
    /// wildcard; state map `m` is `state:m`). Empty turns the built-in events off
    /// (unless a hook is installed with [`Server::on_subscribe`]).
    pub allow_subscribe: Vec<String>,
    /// Keep every event's arguments as the client sent them ([`crate::Event::raw_args`]),
    /// for applications that pass them on as text (the C binding). Off by default: it
    /// costs a copy of each event's payload.
    pub keep_raw_args: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_string(),
            port: 5000,
            path: "/socket.io".to_string(),
            cors_allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            engine: EngineConfig::default(),
            connect_timeout: Duration::from_secs(45),
            max_attachments: 10,
            publish_api: false,
            api_key: None,
            metrics: true,
            metrics_token: None,
            reserved_rooms: Vec::new(),
            limits: Limits::default(),
            worker_threads: 2,
            shutdown_timeout: Duration::from_secs(5),
            slow_consumer: SlowConsumerPolicy::default(),
            emit_max_wait: Duration::from_secs(2),
            recovery: None,
            allow_subscribe: Vec::new(),
            keep_raw_args: false,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the listener failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Creating the runtime failed.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server was stopped and has a cluster adapter: the adapter's link to the
    /// cluster is closed for good when the server stops, so this server cannot start
    /// again. Create a new server (and adapter) instead.
    #[error("a server with a cluster adapter cannot start again after a stop: create a new one")]
    ClusterRestart,
}

/// A Socket.IO server being set up: declare namespaces and handlers, then
/// [`Server::start`] it on its own threads or [`Server::serve`] it inside your runtime.
///
/// ```no_run
/// use swarmcast::{Server, ServerConfig};
///
/// let mut config = ServerConfig::default();
/// config.port = 0;
/// let server = Server::new(config);
/// server.namespace("/").on("ping", |socket, event, ack| {
///     if let Some(ack) = ack {
///         let _ = ack.send(&"pong");
///     }
/// });
/// let running = server.start().unwrap();
/// println!("listening on {}", running.local_addr());
/// running.emitter().emit("hello", &"world").unwrap();
/// running.stop();
/// ```
pub struct Server {
    config: ServerConfig,
    core: Arc<IoCore>,
    endpoints: Vec<(String, Arc<dyn EngineHandler>)>,
    /// The host application on the same port, and the largest body it takes.
    app: Option<(Arc<dyn HttpApp>, usize)>,
    /// Set once a server with a cluster adapter has stopped: its node is closed.
    cluster_closed: bool,
}

impl Server {
    /// A server with the main namespace `/` declared.
    pub fn new(config: ServerConfig) -> Self {
        let ctx = Context::new(
            config.slow_consumer,
            config.recovery.clone(),
            SubscribePolicy::new(
                config.allow_subscribe.clone(),
                config.reserved_rooms.clone(),
            ),
            config.emit_max_wait,
            config.engine.queue_bytes,
        );
        Self {
            config,
            core: IoCore::new(ctx),
            endpoints: Vec::new(),
            app: None,
            cluster_closed: false,
        }
    }

    /// The keyed state map `name` of namespace `/`.
    pub fn state(&self, name: &str) -> StateMap {
        self.namespace("/").state(name)
    }

    /// Decide on every built-in `subscribe`, after the allow-list: return false to
    /// refuse. Installing a hook turns the built-in events on.
    pub fn on_subscribe<F>(&self, hook: F) -> &Self
    where
        F: Fn(&Socket, &Subscription) -> bool + Send + Sync + 'static,
    {
        self.core.ctx.subscribe.set_hook(std::sync::Arc::new(hook));
        self
    }

    /// Join other nodes through a cluster adapter (see [`crate::Adapter`]); the default
    /// is the [`crate::LocalAdapter`]. Set it before the server starts; it can be set
    /// once (a second call fails with [`ServerError::Config`]).
    pub fn set_adapter(
        &mut self,
        adapter: impl Into<crate::Adapter>,
    ) -> Result<&mut Self, ServerError> {
        if !self.core.set_adapter(adapter.into().node) {
            return Err(ServerError::Config("the adapter is already set".into()));
        }
        Ok(self)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Declare (or get) a namespace. Clients connecting to an undeclared one get
    /// CONNECT_ERROR "Invalid namespace".
    pub fn namespace(&self, name: &str) -> Arc<Namespace> {
        self.core.get_or_create(name)
    }

    /// An emitter; valid before, during and after the server runs.
    pub fn emitter(&self) -> Emitter {
        Emitter {
            core: self.core.clone(),
        }
    }

    /// Serve `app` on the same port for every request that is not for Socket.IO, an
    /// Engine.IO endpoint or the server's own routes (`/healthz`, `/readyz`,
    /// `/metrics`, `/api/emit`): a web application and its push channel on one origin,
    /// with no CORS to configure. Request bodies over `max_body` bytes get 413.
    pub fn mount_app(&mut self, app: Arc<dyn HttpApp>, max_body: usize) -> &mut Self {
        self.app = Some((app, max_body));
        self
    }

    /// Serve a raw Engine.IO endpoint at `path` beside the Socket.IO one.
    pub fn engine_endpoint(&mut self, path: &str, handler: Arc<dyn EngineHandler>) -> &mut Self {
        self.endpoints.push((normalize_path(path), handler));
        self
    }

    /// The namespaces as the adapter sees them.
    fn namespaces(&self) -> std::sync::Weak<dyn Namespaces> {
        let core: Arc<dyn Namespaces> = self.core.clone();
        Arc::downgrade(&core)
    }

    fn validate(&self) -> Result<(), ServerError> {
        if self.cluster_closed {
            return Err(ServerError::ClusterRestart);
        }
        let e = &self.config.engine;
        if e.ping_interval.is_zero() || e.ping_timeout.is_zero() {
            return Err(ServerError::Config(
                "ping interval and timeout must be > 0".into(),
            ));
        }
        if e.max_payload == 0 || e.queue_packets == 0 || e.queue_bytes == 0 {
            return Err(ServerError::Config(
                "payload and queue limits must be > 0".into(),
            ));
        }
        if e.max_polling_packets == 0 {
            return Err(ServerError::Config(
                "max_polling_packets must be > 0".into(),
            ));
        }
        if !e.allow_polling && !e.allow_websocket {
            return Err(ServerError::Config(
                "at least one transport must be allowed".into(),
            ));
        }
        if !self.config.path.starts_with('/') {
            return Err(ServerError::Config("path must start with '/'".into()));
        }
        self.config.limits.validate().map_err(ServerError::Config)?;
        if self.config.api_key.as_deref() == Some("")
            || self.config.metrics_token.as_deref() == Some("")
        {
            return Err(ServerError::Config(
                "api_key and metrics_token must not be empty (leave them unset instead)".into(),
            ));
        }
        Ok(())
    }

    /// The publish API without a key is for loopback only: anyone who can reach a
    /// public address could emit to every client.
    fn check_exposure(
        &self,
        loopback: bool,
        local_addr: &dyn std::fmt::Display,
    ) -> Result<(), ServerError> {
        if self.config.publish_api && self.config.api_key.is_none() && !loopback {
            return Err(ServerError::Config(format!(
                "the publish API (POST /api/emit) has no api_key and the server listens on \
                 {local_addr}, which is not a loopback address: set an api_key, turn the \
                 publish API off, or bind 127.0.0.1"
            )));
        }
        Ok(())
    }

    /// Start on a runtime of its own (`worker_threads` threads) and return at once.
    /// This is the mode for programs that are not async (and for the Python and C
    /// bindings). [`ServerHandle::stop`] gives the server back, to start again.
    pub fn start(self) -> Result<ServerHandle, ServerError> {
        self.try_start().map_err(|failed| failed.1)
    }

    /// [`Server::start`] that gives the server back when it cannot start (the host
    /// layer keeps it, so that a failed start can be retried).
    pub(crate) fn try_start(self) -> Result<ServerHandle, Box<(Server, ServerError)>> {
        if let Err(e) = self.validate() {
            return Err(Box::new((self, e)));
        }
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.config.worker_threads.max(1))
            .thread_name("swarmcast")
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => return Err(Box::new((self, ServerError::Runtime(e)))),
        };
        let addr = format!("{}:{}", self.config.host, self.config.port);
        // Bind first: a server that cannot bind has not started its cluster node, and
        // can be retried. Clients wait in the backlog until the node is ready.
        let backlog = self.config.limits.listen_backlog;
        let listener = match runtime.block_on(conn::bind(&addr, backlog)) {
            Ok(listener) => listener,
            Err(source) => return Err(Box::new((self, ServerError::Bind { addr, source }))),
        };
        let local_addr = match listener.local_addr() {
            Ok(local_addr) => local_addr,
            Err(source) => return Err(Box::new((self, ServerError::Bind { addr, source }))),
        };
        if let Err(e) = self.check_exposure(local_addr.ip().is_loopback(), &local_addr) {
            return Err(Box::new((self, e)));
        }
        runtime.block_on(self.start_cluster());
        let _entered = runtime.enter();
        let mut handle = self.run(listener, local_addr);
        handle.runtime = Some(runtime);
        Ok(handle)
    }

    /// Start the adapter node's tasks and wait until it has loaded the shared state
    /// this node serves, before the first client comes.
    async fn start_cluster(&self) {
        let node = self.core.ctx.adapter();
        node.start(self.namespaces(), tokio::runtime::Handle::current());
        node.ready().await;
    }

    /// Bind and serve on the current tokio runtime; returns once listening.
    pub async fn serve(self) -> Result<ServerHandle, ServerError> {
        self.validate()?;
        let addr = format!("{}:{}", self.config.host, self.config.port);
        let listener = conn::bind(&addr, self.config.limits.listen_backlog)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: "listener".into(),
            source,
        })?;
        self.check_exposure(local_addr.ip().is_loopback(), &local_addr)?;
        self.start_cluster().await;
        self.serve_on(listener)
    }

    /// Serve on a listener you bound yourself.
    pub fn serve_on(self, listener: TcpListener) -> Result<ServerHandle, ServerError> {
        self.validate()?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: "listener".into(),
            source,
        })?;
        self.check_exposure(local_addr.ip().is_loopback(), &local_addr)?;
        Ok(self.run(listener, local_addr))
    }

    /// Serve on a bound listener, inside a runtime.
    fn run(self, listener: TcpListener, local_addr: SocketAddr) -> ServerHandle {
        let (handle, app) = self.launch(local_addr, local_addr.ip().is_loopback());
        handle.tasks.spawn(http::accept_loop(
            listener,
            app,
            handle.tasks.clone(),
            handle.shutdown.clone(),
        ));
        tracing::info!(%local_addr, path = %handle.config.path, "swarmcast listening");
        handle
    }

    /// Serve inside an application's own HTTP server (axum, hyper, any tower stack), on
    /// its listener and its runtime (call it from there): the [`SocketIoLayer`] answers
    /// the Socket.IO path (both transports, the upgrade, recovery), `/healthz`,
    /// `/readyz`, and `/metrics` and `POST /api/emit` when configured; every other
    /// request goes to the service it wraps. `host` and `port` of the configuration
    /// bind nothing here; `host` says whether the application listens on loopback,
    /// which decides the `Host` check (see `allowed_hosts`) and whether the publish
    /// API may run without a key. Limits that belong to the listener (connection cap,
    /// header timeout, stalled long-poll responses) are the application server's.
    ///
    /// The peer's address (`Socket::request`, handshake `REMOTE_ADDR`) is known when
    /// the stack puts a [`std::net::SocketAddr`] in the request's extensions.
    ///
    /// ```no_run
    /// # async fn app() -> Result<(), Box<dyn std::error::Error>> {
    /// use swarmcast::{Server, ServerConfig};
    ///
    /// let server = Server::new(ServerConfig::default());
    /// server.namespace("/").on("ping", |_socket, _event, ack| {
    ///     if let Some(ack) = ack {
    ///         let _ = ack.send(&"pong");
    ///     }
    /// });
    /// let (layer, running) = server.into_layer().await?;
    /// // axum: Router::new().route("/", get(index)).layer(layer)
    /// // hyper: tower::Layer::layer(&layer, your_service)
    /// running.emitter().emit("hello", &"world")?;
    /// running.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tower")]
    pub async fn into_layer(self) -> Result<(SocketIoLayer, ServiceHandle), ServerError> {
        self.validate()?;
        if self.app.is_some() {
            return Err(ServerError::Config(
                "a mounted app is served by the standalone server; in a tower stack the \
                 application's own routes serve it"
                    .into(),
            ));
        }
        let loopback = is_loopback_name(&self.config.host);
        self.check_exposure(loopback, &self.config.host)?;
        self.start_cluster().await;
        // No listener: the handle's address is the unspecified one, never shown.
        let (handle, app) = self.launch(SocketAddr::from(([0, 0, 0, 0], 0)), loopback);
        let layer = SocketIoLayer::new(app, handle.tasks.clone(), handle.shutdown.clone());
        tracing::info!(path = %handle.config.path, "swarmcast serving in a tower stack");
        Ok((layer, ServiceHandle(handle)))
    }

    /// Everything a running server holds but its listener: the engines, the routing
    /// table, the task tracker and the shutdown signal.
    fn launch(self, local_addr: SocketAddr, loopback: bool) -> (ServerHandle, Arc<http::App>) {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        self.core
            .ctx
            .set_runtime(Some(tokio::runtime::Handle::current()));
        // Idempotent: `serve` started it already.
        self.core
            .ctx
            .adapter()
            .start(self.namespaces(), tokio::runtime::Handle::current());

        let socketio = Arc::new(SocketIoHandler {
            core: self.core.clone(),
            config: IoConfig {
                connect_timeout: self.config.connect_timeout,
                max_attachments: self.config.max_attachments,
                attachments: AttachmentBudget::new(
                    self.config.limits.max_attachment_bytes,
                    self.config.limits.max_attachment_bytes_total,
                ),
                rate_limit: self.config.limits.rate_limit,
                keep_raw_args: self.config.keep_raw_args,
            },
        });
        let mut routes = vec![(
            normalize_path(&self.config.path),
            socketio as Arc<dyn EngineHandler>,
        )];
        routes.extend(self.endpoints.iter().cloned());
        let engines: Vec<(String, Arc<Engine>)> = routes
            .into_iter()
            .map(|(path, handler)| {
                let engine = Engine::new(
                    self.config.engine.clone(),
                    handler,
                    tasks.clone(),
                    self.core.ctx.stats.clone(),
                );
                (path, engine)
            })
            .collect();
        let app = Arc::new(http::App::new(
            &self.config,
            engines.clone(),
            self.core.clone(),
            loopback,
            self.app.clone(),
        ));
        let handle = ServerHandle {
            local_addr,
            emitter: Emitter { core: self.core },
            shutdown,
            tasks,
            engines: engines.into_iter().map(|(_, e)| e).collect(),
            runtime: None,
            shutdown_timeout: self.config.shutdown_timeout,
            config: self.config,
            endpoints: self.endpoints,
            app: self.app,
        };
        (handle, app)
    }
}

/// Whether `host` names a loopback address (`localhost`, `127.0.0.1`, `::1`).
#[cfg(feature = "tower")]
fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// A running server. Stop it with [`ServerHandle::stop`] (own runtime) or
/// [`ServerHandle::shutdown`] (inside your runtime); dropping it stops it too. Both give
/// the [`Server`] back, with its namespaces, handlers, state maps and configuration,
/// ready to start again:
///
/// ```no_run
/// # let mut config = swarmcast::ServerConfig::default();
/// # config.port = 0;
/// let server = swarmcast::Server::new(config);
/// server.state("agents").set("a1", &"idle").unwrap();
/// let server = server.start().unwrap().stop(); // stopped
/// let running = server.start().unwrap(); // serving again, "agents" still holds a1
/// running.stop();
/// ```
pub struct ServerHandle {
    local_addr: SocketAddr,
    emitter: Emitter,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    engines: Vec<Arc<Engine>>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown_timeout: Duration,
    /// What [`ServerHandle::stop`] gives back in a [`Server`].
    config: ServerConfig,
    endpoints: Vec<(String, Arc<dyn EngineHandler>)>,
    app: Option<(Arc<dyn HttpApp>, usize)>,
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// An emitter for this server.
    pub fn emitter(&self) -> &Emitter {
        &self.emitter
    }

    /// The server's counters (the same as [`Emitter::metrics`]).
    pub fn metrics(&self) -> crate::Metrics {
        self.emitter.metrics()
    }

    /// Number of open Engine.IO sessions on all endpoints.
    pub fn session_count(&self) -> usize {
        self.engines.iter().map(|e| e.session_count()).sum()
    }

    fn begin_shutdown(&self) {
        self.shutdown.cancel();
        for engine in &self.engines {
            engine.close_all(CloseReason::ServerShutdown);
        }
        // After the sessions close, so that their recovery sessions are kept.
        self.emitter.core.ctx.adapter().stop();
        self.tasks.close();
    }

    /// Graceful shutdown inside the caller's runtime: stop accepting, close every
    /// session (queued packets are flushed first), wait up to `shutdown_timeout` for
    /// connections to finish.
    /// Returns the server, to serve again (see [`ServerHandle::stop`]).
    pub async fn shutdown(mut self) -> Server {
        self.drain_polling(tokio::time::Instant::now() + self.drain_time())
            .await;
        self.begin_shutdown();
        let _ = tokio::time::timeout(self.shutdown_timeout, self.tasks.wait()).await;
        self.emitter.core.ctx.set_runtime(None);
        // Nothing left for Drop to do.
        self.runtime = None;
        self.into_server()
    }

    /// Graceful shutdown for a server started with [`Server::start`]: like
    /// [`ServerHandle::shutdown`], then joins the runtime's threads. Blocks; do not
    /// call from inside an async task.
    ///
    /// Returns the server, stopped, with everything it was given (namespaces,
    /// handlers, state maps, configuration): [`Server::start`] serves it again. A
    /// server with a cluster adapter cannot (its start fails with
    /// [`ServerError::ClusterRestart`]).
    pub fn stop(mut self) -> Server {
        self.stop_blocking();
        self.into_server()
    }

    /// [`ServerHandle::stop`] within `timeout` instead of the configured
    /// `shutdown_timeout` (whichever is shorter), plus at most one second for the
    /// runtime's threads to leave.
    pub fn stop_within(mut self, timeout: Duration) -> Server {
        self.shutdown_timeout = self.shutdown_timeout.min(timeout);
        self.stop()
    }

    /// How long a stop lets long-polling clients fetch what is queued: a client's next
    /// GET comes within a round trip, and a server under steady traffic always has
    /// something queued, so this stays short whatever `shutdown_timeout` is.
    fn drain_time(&self) -> Duration {
        (self.shutdown_timeout / 2).min(Duration::from_millis(500))
    }

    /// Before the sessions close: let long-polling clients fetch what is queued for
    /// them (an ack sent just before the stop, the last events) with their next GET,
    /// until `deadline`. WebSocket sessions flush as they close.
    async fn drain_polling(&self, deadline: tokio::time::Instant) {
        while self.engines.iter().any(|e| e.polling_backlog())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The definition behind a handle that has shut down.
    fn into_server(mut self) -> Server {
        Server {
            config: self.config.clone(),
            core: self.emitter.core.clone(),
            endpoints: std::mem::take(&mut self.endpoints),
            app: self.app.take(),
            cluster_closed: !self.emitter.core.ctx.adapter().restartable(),
        }
    }

    fn stop_blocking(&mut self) {
        if let Some(runtime) = &self.runtime {
            let deadline = tokio::time::Instant::now() + self.drain_time();
            runtime.block_on(self.drain_polling(deadline));
        }
        self.begin_shutdown();
        self.emitter.core.ctx.set_runtime(None);
        if let Some(runtime) = self.runtime.take() {
            let tasks = self.tasks.clone();
            let timeout = self.shutdown_timeout;
            runtime.block_on(async move {
                let _ = tokio::time::timeout(timeout, tasks.wait()).await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// A server answering inside an application's HTTP stack ([`Server::into_layer`]): its
/// emitter, counters and shutdown. Dropping it shuts the endpoints down (the layer
/// then answers 503 on its paths).
#[cfg(feature = "tower")]
pub struct ServiceHandle(ServerHandle);

#[cfg(feature = "tower")]
impl ServiceHandle {
    /// An emitter for this server.
    pub fn emitter(&self) -> &Emitter {
        self.0.emitter()
    }

    /// The server's counters (the same as [`Emitter::metrics`]).
    pub fn metrics(&self) -> crate::Metrics {
        self.0.metrics()
    }

    /// Number of open Engine.IO sessions on all endpoints.
    pub fn session_count(&self) -> usize {
        self.0.session_count()
    }

    /// Graceful shutdown, as [`ServerHandle::shutdown`]: long-polling clients fetch
    /// what is queued, every session closes (WebSockets flush first), the WebSocket
    /// tasks are waited for up to `shutdown_timeout`. The application's server keeps
    /// running; the layer answers 503 on its paths from then on. Gives the server back.
    pub async fn shutdown(self) -> Server {
        self.0.shutdown().await
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if self.runtime.is_some() {
            // `block_on` panics inside a runtime: there, only signal and let the
            // runtime go in the background.
            if tokio::runtime::Handle::try_current().is_ok() {
                self.begin_shutdown();
                if let Some(rt) = self.runtime.take() {
                    rt.shutdown_background();
                }
            } else {
                self.stop_blocking();
            }
        } else if !self.shutdown.is_cancelled() {
            self.begin_shutdown();
        }
    }
}
