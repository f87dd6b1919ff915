//! `swarmcast`: a standalone Socket.IO server with an HTTP publish endpoint.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use swarmcast::{
    Limits, RateLimit, RateLimitPolicy, RecoveryConfig, Server, ServerConfig, SlowConsumerPolicy,
};

/// swarmcast: real-time push over Socket.IO (Engine.IO v4 / Socket.IO v5).
#[derive(Debug, Parser)]
#[command(name = "swarmcast", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a standalone server. Any Socket.IO client can connect; any program can
    /// publish with `POST /api/emit` ({"event": "...", "data": ..., "namespace": "/",
    /// "rooms": [...], "except": [...]}), which answers {"delivered": N}.
    ///
    /// Health: `GET /healthz` is liveness (200 while the process serves: restart it
    /// when it fails); `GET /readyz` is readiness (503 while a node is cut off from
    /// its cluster: Redis unreachable, credentials refused, stream reader behind):
    /// wire the load balancer's health check to /readyz.
    Serve(Box<ServeArgs>),
    /// Publish one event into a cluster through Redis, without a server: every node
    /// (swarmcast, or socket.io with @socket.io/redis-streams-adapter) delivers it.
    /// Prints the log id of the entry.
    #[cfg(feature = "redis")]
    Emit(EmitArgs),
}

#[cfg(feature = "redis")]
#[derive(Debug, Args)]
struct EmitArgs {
    /// Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS).
    #[arg(long, env = "SWARMCAST_REDIS")]
    redis: String,
    /// Namespace to emit on.
    #[arg(long, default_value = "/")]
    namespace: String,
    /// Room to reach (or socket id); repeat for several. Without it: every client.
    #[arg(long = "room", value_name = "ROOM")]
    rooms: Vec<String>,
    /// Room (or socket id) to leave out; repeat for several.
    #[arg(long = "except", value_name = "ROOM")]
    except: Vec<String>,
    /// Not kept for recovery; dropped for clients that cannot take it now.
    #[arg(long)]
    volatile: bool,
    /// Redis stream of the cluster (the nodes' `--redis-stream`).
    #[arg(long, default_value = "socket.io")]
    redis_stream: String,
    /// Event name.
    event: String,
    /// Event argument, as JSON (a string needs its quotes: '"hi"').
    json: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "SWARMCAST_HOST")]
    host: String,
    /// Port to bind (0 picks a free port and prints it).
    #[arg(long, default_value_t = 5000, env = "SWARMCAST_PORT")]
    port: u16,
    /// Socket.IO endpoint path.
    #[arg(long, default_value = "/socket.io")]
    path: String,
    /// Browser origin allowed to connect (CORS for polling, Origin check for
    /// WebSocket); repeat for several, or `*` for any. Without it only same-origin
    /// pages and non-browser clients may connect.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Namespace to declare besides `/`; repeat for several.
    #[arg(long = "namespace", value_name = "NAME")]
    namespaces: Vec<String>,
    /// Milliseconds between server pings.
    #[arg(long, default_value_t = 25_000)]
    ping_interval: u64,
    /// Milliseconds to wait for a pong before closing.
    #[arg(long, default_value_t = 20_000)]
    ping_timeout: u64,
    /// Largest accepted message or polling body, in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    max_payload: usize,
    /// Milliseconds a client may take to send its Socket.IO CONNECT.
    #[arg(long, default_value_t = 45_000)]
    connect_timeout: u64,
    /// Outbound queue bound per connection, in packets (a backstop: the byte bound,
    /// 16 MiB, comes first for ordinary packets).
    #[arg(long, default_value_t = 65_536)]
    queue_packets: usize,
    /// Most packets per long-polling response (python-engineio accepts 16 at most).
    #[arg(long, default_value_t = 16)]
    max_polling_packets: usize,
    /// Bearer key required by POST /api/emit (`Authorization: Bearer KEY`).
    #[arg(long, env = "SWARMCAST_API_KEY")]
    api_key: Option<String>,
    /// Turn off POST /api/emit.
    #[arg(long)]
    no_publish_api: bool,
    /// Turn off GET /metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Bearer token required by GET /metrics.
    #[arg(long, env = "SWARMCAST_METRICS_TOKEN")]
    metrics_token: Option<String>,
    /// Host name requests may carry (`*` for any); repeat for several. Default: only
    /// loopback names when bound to a loopback address.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// Room pattern no client may subscribe to, whatever --allow-subscribe says.
    #[arg(long = "reserved-room", value_name = "PATTERN")]
    reserved_rooms: Vec<String>,
    /// Most TCP connections open at once; past it new ones get 503.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Listen backlog (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 1024)]
    listen_backlog: u32,
    /// Milliseconds a client has to send a request's headers (and then its body); idle
    /// connections are closed after it too.
    #[arg(long, default_value_t = 10_000)]
    request_timeout: u64,
    /// Milliseconds a write may make no progress before the connection is reset.
    #[arg(long, default_value_t = 5_000)]
    write_timeout: u64,
    /// Most bytes of pending binary attachments per connection.
    #[arg(long, default_value_t = 1_000_000)]
    max_attachment_bytes: usize,
    /// Most bytes of pending binary attachments of all connections together.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_attachment_bytes_total: usize,
    /// Incoming events per second per connection (0: no limit).
    #[arg(long, default_value_t = 0)]
    rate_limit_events: u32,
    /// Incoming bytes per second per connection (0: no limit).
    #[arg(long, default_value_t = 0)]
    rate_limit_bytes: u64,
    /// What happens to a connection over its rate limit: `drop` the events (counted),
    /// or `disconnect` it.
    #[arg(long, default_value = "drop", value_parser = ["drop", "disconnect"])]
    rate_limit_policy: String,
    /// Room pattern clients may join with the built-in `subscribe` event (`*` is a
    /// wildcard; state map `agents` is `state:agents`); repeat for several. Without it
    /// the built-in subscribe/unsubscribe events are off.
    #[arg(long = "allow-subscribe", value_name = "PATTERN")]
    allow_subscribe: Vec<String>,
    /// Turn on connection state recovery: clients that reconnect within this many
    /// seconds get their session and every missed packet (socket.io-client >= 4.6).
    #[arg(long, value_name = "SECONDS")]
    recovery: Option<u64>,
    /// What to do with a client whose outbound queue fills: `disconnect` (it
    /// reconnects and, with --recovery, catches up) or `report` (skip it).
    #[arg(long, default_value = "disconnect", value_parser = ["disconnect", "report"])]
    slow_consumer: String,
    /// Backpressure: how long a publish may wait, in milliseconds, for a client whose
    /// queue it finds full or leaves above its watermark, before --slow-consumer
    /// applies (0: never wait).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    emit_max_wait: u64,
    /// Milliseconds to gather frames after a WebSocket write before the next one
    /// (0: write as soon as the writer is free).
    #[arg(long, default_value_t = 0)]
    batch_window: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Join a cluster through Redis (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` for TLS, `#insecure` at the end to skip the certificate check; an
    /// ACL user as `user:password@`): broadcasts, rooms, recovery and keyed state are
    /// shared with the other nodes. The node listens at once, also when Redis is down
    /// (it serves its own clients and joins when Redis comes).
    #[cfg(feature = "redis")]
    #[arg(long, env = "SWARMCAST_REDIS", value_name = "URL")]
    redis: Option<String>,
    /// Redis stream holding the broadcast log.
    #[cfg(feature = "redis")]
    #[arg(long, default_value = "socket.io")]
    redis_stream: String,
    /// `MAXLEN ~` bound of the stream: size it for the recovery window
    /// (docs/deployment.md: MAXLEN >= entries/s x recovery seconds x 1.2).
    #[cfg(feature = "redis")]
    #[arg(long, default_value_t = 10_000)]
    redis_maxlen: usize,
    /// Bytes of cluster messages kept while Redis is unreachable, published in order
    /// when it returns.
    #[cfg(feature = "redis")]
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    redis_outage_buffer: usize,
    /// What goes when the outage buffer is full: `drop-oldest` (the other nodes get
    /// the latest part of the outage) or `drop-newest` (the first part).
    #[cfg(feature = "redis")]
    #[arg(long, default_value = "drop-oldest", value_parser = ["drop-oldest", "drop-newest"])]
    redis_outage_policy: String,
    /// Milliseconds the stream reader may fall behind before GET /readyz answers 503.
    #[cfg(feature = "redis")]
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    redis_max_lag: u64,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        #[cfg(feature = "redis")]
        Command::Emit(args) => emit(args),
    }
}

#[cfg(feature = "redis")]
fn emit(args: EmitArgs) -> std::process::ExitCode {
    let data: serde_json::Value = match serde_json::from_str(&args.json) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("swarmcast: the argument is not JSON: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swarmcast: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut config = swarmcast::RedisConfig::new(args.redis);
        config.stream_name = args.redis_stream;
        let emitter = match tokio::time::timeout(
            Duration::from_secs(10),
            swarmcast::RedisEmitter::with_config(config),
        )
        .await
        {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                eprintln!("swarmcast: {e}");
                return std::process::ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("swarmcast: redis did not answer within 10 s");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut op = emitter.of(&args.namespace);
        for room in args.rooms {
            op = op.to(room);
        }
        for room in args.except {
            op = op.except(room);
        }
        if args.volatile {
            op = op.volatile();
        }
        match op.emit(&args.event, &data).await {
            Ok(id) => {
                println!("{id}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("swarmcast: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

fn serve(args: ServeArgs) -> std::process::ExitCode {
    let mut config = ServerConfig {
        host: args.host,
        port: args.port,
        path: args.path,
        cors_allowed_origins: args.cors_origins,
        connect_timeout: Duration::from_millis(args.connect_timeout),
        publish_api: !args.no_publish_api,
        api_key: args.api_key,
        metrics: !args.no_metrics,
        metrics_token: args.metrics_token,
        allowed_hosts: args.allowed_hosts,
        reserved_rooms: args.reserved_rooms,
        limits: Limits {
            max_connections: args.max_connections,
            listen_backlog: args.listen_backlog,
            request_timeout: Duration::from_millis(args.request_timeout),
            write_timeout: Duration::from_millis(args.write_timeout),
            max_attachment_bytes: args.max_attachment_bytes,
            max_attachment_bytes_total: args.max_attachment_bytes_total,
            rate_limit: RateLimit {
                events_per_second: args.rate_limit_events,
                bytes_per_second: args.rate_limit_bytes,
                policy: RateLimitPolicy::from_name(&args.rate_limit_policy).unwrap_or_default(),
            },
        },
        worker_threads: args.threads,
        allow_subscribe: args.allow_subscribe,
        recovery: args.recovery.map(|secs| RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(secs),
            ..RecoveryConfig::default()
        }),
        slow_consumer: if args.slow_consumer == "report" {
            SlowConsumerPolicy::Report
        } else {
            SlowConsumerPolicy::Disconnect
        },
        emit_max_wait: Duration::from_millis(args.emit_max_wait),
        ..ServerConfig::default()
    };
    config.engine.batch_window = Duration::from_millis(args.batch_window);
    config.engine.ping_interval = Duration::from_millis(args.ping_interval);
    config.engine.ping_timeout = Duration::from_millis(args.ping_timeout);
    config.engine.max_payload = args.max_payload;
    config.engine.queue_packets = args.queue_packets;
    config.engine.max_polling_packets = args.max_polling_packets;

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swarmcast: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        #[allow(unused_mut)]
        let mut server = Server::new(config);
        for ns in &args.namespaces {
            server.namespace(ns);
        }
        #[cfg(feature = "redis")]
        if let Some(url) = args.redis {
            let mut redis = swarmcast::RedisConfig::new(url);
            redis.stream_name = args.redis_stream;
            redis.max_len = args.redis_maxlen;
            redis.outage_buffer_bytes = args.redis_outage_buffer;
            redis.outage_policy = if args.redis_outage_policy == "drop-newest" {
                swarmcast::OutagePolicy::DropNewest
            } else {
                swarmcast::OutagePolicy::DropOldest
            };
            redis.max_reader_lag = Duration::from_millis(args.redis_max_lag);
            let adapter = match swarmcast::RedisAdapter::new(redis) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("swarmcast: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            if let Err(e) = server.set_adapter(adapter) {
                eprintln!("swarmcast: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        let handle = match server.serve().await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("swarmcast: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        println!("swarmcast listening on http://{}", handle.local_addr());
        wait_for_signal().await;
        eprintln!("swarmcast: shutting down");
        handle.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
