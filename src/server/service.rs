//! The Socket.IO endpoints as a tower [`Layer`] and [`Service`] (feature `tower`): a
//! server mounted in an application's own HTTP stack (axum, hyper, anything tower),
//! on the application's listener and runtime. The standalone server answers with the
//! same code ([`http::serve`]); only the accept loop is its own.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::Body;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_layer::Layer;
use tower_service::Service;

use super::app::ResponseBody;
use super::http::{self, App, BoxError, RequestBody, Route};

/// What one running server answers; shared by every clone of its layer and services.
#[derive(Clone)]
struct Endpoints {
    app: Arc<App>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Endpoints {
    /// The route of a request the server answers itself; `None`: the application's.
    fn claims(&self, path: &str) -> Option<Route> {
        match self.app.route(path) {
            Route::Other => None,
            route => Some(route),
        }
    }

    async fn answer<B: RequestBody>(self, route: Route, req: Request<B>) -> Response<ResponseBody> {
        if self.shutdown.is_cancelled() {
            return http::text(StatusCode::SERVICE_UNAVAILABLE, "swarmcast is shut down");
        }
        let remote = req.extensions().get::<SocketAddr>().copied();
        http::serve(self.app, route, req, remote, self.tasks).await
    }
}

/// Wraps an application's service: requests for the Socket.IO path and the server's
/// own routes are answered by swarmcast, every other one by the application. Made by
/// [`crate::Server::into_layer`].
///
/// ```no_run
/// # async fn app() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{routing::get, Router};
///
/// let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
/// let (layer, running) = server.into_layer().await?;
/// let app = Router::new().route("/", get(|| async { "hello" })).layer(layer);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIoLayer {
    endpoints: Endpoints,
}

impl SocketIoLayer {
    pub(super) fn new(app: Arc<App>, tasks: TaskTracker, shutdown: CancellationToken) -> Self {
        Self {
            endpoints: Endpoints {
                app,
                tasks,
                shutdown,
            },
        }
    }

    /// The endpoints alone, answering 404 to every other request: for a hyper server
    /// that serves nothing else.
    pub fn into_service(self) -> SocketIoService<NotFound> {
        self.layer(NotFound)
    }
}

impl<S> Layer<S> for SocketIoLayer {
    type Service = SocketIoService<S>;

    fn layer(&self, inner: S) -> SocketIoService<S> {
        SocketIoService {
            endpoints: self.endpoints.clone(),
            inner,
        }
    }
}

/// The service [`SocketIoLayer`] makes: swarmcast's endpoints in front of `S`.
/// Responses carry either swarmcast's body or the application's
/// ([`http_body_util::Either`]).
#[derive(Clone)]
pub struct SocketIoService<S = NotFound> {
    endpoints: Endpoints,
    inner: S,
}

/// The future of a [`SocketIoService`] call.
pub type ServiceFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for SocketIoService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = Response<Either<ResponseBody, ResBody>>;
    type Error = S::Error;
    type Future = ServiceFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.endpoints.claims(req.uri().path()) {
            Some(route) => {
                let answer = self.endpoints.clone().answer(route, req);
                Box::pin(async move { Ok(answer.await.map(Either::Left)) })
            }
            None => {
                let inner = self.inner.call(req);
                Box::pin(async move { Ok(inner.await?.map(Either::Right)) })
            }
        }
    }
}

/// Answers 404 to everything: what [`SocketIoLayer::into_service`] wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<ResponseBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        std::future::ready(Ok(http::text(StatusCode::NOT_FOUND, "not found")))
    }
}
