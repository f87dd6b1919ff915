//! `swarmcast.Server`: the core [`swarmcast::Server`] seen from Python.
//!
//! Every method extracts and converts its Python arguments first, then does the Rust work
//! with the GIL released. Locks of this module are never held while the GIL is taken.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use swarmcast::{
    AckError, Emitter, EngineConfig, Namespace, Payload, RecoveryConfig, Room, Server,
    ServerConfig, ServerHandle, SlowConsumerPolicy,
};

use crate::convert;
use crate::errors::{self, DisconnectedError, ServerStartError};
use crate::handlers::{self, PyHandler, Runner};
use crate::state::PyStateMap;

enum Lifecycle {
    /// Built, handlers may declare namespaces.
    Ready(Server),
    Running(ServerHandle),
    Stopped,
}

struct Shared {
    emitter: Emitter,
    runner: Arc<Runner>,
    lifecycle: Mutex<Lifecycle>,
    host: String,
    port: Mutex<u16>,
    path: String,
    handler_threads: usize,
    /// Whether emits raise `QueueFullError` for full queues (`slow_consumer="report"`);
    /// under "disconnect" the core has already disconnected those clients.
    report_full: bool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropped with the GIL held (garbage collection): joining handler threads that wait
        // for the GIL would deadlock, so the teardown happens on a thread of its own.
        let lifecycle = std::mem::replace(&mut *self.lifecycle.lock(), Lifecycle::Stopped);
        let dispatcher = self.runner.take();
        if matches!(lifecycle, Lifecycle::Running(_)) || dispatcher.is_some() {
            let _ = std::thread::Builder::new()
                .name("swarmcast-teardown".into())
                .spawn(move || {
                    drop(lifecycle);
                    drop(dispatcher);
                });
        }
    }
}

/// Every started server, so that `_stop_all` (registered with `atexit`) can stop them
/// before the interpreter finalizes (handler threads need it alive).
static STARTED: Mutex<Vec<std::sync::Weak<Shared>>> = Mutex::new(Vec::new());

impl Shared {
    /// Stop if running; idempotent. Call without the GIL.
    fn stop(&self) {
        let previous = {
            let mut lifecycle = self.lifecycle.lock();
            match &*lifecycle {
                Lifecycle::Running(_) => std::mem::replace(&mut *lifecycle, Lifecycle::Stopped),
                _ => return,
            }
        };
        if let Lifecycle::Running(handle) = previous {
            handle.stop();
        }
        drop(self.runner.take());
    }
}

/// Stop every running server (registered with `atexit` by the `swarmcast` package).
#[pyfunction]
pub fn _stop_all(py: Python<'_>) {
    let servers: Vec<Arc<Shared>> = {
        let mut started = STARTED.lock();
        started.retain(|w| w.strong_count() > 0);
        started.iter().filter_map(|w| w.upgrade()).collect()
    };
    py.detach(move || {
        for server in &servers {
            server.stop();
        }
        // The last reference may be ours: drop it here, without the GIL.
        drop(servers);
    });
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    if !value.is_finite() || value <= 0.0 {
        return Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds, not {value}"
        )));
    }
    Duration::try_from_secs_f64(value).map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

fn positive(name: &str, value: usize) -> PyResult<usize> {
    if value == 0 {
        return Err(PyValueError::new_err(format!("{name} must be > 0")));
    }
    Ok(value)
}

/// `str`, or a list/tuple of `str` (rooms, sids, origins).
pub(crate) fn names(arg: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<String>> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    if arg.is_none() {
        return Ok(Vec::new());
    }
    if let Ok(s) = arg.cast::<PyString>() {
        return Ok(vec![s.to_str()?.to_owned()]);
    }
    if arg.is_instance_of::<PyList>()
        || arg.is_instance_of::<PyTuple>()
        || arg.hasattr("__iter__")?
    {
        let mut out = Vec::new();
        for item in arg.try_iter()? {
            let item = item?;
            match item.cast::<PyString>() {
                Ok(s) => out.push(s.to_str()?.to_owned()),
                Err(_) => {
                    return Err(PyTypeError::new_err(format!(
                        "{what}: expected str items, got {}",
                        item.get_type().name()?
                    )))
                }
            }
        }
        return Ok(out);
    }
    Err(PyTypeError::new_err(format!(
        "{what}: expected a str or a list of str, got {}",
        arg.get_type().name()?
    )))
}

/// A Socket.IO server (Engine.IO v4 / Socket.IO v5) running on threads of its own.
#[pyclass(frozen, weakref, module = "swarmcast._native", name = "Server")]
pub struct PyServer {
    shared: Arc<Shared>,
}

impl PyServer {
    /// A declared namespace; before `start()` it is declared on demand.
    fn namespace(&self, name: &str, declare: bool) -> PyResult<Arc<Namespace>> {
        if let Some(ns) = self.shared.emitter.namespace(name) {
            return Ok(ns);
        }
        if declare {
            if let Lifecycle::Ready(server) = &*self.shared.lifecycle.lock() {
                return Ok(server.namespace(name));
            }
            return Err(PyRuntimeError::new_err(format!(
                "namespace '{name}' has no handler: declare its handlers before start()"
            )));
        }
        Err(errors::EmitError::new_err(format!(
            "no namespace `{name}` is declared"
        )))
    }

    fn register(
        &self,
        py: Python<'_>,
        event: &str,
        handler: &Bound<'_, PyAny>,
        namespace: &str,
    ) -> PyResult<()> {
        if !handler.is_callable() {
            return Err(PyTypeError::new_err("the handler must be callable"));
        }
        let ns = self.namespace(namespace, true)?;
        let runner = &self.shared.runner;
        let make = |extra: bool| {
            Arc::new(PyHandler {
                func: handler.clone().unbind(),
                takes_extra: extra,
            })
        };
        match event {
            "connect" => {
                let extra = handlers::accepts(py, handler, 2);
                handlers::install_connect(&ns, runner, make(extra));
            }
            "disconnect" => {
                let extra = handlers::accepts(py, handler, 2);
                handlers::install_disconnect(&ns, runner, make(extra));
            }
            "*" => handlers::install_any(&ns, runner, make(true)),
            _ => handlers::install_event(&ns, runner, event, make(true)),
        }
        Ok(())
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
        queue_packets = 4096,
        queue_bytes = 16_777_216,
        max_polling_packets = 16,
        handler_threads = 4,
        worker_threads = 2,
        transports = None,
        max_attachments = 64,
        slow_consumer = "disconnect",
        recovery = false,
        allow_subscribe = None,
        publish_api = false,
        api_key = None,
        shutdown_timeout = 5.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
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
        recovery: bool,
        allow_subscribe: Option<Bound<'_, PyAny>>,
        publish_api: bool,
        api_key: Option<String>,
        shutdown_timeout: f64,
    ) -> PyResult<Self> {
        let (allow_polling, allow_websocket) = match transports {
            None => (true, true),
            Some(t) => {
                let t = names(Some(&t), "transports")?;
                for name in &t {
                    if name != "polling" && name != "websocket" {
                        return Err(PyValueError::new_err(format!(
                            "unknown transport '{name}' (expected 'polling' or 'websocket')"
                        )));
                    }
                }
                (
                    t.iter().any(|n| n == "polling"),
                    t.iter().any(|n| n == "websocket"),
                )
            }
        };
        let slow_consumer = match slow_consumer {
            "disconnect" => SlowConsumerPolicy::Disconnect,
            "report" => SlowConsumerPolicy::Report,
            other => {
                return Err(PyValueError::new_err(format!(
                    "slow_consumer must be 'disconnect' or 'report', not '{other}'"
                )))
            }
        };
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
            recovery: recovery.then(RecoveryConfig::default),
            allow_subscribe: names(allow_subscribe.as_ref(), "allow_subscribe")?,
            ..ServerConfig::default()
        };
        let server = Server::new(config);
        Ok(Self {
            shared: Arc::new(Shared {
                emitter: server.emitter(),
                runner: Arc::new(Runner::default()),
                lifecycle: Mutex::new(Lifecycle::Ready(server)),
                host: host.to_string(),
                port: Mutex::new(port),
                path: path.to_string(),
                handler_threads: positive("handler_threads", handler_threads)?,
                report_full: slow_consumer == SlowConsumerPolicy::Report,
            }),
        })
    }

    /// Bind and serve on a runtime of its own; returns once listening.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let shared = self.shared.clone();
        py.detach(move || -> PyResult<()> {
            let mut lifecycle = shared.lifecycle.lock();
            let server = match std::mem::replace(&mut *lifecycle, Lifecycle::Stopped) {
                Lifecycle::Ready(server) => server,
                running @ Lifecycle::Running(_) => {
                    *lifecycle = running;
                    return Err(ServerStartError::new_err("the server is already running"));
                }
                Lifecycle::Stopped => {
                    return Err(ServerStartError::new_err(
                        "a stopped server cannot start again: create a new one",
                    ))
                }
            };
            // Handler threads first: the first connect may arrive as soon as we listen.
            shared.runner.start(shared.handler_threads);
            match server.start() {
                Ok(handle) => {
                    *shared.port.lock() = handle.local_addr().port();
                    *lifecycle = Lifecycle::Running(handle);
                    STARTED.lock().push(Arc::downgrade(&shared));
                    Ok(())
                }
                Err(e) => {
                    drop(lifecycle);
                    drop(shared.runner.take());
                    Err(errors::server_error(e))
                }
            }
        })
    }

    /// Stop: close every connection (disconnect handlers run), wait for the handler
    /// threads to finish what is queued. Idempotent.
    fn stop(&self, py: Python<'_>) {
        let shared = self.shared.clone();
        py.detach(move || shared.stop());
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let running = matches!(*slf.get().shared.lifecycle.lock(), Lifecycle::Running(_));
        if !running {
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
        *self.shared.port.lock()
    }

    /// The host the server binds.
    #[getter]
    fn host(&self) -> String {
        self.shared.host.clone()
    }

    /// The Socket.IO path.
    #[getter]
    fn path(&self) -> String {
        self.shared.path.clone()
    }

    /// `http://host:port`, what clients connect to.
    #[getter]
    fn url(&self) -> String {
        let host = &self.shared.host;
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
        matches!(*self.shared.lifecycle.lock(), Lifecycle::Running(_))
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
    ) -> PyResult<usize> {
        let namespace = namespace.unwrap_or("/");
        // One argument without binary data (the common emit) is written straight to JSON;
        // anything else goes through the core's Payload (several arguments, attachments).
        let direct = match &data {
            Some(d) if callback.is_none() && !d.is_none() && !d.is_instance_of::<PyTuple>() => {
                convert::to_raw_json(d, "data")?
            }
            _ => None,
        };
        let payload = match direct {
            Some(_) => Payload::default(),
            None => convert::to_payload(data.as_ref(), "data")?,
        };
        let to = match to {
            Some(t) if !t.is_none() => Some(t),
            _ => room,
        };
        let targets = names(to.as_ref(), "to")?;
        let except = names(skip_sid.as_ref(), "skip_sid")?;
        if let Some(callback) = callback.filter(|c| !c.is_none()) {
            let [sid] = targets.as_slice() else {
                return Err(PyValueError::new_err(
                    "callback needs a single recipient: pass to=<sid>",
                ));
            };
            self.emit_with_callback(py, event, &payload, sid, namespace, callback, timeout)?;
            return Ok(1);
        }
        let emitter = &self.shared.emitter;
        let report = py
            .detach(|| {
                let mut b = emitter.of(namespace);
                for room in targets {
                    b = b.to(Room::from(room));
                }
                for room in except {
                    b = b.except(Room::from(room));
                }
                if volatile {
                    b = b.volatile();
                }
                match &direct {
                    Some(raw) => b.emit(event, raw),
                    None => b.emit_payload(event, &payload),
                }
            })
            .map_err(errors::emit_error)?;
        if self.shared.report_full {
            errors::check_report(&report)
        } else {
            Ok(report.delivered)
        }
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
    ) -> PyResult<usize> {
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
        let socket =
            self.shared.emitter.socket(namespace, sid).ok_or_else(|| {
                DisconnectedError::new_err(format!("socket {sid} is not connected"))
            })?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        socket.emit_with_ack_callback(event, &payload, timeout, move |result| {
            let _ = tx.send(result);
        });
        // Wait in slices so that Ctrl-C (a pending signal) interrupts the wait.
        let deadline = std::time::Instant::now() + timeout + Duration::from_secs(1);
        let result = loop {
            let slice = py.detach(|| rx.recv_timeout(Duration::from_millis(100)));
            match slice {
                Ok(result) => break result,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    break Err(AckError::Disconnected)
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    py.check_signals()?;
                    if std::time::Instant::now() > deadline {
                        break Err(AckError::Timeout);
                    }
                }
            }
        };
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
        py.detach(|| ns.leave_room(sid, room));
        Ok(())
    }

    /// Empty a room.
    #[pyo3(signature = (room, namespace = None))]
    fn close_room(&self, py: Python<'_>, room: &str, namespace: Option<&str>) -> PyResult<()> {
        let ns = self.namespace(namespace.unwrap_or("/"), false)?;
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
        Ok(py.detach(|| ns.disconnect(sid)))
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
        Ok(PyStateMap::new(ns.state(name)))
    }

    /// The server's counters since it was created.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.shared.emitter.metrics();
        let d = PyDict::new(py);
        d.set_item("emits", m.emits)?;
        d.set_item("deliveries", m.deliveries)?;
        d.set_item("bytes_queued", m.bytes_queued)?;
        d.set_item("dropped_queue_full", m.dropped_queue_full)?;
        d.set_item("dropped_volatile", m.dropped_volatile)?;
        d.set_item("connects", m.connects)?;
        d.set_item("disconnects", m.disconnects)?;
        d.set_item("connects_refused", m.connects_refused)?;
        d.set_item("slow_consumers", m.slow_consumers)?;
        d.set_item("recoveries", m.recoveries)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let state = match &*self.shared.lifecycle.lock() {
            Lifecycle::Ready(_) => "not started",
            Lifecycle::Running(_) => "running",
            Lifecycle::Stopped => "stopped",
        };
        format!("<swarmcast.Server {} ({state})>", self.url())
    }
}

impl PyServer {
    #[allow(clippy::too_many_arguments)]
    fn emit_with_callback(
        &self,
        py: Python<'_>,
        event: &str,
        payload: &Payload,
        sid: &str,
        namespace: &str,
        callback: Bound<'_, PyAny>,
        timeout: f64,
    ) -> PyResult<()> {
        let timeout = seconds("timeout", timeout)?;
        let socket =
            self.shared.emitter.socket(namespace, sid).ok_or_else(|| {
                DisconnectedError::new_err(format!("socket {sid} is not connected"))
            })?;
        let callback = Arc::new(callback.unbind());
        let runner = self.shared.runner.clone();
        let key = sid.to_string();
        py.detach(|| {
            socket.emit_with_ack_callback(event, payload, timeout, move |result| {
                // python-socketio calls the callback only when the ack comes.
                let Ok(payload) = result else { return };
                runner.run(&key, move || {
                    Python::try_attach(|py| {
                        let called = convert::args_to_python(py, &payload)
                            .and_then(|args| PyTuple::new(py, args))
                            .and_then(|args| callback.bind(py).call1(args));
                        if let Err(e) = called {
                            handlers::log_exception(py, e, "error in an emit callback");
                        }
                    });
                });
            })
        });
        Ok(())
    }
}
