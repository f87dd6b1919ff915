//! `swarmcast-bench-server`: the swarmcast server under test of the benchmarks
//! (`benches/run.sh`), with the producer every peer server has.
//!
//! Namespace `/` has no handlers: clients connect and receive `tick` broadcasts.
//! Namespace `/bench` drives the producer: event `start` with
//! `{"rate": <broadcasts/s, 0 = as fast as the server accepts>, "duration_ms", "pad"}`
//! starts a thread that emits `tick` `{"seq": n, "ts": <µs since the epoch>, "pad": "x.."}`
//! to everyone; event `stats` answers `{"sent", "done", "metrics"}`. Runs until SIGINT or
//! SIGTERM.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;
use serde_json::{json, Value};
use swarmcast::{EngineConfig, Server, ServerConfig};

#[derive(Parser, Debug)]
#[command(about = "swarmcast server under test, with the benchmark producer")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 5000)]
    port: u16,
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    workers: Option<usize>,
    /// EngineConfig::batch_window in microseconds (0 = write as soon as the writer is free).
    #[arg(long, default_value_t = 0)]
    batch_window_us: u64,
    /// EngineConfig::max_batch: most frames per WebSocket write (1 = no coalescing).
    #[arg(long, default_value_t = 1024)]
    max_batch: usize,
    /// EngineConfig::queue_packets: outbound queue bound per connection (default: the
    /// library's).
    #[arg(long)]
    queue_packets: Option<usize>,
    /// EngineConfig::backpressure_packets: the watermark a waiting emit lets a queue
    /// drain to (default: the library's).
    #[arg(long)]
    backpressure_packets: Option<usize>,
    /// EngineConfig::write_through off: every delivery wakes its connection's writer
    /// (the A/B of write-through).
    #[arg(long)]
    no_write_through: bool,
    /// As fast as the server accepts: pause while more than this many packets per client
    /// are queued and not yet written (a hand-written throttle). 0: no throttle, the
    /// library's own backpressure paces the producer (emits wait for slow clients).
    #[arg(long, default_value_t = 16)]
    backlog_per_client: u64,
}

#[derive(Default)]
struct Producer {
    running: AtomicBool,
    done: AtomicBool,
    sent: AtomicU64,
    /// Paced producers only: each emit's wall time and the producer thread's CPU time
    /// in it, in µs. Wall well above CPU on an otherwise idle core is time the
    /// hypervisor took the CPU away (steal), which the latency rows then include.
    emit_times: std::sync::Mutex<Vec<(u64, u64)>>,
}

/// p50, p99 and max of one column of the emit times.
fn emit_times_json(times: &[(u64, u64)], column: impl Fn(&(u64, u64)) -> u64) -> Value {
    let mut v: Vec<u64> = times.iter().map(column).collect();
    v.sort_unstable();
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    json!({"p50": at(0.5), "p99": at(0.99), "max": v.last()})
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
    emitter: swarmcast::Emitter,
    state: &Producer,
    rate: f64,
    duration: Duration,
    pad: &str,
    backlog_per_client: u64,
) {
    let start = Instant::now();
    let end = start + duration;
    let mut seq = 0u64;
    let emit = |seq: u64| {
        let tick = Tick {
            seq,
            ts: now_us(),
            pad,
        };
        // Timed only when paced: a back-to-back producer is measured by throughput.
        let timed = (rate > 0.0).then(|| (Instant::now(), cpu_time::ThreadTime::try_now()));
        if let Err(e) = emitter.emit("tick", &tick) {
            eprintln!("emit failed: {e}");
        }
        if let Some((wall, Ok(cpu))) = timed {
            let cpu_us = cpu.try_elapsed().map_or(0, |d| d.as_micros() as u64);
            let wall_us = wall.elapsed().as_micros() as u64;
            state
                .emit_times
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((wall_us, cpu_us));
        }
        state.sent.store(seq + 1, Ordering::Release);
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
    } else if backlog_per_client == 0 {
        // Back to back: the library's backpressure makes each emit wait for clients
        // that fall behind (this is a plain thread, where emits may wait).
        while Instant::now() < end {
            emit(seq);
            seq += 1;
        }
    } else {
        // As fast as the server accepts, by hand: keep the packets
        // queued and not yet written (deliveries - frames written, from the server's
        // counters) under a bound instead of letting queues fill.
        let clients = emitter
            .namespace("/")
            .map(|ns| ns.len())
            .unwrap_or(0)
            .max(1) as u64;
        let limit = clients * backlog_per_client;
        let m = emitter.metrics();
        let offset = i128::from(m.frames_out) - i128::from(m.deliveries);
        while Instant::now() < end {
            let m = emitter.metrics();
            let backlog = i128::from(m.deliveries) + offset - i128::from(m.frames_out);
            if backlog > i128::from(limit) {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            emit(seq);
            seq += 1;
        }
    }
    state.sent.store(seq, Ordering::Release);
    state.done.store(true, Ordering::Release);
    state.running.store(false, Ordering::Release);
}

fn metrics_json(emitter: &swarmcast::Emitter) -> Value {
    let m = emitter.metrics();
    json!({
        "emits": m.emits,
        "deliveries": m.deliveries,
        "dropped_queue_full": m.dropped_queue_full,
        "slow_consumers": m.slow_consumers,
        "bytes_out": m.bytes_out,
        "frames_out": m.frames_out,
        "flushes": m.flushes,
        "writes_through": m.writes_through,
    })
}

fn main() {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let mut config = ServerConfig {
        host: args.host.clone(),
        port: args.port,
        worker_threads: workers,
        engine: EngineConfig {
            batch_window: Duration::from_micros(args.batch_window_us),
            max_batch: args.max_batch.max(1),
            queue_packets: args
                .queue_packets
                .unwrap_or(EngineConfig::default().queue_packets)
                .max(1),
            backpressure_packets: args
                .backpressure_packets
                .unwrap_or(EngineConfig::default().backpressure_packets),
            write_through: !args.no_write_through,
            ..EngineConfig::default()
        },
        ..ServerConfig::default()
    };
    // The benchmarks open as many connections as the file-descriptor limit allows.
    config.limits.max_connections = 1_000_000;
    let server = Server::new(config);
    let producer = Arc::new(Producer::default());
    let bench = server.namespace("/bench");
    {
        let emitter = server.emitter();
        let producer = producer.clone();
        let backlog = args.backlog_per_client;
        bench.on("start", move |_socket, event, ack| {
            let arg = event.payload.args.first().cloned().unwrap_or(Value::Null);
            let rate = arg["rate"].as_f64().unwrap_or(0.0);
            let duration = Duration::from_millis(arg["duration_ms"].as_u64().unwrap_or(10_000));
            let pad = "x".repeat(arg["pad"].as_u64().unwrap_or(150) as usize);
            let reply = if producer.running.swap(true, Ordering::AcqRel) {
                json!({"ok": false, "error": "already running"})
            } else {
                producer.done.store(false, Ordering::Release);
                producer.sent.store(0, Ordering::Release);
                let emitter = emitter.clone();
                let producer = producer.clone();
                std::thread::Builder::new()
                    .name("producer".into())
                    .spawn(move || produce(emitter, &producer, rate, duration, &pad, backlog))
                    .map(|_| json!({"ok": true}))
                    .unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()}))
            };
            if let Some(ack) = ack {
                let _ = ack.send(&reply);
            }
        });
    }
    {
        let emitter = server.emitter();
        let producer = producer.clone();
        bench.on("stats", move |_socket, _event, ack| {
            let mut reply = json!({
                "sent": producer.sent.load(Ordering::Acquire),
                "done": producer.done.load(Ordering::Acquire),
                "metrics": metrics_json(&emitter),
            });
            let times = producer
                .emit_times
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !times.is_empty() {
                reply["emit_wall_us"] = emit_times_json(&times, |t| t.0);
                reply["emit_cpu_us"] = emit_times_json(&times, |t| t.1);
            }
            if let Some(ack) = ack {
                let _ = ack.send(&reply);
            }
        });
    }
    let handle = match server.start() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("swarmcast-bench-server: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "swarmcast-bench-server listening on {} ({workers} workers)",
        handle.local_addr()
    );
    wait_for_signal();
    handle.stop();
}

/// Block until SIGINT or SIGTERM.
fn wait_for_signal() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    });
}
