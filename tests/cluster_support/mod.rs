//! What the cluster tests share: a `redis-server` of their own on a free loopback
//! port (optionally persistent, optionally behind a proxy the test can cut), nodes
//! joined through it, and the helpers that wait for events.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use swarmcast::{RecoveryConfig, RedisAdapter, RedisConfig, Server, ServerConfig, ServerHandle};

use crate::fixture::{self, WsClient};

/// A redis-server of this test, on a free loopback port, without persistence.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Extra arguments of redis-server (persistence, passwords, ACL users).
    args: Vec<String>,
    /// The working directory of a persistent server (removed on drop).
    dir: Option<std::path::PathBuf>,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra redis-server arguments (`--requirepass`, `--user`...).
    pub fn start_with(args: &[&str]) -> Self {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Redis {
            child: None,
            port,
            args: args.iter().map(|a| a.to_string()).collect(),
            dir: None,
        };
        redis.spawn();
        redis
    }

    /// With persistence: an append-only file fsynced at every write, in a directory of
    /// its own.
    pub fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "swarmcast-redis-{}-{:x}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut redis = Self::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            dir.to_str().expect("utf-8 temp dir"),
        ]);
        redis.dir = Some(dir);
        redis
    }

    pub fn spawn(&mut self) {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(self.args.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/install-test-deps.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf).is_ok_and(|n| {
                        buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH")
                    })
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// SIGKILL: what it had not persisted is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an operator's restart: a persistent server writes its data first.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn config(&self) -> RedisConfig {
        let mut config = RedisConfig::new(self.url());
        config.heartbeat_interval = Duration::from_millis(500);
        config.block_time = Duration::from_millis(1000);
        config.request_timeout = Duration::from_secs(2);
        config
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

pub fn node_config(recovery: bool) -> ServerConfig {
    let mut config = fixture::config();
    config.allow_subscribe = vec!["*".into()];
    if recovery {
        config.recovery = Some(RecoveryConfig::default());
    }
    config
}

pub async fn node(redis: &Redis, recovery: bool) -> ServerHandle {
    node_with(redis.config(), recovery).await
}

/// A node with this Redis configuration.
pub async fn node_with(config: RedisConfig, recovery: bool) -> ServerHandle {
    let mut server = Server::new(node_config(recovery));
    server.namespace("/chat");
    server
        .set_adapter(RedisAdapter::new(config).expect("valid URL"))
        .expect("adapter set once");
    fixture::serve(server).await
}

/// `GET /readyz`: (status, body).
pub async fn readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let reply = fixture::http(addr, "GET", "/readyz", &[], b"").await;
    let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
}

/// Poll `/readyz` until it answers `status`; returns how long that took (bounded).
pub async fn readyz_becomes(addr: std::net::SocketAddr, status: u16) -> Duration {
    let since = Instant::now();
    loop {
        let (now, body) = readyz(addr).await;
        if now == status {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "/readyz stays {now}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy in front of a Redis: cutting it is, for the node behind it, as if
/// that node had died (nothing it sends reaches Redis any more).
pub struct Proxy {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
    links: std::sync::Arc<proxy_links::Links>,
}

mod proxy_links {
    /// The forwarding tasks of a proxy, to abort.
    #[derive(Default)]
    pub struct Links(pub std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);
}

impl Proxy {
    pub async fn start(redis_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let links = std::sync::Arc::new(proxy_links::Links::default());
        let held = links.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut links) = held.0.lock() {
                    links.push(link);
                }
            }
        });
        Self { port, task, links }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Close every connection through the proxy and refuse new ones.
    pub fn cut(&self) {
        self.task.abort();
        if let Ok(mut links) = self.links.0.lock() {
            for link in links.drain(..) {
                link.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// The next event (name, args) on `/`, skipping nothing.
pub async fn next_event(c: &mut WsClient) -> Option<(String, Vec<Value>)> {
    c.recv_event().await
}

/// Whether nothing more arrives within `within`.
pub async fn quiet(c: &mut WsClient, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, c.recv_text()).await,
        Err(_) | Ok(None)
    )
}

/// Poll until `f` holds (bounded).
pub async fn eventually<F: FnMut() -> bool>(mut f: F, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw client that reconnects with `pid` and `offset` as socket.io-client does.
pub async fn connect_with(addr: std::net::SocketAddr, auth: Value) -> (WsClient, Value) {
    let mut c = WsClient::open(addr, "/socket.io").await;
    c.send(&format!("40{auth}")).await;
    let reply = c.recv_text().await.expect("connect reply");
    let body: Value =
        serde_json::from_str(reply.strip_prefix("40").expect("CONNECT")).expect("json");
    (c, body)
}
