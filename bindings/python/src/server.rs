//! `swarmcast.Server`: the core [`swarmcast::Server`] seen from Python.
//!
//! Every method extracts and converts its Python arguments first, then does the Rust work
//! with the GIL released. Locks of this module are never held while the GIL is taken.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use swarmcast::{
    EngineConfig, Host, HostState, Namespace, RecoveryConfig, Server, ServerConfig,
    SlowConsumerPolicy, Socket, WeakHost,
};

use crate::args::{self, names, positive, seconds, seconds_or_zero, Targets};
use crate::convert;
use crate::emit::{self, Encoded};
use crate::errors::{self, DisconnectedError};
use crate::handlers;
use crate::state::PyStateMap;

/// Every server, so that `_stop_all` (registered with `atexit`) can stop the running
/// ones before the interpreter finalizes (handler threads need it alive).
static SERVERS: Mutex<Vec<WeakHost>> = Mutex::new(Vec::new());

/// Forward the core's log events to `logging` (what `logger=True` does).
#[pyfunction]
#[pyo3(signature = (logger = true, engineio_logger = false))]
pub fn _enable_logging(py: Python<'_>, logger: bool, engineio_logger: bool) -> PyResult<()> {
    crate::pylog::enable(py, logger, engineio_logger)
}

/// Stop every running server (registered with `atexit` by the `swarmcast` package).
#[pyfunction]
pub fn _stop_all(py: Python<'_>) {
    let hosts: Vec<Host> = {
        let mut servers = SERVERS.lock();
        servers.retain(|w| w.upgrade().is_some());
        servers.iter().filter_map(WeakHost::upgrade).collect()
    };
    py.detach(move || {
        for host in &hosts {
            let _ = host.stop();
        }
        // The last reference may be ours: drop it here, without the GIL.
        drop(hosts);
    });
}

/// A Socket.IO server (Engine.IO v4 / Socket.IO v5) running on threads of its own.
#[pyclass(
    frozen,
    weakref,
    subclass,
    module = "swarmcast._native",
    name = "Server"
)]
pub struct PyServer {
    host: Host,
    host_name: String,
    /// The port asked for, until the first start binds one.
    port: u16,
    path: String,
    /// Whether emits raise `QueueFullError` for full queues (`slow_consumer="report"`);
    /// under "disconnect" the core has already disconnected those clients.
    report_full: bool,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        // Dropped with the GIL held (garbage collection): stopping joins handler threads
        // that wait for the GIL, so a running server stops on a thread of its own.
        if self.host.is_running() {
            let host = self.host.clone();
            let _ = std::thread::Builder::new()
                .name("swarmcast-teardown".into())
                .spawn(move || drop(host.stop()));
        }
    }
}

impl PyServer {
    /// A declared namespace; before `start()` it is declared on demand.
    fn namespace(&self, name: &str, declare: bool) -> PyResult<Arc<Namespace>> {
        if declare {
            return self.host.declare(name).map_err(errors::host_error);
        }
        self.host
            .namespace(name)
            .ok_or_else(|| errors::EmitError::new_err(format!("no namespace `{name}` is declared")))
    }

    fn register(
        &self,
        py: Python<'_>,
        event: &str,
        handler: &Bound<'_, PyAny>,
        namespace: &str,
    ) -> PyResult<()> {
        self.register_as(py, event, handler, namespace, false)
    }

    /// `deferred`: see [`PyHandler::deferred`] (event and catch-all handlers only).
    fn register_as(
        &self,
        py: Python<'_>,
        event: &str,
        handler: &Bound<'_, PyAny>,
        namespace: &str,
        deferred: bool,
    ) -> PyResult<()> {
        handlers::register(py, &self.host, event, handler, namespace, deferred)
    }
}

/// Returned by `on(event)` / `event(namespace=...)` without a handler: registers the
/// function it decorates and gives it back unchanged.
#[pyclass(frozen, module = "swarmcast._native")]
pub struct HandlerDecorator {
    server: Py<PyServer>,
    event: Option<String>,
    namespace: String,
}

#[pymethods]
impl HandlerDecorator {
    fn __call__<'py>(&self, handler: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = handler.py();
        let event = match &self.event {
            Some(e) => e.clone(),
            None => handler.getattr("__name__")?.extract::<String>()?,
        };
        self.server
            .get()
            .register(py, &event, &handler, &self.namespace)?;
        Ok(handler)
    }
}

#[pymethods]
impl PyServer {
    #[new]
    #[pyo3(signature = (
        host = "127.0.0.1",
        port = 5000,
        path = "/socket.io",
        cors_allowed_origins = None,
        ping_interval = 25.0,
        ping_timeout = 20.0,
        max_payload = 1_000_000,
        connect_timeout = 45.0,
        queue_packets = 65_536,
        queue_bytes = 16_777_216,
        max_polling_packets = 16,
        handler_threads = 4,
        worker_threads = 2,
        transports = None,
        max_attachments = 10,
        slow_consumer = "disconnect",
        emit_max_wait = 2.0,
        recovery = false,
        allow_subscribe = None,
        publish_api = false,
        api_key = None,
        shutdown_timeout = 5.0,
        allowed_hosts = None,
        reserved_rooms = None,
        metrics = true,
        metrics_token = None,
        max_connections = 10_000,
        listen_backlog = 1024,
        request_timeout = 10.0,
        write_timeout = 5.0,
        max_attachment_bytes = 1_000_000,
        max_attachment_bytes_total = 67_108_864,
        rate_limit_events = 0,
        rate_limit_bytes = 0,
        rate_limit_policy = "drop",
        logger = false,
        engineio_logger = false,
        message_queue = None,
        channel = "socket.io",
        emit_in_background = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        path: &str,
        cors_allowed_origins: Option<Bound<'_, PyAny>>,
        ping_interval: f64,
        ping_timeout: f64,
        max_payload: usize,
        connect_timeout: f64,
        queue_packets: usize,
        queue_bytes: usize,
        max_polling_packets: usize,
        handler_threads: usize,
        worker_threads: usize,
        transports: Option<Bound<'_, PyAny>>,
        max_attachments: usize,
        slow_consumer: &str,
        emit_max_wait: f64,
        recovery: bool,
        allow_subscribe: Option<Bound<'_, PyAny>>,
        publish_api: bool,
        api_key: Option<String>,
        shutdown_timeout: f64,
        allowed_hosts: Option<Bound<'_, PyAny>>,
        reserved_rooms: Option<Bound<'_, PyAny>>,
        metrics: bool,
        metrics_token: Option<String>,
        max_connections: usize,
        listen_backlog: u32,
        request_timeout: f64,
        write_timeout: f64,
        max_attachment_bytes: usize,
        max_attachment_bytes_total: usize,
        rate_limit_events: u32,
        rate_limit_bytes: u64,
        rate_limit_policy: &str,
        logger: bool,
        engineio_logger: bool,
        message_queue: Option<String>,
        channel: &str,
        emit_in_background: bool,
    ) -> PyResult<Self> {
        if logger || engineio_logger {
            crate::pylog::enable(py, logger, engineio_logger)?;
        }
        let limits = args::Limits {
            max_connections,
            listen_backlog,
            request_timeout,
            write_timeout,
            max_attachment_bytes,
            max_attachment_bytes_total,
            rate_limit_events,
            rate_limit_bytes,
            rate_limit_policy,
        }
        .check()?;
        let (allow_polling, allow_websocket) = args::transports(transports.as_ref())?;
        let slow_consumer = args::slow_consumer(slow_consumer)?;
        let engine = EngineConfig {
            ping_interval: seconds("ping_interval", ping_interval)?,
            ping_timeout: seconds("ping_timeout", ping_timeout)?,
            max_payload: positive("max_payload", max_payload)?,
            max_polling_packets: positive("max_polling_packets", max_polling_packets)?,
            queue_packets: positive("queue_packets", queue_packets)?,
            queue_bytes: positive("queue_bytes", queue_bytes)?,
            allow_websocket,
            allow_polling,
            ..EngineConfig::default()
        };
        // `..default()` keeps working when the core adds options (clippy sees it as
        // needless only while this lists every field).
        #[allow(clippy::needless_update)]
        let config = ServerConfig {
            host: host.to_string(),
            port,
            path: path.to_string(),
            cors_allowed_origins: names(cors_allowed_origins.as_ref(), "cors_allowed_origins")?,
            engine,
            connect_timeout: seconds("connect_timeout", connect_timeout)?,
            max_attachments,
            publish_api,
            api_key,
            worker_threads: positive("worker_threads", worker_threads)?,
            shutdown_timeout: seconds("shutdown_timeout", shutdown_timeout)?,
            slow_consumer,
            emit_max_wait: seconds_or_zero("emit_max_wait", emit_max_wait)?,
            recovery: recovery.then(RecoveryConfig::default),
            allow_subscribe: names(allow_subscribe.as_ref(), "allow_subscribe")?,
            allowed_hosts: names(allowed_hosts.as_ref(), "allowed_hosts")?,
            reserved_rooms: names(reserved_rooms.as_ref(), "reserved_rooms")?,
            metrics,
            metrics_token,
            limits,
            ..ServerConfig::default()
        };
        let mut server = Server::new(config);
        if let Some(url) = message_queue {
            args::join_cluster(&mut server, &url, channel)?;
        }
        let host_ = Host::new(server, positive("handler_threads", handler_threads)?);
        if emit_in_background {
            host_.enable_handoff().map_err(|e| {
                pyo3::exceptions::PyOSError::new_err(format!("no emit thread: {e}"))
            })?;
        }
        let mut servers = SERVERS.lock();
        servers.retain(|w| w.upgrade().is_some());
        servers.push(host_.downgrade());
        Ok(Self {
            host: host_,
            host_name: host.to_string(),
            port,
            path: path.to_string(),
            report_full: slow_consumer == SlowConsumerPolicy::Report,
        })
    }

    /// Bind and serve on a runtime of its own; returns once listening. A stopped
    /// server starts again with its handlers and state maps.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.host.start())
            .map(|_| ())
            .map_err(errors::host_error)
    }

    /// Serve the WSGI application `app` (Flask, Dash, any PEP 3333 callable) on this
    /// server's port, for every path that is not Socket.IO's: the page and its push
    /// channel share one origin, so no CORS is needed. `app` runs on up to `threads`
    /// worker threads: one after the other on the thread holding the GIL while requests
    /// keep it busy, on more when one waits over a millisecond (the running request is
    /// blocked in I/O); request bodies over `max_body` bytes get 413. Call before
    /// `start()`.
    #[pyo3(signature = (app, max_body = 16_777_216, threads = 8))]
    fn mount_wsgi(&self, app: Bound<'_, PyAny>, max_body: usize, threads: usize) -> PyResult<()> {
        if !app.is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "mount_wsgi needs a WSGI callable (app(environ, start_response))",
            ));
        }
        let bridge = crate::wsgi::WsgiApp::new(app.unbind(), positive("threads", threads)?)?;
        self.host
            .mount_app(std::sync::Arc::new(bridge), positive("max_body", max_body)?)
            .map_err(errors::host_error)
    }

    /// Stop: close every connection (disconnect handlers run), wait for the handler
    /// threads to finish what is queued. Idempotent.
    fn stop(&self, py: Python<'_>) {
        // The host waits for the emits handed off before it (emit_in_background).
        let _ = py.detach(|| self.host.stop());
    }

    /// Wait until every emit handed off so far (`emit_in_background=True`) has been
    /// written to its clients' queues, at most `timeout` seconds (None: no limit).
    /// Returns whether they all were; True at once without the option. Interruptible
    /// with Ctrl-C.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        match self.host.handoff() {
            Some(handoff) => emit::flush(py, handoff, timeout),
            None => Ok(true),
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if !slf.get().host.is_running() {
            slf.get().start(slf.py())?;
        }
        Ok(slf)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.stop(py);
        false
    }

    /// The port: the bound one once started (useful with `port=0`).
    #[getter]
    fn port(&self) -> u16 {
        self.host
            .last_local_addr()
            .map_or(self.port, |addr| addr.port())
    }

    /// The host the server binds.
    #[getter]
    fn host(&self) -> String {
        self.host_name.clone()
    }

    /// The Socket.IO path.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// `http://host:port`, what clients connect to.
    #[getter]
    fn url(&self) -> String {
        let host = &self.host_name;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        format!("http://{host}:{}", self.port())
    }

    /// Whether the server is running.
    #[getter]
    fn running(&self) -> bool {
        self.host.is_running()
    }

    /// Register `handler` for `event` (or return a decorator that does).
    #[pyo3(signature = (event, handler = None, namespace = None))]
    fn on(
        slf: &Bound<'_, Self>,
        event: String,
        handler: Option<Bound<'_, PyAny>>,
        namespace: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let namespace = namespace.unwrap_or_else(|| "/".to_string());
        match handler {
            Some(h) => {
                slf.get().register(py, &event, &h, &namespace)?;
                Ok(h.unbind())
            }
            None => Ok(Py::new(
                py,
                HandlerDecorator {
                    server: slf.clone().unbind(),
                    event: Some(event),
                    namespace,
                },
            )?
            .into_any()),
        }
    }

    /// Register `handler` for `event` (or `"*"`) as a deferred handler: it is called
    /// as `handler(ack, [event,] [namespace,] sid, *args)` on the handler thread, where
    /// `ack` is a `_Ack` to answer later (or `None`), and its return value is ignored.
    /// For the asyncio layer (`swarmcast.AsyncServer`), which answers when the
    /// coroutine it starts returns.
    #[pyo3(signature = (event, handler, namespace = None))]
    fn _on_deferred(
        &self,
        py: Python<'_>,
        event: &str,
        handler: Bound<'_, PyAny>,
        namespace: Option<&str>,
    ) -> PyResult<()> {
        self.register_as(py, event, &handler, namespace.unwrap_or("/"), true)
    }

    /// Decorator registering a function under its own name: `@server.event` or
    /// `@server.event(namespace="/chat")`.
    #[pyo3(signature = (handler = None, namespace = None))]
    fn event(
        slf: &Bound<'_, Self>,
        handler: Option<Bound<'_, PyAny>>,
        namespace: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let namespace = namespace.unwrap_or_else(|| "/".to_string());
        match handler {
            Some(h) => {
                let name: String = h.getattr("__name__")?.extract()?;
                slf.get().register(py, &name, &h, &namespace)?;
                Ok(h.unbind())
            }
            None => Ok(Py::new(
                py,
                HandlerDecorator {
                    server: slf.clone().unbind(),
                    event: None,
                    namespace,
                },
            )?
            .into_any()),
        }
    }

    /// Emit `event` to every client of `namespace`, or to rooms/sids `to` (alias `room`),
    /// minus `skip_sid`. `data`: `None` sends no argument, a tuple several. Returns the
    /// number of sockets it was queued to.
    #[pyo3(signature = (
        event, data = None, to = None, room = None, skip_sid = None,
        namespace = None, volatile = false, callback = None, timeout = 60.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        py: Python<'_>,
        event: &str,
        data: Option<Bound<'_, PyAny>>,
        to: Option<Bound<'_, PyAny>>,
        room: Option<Bound<'_, PyAny>>,
        skip_sid: Option<Bound<'_, PyAny>>,
        namespace: Option<&str>,
        volatile: bool,
        callback: Option<Bound<'_, PyAny>>,
        timeout: f64,
    ) -> PyResult<Option<usize>> {
        let namespace = namespace.unwrap_or("/");
        self.require_started()?;
        let callback = callback.filter(|c| !c.is_none());
        if let (Some(handoff), None) = (self.host.handoff(), &callback) {
            let data = Encoded::new(data.as_ref())?;
            let Targets { to, except } =
                Targets::parse(to.as_ref(), room.as_ref(), skip_sid.as_ref())?;
            emit::hand_off(
                py, &self.host, handoff, event, data, to, except, namespace, volatile, true,
            )?;
            return Ok(None);
        }
        let data = match &callback {
            Some(_) => Encoded {
                direct: None,
                payload: convert::to_payload(data.as_ref(), "data")?,
            },
            _ => Encoded::new(data.as_ref())?,
        };
        let Targets { to, except } = Targets::parse(to.as_ref(), room.as_ref(), skip_sid.as_ref())?;
        if let Some(callback) = callback {
            let [sid] = to.as_slice() else {
                return Err(PyValueError::new_err(
                    "callback needs a single recipient: pass to=<sid>",
                ));
            };
            let timeout = seconds("timeout", timeout)?;
            self.after_handed_off(py);
            let socket = self.connected(namespace, sid)?;
            emit::with_callback(
                py,
                &self.host,
                &socket,
                event,
                &data.payload,
                callback,
                timeout,
            );
            return Ok(Some(1));
        }
        let sent = emit::publish(
            py,
            &self.host,
            self.report_full,
            event,
            &data,
            to,
            except,
            namespace,
            volatile,
            true,
        )?;
        Ok(Some(sent.unwrap_or_default()))
    }

    /// `emit` without a callback for code that must not block (swarmcast.AsyncServer,
    /// on an event loop): when a socket it targets is above its backpressure watermark
    /// now (or, with `emit_in_background`, the handoff is full), nothing is emitted and
    /// it returns `False` (the caller then calls `emit` on a thread that may wait);
    /// otherwise it emits without waiting and returns what `emit` returns: the count,
    /// or `None` when handed off.
    #[pyo3(signature = (
        event, data = None, to = None, room = None, skip_sid = None,
        namespace = None, volatile = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn _try_emit(
        &self,
        py: Python<'_>,
        event: &str,
        data: Option<Bound<'_, PyAny>>,
        to: Option<Bound<'_, PyAny>>,
        room: Option<Bound<'_, PyAny>>,
        skip_sid: Option<Bound<'_, PyAny>>,
        namespace: Option<&str>,
        volatile: bool,
    ) -> PyResult<Py<PyAny>> {
        self.require_started()?;
        let data = Encoded::new(data.as_ref())?;
        let Targets { to, except } = Targets::parse(to.as_ref(), room.as_ref(), skip_sid.as_ref())?;
        let namespace = namespace.unwrap_or("/");
        if let Some(handoff) = self.host.handoff() {
            let handed = emit::hand_off(
                py, &self.host, handoff, event, data, to, except, namespace, volatile, false,
            )?;
            return Ok(match handed {
                true => py.None(),
                false => false.into_pyobject(py)?.to_owned().into_any().unbind(),
            });
        }
        let sent = emit::publish(
            py,
            &self.host,
            self.report_full,
            event,
            &data,
            to,
            except,
            namespace,
            volatile,
            false,
        )?;
        Ok(match sent {
            Some(n) => n.into_pyobject(py)?.into_any().unbind(),
            None => false.into_pyobject(py)?.to_owned().into_any().unbind(),
        })
    }

    /// `emit("message", data, ...)`.
    #[pyo3(signature = (
        data = None, to = None, room = None, skip_sid = None, namespace = None,
        volatile = false, callback = None, timeout = 60.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        data: Option<Bound<'_, PyAny>>,
        to: Option<Bound<'_, PyAny>>,
        room: Option<Bound<'_, PyAny>>,
        skip_sid: Option<Bound<'_, PyAny>>,
        namespace: Option<&str>,
        volatile: bool,
        callback: Option<Bound<'_, PyAny>>,
        timeout: f64,
    ) -> PyResult<Option<usize>> {
        self.emit(
            py, "message", data, to, room, skip_sid, namespace, volatile, callback, timeout,
        )
    }

    /// Emit to one client and wait (GIL released) for its ack; returns what it
    /// acknowledged with (`None`, one value, or a tuple of several). Raises
    /// `TimeoutError` after `timeout` seconds, `DisconnectedError` if it leaves.
    #[pyo3(signature = (event, data = None, to = None, namespace = None, timeout = 60.0))]
    fn call(
        &self,
        py: Python<'_>,
        event: &str,
        data: Option<Bound<'_, PyAny>>,
        to: Option<&str>,
        namespace: Option<&str>,
        timeout: f64,
    ) -> PyResult<Py<PyAny>> {
        let Some(sid) = to else {
            return Err(PyValueError::new_err(
                "call() needs to=<sid>: it cannot broadcast",
            ));
        };
        let namespace = namespace.unwrap_or("/");
        let payload = convert::to_payload(data.as_ref(), "data")?;
        let timeout = seconds("timeout", timeout)?;
        self.after_handed_off(py);
        let socket = self.connected(namespace, sid)?;
        let result = emit::wait_for_ack(py, &socket, event, &payload, timeout)?;
        let payload = result.map_err(errors::ack_error)?;
        Ok(convert::ack_result(py, &payload)?.unbind())
    }

    /// Put a socket in a room.
    #[pyo3(signature = (sid, room, namespace = None))]
    fn enter_room(
        &self,
        py: Python<'_>,
        sid: &str,
        room: &str,
        namespace: Option<&str>,
    ) -> PyResult<()> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
        self.after_handed_off(py);
        py.detach(|| ns.join_room(sid, room));
        Ok(())
    }

    /// Take a socket out of a room.
    #[pyo3(signature = (sid, room, namespace = None))]
    fn leave_room(
        &self,
        py: Python<'_>,
        sid: &str,
        room: &str,
        namespace: Option<&str>,
    ) -> PyResult<()> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
        self.after_handed_off(py);
        py.detach(|| ns.leave_room(sid, room));
        Ok(())
    }

    /// Empty a room.
    #[pyo3(signature = (room, namespace = None))]
    fn close_room(&self, py: Python<'_>, room: &str, namespace: Option<&str>) -> PyResult<()> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
        self.after_handed_off(py);
        py.detach(|| ns.close_room(room));
        Ok(())
    }

    /// The rooms of a socket, its own sid first; empty if unknown.
    #[pyo3(signature = (sid, namespace = None))]
    fn rooms(&self, py: Python<'_>, sid: &str, namespace: Option<&str>) -> PyResult<Vec<String>> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
        Ok(py.detach(|| ns.rooms(sid)))
    }

    /// Disconnect a socket from a namespace (the client sees "io server disconnect").
    /// Returns False if it was not connected.
    #[pyo3(signature = (sid, namespace = None))]
    fn disconnect(&self, py: Python<'_>, sid: &str, namespace: Option<&str>) -> PyResult<bool> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
        self.after_handed_off(py);
        Ok(py.detach(|| ns.disconnect(sid)))
    }

    /// The handshake request of a connected socket as a WSGI environ dict
    /// (`QUERY_STRING`, `HTTP_*` headers, `REMOTE_ADDR`, ...); `None` if `sid` is not
    /// connected to `namespace`.
    #[pyo3(signature = (sid, namespace = None))]
    fn get_environ<'py>(
        &self,
        py: Python<'py>,
        sid: &str,
        namespace: Option<&str>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(socket) = self.host.emitter().socket(namespace.unwrap_or("/"), sid) else {
            return Ok(None);
        };
        let server = (self.host_name.as_str(), self.port());
        crate::environ::environ(py, &socket, &self.path, server).map(Some)
    }

    /// Call `func()` on the handler thread of `sid` once every handler call queued for
    /// it before has run (tests use it to wait for a client's events to be handled).
    /// False when the server is not running.
    fn _after_handlers(&self, sid: &str, func: Bound<'_, PyAny>) -> bool {
        let func = func.unbind();
        self.host.run(sid, move || {
            Python::try_attach(|py| {
                if let Err(e) = func.bind(py).call0() {
                    handlers::log_exception(py, e, "error in an _after_handlers callback");
                }
            });
        })
    }

    /// The sids connected to a namespace.
    #[pyo3(signature = (namespace = None))]
    fn sids(&self, py: Python<'_>, namespace: Option<&str>) -> PyResult<Vec<String>> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
        Ok(py.detach(|| ns.sockets().iter().map(|s| s.id().to_string()).collect()))
    }

    /// The keyed live state map `name` of `namespace`.
    #[pyo3(signature = (name, namespace = None))]
    fn state(&self, name: &str, namespace: Option<&str>) -> PyResult<PyStateMap> {
        let ns = self.namespace(namespace.unwrap_or("/"), true)?;
        Ok(PyStateMap::new(ns.state(name), &self.host))
    }

    /// The server's counters since it was created.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        crate::convert::metrics(py, &self.host.emitter().metrics(), self.host.handoff())
    }

    fn __repr__(&self) -> String {
        let state = match self.host.state() {
            HostState::Created => "not started",
            HostState::Running => "running",
            HostState::Stopped => "stopped",
        };
        format!("<swarmcast.Server {} ({state})>", self.url())
    }
}

impl PyServer {
    /// `NotRunningError` before the first start: nobody can be connected yet, and a
    /// silent 0 would hide the mistake. After a stop, emits reach nobody (0), as
    /// disconnect handlers running during the stop may still emit.
    fn require_started(&self) -> PyResult<()> {
        if self.host.state() == HostState::Created {
            return Err(errors::NotRunningError::new_err(
                "the server is not started: call start() before emitting",
            ));
        }
        Ok(())
    }

    /// Wait (GIL released) for the emits handed off so far (`emit_in_background`):
    /// what follows (a room change, a disconnect, an emit with an ack) must not
    /// overtake them. Nothing without the option.
    fn after_handed_off(&self, py: Python<'_>) {
        if self.host.handoff().is_some() {
            py.detach(|| self.host.wait_for_handed_off());
        }
    }

    /// The connected socket `sid` of `namespace`.
    fn connected(&self, namespace: &str, sid: &str) -> PyResult<Socket> {
        self.host
            .emitter()
            .socket(namespace, sid)
            .ok_or_else(|| DisconnectedError::new_err(format!("socket {sid} is not connected")))
    }
}
