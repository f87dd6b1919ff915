//! Soak: connect/disconnect cycles over both transports, slow consumers and a ping
//! flood at once, while a control client receives one event every 100 ms. RSS and file
//! descriptors (of this process, which runs the server) return to their baseline, and
//! the control client loses nothing and sees nothing out of order.
//!
//! Full size: `SWARMCAST_SOAK_FULL=1` (10,000 cycles, 1,000 slow consumers); by
//! default a fifth of that, to keep CI time short on two cores.

mod fixture;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fixture::{config, fds, http, polling_handshake, rss_kib, serve, WsClient};
use serde_json::json;
use swarmcast::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_returns_to_baseline_and_the_control_client_loses_nothing() {
    let full = std::env::var_os("SWARMCAST_SOAK_FULL").is_some();
    let (cycles, slow) = if full { (10_000, 1_000) } else { (2_000, 200) };
    let mut cfg = config();
    cfg.limits.write_timeout = Duration::from_secs(1);
    cfg.engine.queue_packets = 64;
    let server = Server::new(cfg);
    server.namespace("/").on_connect(|socket| {
        for room in ["slow", "control"] {
            if socket.auth().and_then(|a| a.get(room)).is_some() {
                socket.join(room);
            }
        }
        Ok(())
    });
    let handle = serve(server).await;
    let addr = handle.local_addr();
    let epoch = Instant::now();

    // The control client and its ticker.
    let mut control = WsClient::open(addr, "/socket.io").await;
    control
        .connect_ns("/", Some(json!({"control": true})))
        .await
        .expect("control connects");
    let emitter = handle.emitter().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let ticking = stop.clone();
    let ticker = tokio::spawn(async move {
        let mut seq = 0u64;
        let mut every = tokio::time::interval(Duration::from_millis(100));
        while !ticking.load(Ordering::Relaxed) {
            every.tick().await;
            let at = epoch.elapsed().as_micros() as u64;
            let _ = emitter
                .to("control")
                .emit("tick", &json!({"seq": seq, "at": at}));
            seq += 1;
        }
    });
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut latencies = Vec::new();
        while let Some((name, args)) = control.recv_event().await {
            if name != "tick" {
                continue;
            }
            let now = epoch.elapsed().as_micros() as u64;
            seen.push(args[0]["seq"].as_u64().expect("seq"));
            latencies.push(now.saturating_sub(args[0]["at"].as_u64().expect("at")));
        }
        (seen, latencies)
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (fds0, rss0) = (fds(), rss_kib());
    // Two rounds: what the first leaves in RSS and the second does not add to is the
    // allocator keeping freed memory, not a leak.
    let mut after = Vec::new();
    for _round in 0..2 {
        let start = Instant::now();

        // Connect/disconnect cycles, both transports, 8 at a time.
        let churn: Vec<_> = (0..8)
            .map(|w| {
                tokio::spawn(async move {
                    for i in 0..cycles / 8 {
                        if (i + w) % 2 == 0 {
                            let (c, _) = WsClient::connect(addr).await;
                            drop(c);
                        } else {
                            let sid = polling_handshake(addr).await;
                            let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
                            let ct = [("Content-Type", "text/plain")];
                            http(addr, "POST", &path, &ct, b"40").await;
                            http(addr, "POST", &path, &ct, b"1").await;
                        }
                    }
                })
            })
            .collect();
        // Slow consumers: they connect and never read; 64 kB events fill them up.
        let mut sleepers = Vec::new();
        for _ in 0..slow {
            let mut c = WsClient::open(addr, "/socket.io").await;
            c.send(r#"40{"slow":true}"#).await;
            sleepers.push(c);
        }
        let fill = "f".repeat(64 * 1024);
        for _ in 0..100 {
            let _ = handle.emitter().to("slow").emit("fill", &fill);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A ping flood on the side.
        for _ in 0..20 {
            let mut c = WsClient::open(addr, "/socket.io").await;
            c.send(&format!("2{}", "p".repeat(100_000))).await;
        }
        for task in churn {
            task.await.expect("churn");
        }
        // Every slow consumer is gone within the write timeout; then its client end goes.
        let until = Instant::now() + Duration::from_secs(10);
        while handle.session_count() > 1 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(sleepers);
        let until = Instant::now() + Duration::from_secs(10);
        while fds() > fds0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        after.push((fds(), rss_kib(), start.elapsed()));
    }
    let [(fds1, rss1, attack1), (fds2, rss2, attack)] = [after[0], after[1]];
    stop.store(true, Ordering::Relaxed);
    ticker.await.expect("ticker");
    let metrics = handle.metrics();
    handle.shutdown().await;
    let (seen, mut latencies) = reader.await.expect("reader");

    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    eprintln!(
        "soak ({cycles} cycles, {slow} slow consumers, twice) took {attack1:?} + {attack:?}: \
         fds {fds0} -> {fds1} -> {fds2}, RSS {:.1} -> {:.1} -> {:.1} MB; control client: {} ticks, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         slow consumers {}, write timeouts {}",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        rss2 as f64 / 1024.0,
        seen.len(),
        p(0.5),
        p(0.99),
        p(1.0),
        metrics.slow_consumers,
        metrics.write_timeouts,
    );
    assert!(
        fds1 <= fds0 && fds2 <= fds0,
        "fds {fds0} -> {fds1} -> {fds2}"
    );
    let second_mb = rss2.saturating_sub(rss1) as f64 / 1024.0;
    assert!(
        second_mb < 16.0,
        "the second round grew RSS by {second_mb:.1} MB"
    );
    assert!(seen.len() >= 10, "{} ticks", seen.len());
    let first = seen[0];
    assert!(
        seen.iter().enumerate().all(|(i, s)| *s == first + i as u64),
        "ticks lost or out of order: {seen:?}"
    );
    assert!(p(0.99) < 500.0, "p99 {} ms", p(0.99));
}
