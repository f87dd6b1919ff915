//! The event pipeline over real sockets: keyed state, subscriptions, slow consumers,
//! connection state recovery.

mod fixture;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixture::{config, http, polling_handshake, serve, WsClient};
use serde_json::{json, Value};
use swarmcast::{RecoveryConfig, Server};

fn subscribing_config() -> swarmcast::ServerConfig {
    let mut cfg = config();
    cfg.allow_subscribe = vec!["state:*".into(), "agents:*".into()];
    cfg
}

/// Send an event with ack id `id` and return (events received before the ack, ack args).
async fn call(
    c: &mut WsClient,
    id: u64,
    event: &str,
    arg: Value,
) -> (Vec<(String, Vec<Value>)>, Value) {
    c.send(&format!("42{id}{}", json!([event, arg]))).await;
    let mut before = Vec::new();
    loop {
        let text = c.recv_text().await.expect("reply");
        if let Some(rest) = text.strip_prefix(&format!("43{id}")) {
            let args: Value = serde_json::from_str(rest).expect("ack json");
            return (before, args[0].clone());
        }
        let items: Vec<Value> = serde_json::from_str(text.strip_prefix("42").expect("event"))
            .unwrap_or_else(|e| panic!("{e}: {text}"));
        before.push((
            items[0].as_str().expect("name").to_string(),
            items[1..].to_vec(),
        ));
    }
}

#[tokio::test]
async fn state_subscribers_get_a_snapshot_then_deltas() {
    let server = Server::new(subscribing_config());
    let agents = server.state("agents");
    agents.set("a1", &json!({"status": "idle"})).expect("set");
    agents
        .set("a2", &json!({"status": "working"}))
        .expect("set");
    let handle = serve(server).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    let (before, ack) = call(&mut c, 1, "subscribe", json!({"state": "agents"})).await;
    assert_eq!(ack, json!({"ok": true}));
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].0, "swarmcast:snapshot");
    assert_eq!(
        before[0].1[0],
        json!({"map": "agents", "version": 2, "entries": {"a1": {"status": "idle"}, "a2": {"status": "working"}}})
    );
    agents
        .set("a1", &json!({"status": "thinking"}))
        .expect("set");
    assert!(agents.delete("a2"));
    assert_eq!(
        c.recv_event().await,
        Some((
            "swarmcast:delta".into(),
            vec![
                json!({"map": "agents", "version": 3, "key": "a1", "value": {"status": "thinking"}})
            ]
        ))
    );
    assert_eq!(
        c.recv_event().await,
        Some((
            "swarmcast:delta".into(),
            vec![json!({"map": "agents", "version": 4, "key": "a2", "deleted": true})]
        ))
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_lagging_subscriber_gets_the_latest_value_once_per_key() {
    let server = Server::new(subscribing_config());
    let agents = server.state("agents");
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    http(addr, "GET", &target, &[], b"").await; // CONNECT reply
    http(
        addr,
        "POST",
        &target,
        &[],
        br#"42["subscribe",{"state":"agents"}]"#,
    )
    .await;
    http(addr, "GET", &target, &[], b"").await; // snapshot
                                                // The client does not poll while 1,000 updates of two keys happen.
    for i in 0..1000 {
        agents.set("a", &i).expect("set");
        agents.set("b", &-i).expect("set");
    }
    let body = http(addr, "GET", &target, &[], b"").await.body;
    let packets: Vec<&str> = body.split('\u{1e}').collect();
    assert_eq!(packets.len(), 2, "one delta per key: {body}");
    assert!(packets[0].contains(r#""key":"a","value":999"#), "{body}");
    assert!(packets[1].contains(r#""key":"b","value":-999"#), "{body}");
    handle.shutdown().await;
}

#[tokio::test]
async fn subscriptions_honour_the_allow_list_and_filters() {
    let server = Server::new(subscribing_config());
    let agents = server.state("agents");
    for k in ["a1", "a2", "a3"] {
        agents.set(k, &k).expect("set");
    }
    let handle = serve(server).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    let (_, ack) = call(&mut c, 1, "subscribe", json!({"room": "secret"})).await;
    assert_eq!(ack, json!({"ok": false, "error": "not allowed"}));
    let (_, ack) = call(&mut c, 2, "subscribe", json!({"nonsense": 1})).await;
    assert_eq!(ack["ok"], false);
    let (_, ack) = call(
        &mut c,
        3,
        "subscribe",
        json!({"room": "agents:7", "events": ["status"]}),
    )
    .await;
    assert_eq!(ack, json!({"ok": true}));
    let (before, _) = call(
        &mut c,
        4,
        "subscribe",
        json!({"state": "agents", "keys": ["a2"]}),
    )
    .await;
    assert_eq!(
        before[0].1[0]["entries"],
        json!({"a2": "a2"}),
        "filtered snapshot"
    );

    let emitter = handle.emitter();
    emitter.to("agents:7").emit("chatter", &1).expect("emit");
    emitter
        .to("agents:7")
        .emit("status", &"busy")
        .expect("emit");
    agents.set("a1", &"x").expect("set");
    agents.set("a2", &"y").expect("set");
    assert_eq!(
        c.recv_event().await,
        Some(("status".into(), vec![json!("busy")]))
    );
    let (name, args) = c.recv_event().await.expect("delta");
    assert_eq!(
        (name.as_str(), &args[0]["key"]),
        ("swarmcast:delta", &json!("a2"))
    );
    let (_, ack) = call(&mut c, 5, "unsubscribe", json!({"room": "agents:7"})).await;
    assert_eq!(ack, json!({"ok": true}));
    emitter
        .to("agents:7")
        .emit("status", &"gone")
        .expect("emit");
    emitter.emit("marker", &0).expect("emit");
    assert_eq!(
        c.recv_event().await.expect("event").0,
        "marker",
        "nothing after unsubscribe"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_with_a_clear_reason() {
    let mut cfg = config();
    cfg.engine.queue_packets = 10;
    let server = Server::new(cfg);
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let seen = reasons.clone();
    server.namespace("/").on_disconnect(move |_s, reason| {
        seen.lock().expect("lock").push(reason.to_string());
    });
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let sid = polling_handshake(addr).await;
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    http(addr, "POST", &target, &[], b"40").await;
    let (mut fast, _) = WsClient::connect(addr).await;
    // The fast client's queue holds the whole burst; the silent one's also holds its
    // CONNECT reply, so the last packet overflows it.
    for i in 0..10 {
        handle.emitter().emit("n", &i).expect("emit");
    }
    for i in 0..10 {
        assert_eq!(fast.recv_event().await, Some(("n".into(), vec![json!(i)])));
    }
    assert_eq!(
        *reasons.lock().expect("lock"),
        vec!["slow consumer".to_string()]
    );
    assert_eq!(handle.emitter().metrics().slow_consumers, 1);
    let get = http(addr, "GET", &target, &[], b"").await;
    assert!(
        get.body.ends_with('1') || get.status == 400,
        "the session is closed: {get:?}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_dropped_client_recovers_its_sid_rooms_and_missed_packets() {
    let mut cfg = config();
    cfg.recovery = Some(RecoveryConfig::default());
    let server = Server::new(cfg);
    server.namespace("/").on("join", |socket, event, _| {
        if let Some(room) = event.payload.args.first().and_then(Value::as_str) {
            socket.join(room);
        }
    });
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let mut c = WsClient::open(addr, "/socket.io").await;
    c.send("40").await;
    let reply: Value =
        serde_json::from_str(&c.recv_text().await.expect("reply")[2..]).expect("json");
    let (sid, pid) = (reply["sid"].clone(), reply["pid"].clone());
    assert!(pid.is_string(), "CONNECT reply carries a pid: {reply}");
    c.send(r#"42["join","blue"]"#).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let emitter = handle.emitter();
    emitter.to("blue").emit("n", &1).expect("emit");
    let (_, args) = c.recv_event().await.expect("n 1");
    let offset = args[1]
        .as_str()
        .expect("offset is the last argument")
        .to_string();
    drop(c); // the network goes away

    tokio::time::sleep(Duration::from_millis(200)).await;
    emitter.to("blue").emit("n", &2).expect("emit");
    emitter.to("red").emit("n", &99).expect("emit");
    emitter.emit("n", &3).expect("emit");

    let mut back = WsClient::open(addr, "/socket.io").await;
    back.send(&format!("40{}", json!({"pid": pid, "offset": offset})))
        .await;
    let reply: Value =
        serde_json::from_str(&back.recv_text().await.expect("reply")[2..]).expect("json");
    assert_eq!(
        (reply["sid"].clone(), reply["pid"].clone()),
        (sid, pid.clone())
    );
    let got: Vec<Value> = [back.recv_event().await, back.recv_event().await]
        .into_iter()
        .map(|e| e.expect("missed packet").1[0].clone())
        .collect();
    assert_eq!(
        got,
        vec![json!(2), json!(3)],
        "the missed packets, not room red's"
    );
    emitter.to("blue").emit("n", &4).expect("emit");
    assert_eq!(
        back.recv_event().await.expect("live again").1[0],
        json!(4),
        "rooms intact"
    );
    assert_eq!(handle.emitter().metrics().recoveries, 1);

    // An unknown pid gets a fresh session.
    let mut late = WsClient::open(addr, "/socket.io").await;
    late.send(&format!("40{}", json!({"pid": "gone", "offset": "1"})))
        .await;
    let reply: Value =
        serde_json::from_str(&late.recv_text().await.expect("reply")[2..]).expect("json");
    assert_ne!(reply["pid"], pid);
    handle.shutdown().await;
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let handle = serve(Server::new(config())).await;
    let addr = handle.local_addr();
    let (mut a, _) = WsClient::connect(addr).await;
    let (mut b, _) = WsClient::connect(addr).await;
    for i in 0..5 {
        handle.emitter().emit("n", &i).expect("emit");
    }
    for _ in 0..5 {
        a.recv_event().await.expect("a");
        b.recv_event().await.expect("b");
    }
    let reply = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200);
    let value = |name: &str| -> f64 {
        reply
            .body
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {}", reply.body))
    };
    assert_eq!(value("swarmcast_events_emitted_total"), 5.0);
    assert_eq!(value("swarmcast_events_delivered_total"), 10.0);
    assert_eq!(value("swarmcast_connects_total"), 2.0);
    assert_eq!(
        value(r#"swarmcast_connections{namespace="/",transport="websocket"}"#),
        2.0
    );
    assert!(value("swarmcast_flushes_total") >= 1.0);
    assert!(
        value("swarmcast_frames_out_total") >= 12.0,
        "2 CONNECT replies + 10 events"
    );
    assert!(reply.body.contains("swarmcast_batch_size_bucket"));
    assert!(reply.body.trim_end().ends_with("# EOF"));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_window_gathers_frames_into_few_writes() {
    let mut cfg = config();
    cfg.engine.batch_window = Duration::from_millis(300);
    let handle = serve(Server::new(cfg)).await;
    let (mut c, _) = WsClient::connect(handle.local_addr()).await;
    // Quiet for longer than a window (that the first packet after it is not held is
    // the unit test of batch.rs).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = handle.metrics();
    handle.emitter().emit("first", &0).expect("emit");
    assert_eq!(c.recv_event().await.expect("first").0, "first");
    for i in 0..100 {
        handle.emitter().emit("n", &i).expect("emit");
    }
    for i in 0..100 {
        assert_eq!(c.recv_event().await, Some(("n".into(), vec![json!(i)])));
    }
    let after = handle.metrics();
    let flushes = after.flushes - before.flushes;
    let frames = after.frames_out - before.frames_out;
    assert_eq!(frames, 101);
    assert!(flushes <= 4, "101 frames in {flushes} writes");
    handle.shutdown().await;
}
