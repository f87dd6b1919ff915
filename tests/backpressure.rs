//! Overload over real sockets: a producer faster than the network, a burst to a
//! long-polling client, a client that stops reading, an emit no client can hold. Each
//! has a defined outcome and nothing is lost silently.

mod fixture;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fixture::{config, http, polling_handshake, serve, WsClient};
use serde_json::{json, Value};
use swarmcast::{EmitError, Server};

/// Run blocking producer code on a plain thread, outside any runtime (emits wait
/// there, as they do on a Python or C thread), without blocking the test's runtime.
async fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await.expect("producer thread")
}

/// Read `n` events named `name` from a WebSocket client; returns their first arguments.
async fn read_events(mut client: WsClient, name: &str, n: usize) -> Vec<Value> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        match client.recv_event().await {
            Some((event, mut args)) if event == name => seen.push(args.remove(0)),
            Some(_) => {}
            None => break,
        }
    }
    seen
}

/// A long-polling client: polls until `n` events arrived (answering pings), at most
/// `within`. Returns the events' first arguments in arrival order.
async fn poll_events(addr: SocketAddr, sid: &str, n: usize, within: Duration) -> Vec<Value> {
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let deadline = Instant::now() + within;
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n && Instant::now() < deadline {
        let reply = http(addr, "GET", &target, &[], b"").await;
        assert_eq!(reply.status, 200, "the session is alive: {reply:?}");
        let packets: Vec<&str> = reply.body.split('\u{1e}').collect();
        assert!(packets.len() <= 16, "at most 16 packets per response");
        for packet in packets {
            if packet == "2" {
                http(addr, "POST", &target, &[], b"3").await;
            } else if let Some(json) = packet.strip_prefix("42") {
                let mut items: Vec<Value> = serde_json::from_str(json).expect("event");
                seen.push(items.remove(1));
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_producer_slows_to_the_clients_pace_and_loses_nothing() {
    let mut cfg = config();
    // Small bounds, so that the producer outruns the clients many times over.
    cfg.engine.queue_packets = 64;
    cfg.engine.backpressure_packets = 8;
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    const CLIENTS: usize = 20;
    const EVENTS: usize = 5_000;
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let (client, _) = WsClient::connect(addr).await;
        readers.push(tokio::spawn(read_events(client, "n", EVENTS)));
    }
    let emitter = handle.emitter().clone();
    let reports = on_thread(move || {
        (0..EVENTS)
            .map(|i| emitter.emit("n", &i).expect("emit"))
            .filter(|r| !r.is_complete())
            .count()
    })
    .await;
    assert_eq!(reports, 0, "every emit reached every client");
    for reader in readers {
        let seen = reader.await.expect("reader");
        assert_eq!(seen.len(), EVENTS, "complete");
        assert!(
            seen.iter().enumerate().all(|(i, v)| *v == json!(i)),
            "in order"
        );
    }
    let m = handle.emitter().metrics();
    assert_eq!((m.slow_consumers, m.dropped_queue_full), (0, 0));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_many_threads_reaches_a_polling_client_complete_and_in_order() {
    // Default configuration: 8 threads x 2,000 small events at once to one client
    // that takes at most 16 packets per poll (as python-engineio does).
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    let connected = http(addr, "GET", &target, &[], b"").await;
    assert!(connected.body.starts_with("40"), "{connected:?}");
    const THREADS: usize = 8;
    const EACH: usize = 2_000;
    let poller = tokio::spawn(async move {
        poll_events(addr, &sid, THREADS * EACH, Duration::from_secs(60)).await
    });
    let mut producers = Vec::new();
    for t in 0..THREADS {
        let emitter = handle.emitter().clone();
        producers.push(on_thread(move || {
            for i in 0..EACH {
                let report = emitter.emit("burst", &json!([t, i])).expect("emit");
                assert!(report.is_complete(), "{report:?}");
            }
        }));
    }
    for p in producers {
        p.await;
    }
    let seen = poller.await.expect("poller");
    assert_eq!(seen.len(), THREADS * EACH, "complete");
    let mut next = [0u64; THREADS];
    for v in &seen {
        let (t, i) = (
            v[0].as_u64().expect("t") as usize,
            v[1].as_u64().expect("i"),
        );
        assert_eq!(i, next[t], "per-thread order");
        next[t] += 1;
    }
    assert_eq!(handle.emitter().metrics().slow_consumers, 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_waited_on_once_then_disconnected() {
    let mut cfg = config();
    cfg.engine.queue_packets = 16;
    cfg.engine.backpressure_packets = 8;
    cfg.emit_max_wait = Duration::from_millis(300);
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    // A polling client that connects and never polls again.
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    let (healthy, _) = WsClient::connect(addr).await;
    let reader = tokio::spawn(read_events(healthy, "n", 200));
    let emitter = handle.emitter().clone();
    let started = Instant::now();
    on_thread(move || {
        for i in 0..200 {
            emitter.emit("n", &i).expect("emit");
        }
    })
    .await;
    let took = started.elapsed();
    let seen = reader.await.expect("reader");
    assert_eq!(seen.len(), 200, "the healthy client lost nothing");
    // One wait of emit_max_wait for the stalled client, not one per emit.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let m = handle.emitter().metrics();
    assert_eq!(m.slow_consumers, 1, "counted once");
    let get = http(addr, "GET", &target, &[], b"").await;
    assert!(
        get.status == 400 || get.body.ends_with('1'),
        "the stalled client was disconnected: {get:?}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn an_emit_larger_than_a_client_queue_is_an_error_not_a_disconnect() {
    let mut cfg = config();
    cfg.engine.queue_bytes = 64 * 1024;
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let (mut client, _) = WsClient::connect(addr).await;
    let big = "x".repeat(100 * 1024);
    let err = handle.emitter().emit("big", &big).expect_err("too large");
    assert!(
        matches!(err, EmitError::TooLarge { limit, .. } if limit == 64 * 1024),
        "{err:?}"
    );
    // The client is still there and gets what fits.
    handle.emitter().emit("small", &1).expect("emit");
    assert_eq!(
        client.recv_event().await,
        Some(("small".into(), vec![json!(1)]))
    );
    assert_eq!(handle.emitter().metrics().slow_consumers, 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_shows_what_waits_for_clients() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    for i in 0..10 {
        handle.emitter().emit("n", &i).expect("emit");
    }
    let backlog = handle.emitter().backlog();
    assert_eq!(backlog.sockets, 1);
    // The CONNECT reply and the ten events, never polled.
    assert_eq!(backlog.packets, 11);
    assert_eq!(backlog.max_packets, 11);
    assert!(backlog.bytes > 11 * 64);
    handle.shutdown().await;
}
