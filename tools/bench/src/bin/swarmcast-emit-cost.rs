//! `swarmcast-emit-cost`: nanoseconds per `Emitter::emit` from Rust, to 0, 1 and 1,000
//! detached sockets (in-memory sessions whose queues are drained by hand, outside the
//! timed region). Prints one JSON object.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use swarmcast::{Server, ServerConfig};

#[derive(Serialize)]
struct Tick<'a> {
    seq: u64,
    ts: u64,
    pad: &'a str,
}

/// Time emits of a 200-byte tick to `sockets` detached sockets for about `budget`.
fn ns_per_emit(sockets: usize, budget: Duration) -> f64 {
    let server = Server::new(ServerConfig::default());
    let ns = server.namespace("/");
    let attached: Vec<_> = (0..sockets)
        .map(|_| ns.attach_detached_socket(1 << 16))
        .collect();
    let emitter = server.emitter();
    let pad = "x".repeat(152);
    // Rounds short enough that queues never fill, drained between rounds.
    let round = if sockets >= 1000 { 64 } else { 4096 };
    let mut emits = 0u64;
    let mut timed = Duration::ZERO;
    let mut warm = true;
    let wall = Instant::now();
    while wall.elapsed() < budget || emits == 0 {
        let t = Instant::now();
        for i in 0..round {
            let tick = Tick {
                seq: i,
                ts: 1_700_000_000_000_000,
                pad: &pad,
            };
            let _ = std::hint::black_box(emitter.emit("tick", &tick));
        }
        let dt = t.elapsed();
        for s in &attached {
            s.drain_detached();
        }
        if warm {
            warm = false;
            continue;
        }
        timed += dt;
        emits += round;
    }
    timed.as_nanos() as f64 / emits as f64
}

fn main() {
    let budget = Duration::from_millis(
        std::env::args()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000),
    );
    let results: serde_json::Map<String, serde_json::Value> = [0usize, 1, 1000]
        .into_iter()
        .map(|n| (n.to_string(), json!(ns_per_emit(n, budget))))
        .collect();
    println!("{}", json!({"rust_emit_ns": results}));
}
