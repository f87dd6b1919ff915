//! An axum application with swarmcast mounted on its own port: the app keeps its
//! routes, listener and runtime; `SocketIoLayer` answers `/socket.io/` (WebSocket,
//! long-polling, the upgrade), and an app route pushes to every connected client.
//!
//! ```text
//! cargo run --features tower --example axum_app -- --port 3000
//! curl -X POST localhost:3000/agents/a1 -d busy   # every client gets `agent_state`
//! ```
//!
//! Prints `LISTENING <port>` once it serves (the end-to-end tests wait for it) and
//! stops on Ctrl-C or SIGTERM: the app's server first, then swarmcast's sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};
use swarmcast::{Emitter, Server, ServerConfig};

/// The application's own state: agents and what they do.
#[derive(Clone)]
struct App {
    agents: Arc<Mutex<BTreeMap<String, String>>>,
    push: Emitter,
}

async fn index() -> &'static str {
    "swarmcast inside axum: Socket.IO at /socket.io/, agents at /agents\n"
}

async fn list_agents(State(app): State<App>) -> Json<Value> {
    Json(json!(*app.agents.lock()))
}

/// Set an agent's state and push it to every client.
async fn set_agent(State(app): State<App>, Path(id): Path<String>, state: String) -> Json<Value> {
    app.agents.lock().insert(id.clone(), state.clone());
    // From async code: never waits on a slow client (see `Broadcast::ready` to pace).
    let delivered = app
        .push
        .emit("agent_state", &json!({"id": id, "state": state}))
        .map(|report| report.delivered)
        .unwrap_or(0);
    Json(json!({"id": id, "state": state, "delivered": delivered}))
}

fn port_arg() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000)
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new(ServerConfig::default());
    server
        .namespace("/")
        .on("echo", |socket, event, ack| match ack {
            Some(ack) => {
                let _ = ack.send_payload(&event.payload);
            }
            None => {
                let _ = socket.emit_payload("echo", &event.payload);
            }
        });
    let (layer, running) = server.into_layer().await?;
    let app = App {
        agents: Arc::default(),
        push: running.emitter().clone(),
    };
    let router = Router::new()
        .route("/", get(index))
        .route("/agents", get(list_agents))
        .route("/agents/{id}", post(set_agent))
        .with_state(app)
        .layer(layer);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port_arg())).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal())
        .await?;
    running.shutdown().await;
    Ok(())
}
