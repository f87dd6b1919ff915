//! `swarmcast-bench`: the load tool of swarmcast's benchmarks (see `docs/performance.md`).
//!
//! It opens many raw Socket.IO v5 clients (WebSocket, some long-polling) against any
//! Socket.IO server, from several 127.0.0.x source addresses, and measures what the
//! benchmarks report: connect time, end-to-end latency of the `tick` events the
//! server's producer broadcasts (`{"seq": n, "ts": <µs since the epoch>, "pad": ..}`),
//! deliveries per second, missing and duplicate sequence numbers per client, and the
//! server's CPU seconds and memory from `/proc`. One thread, minimal parsing (the
//! `seq` and `ts` numbers are found by byte search), every phase bounded in time.
//!
//! The producer lives in the server under test and is driven over Socket.IO: namespace
//! `/bench`, event `start` with `{"rate", "duration_ms", "pad"}` and event `stats`,
//! both acknowledged (`stats` answers `{"sent", "done", ...}`). Without `--rate` the
//! run is an idle-connection run.
//!
//! Prints one JSON object on stdout. Exit status: 0, 2 on protocol errors, 3 when the
//! run could not complete (control failure, overall time limit).

mod client;
mod hist;
mod procfs;
mod rawws;
mod run;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use client::{Control, Target};
use run::{now_us, Run};

#[derive(Parser, Debug)]
#[command(
    name = "swarmcast-bench",
    about = "Socket.IO load tool (see docs/performance.md)"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Engine.IO path.
    #[arg(long, default_value = "/socket.io/")]
    path: String,
    /// Clients in all.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// How many of them use long-polling instead of WebSocket.
    #[arg(long, default_value_t = 0)]
    polling: usize,
    /// Connection attempts in flight at once (the storm sets it to --clients).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Give up on a client that is not connected after this long.
    #[arg(long, default_value_t = 60.0)]
    connect_timeout_s: f64,
    /// Source addresses 127.0.0.2, 127.0.0.3, ... used round-robin.
    #[arg(long, default_value_t = 8)]
    src_addrs: u8,
    /// Broadcasts per second the producer makes; 0 = as fast as the server accepts.
    /// Without it the run is an idle run (no producer).
    #[arg(long)]
    rate: Option<f64>,
    /// How long the producer runs.
    #[arg(long, default_value_t = 10_000)]
    duration_ms: u64,
    /// Approximate size of each tick's JSON payload, in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// After the producer stops, wait at most this long for the last deliveries.
    #[arg(long, default_value_t = 10_000)]
    drain_ms: u64,
    /// Idle runs: wait this long after connecting before reading the server's RSS.
    #[arg(long, default_value_t = 2_000)]
    settle_ms: u64,
    /// Idle runs: then hold the connections this long and count those still open.
    #[arg(long, default_value_t = 0.0)]
    hold_s: f64,
    /// Server process to read CPU and memory of.
    #[arg(long)]
    server_pid: Option<u32>,
    /// WebSocket client of the tick receivers: `raw` (a minimal in-place frame parser,
    /// cheaper per event) or `tungstenite` (tokio-tungstenite).
    #[arg(long, default_value = "raw")]
    ws_client: String,
    /// Receive buffer of each client socket in KiB (SO_RCVBUF); 0 leaves the kernel's
    /// autotuning, which on this machine lets a socket buffer up to 32 MiB.
    #[arg(long, default_value_t = 0)]
    rcvbuf_kib: u32,
    /// Copied into the output.
    #[arg(long, default_value = "")]
    label: String,
    /// Hard bound on the whole run.
    #[arg(long, default_value_t = 300.0)]
    max_seconds: f64,
}

fn main() {
    let args = Args::parse();
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if (nofile as usize) < args.clients + 64 {
        eprintln!(
            "swarmcast-bench: RLIMIT_NOFILE is {nofile} (hard limit): fewer than {} clients can connect",
            args.clients
        );
    }
    client::set_rcvbuf(args.rcvbuf_kib.saturating_mul(1024));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("swarmcast-bench: cannot start the runtime: {e}");
            std::process::exit(3);
        }
    };
    let local = tokio::task::LocalSet::new();
    let (mut out, code) = local.block_on(&runtime, run_bounded(&args));
    out["nofile_limit"] = json!(nofile);
    println!("{out}");
    // Dropping thousands of tasks and sockets is the kernel's job, not ours.
    std::process::exit(code);
}

async fn run_bounded(args: &Args) -> (Value, i32) {
    let run = Rc::new(Run::new(args.clients, args.polling));
    let limit = Duration::from_secs_f64(args.max_seconds);
    let mut out = match tokio::time::timeout(limit, scenario(args, run.clone())).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => json!({"failed": e}),
        Err(_) => json!({"failed": format!("run exceeded --max-seconds {}", args.max_seconds)}),
    };
    run.stopping.set(true);
    summarize(args, &run, &mut out);
    let code = if out.get("failed").is_some() {
        3
    } else if run.protocol_errors.get() > 0 {
        2
    } else {
        0
    };
    (out, code)
}

fn src_ip(args: &Args, i: usize) -> IpAddr {
    let n = args.src_addrs.clamp(1, 250) as usize;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % n) as u8))
}

fn server_cpu(args: &Args) -> Option<f64> {
    procfs::cpu_seconds(&args.server_pid?.to_string())
}

/// Steal time of the CPUs the server may run on, and how many there are.
fn server_steal(args: &Args) -> Option<(f64, usize)> {
    let cpus = procfs::allowed_cpus(&args.server_pid?.to_string())?;
    Some((procfs::steal_seconds(&cpus)?, cpus.len()))
}

fn server_rss(args: &Args) -> Option<u64> {
    procfs::rss_kib(&args.server_pid?.to_string())
}

async fn scenario(args: &Args, run: Rc<Run>) -> Result<Value, String> {
    let target = Rc::new(Target {
        addr: args.addr,
        path: args.path.clone(),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout_s),
    });
    let mut out = json!({});
    let rss_before = server_rss(args);
    let cpu_before_connect = server_cpu(args);

    // Connect phase.
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let phase = Instant::now();
    for id in 0..args.clients {
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let src = src_ip(args, id);
        if id < args.polling {
            tokio::task::spawn_local(client::polling_client(
                run.clone(),
                target.clone(),
                id,
                src,
                phase,
                permit,
            ));
        } else if args.ws_client == "raw" {
            tokio::task::spawn_local(client::raw_ws_client(
                run.clone(),
                target.clone(),
                id,
                src,
                phase,
                permit,
            ));
        } else {
            tokio::task::spawn_local(client::ws_client(
                run.clone(),
                target.clone(),
                id,
                src,
                phase,
                permit,
            ));
        }
    }
    // Every client either connects or fails within its own connect timeout.
    let deadline = phase + target.connect_timeout + Duration::from_secs(5);
    while run.connected.get() + run.connect_failed.get() < args.clients && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let connect_ms = {
        let mut v = run.connect_ms.borrow_mut();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)));
        json!({
            "all_s": v.last().map(|ms| ms / 1e3),
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
        })
    };
    let all_s = connect_ms["all_s"].as_f64().unwrap_or(0.0);
    out["connect"] = connect_ms;
    out["connect_rate_per_s"] = json!(if all_s > 0.0 {
        run.connected.get() as f64 / all_s
    } else {
        0.0
    });
    out["server_cpu_connect_s"] =
        json!(server_cpu(args).zip(cpu_before_connect).map(|(a, b)| a - b));

    let Some(rate) = args.rate else {
        // Idle run: memory per connection, then hold.
        tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
        let rss_after = server_rss(args);
        out["server_rss_before_kib"] = json!(rss_before);
        out["server_rss_after_kib"] = json!(rss_after);
        if let (Some(a), Some(b)) = (rss_after, rss_before) {
            let n = run.live.get().max(1) as f64;
            out["rss_per_conn_kib"] = json!((a as f64 - b as f64) / n);
        }
        let hold_until = Instant::now() + Duration::from_secs_f64(args.hold_s);
        let mut min_live = run.live.get();
        while Instant::now() < hold_until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            min_live = min_live.min(run.live.get());
        }
        out["held"] = json!(min_live);
        out["held_after_s"] = json!(args.hold_s);
        return Ok(out);
    };

    // Producer run.
    let mut control = Control::connect(&target, src_ip(args, args.clients)).await?;
    let pad = args.payload_bytes.saturating_sub(48);
    out["server_stats_before"] = control.call("stats", &json!({})).await?;
    let cpu0 = server_cpu(args);
    let steal0 = server_steal(args);
    let self0 = procfs::cpu_seconds("self");
    let t0 = now_us();
    let started = control
        .call(
            "start",
            &json!({"rate": rate, "duration_ms": args.duration_ms, "pad": pad}),
        )
        .await?;
    if started.get("ok") != Some(&Value::Bool(true)) {
        return Err(format!("producer refused to start: {started}"));
    }
    tokio::time::sleep(Duration::from_millis(args.duration_ms)).await;
    let stats_deadline = Instant::now() + Duration::from_secs(30);
    let sent = loop {
        let stats = control.call("stats", &json!({})).await?;
        if stats.get("done") == Some(&Value::Bool(true)) {
            break stats.get("sent").and_then(Value::as_u64).unwrap_or(0);
        }
        if Instant::now() > stats_deadline {
            return Err(format!("producer did not finish: {stats}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Drain: until every live client has everything, or nothing moves for a second.
    let expected = sent * run.connected.get() as u64;
    let drain_until = Instant::now() + Duration::from_millis(args.drain_ms);
    let mut last_count = run.received.get();
    let mut last_move = Instant::now();
    while run.received.get() < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = run.received.get();
        if n != last_count {
            last_count = n;
            last_move = Instant::now();
        } else if last_move.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let cpu1 = server_cpu(args);
    let steal1 = server_steal(args);
    let self1 = procfs::cpu_seconds("self");
    let window_s = (now_us() - t0) as f64 / 1e6;
    let final_stats = control
        .call("stats", &json!({}))
        .await
        .unwrap_or(Value::Null);

    let (first, last) = (run.first_recv.get(), run.last_recv.get());
    let delivery_s = last.saturating_sub(first) as f64 / 1e6;
    let received = run.received.get();
    let (mut missing, mut dups, mut lossy) = (0u64, 0u64, 0usize);
    for t in run.seqs.borrow().iter().filter(|t| t.connected) {
        let m = t.gaps + sent.saturating_sub(t.next);
        missing += m;
        dups += t.dups;
        lossy += usize::from(m > 0);
    }
    let hist = run.hist.borrow();
    out["rate"] = json!(rate);
    out["duration_ms"] = json!(args.duration_ms);
    out["payload_bytes"] = json!(args.payload_bytes);
    out["sent"] = json!(sent);
    out["expected"] = json!(expected);
    out["received"] = json!(received);
    out["missing"] = json!(missing);
    out["duplicates"] = json!(dups);
    out["clients_with_loss"] = json!(lossy);
    out["loss_pct"] = json!(if expected > 0 {
        100.0 * missing as f64 / expected as f64
    } else {
        0.0
    });
    out["deliveries_per_s"] = json!(if delivery_s > 0.0 {
        received as f64 / delivery_s
    } else {
        0.0
    });
    out["emits_per_s"] = json!(sent as f64 / (args.duration_ms as f64 / 1e3));
    out["latency_us"] = json!({
        "p50": hist.quantile(0.50),
        "p90": hist.quantile(0.90),
        "p99": hist.quantile(0.99),
        "max": hist.max(),
        "mean": hist.mean(),
        "count": hist.count(),
    });
    let polling = run.hist_polling.borrow();
    if polling.count() > 0 {
        out["latency_polling_us"] = json!({
            "p50": polling.quantile(0.50),
            "p90": polling.quantile(0.90),
            "p99": polling.quantile(0.99),
            "max": polling.max(),
            "count": polling.count(),
        });
    }
    out["window_s"] = json!(window_s);
    if let (Some(a), Some(b)) = (cpu1, cpu0) {
        out["server_cpu_s"] = json!(a - b);
        out["server_cpu_pct"] = json!(100.0 * (a - b) / window_s);
    }
    if let (Some(a), Some(b)) = (self1, self0) {
        out["load_tool_cpu_pct"] = json!(100.0 * (a - b) / window_s);
    }
    if let (Some((a, cpus)), Some((b, _))) = (steal1, steal0) {
        // On a virtual machine: the share of the server's CPUs the hypervisor gave to
        // others while the server wanted them. Its emits wait that long.
        out["server_steal_s"] = json!(a - b);
        out["server_steal_pct"] = json!(100.0 * (a - b) / (window_s * cpus as f64));
    }
    out["server_stats"] = final_stats;
    Ok(out)
}

fn summarize(args: &Args, run: &Run, out: &mut Value) {
    out["label"] = json!(args.label);
    out["ws_client"] = json!(args.ws_client);
    out["rcvbuf_kib"] = json!(args.rcvbuf_kib);
    out["clients"] = json!(args.clients);
    out["polling"] = json!(args.polling);
    out["connected"] = json!(run.connected.get());
    out["connect_failed"] = json!(run.connect_failed.get());
    out["live_at_end"] = json!(run.live.get());
    out["disconnects"] = json!(run.disconnects.get());
    out["protocol_errors"] = json!(run.protocol_errors.get());
    out["other_packets"] = json!(run.other_packets.get());
    out["errors"] = json!(*run.errors.borrow());
    if let Some(pid) = args.server_pid {
        out["server_hwm_kib"] = json!(procfs::hwm_kib(&pid.to_string()));
    }
}
