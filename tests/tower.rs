//! swarmcast mounted in an application's own HTTP server (feature `tower`): an axum
//! router and a plain hyper service keep their routes on their port, and Socket.IO
//! works there over WebSocket, long-polling and the upgrade between them.

mod fixture;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use fixture::{http, PollClient, WsClient, WAIT};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use swarmcast::{Server, ServerConfig, ServiceHandle};
use tower::{Layer, Service, ServiceExt};

/// A server whose `echo` acks its arguments and whose connects record the peer.
fn server() -> Server {
    let server = Server::new(ServerConfig::default());
    server.namespace("/").on("echo", |socket, event, ack| {
        if let Some(ack) = ack {
            let remote = socket
                .request()
                .and_then(|r| r.remote_addr)
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let _ = ack.send(&json!({"args": event.payload.args, "remote": remote}));
        }
    });
    server
}

/// An axum app with two routes of its own, swarmcast layered over it, on 127.0.0.1:0.
async fn axum_app() -> (SocketAddr, ServiceHandle) {
    let (layer, running) = server().into_layer().await.expect("into_layer");
    let app = Router::new()
        .route("/", get(|| async { "the app's index" }))
        .route("/agents", get(|| async { axum::Json(json!(["a1", "a2"])) }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, running)
}

/// Emit `echo` with an ack over a raw WebSocket client; the ack's body.
async fn echo_ws(client: &mut WsClient, arg: &str) -> serde_json::Value {
    client.send(&format!("421[\"echo\",\"{arg}\"]")).await;
    let reply = tokio::time::timeout(WAIT, client.recv_text())
        .await
        .expect("ack in time")
        .expect("ack");
    let body = reply.strip_prefix("431").expect("ACK with id 1");
    serde_json::from_str::<serde_json::Value>(body).expect("ack JSON")[0].clone()
}

#[tokio::test]
async fn axum_keeps_its_routes_and_serves_socket_io_on_its_port() {
    let (addr, running) = axum_app().await;

    // The app's own routes.
    let index = http(addr, "GET", "/", &[], b"").await;
    assert_eq!(
        (index.status, index.body.as_str()),
        (200, "the app's index")
    );
    let agents = http(addr, "GET", "/agents", &[], b"").await;
    assert_eq!(agents.status, 200);
    assert_eq!(agents.body, r#"["a1","a2"]"#);
    assert_eq!(http(addr, "GET", "/nope", &[], b"").await.status, 404);

    // Socket.IO over WebSocket on the same port.
    let (mut ws, _sid) = WsClient::connect(addr).await;
    let ack = echo_ws(&mut ws, "over websocket").await;
    assert_eq!(ack["args"], json!(["over websocket"]));

    // Long-polling, then the upgrade to WebSocket.
    let polling = PollClient::connect(addr).await;
    assert_eq!(
        polling.post("421[\"echo\",\"over polling\"]").await.body,
        "ok"
    );
    let reply = polling.get().await;
    assert!(
        reply.body.starts_with("431[{") && reply.body.contains("over polling"),
        "{reply:?}"
    );
    let mut upgraded = WsClient::attach(addr, &polling.sid).await;
    upgraded.upgrade().await;
    let ack = echo_ws(&mut upgraded, "after the upgrade").await;
    assert_eq!(ack["args"], json!(["after the upgrade"]));

    // A broadcast from the app's side reaches both sessions.
    assert_eq!(running.session_count(), 2);
    let report = running.emitter().emit("news", &"to all").expect("emit");
    assert_eq!(report.delivered, 2);
    for client in [&mut ws, &mut upgraded] {
        let event = tokio::time::timeout(WAIT, client.recv_event()).await;
        assert_eq!(
            event.expect("event in time"),
            Some(("news".to_string(), vec![json!("to all")]))
        );
    }

    // The server's own routes are there too.
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").await.body, "ok");
    let metrics = http(addr, "GET", "/metrics", &[], b"").await;
    assert!(metrics.body.contains("swarmcast_"), "{metrics:?}");

    // Shut down: the sessions close, the layer answers 503, the app goes on.
    running.shutdown().await;
    assert!(ws.closed_within(WAIT).await);
    let after = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(after.status, 503);
    assert_eq!(http(addr, "GET", "/", &[], b"").await.status, 200);
}

#[tokio::test]
async fn the_peer_address_comes_from_the_request_extensions() {
    let (addr, running) = axum_app().await;
    let (mut ws, _) = WsClient::connect(addr).await;
    // axum's `ConnectInfo` is not ours: without a `SocketAddr` extension the peer is
    // unknown, and the handler sees none rather than a made-up one.
    assert_eq!(echo_ws(&mut ws, "x").await["remote"], json!(""));
    running.shutdown().await;

    let (addr, running) = hyper_app().await;
    let (mut ws, _) = WsClient::connect(addr).await;
    assert_eq!(echo_ws(&mut ws, "x").await["remote"], json!("127.0.0.1"));
    running.shutdown().await;
}

/// A plain hyper server: one route of its own, the layer around it, and the peer's
/// address put in each request's extensions.
async fn hyper_app() -> (SocketAddr, ServiceHandle) {
    let (layer, running) = server().into_layer().await.expect("into_layer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, remote)) = listener.accept().await {
            let app = tower::service_fn(|_req: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hyper app"))))
            });
            let service = layer.layer(app);
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(remote);
                service.clone().oneshot(req)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    (addr, running)
}

#[tokio::test]
async fn plain_hyper_serves_both() {
    let (addr, running) = hyper_app().await;
    assert_eq!(http(addr, "GET", "/app", &[], b"").await.body, "hyper app");
    let polling = PollClient::connect(addr).await;
    let mut upgraded = WsClient::attach(addr, &polling.sid).await;
    upgraded.upgrade().await;
    assert_eq!(
        echo_ws(&mut upgraded, "hyper").await["args"],
        json!(["hyper"])
    );
    running.shutdown().await;
}

#[tokio::test]
async fn into_service_answers_404_to_everything_else() {
    let (layer, running) = server().into_layer().await.expect("into_layer");
    let mut service = layer.into_service();
    let req = Request::get("/elsewhere")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = service.call(req).await.expect("infallible");
    assert_eq!(resp.status(), 404);
    let req = Request::get("/healthz")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_eq!(service.call(req).await.expect("infallible").status(), 200);
    running.shutdown().await;
}

#[tokio::test]
async fn a_publish_api_without_a_key_off_loopback_is_refused() {
    let config = ServerConfig {
        host: "0.0.0.0".into(),
        publish_api: true,
        ..ServerConfig::default()
    };
    let refused = Server::new(config).into_layer().await;
    assert!(matches!(refused, Err(swarmcast::ServerError::Config(_))));
    // The same configuration on loopback is fine.
    let config = ServerConfig {
        publish_api: true,
        ..ServerConfig::default()
    };
    let (_layer, running) = Server::new(config).into_layer().await.expect("loopback");
    tokio::time::sleep(Duration::from_millis(1)).await;
    running.shutdown().await;
}
