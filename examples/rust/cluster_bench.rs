//! Cross-node latency and throughput through Redis, beside single-node numbers.
//! A benchmark, not a test (not run in CI):
//!
//! ```sh
//! cargo run --release --features redis --example cluster_bench [-- --redis redis://HOST:PORT]
//! ```
//!
//! Without `--redis` it starts its own `redis-server` on a free loopback port (and
//! stops it). `--startup` prints only the start-up times: how long `Server::serve`
//! takes to listen without Redis, with Redis healthy, and with Redis unreachable. For each setup a raw WebSocket client connects to one node and another
//! node (or the same one) emits: latency is measured at a steady low rate (p50/p99
//! from emit to the client's read), throughput as a burst of events emitted as fast as
//! possible until the client has read them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use swarmcast::{RecoveryConfig, RedisAdapter, RedisConfig, Server, ServerConfig, ServerHandle};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const LATENCY_EVENTS: u64 = 2_000;
const BURST_EVENTS: u64 = 20_000;

struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(OwnRedis, String), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let redis = OwnRedis(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((redis, format!("redis://127.0.0.1:{port}")))
}

async fn node(
    redis: Option<&str>,
    recovery: bool,
) -> Result<ServerHandle, Box<dyn std::error::Error>> {
    let mut config = ServerConfig {
        port: 0,
        ..ServerConfig::default()
    };
    config.engine.queue_packets = 1 << 20;
    config.engine.queue_bytes = 1 << 30;
    if recovery {
        config.recovery = Some(RecoveryConfig::default());
    }
    let mut server = Server::new(config);
    if let Some(url) = redis {
        let mut rc = RedisConfig::new(url);
        rc.max_len = 100_000;
        server.set_adapter(RedisAdapter::new(rc)?)?;
    }
    Ok(server.serve().await?)
}

/// A raw client recording when each `{"s": n}` arrives.
async fn client(
    addr: SocketAddr,
    arrivals: Arc<Mutex<HashMap<u64, Instant>>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    let _open = ws.next().await;
    ws.send(Message::text("40")).await?;
    // The CONNECT reply.
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            if t.starts_with("40") {
                break;
            }
        }
    }
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            if t.as_str() == "2" {
                let _ = ws.send(Message::text("3")).await;
                continue;
            }
            let Some(body) = t.strip_prefix("42") else {
                continue;
            };
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(body) {
                if let Some(s) = items.get(1).and_then(|v| v["s"].as_u64()) {
                    arrivals.lock().insert(s, Instant::now());
                }
            }
        }
    });
    Ok(())
}

struct Row {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

async fn measure(
    name: &'static str,
    emit_on: &ServerHandle,
    client_on: &ServerHandle,
) -> Result<Row, Box<dyn std::error::Error>> {
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    client(client_on.local_addr(), arrivals.clone()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let emitter = emit_on.emitter().clone();

    // Latency at a steady low rate.
    let mut sent = Vec::with_capacity(LATENCY_EVENTS as usize);
    for s in 0..LATENCY_EVENTS {
        sent.push(Instant::now());
        emitter.emit("b", &json!({ "s": s }))?;
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while (arrivals.lock().len() as u64) < LATENCY_EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies: Vec<Duration> = {
        let got = arrivals.lock();
        (0..LATENCY_EVENTS)
            .filter_map(|s| {
                got.get(&s)
                    .map(|at| at.saturating_duration_since(sent[s as usize]))
            })
            .collect()
    };
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let (p50, p99) = (pick(0.50), pick(0.99));

    // Throughput: a burst.
    let start = Instant::now();
    for s in LATENCY_EVENTS..LATENCY_EVENTS + BURST_EVENTS {
        emitter.emit("b", &json!({ "s": s }))?;
        if s % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let want = LATENCY_EVENTS + BURST_EVENTS;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (arrivals.lock().len() as u64) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = arrivals
        .lock()
        .iter()
        .filter(|(s, _)| **s >= LATENCY_EVENTS)
        .map(|(_, at)| *at)
        .max()
        .unwrap_or(start);
    let total = arrivals.lock().len() as u64;
    let received = total.saturating_sub(LATENCY_EVENTS);
    let per_sec = received as f64
        / last
            .saturating_duration_since(start)
            .as_secs_f64()
            .max(1e-9);
    if received < BURST_EVENTS {
        eprintln!("{name}: only {received} of {BURST_EVENTS} burst events arrived");
    }
    eprintln!("{name}: done");
    Ok(Row {
        name,
        p50,
        p99,
        per_sec,
    })
}

/// Start-up times (from `Server::serve` called to listening), `RUNS` each.
async fn startup(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    const RUNS: usize = 20;
    let closed = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        format!("redis://127.0.0.1:{port}")
    };
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "start-up", "min", "median", "max"
    );
    for (name, redis) in [
        ("no redis (local adapter)", None),
        ("redis healthy", Some(url)),
        ("redis unreachable", Some(closed.as_str())),
    ] {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let since = Instant::now();
            let server = node(redis, true).await?;
            times.push(since.elapsed());
            server.shutdown().await;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<28} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
            ms(times[0]),
            ms(times[RUNS / 2]),
            ms(times[RUNS - 1])
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let given = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let (_own, url) = match given {
        Some(url) => (None, url),
        None => {
            let (own, url) = start_redis()?;
            (Some(own), url)
        }
    };
    startup(&url).await?;
    if args.iter().any(|a| a == "--startup") {
        return Ok(());
    }
    let mut rows = Vec::new();

    let single = node(None, false).await?;
    rows.push(measure("single node", &single, &single).await?);
    single.shutdown().await;

    let single = node(None, true).await?;
    rows.push(measure("single node, recovery on", &single, &single).await?);
    single.shutdown().await;

    let a = node(Some(&url), false).await?;
    let b = node(Some(&url), false).await?;
    rows.push(measure("cluster A->A (local, immediate)", &a, &a).await?);
    rows.push(measure("cluster A->B (through Redis)", &a, &b).await?);
    a.shutdown().await;
    b.shutdown().await;

    let a = node(Some(&url), true).await?;
    let b = node(Some(&url), true).await?;
    rows.push(measure("cluster+recovery A->A (ordered)", &a, &a).await?);
    rows.push(measure("cluster+recovery A->B", &a, &b).await?);
    a.shutdown().await;
    b.shutdown().await;

    println!(
        "{:<34} {:>10} {:>10} {:>14}",
        "setup", "p50", "p99", "events/s"
    );
    for r in rows {
        println!(
            "{:<34} {:>8.0}us {:>8.0}us {:>14.0}",
            r.name,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.per_sec
        );
    }
    Ok(())
}
