//! Criterion micro-benchmarks of the emit path: one broadcast to N = 1, 100 and 1,000
//! in-memory (detached) sockets, queues drained between rounds outside the timed region;
//! and keyed live state, where sets of the same key coalesce in each subscriber's queue.
//! Run with `cargo bench --bench fanout`.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Serialize;
use swarmcast::{Server, ServerConfig, Socket};

#[derive(Serialize)]
struct Tick<'a> {
    seq: u64,
    ts: u64,
    pad: &'a str,
}

fn detached(n: usize) -> (Server, Vec<Socket>) {
    let server = Server::new(ServerConfig::default());
    let ns = server.namespace("/");
    let sockets = (0..n).map(|_| ns.attach_detached_socket(1 << 16)).collect();
    (server, sockets)
}

/// Time `iters` calls of `f`, draining every socket after each round of at most
/// `round` calls (so queues never fill) without timing the drain.
fn rounds(iters: u64, round: u64, sockets: &[Socket], mut f: impl FnMut(u64)) -> Duration {
    let mut timed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let k = round.min(iters - done);
        let t = Instant::now();
        for i in 0..k {
            f(done + i);
        }
        timed += t.elapsed();
        for s in sockets {
            s.drain_detached();
        }
        done += k;
    }
    timed
}

fn fan_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast");
    let pad = "x".repeat(152);
    for n in [1usize, 100, 1000] {
        let (server, sockets) = detached(n);
        let emitter = server.emitter();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("emit_200B", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rounds(iters, 256, &sockets, |seq| {
                    let tick = Tick {
                        seq,
                        ts: 1_700_000_000_000_000,
                        pad: &pad,
                    };
                    let _ = black_box(emitter.emit("tick", &tick));
                })
            })
        });
    }
    g.finish();
}

#[derive(Serialize)]
struct Status {
    step: u64,
    status: &'static str,
}

fn keyed_state(c: &mut Criterion) {
    let mut g = c.benchmark_group("state");
    for n in [1usize, 100, 1000] {
        let (server, sockets) = detached(n);
        let agents = server.state("agents");
        for s in &sockets {
            if agents.subscribe(s, None).is_err() {
                return;
            }
            s.drain_detached();
        }
        g.throughput(Throughput::Elements(n as u64));
        // The same key again and again: each subscriber's queue keeps one entry for it.
        g.bench_with_input(BenchmarkId::new("set_same_key", n), &n, |b, _| {
            let mut step = 0u64;
            b.iter(|| {
                step += 1;
                let _ = black_box(agents.set(
                    "agent-7",
                    &Status {
                        step,
                        status: "working",
                    },
                ));
            })
        });
        for s in &sockets {
            s.drain_detached();
        }
        // 64 keys round-robin, drained every 256 sets: no coalescing within 64 sets.
        let keys: Vec<String> = (0..64).map(|i| format!("agent-{i}")).collect();
        g.bench_with_input(BenchmarkId::new("set_64_keys", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rounds(iters, 256, &sockets, |i| {
                    let _ = black_box(agents.set(
                        &keys[(i % 64) as usize],
                        &Status {
                            step: i,
                            status: "working",
                        },
                    ));
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fan_out, keyed_state);
criterion_main!(benches);
