//! Async event handlers (`Namespace::on_async`): over a real WebSocket, 1,000 events
//! whose handlers await a timer before acking are all acked, in order; a handler that
//! spawns runs concurrently by choice; a client whose events pile up past the bound is
//! disconnected; async code emits without blocking.

mod fixture;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fixture::{config, serve, WsClient, WAIT};
use serde_json::json;
use swarmcast::Server;

const EVENTS: u64 = 1_000;

/// The ack id and first argument of an ACK packet on `/`.
fn parse_ack(text: &str) -> (u64, serde_json::Value) {
    let body = text.strip_prefix("43").expect("an ACK");
    let split = body.find('[').expect("ack args");
    let id = body[..split].parse().expect("ack id");
    let args: serde_json::Value = serde_json::from_str(&body[split..]).expect("JSON");
    (id, args[0].clone())
}

#[tokio::test]
async fn a_thousand_acks_from_handlers_that_await_come_back_in_order() {
    let server = Server::new(config());
    let running = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicUsize::new(0));
    let (r, o) = (running.clone(), overlapped.clone());
    server
        .namespace("/")
        .on_async("work", move |socket, event, ack| {
            let (running, overlapped) = (r.clone(), o.clone());
            async move {
                if running.fetch_add(1, Ordering::SeqCst) > 0 {
                    overlapped.fetch_add(1, Ordering::SeqCst);
                }
                let n = event.payload.args[0].as_u64().unwrap_or(0);
                // Later events wait less: only running them in turn keeps the order.
                tokio::time::sleep(Duration::from_micros(300 - (n % 300))).await;
                running.fetch_sub(1, Ordering::SeqCst);
                if let Some(ack) = ack {
                    let _ = ack.send(&json!({"n": n, "sid": socket.id()}));
                }
            }
        });
    let handle = serve(server).await;
    let (mut client, sid) = WsClient::connect(handle.local_addr()).await;
    for n in 0..EVENTS {
        client.send(&format!("42{n}[\"work\",{n}]")).await;
    }
    for n in 0..EVENTS {
        let text = tokio::time::timeout(WAIT, client.recv_text())
            .await
            .expect("ack in time")
            .expect("ack");
        let (id, body) = parse_ack(&text);
        assert_eq!((id, body["n"].as_u64()), (n, Some(n)), "ack {n}: {text}");
        assert_eq!(body["sid"], json!(sid));
    }
    assert_eq!(overlapped.load(Ordering::SeqCst), 0, "handlers overlapped");
    handle.shutdown().await;
}

#[tokio::test]
async fn sockets_run_concurrently_and_a_handler_may_spawn_to_run_concurrently() {
    let server = Server::new(config());
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let ns = server.namespace("/");
    // `wait` holds its socket's queue until `open` (from another socket) opens it.
    ns.on_async("wait", move |_socket, _event, ack| {
        let gate = g.clone();
        async move {
            gate.notified().await;
            if let Some(ack) = ack {
                let _ = ack.send(&"released");
            }
        }
    });
    let g = gate.clone();
    ns.on_async("open", move |_socket, _event, ack| {
        let gate = g.clone();
        async move {
            gate.notify_one();
            if let Some(ack) = ack {
                let _ = ack.send(&"opened");
            }
        }
    });
    // Spawning inside the handler: this event's work does not hold the queue.
    ns.on_async("spawned", |_socket, _event, ack| async move {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if let Some(ack) = ack {
                let _ = ack.send(&"late");
            }
        });
    });
    ns.on_async("quick", |_socket, _event, ack| async move {
        if let Some(ack) = ack {
            let _ = ack.send(&"quick");
        }
    });
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let (mut a, _) = WsClient::connect(addr).await;
    let (mut b, _) = WsClient::connect(addr).await;

    a.send("421[\"wait\"]").await;
    // a's queue is held; b's is not.
    b.send("422[\"open\"]").await;
    assert_eq!(b.recv_text().await.as_deref(), Some("432[\"opened\"]"));
    assert_eq!(a.recv_text().await.as_deref(), Some("431[\"released\"]"));

    a.send("423[\"spawned\"]").await;
    a.send("424[\"quick\"]").await;
    assert_eq!(a.recv_text().await.as_deref(), Some("434[\"quick\"]"));
    assert_eq!(a.recv_text().await.as_deref(), Some("433[\"late\"]"));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_client_whose_events_pile_up_is_disconnected_and_the_others_go_on() {
    let server = Server::new(config());
    let stuck = Arc::new(tokio::sync::Notify::new());
    let s = stuck.clone();
    let ns = server.namespace("/");
    ns.on_async("stuck", move |_socket, _event, _ack| {
        let stuck = s.clone();
        async move { stuck.notified().await }
    });
    ns.on_async("ping", |_socket, _event, ack| async move {
        if let Some(ack) = ack {
            let _ = ack.send(&"pong");
        }
    });
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let (mut flooder, _) = WsClient::connect(addr).await;
    let (mut other, _) = WsClient::connect(addr).await;
    for _ in 0..1_100 {
        flooder.send("42[\"stuck\"]").await;
    }
    // The server's DISCONNECT for `/`, then nothing more from it on this socket.
    let disconnected = tokio::time::timeout(WAIT, async {
        while let Some(text) = flooder.recv_text().await {
            if text == "41" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(disconnected, Ok(true));
    other.send("421[\"ping\"]").await;
    assert_eq!(other.recv_text().await.as_deref(), Some("431[\"pong\"]"));
    handle.shutdown().await;
}

#[tokio::test]
async fn async_code_emits_without_blocking_and_can_pace_itself() {
    let server = Server::new(config());
    server
        .namespace("/")
        .on_async("fanout", |socket, _event, _ack| async move {
            let emitter = socket.broadcast();
            for n in 0..100u32 {
                // `ready` waits (asynchronously) while a recipient is over its watermark.
                let _ = emitter.ready(Duration::from_secs(2)).await;
                let _ = socket.emit("n", &n);
            }
        });
    let handle = serve(server).await;
    let (mut client, _) = WsClient::connect(handle.local_addr()).await;
    client.send("42[\"fanout\"]").await;
    for n in 0..100u32 {
        let event = tokio::time::timeout(WAIT, client.recv_event()).await;
        assert_eq!(
            event.expect("in time"),
            Some(("n".to_string(), vec![json!(n)]))
        );
    }
    handle.shutdown().await;
}
