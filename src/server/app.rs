//! The host application on the same port: every request that is not for Socket.IO, an
//! Engine.IO endpoint or the server's own routes goes to an [`HttpApp`] when one is
//! mounted ([`crate::Server::mount_app`]). This is how a Flask or Dash (WSGI) app is
//! served beside its push channel, same-origin, with no CORS to configure: the Python
//! binding mounts a WSGI bridge; a Rust program may mount anything.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode, Uri};
use tokio::sync::mpsc;

/// A request for the application, its body read in full (within the mount's limit).
#[derive(Debug)]
pub struct AppRequest {
    /// The method.
    pub method: Method,
    /// The request target (path and query).
    pub uri: Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The body.
    pub body: Bytes,
}

/// The application's answer.
#[derive(Debug)]
pub struct AppResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers (without `Content-Length` for a streamed body: hyper then sends it
    /// chunked).
    pub headers: HeaderMap,
    /// The body.
    pub body: AppBody,
}

/// A response body: all at once, or chunk by chunk as the application produces it.
#[derive(Debug)]
pub enum AppBody {
    /// The whole body.
    Full(Bytes),
    /// Chunks as they come; the body ends when the sender is dropped, and an error
    /// aborts the response (the connection is closed).
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

/// A boxed future of a response.
pub type AppFuture = Pin<Box<dyn Future<Output = AppResponse> + Send>>;

/// An HTTP application mounted beside Socket.IO on the same port.
///
/// ```
/// use swarmcast::{AppBody, AppRequest, AppResponse, AppFuture, HttpApp, Server, ServerConfig};
///
/// struct Hello;
/// impl HttpApp for Hello {
///     fn call(&self, req: AppRequest) -> AppFuture {
///         let body = format!("hello from {}", req.uri.path());
///         Box::pin(async move {
///             AppResponse {
///                 status: hyper::StatusCode::OK,
///                 headers: hyper::HeaderMap::new(),
///                 body: AppBody::Full(body.into()),
///             }
///         })
///     }
/// }
///
/// let mut server = Server::new(ServerConfig::default());
/// server.mount_app(std::sync::Arc::new(Hello), 1 << 20);
/// ```
pub trait HttpApp: Send + Sync + 'static {
    /// Answer one request. Runs on a runtime thread: hand blocking work (a Python
    /// interpreter, a database) to threads of its own and await the answer.
    fn call(&self, request: AppRequest) -> AppFuture;
}

/// The body of every response the server sends: the Socket.IO endpoints' answers (whole)
/// and a mounted application's (whole or streamed). With the `tower` feature it is the
/// body of `SocketIoService`'s own responses.
#[derive(Debug)]
pub struct ResponseBody(Contents);

#[derive(Debug)]
enum Contents {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody(Contents::Full(Some(bytes.into())))
    }

    pub(crate) fn empty() -> Self {
        ResponseBody(Contents::Full(None))
    }
}

impl From<AppBody> for ResponseBody {
    fn from(body: AppBody) -> Self {
        match body {
            AppBody::Full(bytes) => ResponseBody::full(bytes),
            AppBody::Stream(rx) => ResponseBody(Contents::Stream(rx)),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().0 {
            Contents::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Contents::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Contents::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Contents::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Contents::Full(None) => SizeHint::with_exact(0),
            Contents::Stream(_) => SizeHint::default(),
        }
    }
}
