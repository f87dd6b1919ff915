//! Several swarmcast nodes joined through Redis (feature `redis`): broadcasts, rooms,
//! listings, disconnects and keyed state across nodes, publishing without a server,
//! recovery on another node, and a Redis restart mid-stream. Each test starts its own
//! `redis-server` on a free loopback port and stops it.
#![cfg(feature = "redis")]

mod cluster_support;
mod fixture;

use std::time::{Duration, Instant};

use cluster_support::{connect_with, eventually, next_event, node, quiet, Redis};
use fixture::WsClient;
use serde_json::{json, Value};
use swarmcast::RedisEmitter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_from_either_node_reaches_every_client_once() {
    for recovery in [false, true] {
        let redis = Redis::start();
        let a = node(&redis, recovery).await;
        let b = node(&redis, recovery).await;
        let (mut a1, _) = WsClient::connect(a.local_addr()).await;
        let (mut b1, _) = WsClient::connect(b.local_addr()).await;
        let (mut b2, _) = WsClient::connect(b.local_addr()).await;

        a.emitter().emit("from_a", &json!({"n": 1})).expect("emit");
        b.emitter().emit("from_b", &json!({"n": 2})).expect("emit");
        for c in [&mut a1, &mut b1, &mut b2] {
            let mut got = Vec::new();
            for _ in 0..2 {
                let (name, args) = next_event(c).await.expect("an event");
                if recovery {
                    // The offset is the log id, appended as the last argument.
                    let offset = args.last().and_then(Value::as_str).expect("an offset");
                    assert!(offset.contains('-'), "a stream id: {offset}");
                }
                got.push((name, args[0].clone()));
            }
            got.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(
                got,
                vec![
                    ("from_a".to_string(), json!({"n": 1})),
                    ("from_b".to_string(), json!({"n": 2}))
                ],
                "recovery {recovery}"
            );
            assert!(quiet(c, Duration::from_millis(300)).await, "exactly once");
        }
        assert!(b.emitter().cluster_metrics().remote_deliveries >= 1);
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_exceptions_work_across_nodes() {
    let redis = Redis::start();
    let a = node(&redis, false).await;
    let b = node(&redis, false).await;
    let (mut a1, a1_sid) = WsClient::connect(a.local_addr()).await;
    let (mut b1, b1_sid) = WsClient::connect(b.local_addr()).await;
    let (mut b2, _) = WsClient::connect(b.local_addr()).await;
    let na = a.emitter().namespace("/").expect("root");
    let nb = b.emitter().namespace("/").expect("root");
    assert!(na.join_room(&a1_sid, "r"));
    assert!(nb.join_room(&b1_sid, "r"));

    // To a room on both nodes.
    a.emitter().to("r").emit("room", &1).expect("emit");
    assert_eq!(next_event(&mut a1).await.expect("a1").0, "room");
    assert_eq!(next_event(&mut b1).await.expect("b1").0, "room");
    assert!(quiet(&mut b2, Duration::from_millis(300)).await);

    // Except a socket of the other node.
    a.emitter()
        .to("r")
        .except(b1_sid.as_str())
        .emit("room_but_b1", &2)
        .expect("emit");
    assert_eq!(next_event(&mut a1).await.expect("a1").0, "room_but_b1");
    assert!(quiet(&mut b1, Duration::from_millis(300)).await);

    // To one socket by id, from the node that does not hold it.
    a.emitter()
        .to(b1_sid.as_str())
        .emit("direct", &3)
        .expect("emit");
    assert_eq!(next_event(&mut b1).await.expect("b1").0, "direct");
    assert!(quiet(&mut a1, Duration::from_millis(300)).await);
    assert!(quiet(&mut b2, Duration::from_millis(100)).await);

    // Everyone except a room.
    b.emitter()
        .of("/")
        .except("r")
        .emit("not_r", &4)
        .expect("emit");
    assert_eq!(next_event(&mut b2).await.expect("b2").0, "not_r");
    assert!(quiet(&mut a1, Duration::from_millis(300)).await);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_listing_and_disconnect_work_across_nodes() {
    let redis = Redis::start();
    let a = node(&redis, false).await;
    let b = node(&redis, false).await;
    let (_a1, a1_sid) = WsClient::connect(a.local_addr()).await;
    let (mut b1, b1_sid) = WsClient::connect(b.local_addr()).await;
    let na = a.emitter().namespace("/").expect("root");
    let nb = b.emitter().namespace("/").expect("root");
    na.join_room(&a1_sid, "r");
    nb.join_room(&b1_sid, "r");

    // Every socket of the room, from node A.
    let mut found = a
        .emitter()
        .of("/")
        .to("r")
        .fetch_sockets()
        .await
        .expect("listing");
    found.sort_by(|x, y| x.id.cmp(&y.id));
    let mut ids: Vec<(String, bool)> = found.iter().map(|s| (s.id.clone(), s.local)).collect();
    ids.sort();
    let mut expected = vec![(a1_sid.clone(), true), (b1_sid.clone(), false)];
    expected.sort();
    assert_eq!(ids, expected);
    let remote = found.iter().find(|s| !s.local).expect("b1");
    assert_eq!(remote.rooms, vec![b1_sid.clone(), "r".to_string()]);

    // The rooms of a socket of the other node.
    assert_eq!(
        na.fetch_rooms(&b1_sid).await,
        vec![b1_sid.clone(), "r".to_string()]
    );
    // Join and leave by id, from the node that does not hold the socket.
    assert!(!na.join_room(&b1_sid, "z"), "not local");
    let sid = b1_sid.clone();
    eventually(|| nb.rooms(&sid).contains(&"z".to_string()), "b1 in z").await;
    na.leave_room(&b1_sid, "z");
    eventually(|| !nb.rooms(&sid).contains(&"z".to_string()), "b1 out of z").await;
    // Operations on whole targets.
    a.emitter()
        .of("/")
        .to("r")
        .sockets_join("both")
        .expect("join");
    eventually(
        || nb.rooms(&sid).contains(&"both".to_string()),
        "b1 in both",
    )
    .await;
    assert!(na.rooms(&a1_sid).contains(&"both".to_string()));

    // Disconnect by id across nodes: the client gets DISCONNECT.
    assert!(!na.disconnect(&b1_sid));
    let text = b1.recv_text().await.expect("disconnect packet");
    assert_eq!(text, "41");
    eventually(|| nb.socket(&sid).is_none(), "b1 gone").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_snapshot_is_served_by_the_node_that_did_not_write_it() {
    let redis = Redis::start();
    let a = node(&redis, false).await;
    let b = node(&redis, false).await;
    let agents = a.emitter().state("agents");
    for i in 0..20 {
        agents.set(&format!("a{i}"), &json!({"n": i})).expect("set");
    }
    agents.delete("a0");
    // B's copy converges through the log.
    let b_agents = b.emitter().state("agents");
    eventually(|| b_agents.len() == 19, "B has the map").await;

    // A client of B subscribes: snapshot from B, then deltas written on A.
    let (mut b1, _) = WsClient::connect(b.local_addr()).await;
    b1.send(r#"42["subscribe",{"state":"agents"}]"#).await;
    let (name, args) = next_event(&mut b1).await.expect("snapshot");
    assert_eq!(name, "swarmcast:snapshot");
    let entries = args[0]["entries"].as_object().expect("entries").clone();
    assert_eq!(entries.len(), 19);
    assert_eq!(entries["a7"], json!({"n": 7}));
    assert_eq!(args[0]["version"], json!(21));
    agents.set("a1", &json!({"n": 100})).expect("set");
    let (name, args) = next_event(&mut b1).await.expect("delta");
    assert_eq!(name, "swarmcast:delta");
    assert_eq!(args[0]["key"], "a1");
    assert_eq!(args[0]["value"], json!({"n": 100}));
    assert_eq!(args[0]["version"], json!(22));

    // A node started later serves the same snapshot, loaded from Redis.
    let c = node(&redis, false).await;
    let c_agents = c.emitter().state("agents");
    assert_eq!(c_agents.len(), 19);
    assert_eq!(c_agents.get("a1"), Some(json!({"n": 100})));
    assert_eq!(c_agents.version(), 22);
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_emitter_publishes_without_a_server() {
    let redis = Redis::start();
    let a = node(&redis, true).await;
    let b = node(&redis, false).await;
    let (mut a1, a1_sid) = WsClient::connect(a.local_addr()).await;
    let (mut b1, b1_sid) = WsClient::connect(b.local_addr()).await;
    let (mut b2, _) = WsClient::connect(b.local_addr()).await;
    a.emitter()
        .namespace("/")
        .expect("root")
        .join_room(&a1_sid, "news");
    b.emitter()
        .namespace("/")
        .expect("root")
        .join_room(&b1_sid, "news");

    let emitter = RedisEmitter::with_config(redis.config())
        .await
        .expect("connects");
    let id = emitter
        .to("news")
        .emit("headline", &json!({"t": "hi"}))
        .await
        .expect("published");
    let (name, args) = next_event(&mut a1).await.expect("a1");
    assert_eq!(name, "headline");
    // Node A recovers: the offset is the entry's log id.
    assert_eq!(args.last(), Some(&json!(id)));
    let (name, args) = next_event(&mut b1).await.expect("b1");
    assert_eq!((name.as_str(), &args[0]), ("headline", &json!({"t": "hi"})));
    assert!(quiet(&mut b2, Duration::from_millis(300)).await);
    assert!(emitter.emit("connect", &1).await.is_err(), "reserved name");

    // Keyed state from the emitter reaches the nodes' copies.
    emitter
        .set_state("/", "jobs", "j1", &json!("queued"))
        .await
        .expect("state");
    let jobs = b.emitter().state("jobs");
    eventually(|| jobs.get("j1") == Some(json!("queued")), "B sees j1").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_on_another_node_with_every_missed_packet() {
    let redis = Redis::start();
    let a = node(&redis, true).await;
    let b = node(&redis, true).await;
    let (mut c, hello) = connect_with(a.local_addr(), json!({})).await;
    let pid = hello["pid"].as_str().expect("pid").to_string();
    let sid = hello["sid"].as_str().expect("sid").to_string();
    a.emitter()
        .namespace("/")
        .expect("root")
        .join_room(&sid, "team");
    let mut last = String::new();
    for seq in 0..5 {
        b.emitter().to("team").emit("n", &seq).expect("emit");
        let (_, args) = next_event(&mut c).await.expect("event");
        assert_eq!(args[0], json!(seq));
        last = args[1].as_str().expect("offset").to_string();
    }
    // The client drops (its node stays up: the session was written while it lived).
    drop(c);
    eventually(
        || {
            a.emitter()
                .namespace("/")
                .expect("root")
                .socket(&sid)
                .is_none()
        },
        "A noticed",
    )
    .await;
    for seq in 5..10 {
        b.emitter().to("team").emit("n", &seq).expect("emit");
    }
    b.emitter().to("other").emit("n", &-1).expect("emit");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut c, hello) = connect_with(b.local_addr(), json!({"pid": pid, "offset": last})).await;
    assert_eq!(hello["sid"], json!(sid), "same socket id on node B");
    for seq in 5..10 {
        let (_, args) = next_event(&mut c).await.expect("missed event");
        assert_eq!(args[0], json!(seq));
    }
    b.emitter().to("team").emit("n", &10).expect("emit");
    let (_, args) = next_event(&mut c).await.expect("live event");
    assert_eq!(args[0], json!(10), "rooms kept, no duplicate");
    assert_eq!(b.emitter().metrics().recoveries, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_keeps_local_delivery_and_publishes_the_outage_after() {
    let mut redis = Redis::start();
    let a = node(&redis, false).await;
    let b = node(&redis, false).await;
    let (mut a1, _) = WsClient::connect(a.local_addr()).await;
    let (mut b1, _) = WsClient::connect(b.local_addr()).await;
    a1.send(r#"42["subscribe",{"state":"s"}]"#).await;
    assert_eq!(
        next_event(&mut a1).await.expect("snapshot").0,
        "swarmcast:snapshot"
    );
    a.emitter().emit("before", &0).expect("emit");
    assert_eq!(next_event(&mut b1).await.expect("b1").0, "before");
    assert_eq!(next_event(&mut a1).await.expect("a1").0, "before");

    redis.kill();
    // Local delivery goes on; what must cross waits in the outage buffer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        a.emitter().emit("during", &n).expect("emit never fails");
        assert_eq!(next_event(&mut a1).await.expect("local").1[0], json!(n));
        n += 1;
        let m = a.emitter().cluster_metrics();
        if !m.redis_connected && m.outage_buffer_messages > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the outage is seen: {m:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Keyed state: this node's subscribers still get the change.
    a.emitter().state("s").set("k", &7).expect("set");
    let (name, args) = next_event(&mut a1).await.expect("local delta");
    assert_eq!(name, "swarmcast:delta");
    assert_eq!(
        (&args[0]["key"], &args[0]["value"]),
        (&json!("k"), &json!(7))
    );
    assert_eq!(a.emitter().state("s").get("k"), Some(json!(7)));
    redis.spawn();
    // The cluster heals: B gets everything A published during the outage, in order.
    for i in 0..n {
        let (name, args) = next_event(&mut b1).await.expect("buffered event");
        assert_eq!((name.as_str(), &args[0]), ("during", &json!(i)));
    }
    a.emitter().emit("after", &1).expect("emit");
    assert_eq!(next_event(&mut b1).await.expect("b1").0, "after");
    let m = a.emitter().cluster_metrics();
    assert!(m.outage_published >= n, "{m:?}");
    assert!(m.reconnects > 0, "{m:?}");
    assert_eq!(m.outage_dropped, 0);
    // And /metrics shows it.
    let reply = fixture::http(a.local_addr(), "GET", "/metrics", &[], b"").await;
    assert!(reply
        .body
        .contains("swarmcast_cluster_outage_published_total"));
    assert!(reply.body.contains("swarmcast_cluster_redis_connected 1"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cluster_messages_are_dropped() {
    let redis = Redis::start();
    let a = node(&redis, true).await;
    let (mut a1, _) = WsClient::connect(a.local_addr()).await;
    // Raw garbage in the stream and on the channels.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .expect("redis");
    for cmd in [
        &b"XADD socket.io * uid x nsp / type 3 data {broken\r\n"[..],
        b"XADD socket.io * uid x nsp / type zz\r\n",
        b"XADD socket.io * nothing here\r\n",
        b"PUBLISH socket.io#/# garbage\r\n",
        b"PUBLISH socket.io#/#room# \xc1\xc1\r\n",
    ] {
        raw.write_all(cmd).await.expect("write");
    }
    let mut buf = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_millis(200), raw.read(&mut buf)).await;
    a.emitter().emit("still", &1).expect("emit");
    assert_eq!(next_event(&mut a1).await.expect("alive").0, "still");
    eventually(|| a.emitter().cluster_metrics().malformed >= 2, "counted").await;
    a.shutdown().await;
}

/// A subscribed client's copy of a map, kept as `swarmcast.live_state` keeps it: a
/// snapshot replaces everything; a delta applies when newer than the snapshot and than
/// the last change of its key (versions are monotonic per key, docs/protocol.md).
#[derive(Default)]
struct View {
    floor: u64,
    keys: std::collections::HashMap<String, u64>,
    entries: serde_json::Map<String, Value>,
}

fn fold_state(view: &mut View, name: &str, args: &[Value]) {
    let body = &args[0];
    let version = body["version"].as_u64().unwrap_or(0);
    match name {
        "swarmcast:snapshot" => {
            *view = View {
                floor: version,
                keys: Default::default(),
                entries: body["entries"].as_object().cloned().unwrap_or_default(),
            };
        }
        "swarmcast:delta" => {
            let key = body["key"].as_str().unwrap_or_default().to_string();
            if version <= view.floor || version <= view.keys.get(&key).copied().unwrap_or(0) {
                return;
            }
            view.keys.insert(key.clone(), version);
            if body["deleted"] == json!(true) {
                view.entries.remove(&key);
            } else {
                view.entries.insert(key, body["value"].clone());
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_node_that_first_hears_of_a_map_from_the_cluster_misses_nothing() {
    // B has never opened the maps: its client subscribes to maps that do not exist
    // there yet; the first delta opens each map on B, whose load from Redis may then
    // jump past deltas still on their way (they were skipped, unseen by subscribers).
    let redis = Redis::start();
    let b = node(&redis, false).await;
    let emitter = RedisEmitter::with_config(redis.config())
        .await
        .expect("connects");
    let (mut client, _) = WsClient::connect(b.local_addr()).await;
    const MAPS: usize = 12;
    for m in 0..MAPS {
        client
            .send(&format!(r#"42["subscribe",{{"state":"jobs{m}"}}]"#))
            .await;
    }
    let mut views: Vec<View> = (0..MAPS).map(|_| View::default()).collect();
    for _ in 0..MAPS {
        let (name, args) = next_event(&mut client).await.expect("snapshot");
        let m: usize = args[0]["map"].as_str().expect("map")[4..]
            .parse()
            .expect("index");
        fold_state(&mut views[m], &name, &args);
    }
    for m in 0..MAPS {
        let map = format!("jobs{m}");
        emitter
            .set_state("/", &map, "j1", &json!("queued"))
            .await
            .expect("set");
        emitter
            .set_state("/", &map, "j1", &json!("running"))
            .await
            .expect("set");
        emitter
            .set_state("/", &map, "j2", &json!("queued"))
            .await
            .expect("set");
        emitter.delete_state("/", &map, "j1").await.expect("delete");
    }
    // Whatever mix of deltas and snapshots arrived, the client's view is the final state.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let done = views
            .iter()
            .all(|v| Value::Object(v.entries.clone()) == json!({"j2": "queued"}));
        if done {
            break;
        }
        let next = tokio::time::timeout(Duration::from_secs(2), next_event(&mut client)).await;
        let Ok(Some((name, args))) = next else {
            break;
        };
        let m: usize = args[0]["map"].as_str().unwrap_or("jobs0")[4..]
            .parse()
            .unwrap_or(0);
        fold_state(&mut views[m], &name, &args);
    }
    for (m, view) in views.iter().enumerate() {
        assert_eq!(
            Value::Object(view.entries.clone()),
            json!({"j2": "queued"}),
            "map jobs{m}"
        );
    }
    b.shutdown().await;
}
