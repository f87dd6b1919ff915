//! Broadcasts with acknowledgements across nodes (feature `redis`): two swarmcast nodes
//! and one Node socket.io 4.8 node with `@socket.io/redis-streams-adapter`, official
//! socket.io-client clients on all three (`tests/js/cluster-acks-node.mjs`), binary
//! both ways; the requests' bound and cleanup; answers for no request; a node that
//! never answers; the local adapter. Each test starts its own `redis-server` on a free
//! loopback port and stops it.
#![cfg(feature = "redis")]

mod cluster_support;
mod fixture;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{node_config, Redis};
use fixture::WsClient;
use serde_json::{json, Value};
use swarmcast::{
    BroadcastAckError, BroadcastAcks, Payload, RedisAdapter, RedisConfig, Server, ServerHandle,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A swarmcast node with this Redis configuration; also returns its adapter.
async fn node_with(config: RedisConfig) -> (ServerHandle, RedisAdapter) {
    let adapter = RedisAdapter::new(config).expect("valid URL");
    let mut server = Server::new(node_config(false));
    server
        .set_adapter(adapter.clone())
        .expect("adapter set once");
    (fixture::serve(server).await, adapter)
}

/// The Node node of `tests/js/cluster-acks-node.mjs`, driven over its stdin/stdout.
struct NodeNode {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl NodeNode {
    /// None (the test is skipped, with the reason printed) when node or the npm
    /// packages of tests/js are missing (`scripts/install-test-deps.sh`).
    fn start(redis_url: &str) -> Option<Self> {
        let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
        if !js
            .join("node_modules/@socket.io/redis-streams-adapter")
            .is_dir()
        {
            eprintln!("skipped: tests/js/node_modules is missing (scripts/install-test-deps.sh)");
            return None;
        }
        let child = Command::new("node")
            .arg(js.join("cluster-acks-node.mjs"))
            .arg(redis_url)
            .current_dir(&js)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: cannot run node: {e}");
                return None;
            }
        };
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut node = Self {
            child,
            stdin,
            stdout,
            port: 0,
        };
        let hello = node.read();
        node.port = hello["listening"].as_u64().expect("the Node node listens") as u16;
        Some(node)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("a line from node");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Send a command and wait (on a blocking thread) for its answer.
    async fn ask(mut self, command: Value) -> (Self, Value) {
        tokio::task::spawn_blocking(move || {
            writeln!(self.stdin, "{command}").expect("write to node");
            let answer = self.read();
            assert!(answer.get("error").is_none(), "node: {answer}");
            (self, answer)
        })
        .await
        .expect("the node helper answers")
    }

    /// socket.io-client clients to `url`, answering `poll` unless silent: label -> sid.
    async fn clients(self, url: &str, labels: &[&str], silent: &[&str]) -> (Self, Value) {
        let command = json!({"cmd": "clients", "url": url, "labels": labels, "silent": silent});
        let (node, answer) = self.ask(command).await;
        (node, answer["clients"].clone())
    }
}

impl Drop for NodeNode {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The labels of the replies (each client answers `{label, id, got}`).
fn labels(acks: &BroadcastAcks) -> BTreeSet<String> {
    acks.replies
        .iter()
        .map(|r| r.data.args[0]["label"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_are_collected_from_two_swarmcast_nodes_and_a_node_socket_io_node() {
    let redis = Redis::start();
    let Some(node) = NodeNode::start(&redis.url()) else {
        return;
    };
    let (a, _) = node_with(redis.config()).await;
    let (b, _) = node_with(redis.config()).await;
    let a_url = format!("http://{}", a.local_addr());
    let b_url = format!("http://{}", b.local_addr());
    let node_url = node.url();
    let (node, on_a) = node.clients(&a_url, &["a0", "a1"], &[]).await;
    let (node, on_b) = node.clients(&b_url, &["b0", "b1"], &["b1"]).await;
    let (node, _on_n) = node.clients(&node_url, &["n0", "n1"], &[]).await;
    let silent = on_b["b1"].as_str().expect("b1's id").to_string();
    let answering = ["a0", "a1", "b0", "n0", "n1"];

    // From swarmcast node A to everyone: b1 never answers.
    let question = Payload::new(vec![json!({"q": "ready?"})]);
    let timeout = Duration::from_millis(1500);
    let since = Instant::now();
    let acks = a
        .emitter()
        .of("/")
        .emit_with_ack("poll", &question, timeout)
        .await
        .expect("sent");
    let took = since.elapsed();
    eprintln!(
        "A -> all, one silent: {} replies of {} in {took:?}",
        acks.replies.len(),
        acks.expected
    );
    assert_eq!(labels(&acks), set(&answering), "{acks:?}");
    assert_eq!(acks.replies.len(), 5);
    assert_eq!(acks.expected, 6);
    assert_eq!(acks.timed_out, vec![silent.clone()], "b1 is named");
    assert_eq!(acks.timed_out_unnamed, 0);
    assert_eq!(acks.silent_nodes, 0);
    assert!(!acks.is_complete());
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );
    for reply in &acks.replies {
        assert_eq!(reply.data.args[0]["got"], json!({"q": "ready?"}));
        let label = reply.data.args[0]["label"].as_str().expect("label");
        // swarmcast nodes name the socket that answered; the Node node does not.
        match &label[..1] {
            "a" => {
                assert!(reply.local);
                assert_eq!(reply.socket.as_deref(), on_a[label].as_str());
            }
            "b" => {
                assert!(!reply.local);
                assert_eq!(reply.socket.as_deref(), on_b[label].as_str());
            }
            _ => assert_eq!(reply.socket, None),
        }
    }

    // Everyone but the silent client, from B: complete long before the timeout.
    let since = Instant::now();
    let acks = b
        .emitter()
        .of("/")
        .except(silent.as_str())
        .emit_with_ack("poll", &question, Duration::from_secs(10))
        .await
        .expect("sent");
    let took = since.elapsed();
    eprintln!(
        "B -> all but b1: {} replies of {} in {took:?}",
        acks.replies.len(),
        acks.expected
    );
    assert!(acks.is_complete(), "{acks:?}");
    assert_eq!(labels(&acks), set(&answering));
    assert!(took < Duration::from_secs(2), "{took:?}");

    // The other direction: the Node node asks, swarmcast clients answer too.
    let (node, answer) = node
        .ask(json!({"cmd": "emit", "data": {"q": "node?"}, "timeout": 1500}))
        .await;
    eprintln!("Node -> all, one silent: {answer}");
    assert_eq!(answer["err"], json!("operation has timed out"));
    let got: BTreeSet<String> = answer["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["label"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(got, set(&answering));
    let (node, answer) = node
        .ask(json!({"cmd": "emit", "data": 1, "timeout": 10000, "except": [silent]}))
        .await;
    eprintln!("Node -> all but b1: {answer}");
    assert_eq!(answer["err"], Value::Null);
    assert_eq!(answer["responses"].as_array().map(Vec::len), Some(5));
    assert!(answer["ms"].as_u64().expect("ms") < 2000);

    // Binary both ways: the question carries bytes, every client sends them back.
    let mut binary = Payload::default();
    let bytes = binary.attach(bytes::Bytes::from_static(&[1, 2, 255]));
    binary.args.push(json!({"img": bytes}));
    let acks = a
        .emitter()
        .of("/")
        .except(silent.as_str())
        .emit_with_ack("poll", &binary, Duration::from_secs(5))
        .await
        .expect("sent");
    assert!(acks.is_complete(), "{acks:?}");
    assert_eq!(labels(&acks), set(&answering));
    for reply in &acks.replies {
        let got = &reply.data.args[0]["got"]["img"];
        let back = reply
            .data
            .resolve_placeholders(got, &mut |b| json!(b.to_vec()));
        assert_eq!(back, json!([1, 2, 255]), "{reply:?}");
    }

    // A room: one client of each node.
    let ns_a = a.emitter().namespace("/").expect("root");
    let ns_b = b.emitter().namespace("/").expect("root");
    assert!(ns_a.join_room(on_a["a0"].as_str().expect("a0"), "r"));
    assert!(ns_b.join_room(on_b["b0"].as_str().expect("b0"), "r"));
    let acks = a
        .emitter()
        .to("r")
        .emit_with_ack("poll", &question, Duration::from_secs(5))
        .await
        .expect("sent");
    assert!(acks.is_complete(), "{acks:?}");
    assert_eq!(labels(&acks), set(&["a0", "b0"]));
    drop(node);
    a.shutdown().await;
    b.shutdown().await;
}

/// Read one `42<id>[...]` event; returns (ack id, args).
async fn question(c: &mut WsClient) -> (u64, Vec<Value>) {
    let text = c.recv_text().await.expect("an event");
    let rest = text
        .strip_prefix("42")
        .unwrap_or_else(|| panic!("an event: {text}"));
    let split = rest.find('[').expect("args");
    let id = rest[..split]
        .parse()
        .unwrap_or_else(|_| panic!("an ack id: {text}"));
    (id, serde_json::from_str(&rest[split..]).expect("json args"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_requests_are_bounded_and_forgotten_at_their_timeout() {
    let redis = Redis::start();
    let mut config = redis.config();
    config.max_ack_requests = 2;
    let (a, adapter) = node_with(config).await;
    let (b, _) = node_with(redis.config()).await;
    let (mut a1, _) = WsClient::connect(a.local_addr()).await;
    let (mut b1, _) = WsClient::connect(b.local_addr()).await;
    let q = Payload::new(vec![json!(1)]);
    let short = Duration::from_millis(400);

    // Two rounds wait (nobody answers); a third is refused.
    let first = a.emitter().of("/").emit_with_ack("q", &q, short);
    let second = a.emitter().of("/").emit_with_ack("q", &q, short);
    assert_eq!(adapter.ack_requests().0, 2);
    let third = a.emitter().of("/").emit_with_ack("q", &q, short).await;
    assert_eq!(third, Err(BroadcastAckError::TooManyPending(2)));
    let (first, second) = tokio::join!(first, second);
    for acks in [first.expect("sent"), second.expect("sent")] {
        assert_eq!(acks.timed_out.len(), 2, "{acks:?}");
        assert!(acks.replies.is_empty());
    }
    assert_eq!(adapter.ack_requests().0, 0, "forgotten at the timeout");

    // Late answers (after the timeout) reach nobody and leave nothing behind: the
    // waiters were removed from the sockets, on both nodes.
    for c in [&mut a1, &mut b1] {
        for _ in 0..2 {
            let (id, _) = question(c).await;
            c.send(&format!("43{id}[\"late\"]")).await;
        }
    }
    // A dropped future forgets its request too (and, dropped before its request left,
    // the other nodes never see it).
    let dropped = a
        .emitter()
        .of("/")
        .emit_with_ack("dropped", &q, Duration::from_secs(30));
    assert_eq!(adapter.ack_requests().0, 1);
    drop(dropped);
    assert_eq!(adapter.ack_requests().0, 0);

    // And a round after all that works, answered on both nodes.
    let round = tokio::spawn(
        a.emitter()
            .of("/")
            .emit_with_ack("q2", &q, Duration::from_secs(5)),
    );
    for c in [&mut a1, &mut b1] {
        loop {
            let (id, args) = question(c).await;
            if args[0] == json!("q2") {
                assert_eq!(args, vec![json!("q2"), json!(1)]);
                c.send(&format!("43{id}[\"yes\",\"ignored\"]")).await;
                break;
            }
            assert_eq!(args[0], json!("dropped"));
        }
    }
    let acks = round.await.expect("joined").expect("sent");
    assert!(acks.is_complete(), "{acks:?}");
    assert_eq!(acks.replies.len(), 2);
    for reply in &acks.replies {
        assert_eq!(reply.data.args, vec![json!("yes")], "the first argument");
    }
    assert_eq!(adapter.ack_requests().0, 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// A command in RESP.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One RESP command on a fresh connection.
async fn redis_command(port: u16, args: &[&[u8]]) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("redis");
    s.write_all(&resp(args)).await.expect("write");
    let mut buf = [0u8; 64];
    let _ = s.read(&mut buf).await;
}

/// msgpack of `{uid, nsp, type, data: {requestId, clientCount}}` (fixmap, fixstr).
fn count_message(request_id: &str, count: u8) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.push(0xa0 | v.len() as u8);
        out.extend_from_slice(v.as_bytes());
    }
    let mut m = vec![0x84];
    s(&mut m, "uid");
    s(&mut m, "someone");
    s(&mut m, "nsp");
    s(&mut m, "/");
    s(&mut m, "type");
    m.push(11);
    s(&mut m, "data");
    m.push(0x82);
    s(&mut m, "requestId");
    s(&mut m, request_id);
    s(&mut m, "clientCount");
    m.push(count);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_answers_are_dropped_and_silent_nodes_reported() {
    let redis = Redis::start();
    let (a, adapter) = node_with(redis.config()).await;
    let channel = format!("socket.io#/#{}#", adapter.uid());
    let malformed_before = a.emitter().cluster_metrics().malformed;
    redis_command(
        redis.port,
        &[b"PUBLISH", channel.as_bytes(), &count_message("nobody", 3)],
    )
    .await;
    redis_command(
        redis.port,
        &[b"PUBLISH", channel.as_bytes(), b"\xc1garbage"],
    )
    .await;
    cluster_support::eventually(
        || adapter.ack_requests().1 == 1,
        "the unknown answer counted",
    )
    .await;
    cluster_support::eventually(
        || a.emitter().cluster_metrics().malformed > malformed_before,
        "the malformed answer counted",
    )
    .await;
    // The node still works.
    let (mut a1, _) = WsClient::connect(a.local_addr()).await;
    let round = tokio::spawn(a.emitter().of("/").emit_with_ack(
        "q",
        &Payload::default(),
        Duration::from_secs(5),
    ));
    let (id, _) = question(&mut a1).await;
    a1.send(&format!("43{id}[]")).await;
    let acks = round.await.expect("joined").expect("sent");
    assert!(acks.is_complete(), "{acks:?}");
    assert_eq!(
        acks.replies[0].data.args,
        vec![Value::Null],
        "no argument: null"
    );

    // A node that listens and never answers (a raw subscriber on the namespace's
    // channel counts in PUBSUB NUMSUB): reported as silent at the timeout.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .expect("redis");
    silent
        .write_all(&resp(&[b"SUBSCRIBE", b"socket.io#/#"]))
        .await
        .expect("subscribe");
    let mut buf = [0u8; 64];
    let _ = silent.read(&mut buf).await;
    let round = tokio::spawn(a.emitter().of("/").emit_with_ack(
        "q",
        &Payload::default(),
        Duration::from_millis(500),
    ));
    let (id, _) = question(&mut a1).await;
    a1.send(&format!("43{id}[1]")).await;
    let acks = round.await.expect("joined").expect("sent");
    assert_eq!(acks.silent_nodes, 1, "{acks:?}");
    assert_eq!(acks.replies.len(), 1);
    assert!(acks.timed_out.is_empty());
    assert!(!acks.is_complete());
    drop(silent);

    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_adapter_collects_this_nodes_answers() {
    let server = fixture::serve(Server::new(fixture::config())).await;
    let (mut c1, sid1) = WsClient::connect(server.local_addr()).await;
    let (mut c2, sid2) = WsClient::connect(server.local_addr()).await;
    let q = Payload::new(vec![json!("ping")]);
    let round = tokio::spawn(server.emitter().of("/").emit_with_ack(
        "q",
        &q,
        Duration::from_millis(500),
    ));
    let (id1, _) = question(&mut c1).await;
    let (id2, _) = question(&mut c2).await;
    assert_eq!(id1, id2, "one packet, encoded once, one id");
    c1.send(&format!("43{id1}[{{\"ok\":1}}]")).await;
    let acks = round.await.expect("joined").expect("sent");
    assert_eq!(acks.replies.len(), 1);
    assert_eq!(acks.replies[0].socket.as_deref(), Some(sid1.as_str()));
    assert_eq!(acks.replies[0].data.args, vec![json!({"ok": 1})]);
    assert_eq!(acks.timed_out, vec![sid2]);
    assert_eq!(acks.silent_nodes, 0);

    // From a plain thread, with a callback.
    let (tx, rx) = std::sync::mpsc::channel();
    let emitter = server.emitter().clone();
    let q2 = q.clone();
    std::thread::spawn(move || {
        emitter.of("/").to(sid1.as_str()).emit_with_ack_callback(
            "q",
            &q2,
            Duration::from_secs(5),
            move |r| {
                let _ = tx.send(r);
            },
        );
    });
    let (id, _) = question(&mut c1).await;
    c1.send(&format!("43{id}[2]")).await;
    let acks = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5)))
        .await
        .expect("joined")
        .expect("the callback ran")
        .expect("sent");
    assert!(acks.is_complete());
    assert_eq!(acks.replies[0].data.args, vec![json!(2)]);
    // An unknown namespace is an error, not a hang.
    let missing = server
        .emitter()
        .of("/nope")
        .emit_with_ack("q", &q, Duration::from_secs(5))
        .await;
    assert!(matches!(missing, Err(BroadcastAckError::Emit(_))));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_its_bound_answers_that_it_reached_nobody() {
    let redis = Redis::start();
    let (a, _) = node_with(redis.config()).await;
    let mut config = redis.config();
    config.max_ack_requests = 1;
    let (b, _) = node_with(config).await;
    let (mut b1, b1_sid) = WsClient::connect(b.local_addr()).await;
    let q = Payload::new(vec![json!(1)]);

    // B forwards the first round (b1 is silent) and is then at its bound.
    let first = tokio::spawn(a.emitter().of("/").emit_with_ack(
        "q",
        &q,
        Duration::from_millis(1500),
    ));
    let _ = question(&mut b1).await;
    let since = Instant::now();
    let second = a
        .emitter()
        .of("/")
        .emit_with_ack("q", &q, Duration::from_secs(5))
        .await
        .expect("sent");
    // B answered at once that it reached no client: nobody to wait for.
    assert!(second.is_complete(), "{second:?}");
    assert_eq!(second.expected, 0);
    assert!(since.elapsed() < Duration::from_secs(1));
    let first = first.await.expect("joined").expect("sent");
    assert_eq!(first.timed_out, vec![b1_sid]);

    // Its round over (B's deadline is its own: a moment after A's), B takes requests
    // again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = tokio::spawn(
        a.emitter()
            .of("/")
            .emit_with_ack("q", &q, Duration::from_secs(5)),
    );
    let (id, _) = question(&mut b1).await;
    b1.send(&format!("43{id}[3]")).await;
    let third = third.await.expect("joined").expect("sent");
    assert!(third.is_complete(), "{third:?}");
    assert_eq!(third.replies.len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}
