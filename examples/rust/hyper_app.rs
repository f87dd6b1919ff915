//! A plain hyper 1 server with swarmcast mounted: the application's own `service_fn`
//! answers its routes, `SocketIoLayer` wraps it and answers `/socket.io/`, on the
//! application's listener and runtime. Every second the app pushes a `tick`.
//!
//! ```text
//! cargo run --features tower --example hyper_app -- --port 3001
//! ```
//!
//! Prints `LISTENING <port>` once it serves.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use swarmcast::{Server, ServerConfig};
use tower::{Layer, ServiceExt};

/// The application: one page, 404 for the rest.
async fn app(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match req.uri().path() {
        "/" => (StatusCode::OK, "a hyper app; Socket.IO at /socket.io/\n"),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);

    let (layer, running) = Server::new(ServerConfig::default()).into_layer().await?;
    let ticks = running.emitter().clone();
    tokio::spawn(async move {
        for n in 0u64.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = ticks.emit("tick", &n);
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let service = layer.layer(tower::service_fn(app));
        // hyper takes its own `Service` trait: adapt the tower one, and give each
        // request the peer's address (the handshake's REMOTE_ADDR, `Socket::request`).
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(remote);
            service.clone().oneshot(req)
        });
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                // The WebSocket upgrade needs the connection handed over.
                .with_upgrades();
            if let Err(e) = conn.await {
                eprintln!("connection from {remote}: {e}");
            }
        });
    }
    running.shutdown().await;
    Ok(())
}
