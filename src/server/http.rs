//! HTTP: the accept loop, routing, CORS, Engine.IO request validation, `/healthz`
//! (liveness), `/readyz` (readiness: joined to the cluster) and `POST /api/emit`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::app::{AppRequest, HttpApp, ResponseBody};
use super::conn::{self, Connections, Hosts, SharedTcp, Tracked, WriteWatch};
use super::{polling, websocket, ServerConfig};
use crate::engine::{Engine, RequestInfo, Transport};
use crate::socketio::context::IoCore;
use crate::socketio::rooms::Target;

pub(crate) type HttpResponse = Response<ResponseBody>;

/// The error of a request body, boxed (what `http_body_util::Limited` reports).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the endpoints can read: hyper's own, axum's, any body of bytes.
pub(crate) trait RequestBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> RequestBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

/// Where a request goes, decided from its path alone (before its body is touched).
pub(crate) enum Route {
    /// `/healthz`: liveness.
    Health,
    /// `/readyz`: readiness (joined to the cluster).
    Ready,
    /// `/metrics`, when served.
    Metrics,
    /// `POST /api/emit`, when served.
    Publish,
    /// An Engine.IO endpoint (Socket.IO's or a raw one).
    Engine(Arc<Engine>),
    /// Anything else: the mounted application's, the host application's (in a tower
    /// stack), or nobody's.
    Other,
}

/// Routing table and settings shared by every connection.
pub(crate) struct App {
    engines: Vec<(String, Arc<Engine>)>,
    cors: Cors,
    core: Arc<IoCore>,
    publish_api: bool,
    api_key: Option<String>,
    metrics: bool,
    metrics_token: Option<String>,
    hosts: Hosts,
    max_payload: usize,
    max_connections: usize,
    connections: Arc<Connections>,
    /// The host application for every other path, and the largest body it takes.
    app: Option<(Arc<dyn HttpApp>, usize)>,
    /// Headers, and then a body, each within this.
    pub request_timeout: Duration,
    /// A write that makes no progress for this long ends its connection.
    pub write_timeout: Duration,
}

impl App {
    pub fn new(
        config: &ServerConfig,
        engines: Vec<(String, Arc<Engine>)>,
        core: Arc<IoCore>,
        bound_loopback: bool,
        app: Option<(Arc<dyn HttpApp>, usize)>,
    ) -> Self {
        Self {
            engines,
            cors: Cors::new(&config.cors_allowed_origins),
            core,
            publish_api: config.publish_api,
            api_key: config.api_key.clone(),
            metrics: config.metrics,
            metrics_token: config.metrics_token.clone(),
            hosts: Hosts::new(&config.allowed_hosts, bound_loopback),
            max_payload: config.engine.max_payload,
            max_connections: config.limits.max_connections,
            connections: Arc::new(Connections::default()),
            app,
            request_timeout: config.limits.request_timeout,
            write_timeout: config.limits.write_timeout,
        }
    }

    /// Where a request for `path` goes.
    pub fn route(&self, path: &str) -> Route {
        match path {
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            "/metrics" if self.metrics => Route::Metrics,
            "/api/emit" if self.publish_api => Route::Publish,
            _ => match self.engine_for(path) {
                Some(engine) => Route::Engine(engine.clone()),
                None => Route::Other,
            },
        }
    }

    fn engine_for(&self, path: &str) -> Option<&Arc<Engine>> {
        let path = path.trim_end_matches('/');
        self.engines
            .iter()
            .find(|(p, _)| p == path || (p == "/" && path.is_empty()))
            .map(|(_, e)| e)
    }
}

/// Accept TCP connections until shutdown; each is served by hyper on its own task.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = app.connections.admit(app.max_connections) else {
            app.core.ctx.stats.tcp_refused();
            tracing::debug!(%remote, max = app.max_connections, "connection refused: at max_connections");
            tasks.spawn(conn::refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let watch = WriteWatch::new();
        let stream = Tracked::new(
            SharedTcp::new(stream, app.core.ctx.stats.clone()),
            watch.clone(),
            Some(slot),
        );
        let app = app.clone();
        let shutdown = shutdown.clone();
        let conn_tasks = tasks.clone();
        tasks.spawn(async move {
            let (request_timeout, write_timeout) = (app.request_timeout, app.write_timeout);
            let stats = app.core.ctx.stats.clone();
            let req_watch = watch.clone();
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let app = app.clone();
                let tasks = conn_tasks.clone();
                // The WebSocket task, if this request upgrades, watches the same socket.
                req.extensions_mut().insert(req_watch.clone());
                async move {
                    let route = app.route(req.uri().path());
                    Ok::<_, Infallible>(serve(app, route, req, Some(remote), tasks).await)
                }
            });
            // The header timeout needs a timer: without one hyper has none. It runs
            // whenever hyper waits for a request head, so a connection that sends
            // nothing, or its headers a byte at a time, or idles between keep-alive
            // requests, is closed after it.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(request_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::trace!(error = %e, "http connection ended with an error");
                    }
                }
                _ = write_stalled(&watch, write_timeout) => {
                    // A response (a long-poll's, say) the client does not read: drop the
                    // connection and reset its socket.
                    stats.write_timeout();
                    watch.abort();
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Resolves once a write on the connection has made no progress for `limit`.
pub(crate) async fn write_stalled(watch: &WriteWatch, limit: Duration) {
    loop {
        tokio::time::sleep_until(watch.deadline(limit)).await;
        if watch.stalled(limit) {
            return;
        }
    }
}

/// Answer a request [`App::route`] sent to `route`. `remote` is the peer's address,
/// when known (a host application's stack may not say).
pub(crate) async fn serve<B: RequestBody>(
    app: Arc<App>,
    route: Route,
    req: Request<B>,
    remote: Option<std::net::SocketAddr>,
    tasks: TaskTracker,
) -> HttpResponse {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match route {
        // Liveness: the process serves HTTP, whatever the cluster link does.
        Route::Health => text(StatusCode::OK, "ok"),
        // Health checks answer whatever the Host (a load balancer's probe).
        Route::Ready => readiness(&app),
        // DNS rebinding, or a proxy whose public name is not in `allowed_hosts`.
        _ if !app.hosts.allows(host) => text(StatusCode::FORBIDDEN, "host not allowed"),
        Route::Metrics => match &app.metrics_token {
            Some(token) if !bearer_matches(req.headers(), token) => {
                text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
            }
            _ => metrics(&app),
        },
        Route::Publish => publish(&app, req).await,
        Route::Engine(engine) => {
            let origin = req.headers().get(header::ORIGIN).cloned();
            let mut response = engine_request(&app, engine, req, remote, tasks).await;
            app.cors.apply(origin.as_ref(), response.headers_mut());
            response
        }
        Route::Other => match &app.app {
            Some((host_app, max_body)) => serve_app(host_app, *max_body, req, remote).await,
            None => text(StatusCode::NOT_FOUND, "not found"),
        },
    }
}

/// Hand a request to the mounted application, its body read first (at most
/// `max_body` bytes: 413 beyond).
async fn serve_app<B: RequestBody>(
    host_app: &Arc<dyn HttpApp>,
    max_body: usize,
    req: Request<B>,
    remote: Option<std::net::SocketAddr>,
) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let body = match Limited::new(body, max_body).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        Err(_) => return text(StatusCode::BAD_REQUEST, "request body not read"),
    };
    let answer = host_app
        .call(AppRequest {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            // The standalone server, the only one that mounts an app, always knows it.
            remote_addr: remote.unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            body,
        })
        .await;
    let mut resp = Response::new(ResponseBody::from(answer.body));
    *resp.status_mut() = answer.status;
    *resp.headers_mut() = answer.headers;
    resp
}

/// Engine.IO error codes, as the reference implementation answers them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EngineError {
    TransportUnknown = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    Forbidden = 4,
    UnsupportedProtocolVersion = 5,
}

impl EngineError {
    fn message(self) -> &'static str {
        match self {
            EngineError::TransportUnknown => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::Forbidden => "Forbidden",
            EngineError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    pub fn response(self) -> HttpResponse {
        let status = if matches!(self, EngineError::Forbidden) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        let body = serde_json::json!({"code": self as u8, "message": self.message()}).to_string();
        let mut resp = Response::new(ResponseBody::full(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    let mut resp = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}

fn query_params(query: &str) -> HashMap<&str, &str> {
    query
        .split('&')
        .filter_map(|pair| {
            let mut it = pair.splitn(2, '=');
            Some((it.next()?, it.next().unwrap_or("")))
        })
        .collect()
}

async fn engine_request<B: RequestBody>(
    app: &App,
    engine: Arc<Engine>,
    req: Request<B>,
    remote: Option<std::net::SocketAddr>,
    tasks: TaskTracker,
) -> HttpResponse {
    if req.method() == Method::OPTIONS {
        return app.cors.preflight(req.headers());
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let params = query_params(&query);
    if params.get("EIO") != Some(&"4") {
        return EngineError::UnsupportedProtocolVersion.response();
    }
    let transport = match params.get("transport") {
        Some(&"polling") if engine.config.allow_polling => Transport::Polling,
        Some(&"websocket") if engine.config.allow_websocket => Transport::WebSocket,
        _ => return EngineError::TransportUnknown.response(),
    };
    let sid = params.get("sid").map(|s| s.to_string());
    let is_upgrade = websocket::is_upgrade_request(&req);

    if transport == Transport::WebSocket {
        if !is_upgrade {
            return EngineError::BadRequest.response();
        }
        if !app.cors.allows_websocket(req.headers(), &app.hosts) {
            return EngineError::Forbidden.response();
        }
        let purpose = match sid {
            Some(sid) => match engine.session(&sid) {
                Some(s) if s.attach_probe() => websocket::Purpose::Upgrade(s),
                Some(_) => websocket::Purpose::Refuse,
                None => return EngineError::UnknownSid.response(),
            },
            None => websocket::Purpose::Open,
        };
        let info = RequestInfo::new(remote, query, req.headers());
        return websocket::upgrade(engine, purpose, req, info, tasks, app.write_timeout);
    }

    match (req.method(), sid) {
        (&Method::GET, None) => {
            let info = RequestInfo::new(remote, query.clone(), req.headers());
            let (_session, open) = engine.open(Transport::Polling, &info);
            polling::payload_response(open)
        }
        (_, None) => EngineError::BadHandshakeMethod.response(),
        (method, Some(sid)) => {
            let Some(session) = engine.session(&sid) else {
                if *method == Method::GET {
                    // NOOP: the client's CLOSE overtook this GET (end it as if it had come
                    // first); CLOSE: the server's, after the last frames went out.
                    if let Some(last) = engine.take_owed_final_packet(&sid) {
                        return polling::payload_response(last.to_string());
                    }
                }
                return EngineError::UnknownSid.response();
            };
            if *method == Method::GET {
                polling::let_upgrade_settle(&session).await;
            }
            if session.transport() != Transport::Polling {
                return EngineError::BadRequest.response();
            }
            match *method {
                Method::GET => polling::get(&engine, session).await,
                Method::POST => {
                    let post = polling::post(&engine, session.clone(), req);
                    match tokio::time::timeout(app.request_timeout, post).await {
                        Ok(response) => response,
                        Err(_) => {
                            // A body sent a byte at a time.
                            session.close(crate::engine::CloseReason::ParseError);
                            text(StatusCode::REQUEST_TIMEOUT, "request body too slow")
                        }
                    }
                }
                _ => EngineError::BadRequest.response(),
            }
        }
    }
}

/// CORS policy: which origins may use the server from a browser.
pub(crate) struct Cors {
    any: bool,
    origins: Vec<String>,
}

impl Cors {
    fn new(allowed: &[String]) -> Self {
        Self {
            any: allowed.iter().any(|o| o == "*"),
            origins: allowed
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Add the CORS headers to a response for an allowed origin.
    fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(origin) = origin else { return };
        let Ok(o) = origin.to_str() else { return };
        if self.allows(o) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    fn preflight(&self, req_headers: &HeaderMap) -> HttpResponse {
        let mut resp = Response::new(ResponseBody::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let headers = resp.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        if let Some(h) = req_headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone());
        }
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        resp
    }

    /// Browsers do not apply CORS to WebSockets, so the server checks `Origin` itself:
    /// no header (not a browser), an allowed origin, or the same origin when the `Host`
    /// it is compared with was itself checked ([`Hosts::validated`]). Never `Origin`
    /// against an unchecked `Host` alone: a DNS-rebound page sends a matching pair.
    fn allows_websocket(&self, headers: &HeaderMap, hosts: &Hosts) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
            return true;
        };
        if self.allows(origin) {
            return true;
        }
        if !hosts.validated() {
            return false;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.split("://").nth(1);
        matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
    }
}

/// `GET /readyz`: 200 while the node is joined to its cluster (always, with the local
/// adapter), 503 when it is cut off (Redis unreachable, credentials refused, stream
/// reader too far behind); the body says why, as JSON.
fn readiness(app: &App) -> HttpResponse {
    let r = app.core.ctx.adapter().readiness();
    let mut body = r.detail;
    if let Value::Object(map) = &mut body {
        map.insert("ready".into(), Value::Bool(r.ready));
        if !r.ready {
            map.insert("reason".into(), Value::String(r.reason));
        }
    }
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body)
}

/// `GET /metrics`: Prometheus text.
fn metrics(app: &App) -> HttpResponse {
    let mut connections = Vec::new();
    for ns in app.core.all() {
        let (mut ws, mut polling) = (0i64, 0i64);
        for socket in ns.sockets() {
            match socket.transport() {
                Transport::WebSocket => ws += 1,
                Transport::Polling => polling += 1,
            }
        }
        connections.push((ns.name().to_string(), "websocket", ws));
        connections.push((ns.name().to_string(), "polling", polling));
    }
    let (mut sessions, mut queued, mut max_depth) = (0usize, 0usize, 0usize);
    for (_, engine) in &app.engines {
        sessions += engine.session_count();
        let (sum, max) = engine.queue_depths();
        queued += sum;
        max_depth = max_depth.max(max);
    }
    let gauges = crate::metrics::Gauges {
        connections,
        sessions: sessions as i64,
        tcp_connections: app.connections.open() as i64,
        queued_frames: queued as i64,
        max_queue_depth: max_depth as i64,
    };
    let body = crate::metrics::render(&app.core.ctx.stats, &gauges);
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// Body of `POST /api/emit`.
#[derive(Debug, Deserialize)]
struct PublishRequest {
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default = "root_namespace")]
    namespace: String,
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

fn root_namespace() -> String {
    "/".to_string()
}

fn json_response(status: StatusCode, body: Value) -> HttpResponse {
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Publish over HTTP: any language can emit with one request.
async fn publish<B: RequestBody>(app: &App, req: Request<B>) -> HttpResponse {
    if req.method() != Method::POST {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "use POST"}),
        );
    }
    if let Some(key) = &app.api_key {
        if !bearer_matches(req.headers(), key) {
            return json_response(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "missing or wrong bearer key"}),
            );
        }
    }
    // A browser sends a cross-site POST without asking first (no CORS preflight) only
    // with a "simple" content type (text/plain, form encodings) and no `Authorization`:
    // without a key, requiring JSON makes it ask, and the API grants no preflight.
    let json = app.api_key.is_some()
        || req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            serde_json::json!({"error": "Content-Type must be application/json"}),
        );
    }
    let collect = Limited::new(req.into_body(), app.max_payload).collect();
    let body = match tokio::time::timeout(app.request_timeout, collect).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "body too large"}),
            )
        }
        Err(_) => {
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                serde_json::json!({"error": "request body too slow"}),
            )
        }
    };
    let request: PublishRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("invalid request: {e}")}),
            )
        }
    };
    let Some(ns) = app.core.get(&request.namespace) else {
        return json_response(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no namespace `{}`", request.namespace)}),
        );
    };
    let target = Target {
        rooms: request.rooms.into_iter().map(Into::into).collect(),
        except: request.except.into_iter().map(Into::into).collect(),
    };
    match ns
        .broadcast()
        .target(target)
        .emit(&request.event, &request.data)
    {
        Ok(report) => json_response(
            StatusCode::OK,
            serde_json::json!({"delivered": report.delivered, "queue_full": report.full.len()}),
        ),
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": e.to_string()}),
        ),
    }
}

/// Whether the `Authorization: Bearer` header carries `expected` (compared in
/// constant time).
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
