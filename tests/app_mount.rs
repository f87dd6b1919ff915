//! A host application mounted beside Socket.IO on one port (`Server::mount_app`): its
//! routes answer, streamed bodies go out chunked, bodies over the limit get 413, and
//! Socket.IO still works on the same port.

mod fixture;

use std::sync::Arc;

use bytes::Bytes;
use fixture::{config, http, serve, WsClient};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde_json::json;
use swarmcast::{AppBody, AppFuture, AppRequest, AppResponse, HttpApp, Server};

/// `/stream` sends three chunks; anything else echoes method, path, query and body.
struct Echo;

impl HttpApp for Echo {
    fn call(&self, req: AppRequest) -> AppFuture {
        Box::pin(async move {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            if req.uri.path() == "/stream" {
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                tokio::spawn(async move {
                    for part in ["one,", "two,", "three"] {
                        let _ = tx.send(Ok(Bytes::from(part))).await;
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                });
                return AppResponse {
                    status: StatusCode::OK,
                    headers,
                    body: AppBody::Stream(rx),
                };
            }
            let text = format!(
                "{} {} {} {}",
                req.method,
                req.uri.path(),
                req.uri.query().unwrap_or(""),
                String::from_utf8_lossy(&req.body)
            );
            AppResponse {
                status: StatusCode::OK,
                headers,
                body: AppBody::Full(text.into()),
            }
        })
    }
}

#[tokio::test]
async fn the_app_and_socket_io_share_one_port() {
    let mut server = Server::new(config());
    server.mount_app(Arc::new(Echo), 1024);
    let handle = serve(server).await;
    let addr = handle.local_addr();

    let page = http(addr, "GET", "/dashboard?x=1", &[], b"").await;
    assert_eq!(
        (page.status, page.body.as_str()),
        (200, "GET /dashboard x=1 ")
    );
    let post = http(addr, "POST", "/form", &[], b"a=1&b=2").await;
    assert_eq!(post.body, "POST /form  a=1&b=2");

    let streamed = http(addr, "GET", "/stream", &[], b"").await;
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("transfer-encoding"), Some("chunked"));
    assert_eq!(streamed.body, "one,two,three");

    let big = http(addr, "POST", "/upload", &[], &[b'x'; 2048]).await;
    assert_eq!(big.status, 413, "over the mount's body limit");

    // The server's own routes and Socket.IO are still there.
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").await.body, "ok");
    let (mut client, _) = WsClient::connect(addr).await;
    handle.emitter().emit("hello", &1).expect("emit");
    assert_eq!(
        client.recv_event().await,
        Some(("hello".into(), vec![json!(1)]))
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn without_an_app_other_paths_are_not_found() {
    let handle = serve(Server::new(config())).await;
    let reply = http(handle.local_addr(), "GET", "/dashboard", &[], b"").await;
    assert_eq!(reply.status, 404);
    handle.shutdown().await;
}
