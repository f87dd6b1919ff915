//! The test server of the end-to-end suites (`tests/js`): Socket.IO on `/socket.io`,
//! a raw Engine.IO echo on `/engine.io`, namespaces `/`, `/chat`, `/admin`, and the
//! handlers the contract in `tests/js/README.md` lists. Prints `LISTENING <port>`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use swarmcast::{ConnectError, Namespace, Payload, Server, ServerConfig, Socket, Target};

#[path = "common/echo.rs"]
mod echo;
use echo::Echo;

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// Rooms without the socket's own id room, sorted.
fn joined_rooms(socket: &Socket) -> Vec<String> {
    let mut rooms: Vec<String> = socket
        .rooms()
        .into_iter()
        .filter(|r| r != socket.id())
        .collect();
    rooms.sort();
    rooms
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn install_handlers(ns: &Arc<Namespace>) {
    ns.on("echo", |socket, event, _ack| {
        let _ = socket.emit_payload("echo", &event.payload);
    });
    ns.on("ack", |_socket, event, ack| {
        if let Some(ack) = ack {
            let _ = ack.send_payload(&event.payload);
        }
    });
    ns.on("whoami", |socket, _event, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(&json!({
                "sid": socket.id(),
                "namespace": socket.namespace(),
                "auth": socket.auth().cloned().unwrap_or(Value::Null),
                "rooms": joined_rooms(socket),
            }));
        }
    });
    ns.on("join", |socket, event, ack| {
        if let Some(room) = event.payload.args.first().and_then(Value::as_str) {
            socket.join(room);
        }
        if let Some(ack) = ack {
            let _ = ack.send(&joined_rooms(socket));
        }
    });
    ns.on("leave", |socket, event, ack| {
        if let Some(room) = event.payload.args.first().and_then(Value::as_str) {
            socket.leave(room);
        }
        if let Some(ack) = ack {
            let _ = ack.send(&joined_rooms(socket));
        }
    });
    ns.on("to_rooms", |socket, event, ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let target = Target {
            rooms: strings(&req["rooms"]).into_iter().map(Into::into).collect(),
            except: strings(&req["except"])
                .into_iter()
                .map(Into::into)
                .collect(),
        };
        if let (Some(ns), Some(name)) = (swarmcast_namespace(socket), req["event"].as_str()) {
            let _ = ns.broadcast().target(target).emit(name, &req["data"]);
        }
        if let Some(ack) = ack {
            let _ = ack.send(&true);
        }
    });
    ns.on("broadcast", |socket, event, ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        if let Some(name) = req["event"].as_str() {
            let _ = if req["include_self"].as_bool() == Some(true) {
                swarmcast_namespace(socket)
                    .map(|ns| ns.broadcast().emit(name, &req["data"]))
                    .transpose()
                    .map(|_| ())
            } else {
                socket.broadcast().emit(name, &req["data"]).map(|_| ())
            };
        }
        if let Some(ack) = ack {
            let _ = ack.send(&true);
        }
    });
    ns.on("request_ack", |socket, event, _ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let timeout = Duration::from_millis(req["timeout_ms"].as_u64().unwrap_or(1000));
        let reply_to = socket.clone();
        // Placeholders inside `data` keep pointing at the request's attachments.
        let ask = Payload {
            args: vec![req["data"].clone()],
            attachments: event.payload.attachments.clone(),
        };
        socket.emit_with_ack_callback(
            "server_ack",
            &ask,
            timeout,
            move |result| {
                let reply = match result {
                    Ok(p) => Payload {
                        args: vec![json!({"ok": true, "value": p.args.first().cloned().unwrap_or(Value::Null)})],
                        attachments: p.attachments,
                    },
                    Err(swarmcast::AckError::Timeout) => {
                        Payload::new(vec![json!({"ok": false, "error": "timeout"})])
                    }
                    Err(e) => Payload::new(vec![json!({"ok": false, "error": e.to_string()})]),
                };
                let _ = reply_to.emit_payload("server_ack_result", &reply);
            },
        );
    });
    ns.on("thread_burst", |socket, event, ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let count = req["count"].as_u64().unwrap_or(1);
        let name = req["event"].as_str().unwrap_or("burst").to_string();
        let Some(ns) = swarmcast_namespace(socket) else {
            return;
        };
        // A plain OS thread, outside the runtime: the emitter is usable from anywhere.
        std::thread::spawn(move || {
            for seq in 0..count {
                let _ = ns.emit(&name, &json!({"seq": seq}));
            }
            if let Some(ack) = ack {
                let _ = ack.send(&true);
            }
        });
    });
    ns.on("burst_me", |socket, event, ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let count = req["count"].as_u64().unwrap_or(1);
        let name = req["event"].as_str().unwrap_or("burst");
        // All at once, from the handler: the whole burst is queued before any is written.
        let sent = (0..count)
            .take_while(|seq| socket.emit(name, &json!({"seq": seq})).is_ok())
            .count();
        if let Some(ack) = ack {
            let _ = ack.send(&sent);
        }
    });
    ns.on("binary", |socket, _event, ack| {
        let mut payload = Payload::default();
        let first = payload.attach(Bytes::from_static(&[1, 2, 3, 255]));
        let nested = payload.attach(Bytes::from_static(b"hello"));
        payload.args = vec![first, json!({"nested": nested})];
        let _ = socket.emit_payload("binary", &payload);
        if let Some(ack) = ack {
            let mut reply = Payload::default();
            let bytes = reply.attach(Bytes::from_static(&[9, 8, 7]));
            reply.args.push(bytes);
            let _ = ack.send_payload(&reply);
        }
    });
    ns.on("disconnect_me", |socket, _event, _ack| socket.disconnect());
    // Close the whole connection as a network failure would (the client reconnects).
    ns.on("drop_me", |socket, _event, _ack| socket.close_connection());
    ns.on("state_run", |socket, event, ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let Some(ns) = swarmcast_namespace(socket) else {
            return;
        };
        let map = ns.state(req["map"].as_str().unwrap_or("agents"));
        let threads = req["threads"].as_u64().unwrap_or(4);
        let keys = req["keys"].as_u64().unwrap_or(50).max(1);
        let updates = req["updates"].as_u64().unwrap_or(1000);
        // Concurrent setters and deleters on OS threads, then the final map in the ack.
        std::thread::spawn(move || {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let map = map.clone();
                    std::thread::spawn(move || {
                        for i in 0..updates {
                            let key = format!("k{}", rand::random::<u64>() % keys);
                            if rand::random::<u8>() < 25 {
                                map.delete(&key);
                            } else {
                                let _ = map.set(&key, &json!({"t": t, "i": i}));
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.join();
            }
            if let Some(ack) = ack {
                let _ = ack.send(&map.snapshot());
            }
        });
    });
    ns.on("stream", |socket, event, ack| {
        let req = event.payload.args.first().cloned().unwrap_or(Value::Null);
        let Some(ns) = swarmcast_namespace(socket) else {
            return;
        };
        let count = req["count"].as_u64().unwrap_or(100);
        let interval = Duration::from_millis(req["interval_ms"].as_u64().unwrap_or(5));
        let name = req["event"].as_str().unwrap_or("seq").to_string();
        let room = req["room"].as_str().map(str::to_string);
        let batch = req["batch"].as_u64().unwrap_or(1).max(1);
        std::thread::spawn(move || {
            for seq in 0..count {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .unwrap_or(0.0);
                let data = json!({"seq": seq, "ts": ts, "pad": "x".repeat(150)});
                let _ = match &room {
                    Some(room) => ns.to(room.as_str()).emit(&name, &data),
                    None => ns.emit(&name, &data),
                };
                if !interval.is_zero() && (seq + 1) % batch == 0 {
                    std::thread::sleep(interval);
                }
            }
            if let Some(ack) = ack {
                let _ = ack.send(&count);
            }
        });
    });
    ns.on("server_stats", |_socket, _event, ack| {
        let Some(ack) = ack else { return };
        let m = SERVER.get().map(|e| e.metrics()).unwrap_or_default();
        let rss_kb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
            })
            .unwrap_or(0);
        let reasons = DISCONNECTS.lock().map(|r| r.clone()).unwrap_or_default();
        let _ = ack.send(&json!({
            "rss_kb": rss_kb,
            "slow_consumers": m.slow_consumers,
            "recoveries": m.recoveries,
            "deliveries": m.deliveries,
            "disconnect_reasons": reasons,
        }));
    });
    ns.on_disconnect(|_socket, reason| {
        if let Ok(mut reasons) = DISCONNECTS.lock() {
            reasons.push(reason.to_string());
        }
    });
    ns.on("count_sockets", |socket, _event, ack| {
        if let (Some(ack), Some(ns)) = (ack, swarmcast_namespace(socket)) {
            let _ = ack.send(&ns.len());
        }
    });
}

/// The namespace a socket belongs to, through the process-wide server handle.
fn swarmcast_namespace(socket: &Socket) -> Option<Arc<Namespace>> {
    SERVER.get().and_then(|e| e.namespace(socket.namespace()))
}

static SERVER: std::sync::OnceLock<swarmcast::Emitter> = std::sync::OnceLock::new();
static DISCONNECTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn args_named(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].clone())
        .collect()
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let mut config = ServerConfig {
        port: arg(&args, "--port").unwrap_or(0) as u16,
        cors_allowed_origins: vec!["*".into()],
        publish_api: true,
        ..ServerConfig::default()
    };
    if let Some(ms) = arg(&args, "--ping-interval") {
        config.engine.ping_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = arg(&args, "--ping-timeout") {
        config.engine.ping_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = arg(&args, "--max-payload") {
        config.engine.max_payload = n as usize;
    }
    if let Some(ms) = arg(&args, "--connect-timeout") {
        config.connect_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = arg(&args, "--queue-packets") {
        config.engine.queue_packets = n as usize;
    }
    if let Some(ms) = arg(&args, "--recovery-ms") {
        config.recovery = Some(swarmcast::RecoveryConfig {
            max_disconnection_duration: Duration::from_millis(ms),
            ..swarmcast::RecoveryConfig::default()
        });
    }
    config.allow_subscribe = args_named(&args, "--allow-subscribe");

    let mut server = Server::new(config);
    server.engine_endpoint("/engine.io", Arc::new(Echo));
    let _ = SERVER.set(server.emitter());
    install_handlers(&server.namespace("/"));
    install_handlers(&server.namespace("/chat"));
    server
        .namespace("/admin")
        .on_connect(|socket| match socket.auth() {
            Some(auth) if auth.get("token").and_then(Value::as_str) == Some("secret") => Ok(()),
            _ => Err(ConnectError::new("unauthorized").with_data(json!({"code": 401}))),
        });
    install_handlers(&server.namespace("/admin"));

    let handle = match server.start() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("e2e_server: {e}");
            std::process::exit(1);
        }
    };
    println!("LISTENING {}", handle.local_addr().port());
    // Run until killed: the harness sends SIGTERM.
    loop {
        std::thread::park();
    }
}
