//! Integration tests: a real server on 127.0.0.1, raw clients over real sockets.

mod fixture;

use std::sync::Arc;
use std::time::Duration;

use fixture::{config, http, polling_handshake, serve, WsClient, WAIT};
use serde_json::{json, Value};
use swarmcast::{ConnectError, EmitError, Server};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_from_a_plain_thread_reaches_the_client() {
    let server = Server::new(config());
    let handle = serve(server).await;
    let (mut client, _sid) = WsClient::connect(handle.local_addr()).await;
    let emitter = handle.emitter().clone();
    std::thread::spawn(move || emitter.emit("hello", &json!({"from": "thread"})))
        .join()
        .expect("thread")
        .expect("emit");
    let (name, args) = client.recv_event().await.expect("event");
    assert_eq!(name, "hello");
    assert_eq!(args, vec![json!({"from": "thread"})]);
    handle.shutdown().await;
}

/// The writer frames a batch itself, in buffers of at most 64 KiB and large frames from
/// where they are: frames of every length class, back to back, arrive whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_every_size_arrive_whole_and_in_order() {
    let handle = serve(Server::new(config())).await;
    let (mut client, _) = WsClient::connect(handle.local_addr()).await;
    // Payload lengths around the frame header's boundaries (126, 65,536) and the
    // writer's 64 KiB buffer, several rounds so that they share batches.
    let sizes = [
        0usize, 1, 100, 125, 126, 60_000, 65_535, 65_536, 70_000, 300_000, 5,
    ];
    let emitter = handle.emitter().clone();
    let sent = std::thread::spawn(move || {
        let mut sent = Vec::new();
        for round in 0..3 {
            for (i, &n) in sizes.iter().enumerate() {
                let text: String = (0..n)
                    .map(|k| (b'a' + ((k + i + round) % 26) as u8) as char)
                    .collect();
                emitter
                    .emit("sized", &json!([round, i, text]))
                    .expect("emit");
                sent.push(json!([round, i, text]));
            }
        }
        sent
    })
    .join()
    .expect("emitter thread");
    for expected in sent {
        let (name, args) = client.recv_event().await.expect("every event arrives");
        assert_eq!(name, "sized");
        assert_eq!(args, vec![expected]);
    }
    handle.shutdown().await;
}

/// Write-through: an emit after a quiet millisecond writes to the socket of a client
/// whose writer is idle itself. A client that stops reading fills its socket: writes
/// through then go out partly, the rest is sent by the connection's task before
/// anything queued behind it, and write-through stops until the writer is idle again.
/// Every frame arrives whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spaced_emits_write_through_and_a_full_socket_loses_nothing() {
    const EMITS: usize = 400;
    let mut cfg = config();
    cfg.engine.queue_bytes = 64 << 20;
    let handle = serve(Server::new(cfg)).await;
    let (mut client, _) =
        WsClient::connect_with_receive_buffer(handle.local_addr(), 16 * 1024).await;
    let emitter = handle.emitter().clone();
    // 12 KB a frame (under the 16 KiB a write-through takes), 4.8 MB in all: far more
    // than the sockets' buffers hold for a client that does not read.
    let text = |i: usize| -> String {
        (0..12_000)
            .map(|k| (b'a' + ((k + i) % 26) as u8) as char)
            .collect()
    };
    let before = emitter.metrics().writes_through;
    let written_through = std::thread::spawn(move || {
        for i in 0..EMITS {
            emitter
                .of("/")
                .no_wait()
                .emit("spaced", &json!([i, text(i)]))
                .expect("emit");
            std::thread::sleep(Duration::from_millis(2));
        }
        emitter.metrics().writes_through - before
    })
    .join()
    .expect("emitter thread");
    assert!(
        written_through > 0,
        "spaced emits to an idle writer write through"
    );
    assert!(
        written_through < EMITS as u64,
        "a socket that stopped taking bytes is not written through ({written_through} of {EMITS})"
    );
    for i in 0..EMITS {
        let (name, args) = client.recv_event().await.expect("every event arrives");
        assert_eq!(name, "spaced");
        assert_eq!(
            args,
            vec![json!([i, text(i)])],
            "event {i} whole and in order"
        );
    }
    handle.shutdown().await;
}

/// `EngineConfig::write_through` off: the same spaced emits all go through the
/// connection's writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_can_be_turned_off() {
    let mut cfg = config();
    cfg.engine.write_through = false;
    let handle = serve(Server::new(cfg)).await;
    let (mut client, _) = WsClient::connect(handle.local_addr()).await;
    let emitter = handle.emitter().clone();
    std::thread::spawn(move || {
        for i in 0..20 {
            emitter.emit("spaced", &json!(i)).expect("emit");
            std::thread::sleep(Duration::from_millis(2));
        }
    })
    .join()
    .expect("emitter thread");
    for i in 0..20 {
        let (_, args) = client.recv_event().await.expect("every event arrives");
        assert_eq!(args, vec![json!(i)]);
    }
    assert_eq!(handle.emitter().metrics().writes_through, 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_emitters_keep_per_thread_order_and_completeness() {
    const THREADS: u64 = 8;
    const EACH: u64 = 2_000;
    let mut cfg = config();
    cfg.engine.queue_packets = (THREADS * EACH) as usize + 16;
    cfg.engine.queue_bytes = 64 << 20;
    let handle = serve(Server::new(cfg)).await;
    let (mut client, _) = WsClient::connect(handle.local_addr()).await;

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let emitter = handle.emitter().clone();
            std::thread::spawn(move || {
                for seq in 0..EACH {
                    let report = emitter.emit("n", &json!([t, seq])).expect("emit");
                    assert!(report.is_complete(), "{report:?}");
                }
            })
        })
        .collect();
    let mut next = vec![0u64; THREADS as usize];
    for _ in 0..THREADS * EACH {
        let (_, args) = client.recv_event().await.expect("every event arrives");
        let t = args[0][0].as_u64().expect("thread") as usize;
        let seq = args[0][1].as_u64().expect("seq");
        assert_eq!(seq, next[t], "thread {t} out of order");
        next[t] += 1;
    }
    for t in threads {
        t.join().expect("emitter thread");
    }
    assert!(next.iter().all(|&n| n == EACH));
    let m = handle.emitter().metrics();
    assert_eq!(m.deliveries, THREADS * EACH);
    assert_eq!(m.dropped_queue_full, 0);
    handle.shutdown().await;
}

#[tokio::test]
async fn engine_io_errors_answer_the_protocol_json() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let cases = [
        (
            "GET",
            "/socket.io/?EIO=3&transport=polling",
            5,
            "Unsupported protocol version",
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=foo",
            0,
            "Transport unknown",
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            1,
            "Session ID unknown",
        ),
        (
            "POST",
            "/socket.io/?EIO=4&transport=polling",
            2,
            "Bad handshake method",
        ),
    ];
    for (method, target, code, message) in cases {
        let reply = http(addr, method, target, &[], b"").await;
        assert_eq!(reply.status, 400, "{target}");
        let body: Value = serde_json::from_str(&reply.body).expect("json");
        assert_eq!(body, json!({"code": code, "message": message}), "{target}");
    }
    let health = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    handle.shutdown().await;
}

#[tokio::test]
async fn polling_handshake_post_and_get() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let reply = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    let open: Value = serde_json::from_str(&reply.body[1..]).expect("open");
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(25000));
    assert_eq!(open["pingTimeout"], json!(20000));
    assert_eq!(open["maxPayload"], json!(1_000_000));
    let sid = open["sid"].as_str().expect("sid");
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let post = http(addr, "POST", &target, &[], b"40").await;
    assert_eq!((post.status, post.body.as_str()), (200, "ok"));
    let get = http(addr, "GET", &target, &[], b"").await;
    assert!(get.body.starts_with("40{\"sid\":"), "{get:?}");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_long_poll_carries_at_most_max_polling_packets() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    let _connect_reply = http(addr, "GET", &target, &[], b"").await;
    for i in 0..20 {
        handle.emitter().emit("n", &i).expect("emit");
    }
    let first = http(addr, "GET", &target, &[], b"").await;
    assert_eq!(first.body.split('\u{1e}').count(), 16);
    let second = http(addr, "GET", &target, &[], b"").await;
    assert_eq!(second.body.split('\u{1e}').count(), 4);
    assert!(second.body.ends_with(r#"42["n",19]"#), "{}", second.body);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_gets_close_the_session() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let first = tokio::spawn({
        let target = target.clone();
        async move { http(addr, "GET", &target, &[], b"").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = http(addr, "GET", &target, &[], b"").await;
    assert_eq!(second.status, 400);
    let first = first.await.expect("first GET");
    assert_eq!(first.body, "1", "the pending GET answers CLOSE");
    let after = http(addr, "GET", &target, &[], b"").await;
    assert_eq!(after.status, 400);
    assert!(after.body.contains("Session ID unknown"));
    handle.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_and_messages_are_refused() {
    let mut cfg = config();
    cfg.engine.max_payload = 1000;
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let big = vec![b'4'; 5000];
    let reply = http(addr, "POST", &target, &[], &big).await;
    assert_eq!(reply.status, 413);

    let mut ws = WsClient::open(addr, "/socket.io").await;
    ws.send(&format!("4{}", "x".repeat(5000))).await;
    match ws.recv_raw().await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // The server still serves others.
    let (mut ok, _) = WsClient::connect(addr).await;
    handle.emitter().emit("still", &1).expect("emit");
    assert_eq!(ok.recv_event().await.expect("event").0, "still");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed() {
    let mut cfg = config();
    cfg.engine.ping_interval = Duration::from_millis(200);
    cfg.engine.ping_timeout = Duration::from_millis(200);
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let (mut silent, _) = WsClient::connect(addr).await;
    silent.answer_pings = false;
    let (mut healthy, _) = WsClient::connect(addr).await;
    // Both read at once: the healthy one answers every ping as it comes.
    let (silent_closed, healthy_closed) = tokio::join!(
        silent.closed_within(Duration::from_secs(3)),
        healthy.closed_within(Duration::from_secs(2)),
    );
    assert!(silent_closed, "the silent client is closed");
    assert!(!healthy_closed, "a client answering pings stays");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_sends_connect_is_closed() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(300);
    let handle = serve(Server::new(cfg)).await;
    let mut idle = WsClient::open(handle.local_addr(), "/socket.io").await;
    assert!(idle.closed_within(Duration::from_secs(3)).await);
    handle.shutdown().await;
}

#[tokio::test]
async fn malformed_packets_close_only_that_client() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let (mut bystander, _) = WsClient::connect(addr).await;
    for bad in ["42[\"a\"", "4x", "99", "42{\"a\":1}", "0", "5"] {
        let (mut c, _) = WsClient::connect(addr).await;
        c.send(bad).await;
        assert!(c.closed_within(WAIT).await, "{bad:?} closes the connection");
    }
    handle.emitter().emit("alive", &true).expect("emit");
    assert_eq!(bystander.recv_event().await.expect("event").0, "alive");
    handle.shutdown().await;
}

#[tokio::test]
async fn namespaces_auth_and_refusals() {
    let server = Server::new(config());
    server
        .namespace("/admin")
        .on_connect(|socket| match socket.auth() {
            Some(a) if a["token"] == "secret" => Ok(()),
            _ => Err(ConnectError::new("unauthorized").with_data(json!({"code": 401}))),
        });
    let handle = serve(server).await;
    let mut c = WsClient::open(handle.local_addr(), "/socket.io").await;
    let err = c.connect_ns("/nope", None).await.expect_err("unknown");
    assert_eq!(err, json!({"message": "Invalid namespace"}));
    let err = c
        .connect_ns("/admin", Some(json!({"token": "bad"})))
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        json!({"message": "unauthorized", "data": {"code": 401}})
    );
    c.connect_ns("/admin", Some(json!({"token": "secret"})))
        .await
        .expect("accepted");
    let m = handle.emitter().metrics();
    assert_eq!((m.connects, m.connects_refused), (1, 2));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_fails_visibly_and_volatile_drops_are_counted() {
    let mut cfg = config();
    cfg.engine.queue_packets = 4;
    cfg.slow_consumer = swarmcast::SlowConsumerPolicy::Report;
    let server = Server::new(cfg);
    let handle = serve(server).await;
    let addr = handle.local_addr();
    // A polling client that connects and then never polls: its queue fills up.
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    let ns = handle.emitter().namespace("/").expect("root");
    let socket = ns.sockets().pop().expect("one socket");
    let mut results = Vec::new();
    for i in 0..6 {
        results.push(socket.emit("n", &i));
    }
    assert!(results[0].is_ok(), "CONNECT reply + first events fit");
    assert!(
        matches!(results[5], Err(EmitError::QueueFull(ref id)) if id == socket.id()),
        "{results:?}"
    );
    let report = handle.emitter().emit("b", &0).expect("broadcast");
    assert_eq!(report.full.len(), 1);
    let report = ns.broadcast().volatile().emit("v", &0).expect("volatile");
    assert_eq!((report.volatile_dropped, report.full.len()), (1, 0));
    let m = handle.emitter().metrics();
    assert_eq!((m.dropped_queue_full, m.dropped_volatile), (1, 1));
    handle.shutdown().await;
}

#[tokio::test]
async fn raw_engine_io_endpoint_echoes_text_and_binary() {
    use swarmcast::engine::{
        CloseReason, ConnectionHandler, EngineHandler, EngineSocket, Incoming, RequestInfo,
    };
    struct Echo;
    struct Conn(EngineSocket);
    impl EngineHandler for Echo {
        fn on_open(&self, s: EngineSocket, _: &RequestInfo) -> Arc<dyn ConnectionHandler> {
            Arc::new(Conn(s))
        }
    }
    impl ConnectionHandler for Conn {
        fn on_message(&self, m: Incoming<'_>) {
            let _ = match m {
                Incoming::Text(t) => self.0.send_text(t),
                Incoming::Binary(b) => self.0.send_binary(b),
            };
        }
        fn on_close(&self, _: CloseReason) {}
    }
    let mut server = Server::new(config());
    server.engine_endpoint("/engine.io", Arc::new(Echo));
    let handle = serve(server).await;
    let mut c = WsClient::open(handle.local_addr(), "/engine.io").await;
    c.send("4hello").await;
    assert_eq!(c.recv_text().await.as_deref(), Some("4hello"));
    c.send_binary(&[1, 2, 3]).await;
    match c.recv_raw().await {
        Some(Message::Binary(b)) => assert_eq!(&b[..], &[1, 2, 3]),
        other => panic!("binary echo expected, got {other:?}"),
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn publish_api_needs_the_key_and_reports_deliveries() {
    let mut cfg = config();
    cfg.api_key = Some("k3y".into());
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let (mut c, _) = WsClient::connect(addr).await;
    let body = br#"{"event":"news","data":{"a":1}}"#;
    let denied = http(addr, "POST", "/api/emit", &[], body).await;
    assert_eq!(denied.status, 401);
    let ok = http(
        addr,
        "POST",
        "/api/emit",
        &[("Authorization", "Bearer k3y")],
        body,
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&ok.body).expect("json")["delivered"],
        1
    );
    assert_eq!(
        c.recv_event().await,
        Some(("news".into(), vec![json!({"a": 1})]))
    );
    let bad = http(
        addr,
        "POST",
        "/api/emit",
        &[("Authorization", "Bearer k3y")],
        b"{nope",
    )
    .await;
    assert_eq!(bad.status, 400);
    handle.shutdown().await;
}

#[tokio::test]
async fn cors_reflects_allowed_origins_and_websocket_checks_origin() {
    let mut cfg = config();
    cfg.cors_allowed_origins = vec!["http://dash.test".into()];
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let allowed = http(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[("Origin", "http://dash.test")],
        b"",
    )
    .await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://dash.test")
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let other = http(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[("Origin", "http://evil.test")],
        b"",
    )
    .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    let preflight = http(
        addr,
        "OPTIONS",
        "/socket.io/?EIO=4&transport=polling",
        &[
            ("Origin", "http://dash.test"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    let ws = http(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=websocket",
        &[
            ("Origin", "http://evil.test"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    )
    .await;
    assert_eq!(ws.status, 403);
    handle.shutdown().await;
}

#[test]
fn own_runtime_start_and_stop_close_clients_and_release_the_port() {
    let _turn = OWN_RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::new(config());
    let handle = server.start().expect("start");
    let addr = handle.local_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let mut client = rt.block_on(async { WsClient::connect(addr).await.0 });
    let stopper = std::thread::spawn(move || handle.stop());
    assert!(rt.block_on(client.closed_within(WAIT)), "clients are told");
    stopper.join().expect("stop joins");
    std::net::TcpListener::bind(addr).expect("port released");
}

/// Tests that start servers on their own runtimes take turns, so that counting the
/// runtime's threads (named "swarmcast") sees only their own.
static OWN_RUNTIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|name| name.trim() == "swarmcast")
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn dropping_a_started_server_joins_its_threads_and_frees_its_port() {
    let _turn = OWN_RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = thread_count();
    let mut cfg = config();
    cfg.worker_threads = 3;
    let handle = Server::new(cfg).start().expect("start");
    let addr = handle.local_addr();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while thread_count() < before + 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(thread_count() >= before + 3, "the runtime's workers run");
    drop(handle);
    // Worker threads are joined by the runtime's shutdown; allow the OS a moment to reap.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while thread_count() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(thread_count() <= before, "no thread left behind");
    std::net::TcpListener::bind(addr).expect("port released");
}
