//! What one unauthenticated client can make the server hold or do: one test per
//! finding of the hardening issue, each asserting a number. The server runs in this
//! process: RSS is read from /proc/self/status, and the server's sockets (by its port)
//! from /proc/net/tcp.

mod fixture;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture::{config, http, polling_handshake, rss_kib, serve, WsClient};
use serde_json::{json, Value};
use swarmcast::{RateLimit, RateLimitPolicy, Server, ServerConfig, ServerError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// RSS and file descriptors are the whole process's: the tests take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The body of an ACK `431[body]`.
fn ack_body(packet: &str) -> Value {
    let args: Value =
        serde_json::from_str(packet.strip_prefix("431").unwrap_or("null")).unwrap_or(Value::Null);
    args[0].clone()
}

/// The server-side TCP sockets of the server on `port` that still hold anything
/// (every state but LISTEN and TIME_WAIT), and the unsent bytes in their send queues.
fn server_sockets(port: u16) -> (usize, u64) {
    let (mut count, mut unsent) = (0, 0);
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let state = cols.get(3).copied().unwrap_or("");
            if local_port != Some(port) || state == "0A" || state == "06" {
                continue;
            }
            count += 1;
            unsent += cols
                .get(4)
                .and_then(|q| q.split(':').next())
                .and_then(|q| u64::from_str_radix(q, 16).ok())
                .unwrap_or(0);
        }
    }
    (count, unsent)
}

/// Wait until `f` holds, up to `within`; how long it took, or None.
async fn within(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f().then(|| start.elapsed())
}

/// One raw request on a fresh connection; the whole answer.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

/// Whether the server closes `stream` (EOF or reset) within `limit`.
async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

// --- 1. control frames --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_closes_the_session_and_rss_stays_flat() {
    let _serial = SERIAL.lock().await;
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let before = rss_kib();
    let big = "x".repeat(500_000);
    // Polling: 40 POSTs of a 500 kB PING each, never a GET.
    let sid = polling_handshake(addr).await;
    let mut refused = 0;
    for _ in 0..40 {
        let reply = http(
            addr,
            "POST",
            &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
            &[("Content-Type", "text/plain")],
            format!("2{big}").as_bytes(),
        )
        .await;
        refused += usize::from(reply.status == 400);
    }
    assert_eq!(
        refused, 40,
        "the first PING closes the session; the rest find none"
    );
    // WebSocket: the same PING closes the connection.
    let mut ws = WsClient::open(addr, "/socket.io").await;
    ws.send(&format!("2{big}")).await;
    assert!(ws.closed_within(Duration::from_secs(2)).await);
    assert!(
        within(Duration::from_secs(2), || handle.session_count() == 0)
            .await
            .is_some()
    );
    let grown_mb = rss_kib().saturating_sub(before) as f64 / 1024.0;
    eprintln!("ping flood (20 MB sent): RSS grew {grown_mb:.1} MB");
    assert!(grown_mb < 8.0, "RSS grew {grown_mb:.1} MB");
    handle.shutdown().await;
}

// --- 2. state maps --------------------------------------------------------------------

#[tokio::test]
async fn client_requests_never_create_state_maps() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.allow_subscribe = vec!["agents:*".into(), "state:open*".into()];
    let server = Server::new(cfg);
    server.state("agents");
    let ns = server.namespace("/");
    let handle = serve(server).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    let before = ns.state_names().len();
    for i in 0..2000 {
        c.send(&format!(r#"42["unsubscribe",{{"state":"m{i}"}}]"#))
            .await;
        c.send(&format!(r#"42["subscribe",{{"state":"open{i}"}}]"#))
            .await;
    }
    // The last one asks for an ack: every request before it was handled.
    c.send(r#"421["unsubscribe",{"state":"last"}]"#).await;
    let ack = c.recv_text().await.expect("ack");
    let mut snapshots = 0;
    let mut ack = ack;
    while !ack.starts_with("43") {
        snapshots += 1;
        ack = c.recv_text().await.expect("ack");
    }
    assert_eq!(ack_body(&ack), json!({"ok": false, "error": "not allowed"}));
    assert_eq!(
        snapshots, 2000,
        "allowed subscribes get an (empty) snapshot"
    );
    assert_eq!(
        ns.state_names().len(),
        before,
        "state maps after 4000 requests"
    );
    // A subscriber of a map the application opens later gets its first change.
    ns.state("open7").set("k", &1).expect("set");
    let (name, args) = c.recv_event().await.expect("delta");
    assert_eq!(name, "swarmcast:delta");
    assert_eq!(args[0]["map"], "open7");
    assert_eq!(args[0]["version"], 1);
    handle.shutdown().await;
}

// --- 3. write timeout, sockets given back ----------------------------------------

/// 20 clients stop reading; 100 events of 64 kB each fill their kernel buffers (and
/// with `second_burst`, 100 more fill their queues): how many write timeouts and slow
/// consumers, once every server-side socket is closed within `limit`.
async fn stalled_clients_are_reset(
    queue_packets: usize,
    second_burst: bool,
    limit: Duration,
) -> (usize, usize) {
    let mut cfg = config();
    // With a second burst the write timeout is far: what closes the sockets then is
    // the slow-consumer close.
    cfg.limits.write_timeout = Duration::from_secs(if second_burst { 5 } else { 1 });
    cfg.engine.queue_packets = queue_packets;
    let server = Server::new(cfg);
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::connect(addr).await.0);
    }
    let payload = "y".repeat(64 * 1024);
    for _ in 0..100 {
        let _ = handle.emitter().emit("big", &payload);
    }
    if second_burst {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..200 {
            let _ = handle.emitter().emit("big", &payload);
        }
    }
    let (held, unsent) = server_sockets(addr.port());
    eprintln!(
        "{held} server sockets hold {} MB unsent",
        unsent / 1_000_000
    );
    // Every server-side socket gone (reset, not lingering with its unsent bytes).
    let took = within(limit, || server_sockets(addr.port()).0 == 0).await;
    let left = server_sockets(addr.port()).0;
    assert!(
        took.is_some(),
        "{left} server sockets still open after {limit:?}: {:?}",
        handle.metrics()
    );
    eprintln!(
        "stalled clients (queue {queue_packets}): server sockets closed after {:?}",
        took.unwrap_or_default()
    );
    let metrics = handle.metrics();
    handle.shutdown().await;
    (
        metrics.write_timeouts as usize,
        metrics.slow_consumers as usize,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_progress_ends_the_connection_within_the_write_timeout() {
    let _serial = SERIAL.lock().await;
    let (timeouts, _) = stalled_clients_are_reset(100_000, false, Duration::from_secs(3)).await;
    assert_eq!(timeouts, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_closed_while_its_write_is_stuck_loses_its_socket_at_once() {
    let _serial = SERIAL.lock().await;
    // The queue (50 packets) fills after the writes stalled, long before the write
    // timeout (5 s): the sockets go a quarter of a second later.
    let (timeouts, slow) = stalled_clients_are_reset(50, true, Duration::from_secs(1)).await;
    assert_eq!((timeouts, slow), (0, 20));
}

// --- 4. slow headers, idle connections, the connection cap -----------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_within_the_request_timeout() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.limits.request_timeout = Duration::from_millis(500);
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let start = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let slow: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.expect("connect");
                // One byte every 100 ms, never the end of the headers.
                for b in b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x".iter() {
                    if s.write_all(&[*b]).await.is_err() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            })
        })
        .collect();
    for s in &mut idle {
        assert!(closed_by_server(s, Duration::from_secs(2)).await);
    }
    let mut cut = 0;
    for s in slow {
        cut += usize::from(s.await.expect("task"));
    }
    let took = start.elapsed();
    eprintln!("100 idle + 100 slow-header connections closed after {took:?} (timeout 500 ms)");
    assert_eq!(cut, 100, "slow-header connections cut");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_refuses_cleanly_and_counts() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.limits.max_connections = 20;
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(WsClient::connect(addr).await.0);
    }
    let mut refused = 0;
    for _ in 0..10 {
        let reply = raw(addr, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
        refused += usize::from(reply.starts_with("HTTP/1.1 503"));
    }
    assert_eq!(refused, 10);
    assert_eq!(handle.metrics().connections_refused, 10);
    drop(held);
    let ok = within(Duration::from_secs(2), || true).await;
    assert!(ok.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = raw(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    handle.shutdown().await;
}

#[test]
fn bad_limits_are_refused_with_a_message() {
    let _serial = SERIAL.blocking_lock();
    let mut cfg = config();
    cfg.limits.max_connections = 0;
    let err = Server::new(cfg).start().err().expect("refused");
    assert!(err.to_string().contains("max_connections"), "{err}");
    let mut cfg = config();
    cfg.limits.request_timeout = Duration::from_secs(u64::MAX);
    assert!(matches!(
        Server::new(cfg).start(),
        Err(ServerError::Config(_))
    ));
}

// --- 5. attachment bytes -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_attachment_bytes_are_bounded_per_connection_and_in_total() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.limits.max_attachment_bytes = 1_000_000;
    cfg.limits.max_attachment_bytes_total = 2_000_000;
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let chunk = vec![7u8; 600_000];
    let header = r#"452-["blob",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    // Per connection: the second 600 kB attachment goes past 1 MB.
    let (mut c, _) = WsClient::connect(addr).await;
    c.send(header).await;
    c.send_binary(&chunk).await;
    assert!(!c.closed_within(Duration::from_millis(300)).await);
    c.send_binary(&chunk).await;
    assert!(c.closed_within(Duration::from_secs(2)).await);
    // In total: three connections holding 600 kB each pass 2 MB at the fourth.
    let mut holders = Vec::new();
    for _ in 0..3 {
        let (mut h, _) = WsClient::connect(addr).await;
        h.send(header).await;
        h.send_binary(&chunk).await;
        holders.push(h);
    }
    // The holders' bytes are in the kernel once sent; let the server read them (600
    // 1 KiB reads each) before the fourth's arrive, or it may count the fourth's first
    // (seen once in about 20 runs).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut fourth, _) = WsClient::connect(addr).await;
    fourth.send(header).await;
    fourth.send_binary(&chunk).await;
    assert!(fourth.closed_within(Duration::from_secs(2)).await);
    for h in &mut holders {
        assert!(!h.closed_within(Duration::from_millis(100)).await);
    }
    handle.shutdown().await;
}

// --- 6. defaults ---------------------------------------------------------------------

#[tokio::test]
async fn a_keyless_publish_api_takes_json_only_and_stays_on_loopback() {
    let _serial = SERIAL.lock().await;
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let body = br#"{"event":"news","data":1}"#;
    let simple = http(
        addr,
        "POST",
        "/api/emit",
        &[
            ("Content-Type", "text/plain"),
            ("Origin", "http://evil.example"),
        ],
        body,
    )
    .await;
    assert_eq!(simple.status, 415, "{simple:?}");
    let none = http(addr, "POST", "/api/emit", &[], body).await;
    assert_eq!(none.status, 415);
    let json = http(
        addr,
        "POST",
        "/api/emit",
        &[("Content-Type", "application/json; charset=utf-8")],
        body,
    )
    .await;
    assert_eq!(json.status, 200, "{json:?}");
    handle.shutdown().await;

    let public = ServerConfig {
        host: "0.0.0.0".into(),
        ..config()
    };
    let err = Server::new(public).serve().await.err().expect("refused");
    assert!(err.to_string().contains("api_key"), "{err}");
    let keyed = ServerConfig {
        host: "0.0.0.0".into(),
        api_key: Some("k".into()),
        ..config()
    };
    Server::new(keyed)
        .serve()
        .await
        .expect("with a key")
        .shutdown()
        .await;
}

#[tokio::test]
async fn dns_rebinding_is_refused_on_loopback() {
    let _serial = SERIAL.lock().await;
    let cfg = ServerConfig {
        cors_allowed_origins: Vec::new(),
        ..config()
    };
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let port = addr.port();
    let upgrade = |host: &str, origin: &str| {
        format!(
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n\
             Origin: {origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
    };
    let evil = format!("evil.example:{port}");
    let rebound = raw(addr, &upgrade(&evil, &format!("http://{evil}"))).await;
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let poll = raw(
        addr,
        &format!("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(poll.starts_with("HTTP/1.1 403"), "{poll}");
    let local = format!("127.0.0.1:{port}");
    let same = raw(addr, &upgrade(&local, &format!("http://{local}"))).await;
    assert!(same.starts_with("HTTP/1.1 101"), "{same}");
    let foreign = raw(addr, &upgrade(&local, "http://evil.example")).await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    handle.shutdown().await;
}

#[tokio::test]
async fn metrics_can_be_turned_off_or_need_a_token() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.metrics_token = Some("t0k".into());
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    assert_eq!(http(addr, "GET", "/metrics", &[], b"").await.status, 401);
    let ok = http(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer t0k")],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("swarmcast_connections_refused"));
    handle.shutdown().await;
    let off = ServerConfig {
        metrics: false,
        ..config()
    };
    let handle = serve(Server::new(off)).await;
    assert_eq!(
        http(handle.local_addr(), "GET", "/metrics", &[], b"")
            .await
            .status,
        404
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn socket_id_rooms_and_reserved_rooms_cannot_be_subscribed() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.allow_subscribe = vec!["*".into()];
    cfg.reserved_rooms = vec!["admin:*".into()];
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let (_victim, victim_sid) = WsClient::connect(addr).await;
    let (mut spy, _) = WsClient::connect(addr).await;
    let mut refused = 0;
    for room in [victim_sid.as_str(), "admin:keys", "AAAAAAAAAAAAAAAAAAAA"] {
        spy.send(&format!(r#"421["subscribe",{{"room":"{room}"}}]"#))
            .await;
        let ack = spy.recv_text().await.expect("ack");
        refused += usize::from(ack_body(&ack) == json!({"ok": false, "error": "not allowed"}));
    }
    assert_eq!(refused, 3);
    handle
        .emitter()
        .to(victim_sid.as_str())
        .emit("private", &"secret")
        .expect("emit");
    spy.send(r#"421["subscribe",{"room":"lobby"}]"#).await;
    let next = spy.recv_text().await.expect("ack");
    assert_eq!(
        ack_body(&next),
        json!({"ok": true}),
        "nothing private came before"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let _serial = SERIAL.lock().await;
    let handle = serve(Server::new(config())).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    let frame = Frame::message(vec![b'4', b'2', 0xff, 0xfe], OpCode::Data(Data::Text), true);
    c.send_message(Message::Frame(frame)).await;
    let mut code = None;
    while let Some(m) = c.recv_raw().await {
        if let Message::Close(frame) = m {
            code = frame.map(|f| f.code);
            break;
        }
    }
    assert_eq!(code, Some(CloseCode::Invalid));
    assert_eq!(u16::from(CloseCode::Invalid), 1007);
    handle.shutdown().await;
}

// --- 7. rate limits ---------------------------------------------------------------

async fn flood(policy: RateLimitPolicy) -> (usize, bool, u64) {
    let mut cfg = config();
    cfg.limits.rate_limit = RateLimit {
        events_per_second: 50,
        bytes_per_second: 1_000_000,
        policy,
    };
    let server = Server::new(cfg);
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    server.namespace("/").on("e", move |_, _, _| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let handle = serve(server).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    for i in 0..500 {
        c.send(&format!(r#"42["e",{i}]"#)).await;
    }
    let closed = c.closed_within(Duration::from_millis(500)).await;
    let metrics = handle.metrics();
    handle.shutdown().await;
    (seen.load(Ordering::Relaxed), closed, metrics.rate_limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_drop_or_disconnect() {
    let _serial = SERIAL.lock().await;
    let (handled, closed, limited) = flood(RateLimitPolicy::Drop).await;
    eprintln!("drop policy: 500 events sent, {handled} handled, {limited} dropped");
    assert!(!closed);
    // One second's burst (50), plus what refills while the flood is read.
    assert!((50..=75).contains(&handled), "{handled}");
    assert_eq!(handled as u64 + limited, 500);
    let (handled, closed, limited) = flood(RateLimitPolicy::Disconnect).await;
    assert!(closed);
    assert!(handled <= 75, "{handled}");
    assert!(limited >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_rate_counts_every_message() {
    let _serial = SERIAL.lock().await;
    let mut cfg = config();
    cfg.limits.rate_limit = RateLimit {
        bytes_per_second: 100_000,
        policy: RateLimitPolicy::Disconnect,
        ..RateLimit::default()
    };
    let handle = serve(Server::new(cfg)).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    let blob = "z".repeat(30_000);
    for _ in 0..5 {
        c.send(&format!(r#"42["e","{blob}"]"#)).await;
    }
    assert!(c.closed_within(Duration::from_secs(1)).await);
    handle.shutdown().await;
}
