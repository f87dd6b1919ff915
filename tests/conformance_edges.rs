//! The edges of Engine.IO v4 / Socket.IO v5 where swarmcast follows the Node reference
//! server (engine.io 6.6, socket.io 4.8) to the letter, one test each, over real sockets
//! with raw clients. Waits are bounded; no assertion depends on a tight timing.

mod fixture;

use std::time::Duration;

use fixture::{assert_unknown_sid, config, serve, Ending, PollClient, WsClient, WAIT};
use serde_json::json;
use swarmcast::Server;

/// Long enough for a request to reach the server, short enough to keep tests quick.
const SETTLE: Duration = Duration::from_millis(200);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_long_poll_closes_the_session() {
    let handle = serve(Server::new(config())).await;
    let client = PollClient::connect(handle.local_addr()).await;
    let mut get = client.start_get().await;
    assert!(!get.answered_within(SETTLE).await, "nothing to answer yet");
    drop(get);
    assert!(
        client.gone_within(WAIT).await,
        "the session ends with its GET"
    );
    assert_unknown_sid(&client.get().await);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_ends_the_pending_get_with_noop_a_server_close_with_close() {
    let mut cfg = config();
    cfg.connect_timeout = Duration::from_millis(300);
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();

    // A GET is pending when the client's CLOSE arrives.
    let client = PollClient::connect(addr).await;
    let mut get = client.start_get().await;
    assert!(!get.answered_within(SETTLE).await);
    assert_eq!(client.post("1").await.body, "ok");
    assert_eq!(get.reply().await.body, "6");
    assert_unknown_sid(&client.get().await);

    // No GET pending: the CLOSE waits briefly for the client's next GET, answers it NOOP.
    let client = PollClient::connect(addr).await;
    assert_eq!(client.post("1").await.body, "ok");
    assert_eq!(client.get().await.body, "6");
    assert!(client.gone_within(WAIT).await);

    // A close the server decides (no CONNECT within the connect timeout) answers CLOSE.
    let client = PollClient::open(addr).await;
    assert_eq!(client.start_get().await.reply().await.body, "1");
    assert_unknown_sid(&client.get().await);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_websocket_for_a_probing_or_upgraded_session_is_accepted_then_closed() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let client = PollClient::connect(addr).await;
    let mut first = WsClient::attach(addr, &client.sid).await;
    first.send("2probe").await;
    assert_eq!(first.recv_text().await.as_deref(), Some("3probe"));

    let mut while_probing = WsClient::attach(addr, &client.sid).await;
    assert_eq!(while_probing.ending(WAIT).await, Ending::CloseFrame(None));

    first.send("5").await;
    let mut after_upgrade = WsClient::attach(addr, &client.sid).await;
    assert_eq!(after_upgrade.ending(WAIT).await, Ending::CloseFrame(None));

    handle.emitter().emit("still", &1).expect("emit");
    assert_eq!(
        first.recv_event().await,
        Some(("still".into(), vec![json!(1)]))
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_at_the_ping_deadline_finds_the_session_closed() {
    let mut cfg = config();
    cfg.engine.ping_interval = Duration::from_millis(200);
    cfg.engine.ping_timeout = Duration::from_millis(800);
    let deadline = cfg.engine.ping_interval + cfg.engine.ping_timeout;
    let handle = serve(Server::new(cfg)).await;
    let client = PollClient::connect(handle.local_addr()).await;
    // The session was opened before the handshake's answer came back, so its deadline
    // (open + interval + timeout, no PONG) is at most `deadline` from here.
    let opened = tokio::time::Instant::now();
    assert!(client.alive().await, "alive before the deadline");
    tokio::time::sleep_until(opened + deadline).await;
    assert!(
        !client.alive().await,
        "closed at the deadline, not a timer tick later"
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_probe_returns_the_session_to_long_polling() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let client = PollClient::connect(addr).await;
    let mut probe = WsClient::attach(addr, &client.sid).await;
    probe.send("2probe").await;
    assert_eq!(probe.recv_text().await.as_deref(), Some("3probe"));
    probe.close().await;

    // Until the server has seen the probe go, a GET may still get NOOP at once; after
    // that, GETs wait for packets again.
    let give_up = tokio::time::Instant::now() + WAIT;
    let get = loop {
        let mut get = client.start_get().await;
        if !get.answered_within(SETTLE).await {
            break get;
        }
        assert_eq!(get.reply().await.body, "6");
        assert!(
            tokio::time::Instant::now() < give_up,
            "GETs still answered NOOP at once after the probe closed"
        );
    };
    handle.emitter().emit("after", &1).expect("emit");
    let mut body = get.reply().await.body;
    if body == "6" {
        // That GET came while the probe was still known after all (a loaded machine):
        // the event waits for the next one.
        body = client.get().await.body;
    }
    assert_eq!(body, r#"42["after",1]"#);

    // Another probe may come, and upgrade.
    let mut ws = WsClient::attach(addr, &client.sid).await;
    ws.upgrade().await;
    handle.emitter().emit("upgraded", &2).expect("emit");
    assert_eq!(
        ws.recv_event().await,
        Some(("upgraded".into(), vec![json!(2)]))
    );
    handle.shutdown().await;
}

/// The reference (engine.io 6.6) answers 413, drops the body and keeps the session;
/// tests/js/protocol_http.test.mjs checks the same with fetch().
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_post_gets_413_and_the_session_goes_on() {
    let mut cfg = config();
    cfg.engine.max_payload = 1000;
    let handle = serve(Server::new(cfg)).await;
    let addr = handle.local_addr();
    let client = PollClient::connect(addr).await;
    let big = format!(r#"42["x","{}"]"#, "y".repeat(2000));
    assert_eq!(client.post(&big).await.status, 413);
    assert!(client.alive().await, "the session goes on");
    handle.emitter().emit("after", &1).expect("emit");
    assert_eq!(client.get().await.body, r#"42["after",1]"#);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ping_closes_the_session() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let client = PollClient::connect(addr).await;
    assert_eq!(client.post("2").await.status, 400);
    assert_unknown_sid(&client.get().await);

    let (mut ws, _) = WsClient::connect(addr).await;
    ws.send("2").await;
    assert!(ws.closed_within(WAIT).await);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_for_a_namespace_joined_twice_or_never_close_the_connection() {
    let server = Server::new(config());
    server.namespace("/chat");
    let handle = serve(server).await;
    let addr = handle.local_addr();
    for bad in ["40", r#"42/chat,["x"]"#, "43/chat,1[]", "41/chat,"] {
        let (mut ws, _) = WsClient::connect(addr).await;
        ws.send(bad).await;
        assert!(
            ws.closed_within(WAIT).await,
            "{bad:?} closes the connection"
        );
    }
    // Once joined, the same packet is fine.
    let (mut ws, _) = WsClient::connect(addr).await;
    ws.connect_ns("/chat", None).await.expect("joined");
    ws.send(r#"42/chat,["x"]"#).await;
    assert!(!ws.closed_within(SETTLE).await);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numeric_event_name_reaches_the_handler_as_a_string() {
    let server = Server::new(config());
    server.namespace("/").on("1", |socket, event, _ack| {
        let _ = socket.emit(
            "seen",
            &json!({"name": event.name, "args": event.payload.args}),
        );
    });
    let handle = serve(server).await;
    let (mut ws, _) = WsClient::connect(handle.local_addr()).await;
    ws.send("42[1,2]").await;
    assert_eq!(
        ws.recv_event().await,
        Some(("seen".into(), vec![json!({"name": "1", "args": [2]})]))
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_probe_is_closed_with_a_close_frame_and_the_session_goes_on() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let client = PollClient::connect(addr).await;

    let mut not_a_probe = WsClient::attach(addr, &client.sid).await;
    not_a_probe.send("4hello").await;
    assert_eq!(not_a_probe.ending(WAIT).await, Ending::CloseFrame(None));

    let mut binary_first = WsClient::attach(addr, &client.sid).await;
    binary_first.send_binary(&[1, 2, 3]).await;
    assert_eq!(binary_first.ending(WAIT).await, Ending::CloseFrame(None));

    assert!(client.alive().await, "the polling session goes on");
    let mut ws = WsClient::attach(addr, &client.sid).await;
    ws.upgrade().await;
    handle.emitter().emit("upgraded", &3).expect("emit");
    assert_eq!(
        ws.recv_event().await.map(|e| e.0).as_deref(),
        Some("upgraded")
    );
    handle.shutdown().await;
}

fn binary_event(attachments: usize) -> String {
    let placeholders: Vec<_> = (0..attachments)
        .map(|num| json!({"_placeholder": true, "num": num}))
        .collect();
    let mut args = vec![json!("up")];
    args.extend(placeholders);
    format!("45{attachments}-{}", serde_json::Value::Array(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_attachments_are_accepted_by_default_eleven_close_the_connection() {
    let server = Server::new(config());
    server.namespace("/").on("up", |socket, event, _ack| {
        let _ = socket.emit("attachments", &event.payload.attachments.len());
    });
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let (mut ws, _) = WsClient::connect(addr).await;
    ws.send(&binary_event(10)).await;
    for i in 0..10u8 {
        ws.send_binary(&[i]).await;
    }
    assert_eq!(
        ws.recv_event().await,
        Some(("attachments".into(), vec![json!(10)]))
    );

    let (mut ws, _) = WsClient::connect(addr).await;
    ws.send(&binary_event(11)).await;
    assert!(ws.closed_within(WAIT).await, "11 attachments close it");
    handle.shutdown().await;
}
