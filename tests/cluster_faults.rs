//! Redis misbehaving under a cluster (feature `redis`), with real redis-server
//! processes: an outage under load (nothing lost, nothing doubled, in order, local
//! latency kept), a node started while Redis is down, readiness that tells the truth
//! (outage, refused credentials, ACL users), and a node dying right after a Redis
//! restart. Timings are printed, and asserted only against a baseline of the same
//! test with a generous factor.
#![cfg(feature = "redis")]

mod cluster_support;
mod fixture;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{
    connect_with, next_event, node, node_with, readyz, readyz_becomes, Proxy, Redis,
};
use fixture::WsClient;
use serde_json::{json, Value};
use swarmcast::ServerHandle;

/// What one client received: per sender, the sequence numbers in arrival order, and
/// the latency (µs) of each event emitted on the client's own node, by phase.
#[derive(Default, Debug)]
struct Received {
    seqs: HashMap<String, Vec<u64>>,
    local_us: HashMap<String, Vec<u64>>,
}

/// Read events `("e", {"from", "seq", "t", "phase"})` until a `done` from each of
/// `senders` (bounded).
async fn collect(mut c: WsClient, base: Instant, own: &'static str, senders: usize) -> Received {
    let mut got = Received::default();
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    while done < senders && Instant::now() < deadline {
        let Some((name, args)) = c.recv_event().await else {
            continue;
        };
        if name == "done" {
            done += 1;
            continue;
        }
        let from = args[0]["from"].as_str().unwrap_or_default().to_string();
        let seq = args[0]["seq"].as_u64().unwrap_or(u64::MAX);
        if from == own {
            let sent = args[0]["t"].as_u64().unwrap_or(0);
            let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
            let phase = args[0]["phase"].as_str().unwrap_or_default().to_string();
            got.local_us
                .entry(phase)
                .or_default()
                .push(now.saturating_sub(sent));
        }
        got.seqs.entry(from).or_default().push(seq);
    }
    got
}

fn p99(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0)
}

/// Emit `("e", ...)` from `node` at `rate` events/s until `stop`; returns how many.
async fn produce(
    node: Arc<ServerHandle>,
    name: &'static str,
    base: Instant,
    rate: u64,
    phase: Arc<parking_lot::Mutex<&'static str>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let per_tick = rate / 200;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        for _ in 0..per_tick {
            let t = u64::try_from(base.elapsed().as_micros()).unwrap_or(0);
            let p = *phase.lock();
            node.emitter()
                .emit("e", &json!({"from": name, "seq": seq, "t": t, "phase": p}))
                .expect("emit never fails");
            seq += 1;
        }
    }
    node.emitter().emit("done", &name).expect("emit");
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_loses_nothing_and_keeps_local_latency() {
    let mut redis = Redis::start();
    let a = Arc::new(node(&redis, true).await);
    let b = Arc::new(node(&redis, true).await);
    let base = Instant::now();
    let (a1, _) = WsClient::connect(a.local_addr()).await;
    let (b1, _) = WsClient::connect(b.local_addr()).await;
    let readers = [
        tokio::spawn(collect(a1, base, "a", 2)),
        tokio::spawn(collect(b1, base, "b", 2)),
    ];
    let phase = Arc::new(parking_lot::Mutex::new("before"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 2,000 events/s in all, from both nodes.
    let producers = [
        tokio::spawn(produce(
            a.clone(),
            "a",
            base,
            1_000,
            phase.clone(),
            stop.clone(),
        )),
        tokio::spawn(produce(
            b.clone(),
            "b",
            base,
            1_000,
            phase.clone(),
            stop.clone(),
        )),
    ];
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    *phase.lock() = "outage";
    redis.kill();
    let (status, _) = readyz(a.local_addr()).await;
    let down_after = Instant::now();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        readyz(a.local_addr()).await.0,
        503,
        "not ready during the outage"
    );
    *phase.lock() = "after";
    redis.spawn();
    let up = readyz_becomes(a.local_addr(), 200).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = HashMap::new();
    for (name, p) in ["a", "b"].into_iter().zip(producers) {
        sent.insert(name, p.await.expect("producer"));
    }
    let mut latencies = Vec::new();
    for (client, r) in ["a1", "b1"].into_iter().zip(readers) {
        let got = r.await.expect("reader");
        for (from, n) in &sent {
            let seqs = got.seqs.get(*from).cloned().unwrap_or_default();
            let expected: Vec<u64> = (0..*n).collect();
            assert!(
                seqs == expected,
                "{client} from {from}: {} of {n} events, first gap or disorder at {:?}",
                seqs.len(),
                seqs.iter().enumerate().find(|(i, s)| **s != *i as u64)
            );
        }
        latencies.push((client, got.local_us));
    }
    let m = a.emitter().cluster_metrics();
    eprintln!(
        "outage test: sent {sent:?}; /readyz was {status} right after the kill, 200 again \
         {up:?} after the restart (down at {:?} after the kill); node A: {m:?}",
        down_after.elapsed()
    );
    for (client, by_phase) in &latencies {
        let before = p99(by_phase.get("before").map_or(&[][..], |v| v));
        let during = p99(by_phase.get("outage").map_or(&[][..], |v| v));
        eprintln!("{client}: local p99 before {before} us, during the outage {during} us");
        // Generous: the outage must not add Redis timeouts (seconds) to local delivery.
        assert!(
            during <= (before * 10).max(100_000),
            "{client}: local p99 {during} us during the outage vs {before} us before"
        );
    }
    assert!(m.outage_published > 0, "{m:?}");
    assert_eq!(m.outage_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_redis_is_down_serves_locally_and_catches_up() {
    let mut redis = Redis::start();
    let a = node(&redis, false).await;
    redis.kill();
    let since = Instant::now();
    let c = node(&redis, false).await;
    let start_down = since.elapsed();
    eprintln!("a node started with redis down listened after {start_down:?}");
    assert!(start_down < Duration::from_secs(2), "{start_down:?}");
    let (status, body) = readyz(c.local_addr()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        fixture::http(c.local_addr(), "GET", "/healthz", &[], b"")
            .await
            .status,
        200
    );
    // Local delivery on the new node.
    let (mut c1, _) = WsClient::connect(c.local_addr()).await;
    c.emitter().emit("local", &0).expect("emit");
    assert_eq!(next_event(&mut c1).await.expect("local").0, "local");
    // A publishes during the outage; then Redis comes back.
    for i in 0..50 {
        a.emitter().emit("n", &i).expect("emit");
    }
    redis.spawn();
    let up = readyz_becomes(c.local_addr(), 200).await;
    eprintln!("the new node was ready {up:?} after redis came back");
    for i in 50..60 {
        a.emitter().emit("n", &i).expect("emit");
    }
    // C's client gets every event A published, in order, once.
    for i in 0..60 {
        let (name, args) = next_event(&mut c1).await.expect("caught up");
        assert_eq!((name.as_str(), &args[0]), ("n", &json!(i)));
    }
    assert!(cluster_support::quiet(&mut c1, Duration::from_millis(300)).await);
    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_tells_refused_credentials_and_accepts_acl_users() {
    let redis = Redis::start_with(&[
        "--requirepass",
        "right",
        // The narrow ACL of docs/deployment.md.
        "--user",
        "pusher",
        "on",
        ">pw",
        "~socket.io*",
        "~sio:session:*",
        "~swarmcast:state:*",
        "&socket.io*",
        "+@read",
        "+@write",
        "+@stream",
        "+@pubsub",
        "+@scripting",
        "+ping",
        "+info",
        "+client",
        "+hello",
        "+auth",
        "+select",
    ]);
    let mut wrong = redis.config();
    wrong.url = format!("redis://:wrong@127.0.0.1:{}", redis.port);
    let w = node_with(wrong, false).await;
    let (status, body) = readyz(w.local_addr()).await;
    assert_eq!(status, 503);
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("authentication"),
        "{body}"
    );
    let mut acl = redis.config();
    acl.url = format!("redis://pusher:pw@127.0.0.1:{}", redis.port);
    let u = node_with(acl, false).await;
    let (status, body) = readyz(u.local_addr()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"]["reader"], "up");
    // And the ACL user's node works: a broadcast, a state change and a session cross.
    let mut plain = redis.config();
    plain.url = format!("redis://:right@127.0.0.1:{}", redis.port);
    let v = node_with(plain, false).await;
    let (mut v1, _) = WsClient::connect(v.local_addr()).await;
    u.emitter().emit("via_acl", &1).expect("emit");
    assert_eq!(next_event(&mut v1).await.expect("crossed").0, "via_acl");
    u.emitter().state("m").set("k", &1).expect("set");
    let m = v.emitter().state("m");
    cluster_support::eventually(|| m.get("k") == Some(json!(1)), "state crossed").await;
    assert_eq!(u.emitter().cluster_metrics().publish_failures, 0);
    v.shutdown().await;
    w.shutdown().await;
    u.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_right_after_a_redis_restart_loses_no_client() {
    let mut redis = Redis::start_persistent();
    let proxy = Proxy::start(redis.port).await;
    let mut through_proxy = redis.config();
    through_proxy.url = proxy.url();
    let a = node_with(through_proxy, true).await;
    let b = node(&redis, true).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let (c, hello) = connect_with(a.local_addr(), json!({})).await;
        let pid = hello["pid"].as_str().expect("pid").to_string();
        let sid = hello["sid"].as_str().expect("sid").to_string();
        clients.push((c, pid, sid, String::new()));
    }
    for seq in 0..5 {
        b.emitter().emit("n", &seq).expect("emit");
    }
    for (c, _, _, last) in &mut clients {
        for seq in 0..5 {
            let (_, args) = next_event(c).await.expect("event");
            assert_eq!(args[0], json!(seq));
            *last = args[1].as_str().expect("offset").to_string();
        }
    }
    redis.stop();
    redis.spawn();
    // Right after Redis is back: node A dies (nothing more of it reaches Redis).
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.cut();
    let mut resumes = Vec::new();
    for (c, pid, sid, last) in clients {
        drop(c);
        resumes.push((pid, sid, last));
    }
    for seq in 5..10 {
        b.emitter().emit("n", &seq).expect("emit");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (pid, sid, last) in resumes {
        let (mut c, hello) =
            connect_with(b.local_addr(), json!({"pid": pid, "offset": last})).await;
        assert_eq!(hello["sid"], json!(sid), "recovered on node B: {hello}");
        for seq in 5..10 {
            let (_, args) = next_event(&mut c).await.expect("missed event");
            assert_eq!(args[0], json!(seq));
        }
    }
    cluster_support::eventually(
        || b.emitter().metrics().recoveries == 5,
        "5 recoveries counted",
    )
    .await;
    let m = b.emitter().cluster_metrics();
    assert_eq!(m.recovery_misses, 0, "{m:?}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_persistence_an_old_offset_starts_afresh_and_is_counted() {
    let mut redis = Redis::start();
    let a = node(&redis, true).await;
    let b = node(&redis, true).await;
    let (mut c, hello) = connect_with(a.local_addr(), json!({})).await;
    let pid = hello["pid"].as_str().expect("pid").to_string();
    a.emitter().emit("n", &0).expect("emit");
    let (_, args) = next_event(&mut c).await.expect("event");
    let last = args[1].as_str().expect("offset").to_string();
    redis.kill();
    redis.spawn();
    readyz_becomes(b.local_addr(), 200).await;
    readyz_becomes(a.local_addr(), 200).await;
    // The session is written again by A once Redis is back; the offset is gone.
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, hello) = connect_with(b.local_addr(), json!({"pid": pid, "offset": last})).await;
    assert_ne!(hello["pid"], Value::Null);
    assert_ne!(hello["pid"], json!(pid), "a fresh session");
    let m = b.emitter().cluster_metrics();
    assert_eq!(m.recovery_misses, 1, "{m:?}");
    assert!(m.stream_resets >= 1, "{m:?}");
    a.shutdown().await;
    b.shutdown().await;
}
