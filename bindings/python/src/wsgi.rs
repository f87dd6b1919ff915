//! A WSGI application (Flask, Dash, any PEP 3333 callable) served on the swarmcast
//! server's own port: the core hands every request that is not Socket.IO's to
//! [`WsgiApp`] ([`swarmcast::HttpApp`]), which runs the application on worker threads
//! of its own (taking the GIL only there) and streams what it yields back.
//!
//! The workers are a [`WorkerPool`]: requests run one after the other on the worker
//! that holds the GIL, without giving it up between them, and a request that waits
//! while no request finished for [`STALL_CHECK`] (the running one is blocked in I/O,
//! the GIL released) brings another worker in. Threads contending for the GIL on a CPU-bound
//! application cost more than they give.
//!
//! The request body is read first, within the mount's limit (413 beyond), and given as
//! `wsgi.input` (an `io.BytesIO`). Headers go out with the first non-empty chunk (or at
//! the end); the result's `close()` is always called; an exception before the headers
//! is logged and answered 500, one after them aborts the response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::StatusCode;
use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use swarmcast::{AppBody, AppFuture, AppRequest, AppResponse, HttpApp, ReplySender, WorkerPool};
use tokio::sync::mpsc;

use crate::environ::{latin1, set_headers};
use crate::handlers::log_exception;

type Chunk = Result<Bytes, std::io::Error>;

/// The status and headers, and the whole body when the first chunk is all of it (its
/// `Content-Length`): then it goes in one piece, without the chunk channel.
type HeadOut = (StatusCode, HeaderMap, Option<Bytes>);

/// How often a waiting request checks that the workers make progress (when no request
/// finished in that time, another worker is woken) and sends the replies the pool
/// held back ([`swarmcast::Ticket::tick`]).
const STALL_CHECK: Duration = Duration::from_millis(1);

/// Serves one WSGI callable.
pub(crate) struct WsgiApp {
    app: Arc<Py<PyAny>>,
    workers: WorkerPool,
}

impl WsgiApp {
    pub fn new(app: Py<PyAny>, threads: usize) -> PyResult<Self> {
        // A worker keeps the GIL from one request to the next.
        let workers = WorkerPool::new(threads.max(1), "swarmcast-wsgi", |run| {
            Python::attach(|_py| run())
        })
        .map_err(|e| {
            PyRuntimeError::new_err(format!("cannot start the WSGI worker threads: {e}"))
        })?;
        Ok(Self {
            app: Arc::new(app),
            workers,
        })
    }
}

impl HttpApp for WsgiApp {
    fn call(&self, request: AppRequest) -> AppFuture {
        let (head_tx, mut head_rx) = self.workers.reply();
        let (body_tx, body_rx) = mpsc::channel::<Chunk>(16);
        let app = self.app.clone();
        let mut ticket = self.workers.submit(move || {
            let response = Response::new(head_tx, body_tx);
            Python::attach(|py| serve(py, &app, request, &response));
        });
        Box::pin(async move {
            let head = loop {
                tokio::select! {
                    head = &mut head_rx => break head,
                    _ = tokio::time::sleep(STALL_CHECK) => ticket.tick(),
                }
            };
            match head {
                Ok((status, headers, Some(whole))) => AppResponse {
                    status,
                    headers,
                    body: AppBody::Full(whole),
                },
                Ok((status, headers, None)) => AppResponse {
                    status,
                    headers,
                    body: AppBody::Stream(body_rx),
                },
                Err(_) => internal_error(),
            }
        })
    }
}

fn internal_error() -> AppResponse {
    AppResponse {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: HeaderMap::new(),
        body: AppBody::Full(Bytes::from_static(b"Internal Server Error")),
    }
}

/// What a response has sent so far, shared by `start_response`, `write` and the
/// iteration of the result.
struct Response {
    head: Mutex<Head>,
    /// The client closed the connection before the body was sent.
    gone: std::sync::atomic::AtomicBool,
    /// Taken when the request is done: Python may keep `start_response` (and so this
    /// response) alive, in a traceback for one, and the body must end all the same.
    body: Mutex<Option<mpsc::Sender<Chunk>>>,
}

struct Head {
    /// Set by `start_response`.
    pending: Option<(StatusCode, HeaderMap)>,
    /// Taken when the headers go out.
    sender: Option<ReplySender<HeadOut>>,
}

impl Response {
    fn new(head: ReplySender<HeadOut>, body: mpsc::Sender<Chunk>) -> Arc<Self> {
        Arc::new(Self {
            head: Mutex::new(Head {
                pending: None,
                sender: Some(head),
            }),
            body: Mutex::new(Some(body)),
            gone: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn client_gone(&self) -> PyErr {
        self.gone.store(true, std::sync::atomic::Ordering::Release);
        PyRuntimeError::new_err("the client went away")
    }

    fn headers_sent(&self) -> bool {
        self.head.lock().sender.is_none()
    }

    /// Send the headers if they have not gone yet.
    fn send_head(&self) -> PyResult<()> {
        self.send_head_with(None).map(|_| ())
    }

    /// Send the headers if they have not gone yet, with `first`, the first chunk of
    /// the body, when it is all of it (`Content-Length` says so). Returns whether the
    /// chunk went with them (and the body is complete).
    fn send_head_with(&self, first: Option<&[u8]>) -> PyResult<bool> {
        let mut head = self.head.lock();
        if head.sender.is_none() {
            return Ok(false);
        }
        let Some((status, headers)) = head.pending.take() else {
            return Err(PyRuntimeError::new_err(
                "the WSGI application sent a body before calling start_response",
            ));
        };
        let declared = headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        let whole = first
            .filter(|chunk| declared == Some(chunk.len()))
            .map(Bytes::copy_from_slice);
        let complete = whole.is_some();
        if complete {
            // Nothing more to stream: the body ends here.
            self.body.lock().take();
        }
        if let Some(sender) = head.sender.take() {
            sender.send((status, headers, whole));
        }
        Ok(complete)
    }

    /// Send one chunk (headers first), without the GIL while the client is slow.
    fn write(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.send_head_with(Some(data))? {
            return Ok(());
        }
        let chunk = Bytes::copy_from_slice(data);
        let Some(body) = self.body.lock().clone() else {
            return Err(PyRuntimeError::new_err("the response is finished"));
        };
        // Usually there is room: no need to give the GIL up and take it back.
        match body.try_send(Ok(chunk)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(chunk)) => py
                .detach(|| body.blocking_send(chunk))
                .map_err(|_| self.client_gone()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.client_gone()),
        }
    }

    /// Send the last chunk (or an error, which aborts the response) and end the body.
    fn finish(&self, last: Option<Chunk>) {
        if let Some(body) = self.body.lock().take() {
            if let Some(last) = last {
                let _ = body.blocking_send(last);
            }
        }
    }
}

/// `start_response(status, response_headers, exc_info=None)` of one request.
#[pyclass(module = "swarmcast._native")]
struct StartResponse {
    response: Arc<Response>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &str,
        headers: Vec<(String, String)>,
        exc_info: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        if let Some(exc_info) = exc_info.filter(|e| !e.is_none()) {
            if self.response.headers_sent() {
                // PEP 3333: too late to change the response; re-raise.
                let exc = exc_info.get_item(1)?;
                return Err(PyErr::from_value(exc));
            }
        } else if self.response.head.lock().pending.is_some() && !self.response.headers_sent() {
            return Err(PyRuntimeError::new_err("start_response was already called"));
        }
        let code = status
            .split_whitespace()
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| PyValueError::new_err(format!("bad WSGI status line: {status:?}")))?;
        let mut map = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PyValueError::new_err(format!("bad header name: {name:?}")))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|_| PyValueError::new_err(format!("bad value of header {name}")))?;
            map.append(name, value);
        }
        self.response.head.lock().pending = Some((code, map));
        Py::new(
            py,
            Write {
                response: self.response.clone(),
            },
        )
    }
}

/// The legacy `write(data)` callable `start_response` returns.
#[pyclass(module = "swarmcast._native")]
struct Write {
    response: Arc<Response>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        self.response.write(py, data)
    }
}

/// Run the application for one request, on a worker thread holding the GIL.
fn serve(py: Python<'_>, app: &Py<PyAny>, request: AppRequest, response: &Arc<Response>) {
    let outcome = run(py, app, request, response);
    let last = match outcome {
        Ok(()) => None,
        Err(_) if response.gone.load(std::sync::atomic::Ordering::Acquire) => {
            // Not the application's failure: the client closed the connection (a
            // browser navigating away, a load tool stopping).
            tracing::debug!("a WSGI response was cut short: the client went away");
            None
        }
        Err(err) => {
            log_exception(py, err, "the WSGI application failed");
            let sender = response.head.lock().sender.take();
            match sender {
                // Nothing went out yet: answer 500.
                Some(sender) => {
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        hyper::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    sender.send((StatusCode::INTERNAL_SERVER_ERROR, headers, None));
                    Some(Ok(Bytes::from_static(b"Internal Server Error")))
                }
                // Too late for a status: abort the response.
                None => Some(Err(std::io::Error::other("the WSGI application failed"))),
            }
        }
    };
    match last {
        // Only a last chunk may have to wait for the client: then without the GIL.
        Some(last) => py.detach(|| response.finish(Some(last))),
        None => response.finish(None),
    }
}

fn run(
    py: Python<'_>,
    app: &Py<PyAny>,
    request: AppRequest,
    response: &Arc<Response>,
) -> PyResult<()> {
    let environ = environ(py, request)?;
    let start_response = Py::new(
        py,
        StartResponse {
            response: response.clone(),
        },
    )?;
    let result = app.bind(py).call1((environ, start_response))?;
    let iterated = (|| -> PyResult<()> {
        for chunk in result.try_iter()? {
            let chunk = chunk?;
            let bytes = chunk
                .cast::<PyBytes>()
                .map_err(|_| PyValueError::new_err("a WSGI application must yield bytes"))?;
            response.write(py, bytes.as_bytes())?;
        }
        response.send_head()
    })();
    // PEP 3333: close() is called however the iteration ended.
    let closed = match result.hasattr("close") {
        Ok(true) => result.call_method0("close").map(|_| ()),
        _ => Ok(()),
    };
    iterated.and(closed)
}

/// The PEP 3333 `environ` of a request.
fn environ<'py>(py: Python<'py>, request: AppRequest) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    let AppRequest {
        method,
        uri,
        headers,
        remote_addr,
        body,
    } = request;
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (name.to_string(), port.to_string()),
        _ => (host.to_string(), "80".to_string()),
    };
    env.set_item("REQUEST_METHOD", method.as_str())?;
    env.set_item("SCRIPT_NAME", "")?;
    // PEP 3333: the decoded path, its bytes as latin-1 characters.
    let path: Vec<u8> = percent_encoding::percent_decode_str(uri.path()).collect();
    env.set_item("PATH_INFO", latin1(&path))?;
    env.set_item("QUERY_STRING", uri.query().unwrap_or(""))?;
    env.set_item("SERVER_NAME", server_name)?;
    env.set_item("SERVER_PORT", server_port)?;
    env.set_item("SERVER_PROTOCOL", "HTTP/1.1")?;
    env.set_item("REMOTE_ADDR", remote_addr.ip().to_string())?;
    env.set_item("REMOTE_PORT", remote_addr.port().to_string())?;
    set_headers(&env, &headers)?;
    if !headers.contains_key(hyper::header::CONTENT_LENGTH) && !body.is_empty() {
        env.set_item("CONTENT_LENGTH", body.len().to_string())?;
    }
    let modules = Modules::get(py)?;
    env.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
    env.set_item("wsgi.url_scheme", "http")?;
    env.set_item(
        "wsgi.input",
        modules
            .bytes_io
            .bind(py)
            .call1((PyBytes::new(py, &body),))?,
    )?;
    env.set_item("wsgi.input_terminated", true)?;
    env.set_item("wsgi.errors", modules.sys.bind(py).getattr("stderr")?)?;
    env.set_item("wsgi.multithread", true)?;
    env.set_item("wsgi.multiprocess", false)?;
    env.set_item("wsgi.run_once", false)?;
    env.set_item("wsgi.file_wrapper", modules.file_wrapper.bind(py))?;
    env.set_item(
        "SERVER_SOFTWARE",
        concat!("swarmcast/", env!("CARGO_PKG_VERSION")),
    )?;
    Ok(env)
}

/// The Python objects every request's environ needs, looked up once.
struct Modules {
    bytes_io: Py<PyAny>,
    sys: Py<PyAny>,
    file_wrapper: Py<PyAny>,
}

static MODULES: pyo3::sync::PyOnceLock<Modules> = pyo3::sync::PyOnceLock::new();

impl Modules {
    fn get(py: Python<'_>) -> PyResult<&'static Modules> {
        MODULES.get_or_try_init(py, || {
            Ok(Modules {
                bytes_io: py.import("io")?.getattr("BytesIO")?.unbind(),
                sys: py.import("sys")?.into_any().unbind(),
                file_wrapper: py.import("wsgiref.util")?.getattr("FileWrapper")?.unbind(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_as_pep_3333_says() {
        let decode = |p| percent_encoding::percent_decode_str(p).collect::<Vec<u8>>();
        assert_eq!(decode("/a%20b/%C3%A9"), b"/a b/\xc3\xa9");
        assert_eq!(decode("/100%"), b"/100%");
        assert_eq!(latin1(b"\xc3\xa9"), "\u{c3}\u{a9}");
    }
}
