//! socketioxide server under test, with the same producer as every server of
//! benches/run.sh: namespace `/bench`, events `start` {rate, duration_ms, pad} and
//! `stats`, both acknowledged; the producer thread broadcasts `tick`
//! {"seq", "ts" (µs since the epoch), "pad"} on `/`.
//!
//! socketioxide as shipped: a socket whose buffer (128 packets) is full does not get the
//! packet, and the emit returns an error naming it. "As fast as the server accepts"
//! here means: emit in a loop, and back off 50 µs after an emit that reported such
//! sockets. Those losses are counted in `stats` (`dropped`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

#[derive(Default)]
struct Producer {
    running: AtomicBool,
    done: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Serialize)]
struct Tick<'a> {
    seq: u64,
    ts: u64,
    pad: &'a str,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn produce(
    io: SocketIo,
    rt: tokio::runtime::Handle,
    state: &Producer,
    rate: f64,
    duration: Duration,
    pad: &str,
) {
    let start = Instant::now();
    let end = start + duration;
    let mut seq = 0u64;
    // Returns whether every socket took the packet.
    let emit = |seq: u64| -> bool {
        let tick = Tick { seq, ts: now_us(), pad };
        let res = rt.block_on(io.emit("tick", &tick));
        state.sent.store(seq + 1, Ordering::Release);
        match res {
            Ok(()) => true,
            Err(socketioxide::BroadcastError::Socket(errs)) => {
                state.dropped.fetch_add(errs.len() as u64, Ordering::Relaxed);
                false
            }
            Err(e) => {
                eprintln!("emit failed: {e}");
                false
            }
        }
    };
    if rate > 0.0 {
        let interval = Duration::from_secs_f64(1.0 / rate);
        loop {
            let due = start + interval.mul_f64(seq as f64);
            if due >= end {
                break;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            emit(seq);
            seq += 1;
        }
    } else {
        while Instant::now() < end {
            let complete = emit(seq);
            seq += 1;
            if !complete {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
    state.sent.store(seq, Ordering::Release);
    state.done.store(true, Ordering::Release);
    state.running.store(false, Ordering::Release);
}

fn main() {
    let mut port = 5000u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--port" {
            port = args.next().and_then(|p| p.parse().ok()).unwrap_or(port);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let (layer, io) = SocketIo::builder().build_layer();
        io.ns("/", async |_s: SocketRef| {});
        let producer = Arc::new(Producer::default());
        let io2 = io.clone();
        io.ns("/bench", async move |s: SocketRef| {
            let (io, producer, handle) = (io2.clone(), producer.clone(), handle.clone());
            let p2 = producer.clone();
            s.on("start", async move |Data(arg): Data<Value>, ack: AckSender| {
                let rate = arg["rate"].as_f64().unwrap_or(0.0);
                let duration = Duration::from_millis(arg["duration_ms"].as_u64().unwrap_or(10_000));
                let pad = "x".repeat(arg["pad"].as_u64().unwrap_or(150) as usize);
                let reply = if producer.running.swap(true, Ordering::AcqRel) {
                    json!({"ok": false, "error": "already running"})
                } else {
                    producer.done.store(false, Ordering::Release);
                    producer.sent.store(0, Ordering::Release);
                    producer.dropped.store(0, Ordering::Release);
                    let (io, producer, handle) = (io.clone(), producer.clone(), handle.clone());
                    std::thread::spawn(move || produce(io, handle, &producer, rate, duration, &pad));
                    json!({"ok": true})
                };
                let _ = ack.send(&reply);
            });
            s.on("stats", async move |ack: AckSender| {
                let reply = json!({
                    "sent": p2.sent.load(Ordering::Acquire),
                    "done": p2.done.load(Ordering::Acquire),
                    "dropped": p2.dropped.load(Ordering::Acquire),
                });
                let _ = ack.send(&reply);
            });
        });
        let app = axum::Router::new().layer(layer);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        eprintln!("socketioxide-bench-server listening on 127.0.0.1:{port}");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .expect("serve");
    });
}
