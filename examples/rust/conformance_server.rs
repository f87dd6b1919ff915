//! The server the official protocol suites (`../shared/conformance`) run against: what
//! `reference-server.js` provides, built on swarmcast's public API.
//!
//! - `/engine.io/`: a raw Engine.IO v4 endpoint echoing every message;
//! - `/socket.io/`: Socket.IO v5 with namespaces `/` and `/custom`;
//! - pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1,000,000, connect timeout
//!   1 s, any origin, recovery off;
//! - on connect, each namespace emits `auth` with the CONNECT's auth payload (`{}` when
//!   none); on `/`, `message` is answered with `message-back` and the same arguments,
//!   and `message-with-ack` is acknowledged with its arguments.
//!
//! `cargo run --example conformance_server -- --port 3000`, then
//! `bash ../shared/conformance/run-suites.sh 3000`. Prints `LISTENING <port>`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use swarmcast::{Namespace, Server, ServerConfig};

#[path = "common/echo.rs"]
mod echo;

/// The first packet after CONNECT: `42["auth", <auth payload, {} if none>]`.
fn emit_auth_on_connect(ns: &Namespace) {
    ns.on_connect(|socket| {
        let auth = socket.auth().cloned().unwrap_or_else(|| json!({}));
        let _ = socket.emit("auth", &auth);
        Ok(())
    });
}

fn main() {
    let port = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let mut config = ServerConfig {
        port,
        cors_allowed_origins: vec!["*".into()],
        connect_timeout: Duration::from_millis(1000),
        ..ServerConfig::default()
    };
    config.engine.ping_interval = Duration::from_millis(300);
    config.engine.ping_timeout = Duration::from_millis(200);
    config.engine.max_payload = 1_000_000;

    let mut server = Server::new(config);
    server.engine_endpoint("/engine.io", Arc::new(echo::Echo));
    let root = server.namespace("/");
    emit_auth_on_connect(&root);
    root.on("message", |socket, event, _ack| {
        let _ = socket.emit_payload("message-back", &event.payload);
    });
    root.on("message-with-ack", |_socket, event, ack| {
        if let Some(ack) = ack {
            let _ = ack.send_payload(&event.payload);
        }
    });
    emit_auth_on_connect(&server.namespace("/custom"));

    let handle = match server.start() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("conformance_server: {e}");
            std::process::exit(1);
        }
    };
    println!("LISTENING {}", handle.local_addr().port());
    // Run until killed.
    loop {
        std::thread::park();
    }
}
