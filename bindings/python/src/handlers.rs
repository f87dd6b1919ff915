//! Python handlers registered on the core's [`Host`]: it runs each call on its
//! dispatcher (keyed by socket id: one socket's events in wire order, the disconnect
//! last, gated by the connect decision), whose thread takes the GIL only for the Python
//! call. This module only converts arguments and results.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use swarmcast::{AckSender, ConnectError, Event, Host, HostError, Payload, Socket};

use crate::convert;
use crate::errors::{self, ConnectionRefusedError};

/// The message python-socketio sends when a connect handler returns `False`.
pub(crate) const REFUSED: &str = "Connection rejected by server";

/// Log `err` with its traceback on the `swarmcast` logger.
pub(crate) fn log_exception(py: Python<'_>, err: PyErr, message: &str) {
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("swarmcast",)))
        .and_then(|logger| {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("exc_info", err.clone_ref(py).into_value(py))?;
            logger.call_method("error", ("%s", message), Some(&kwargs))
        });
    if logged.is_err() {
        err.print(py);
    }
}

/// A Python callable and how many leading arguments it accepts (connect handlers may
/// take `(sid, auth)` or `(sid)`, disconnect handlers `(sid, reason)` or `(sid)`).
pub(crate) struct PyHandler {
    pub func: Py<PyAny>,
    pub takes_extra: bool,
    /// Registered on the catch-all namespace `*`: the namespace comes first (before
    /// the sid), as in python-socketio.
    pub with_namespace: bool,
    /// Event handlers only: the handler answers the ack itself, later, through the
    /// [`PyAck`] passed as its first argument (`None` when the client asked for no ack),
    /// and its return value is ignored. The asyncio layer (`swarmcast.AsyncServer`)
    /// registers its coroutine functions so: the dispatcher thread hands the coroutine
    /// to the event loop and goes on, and the ack leaves when the coroutine returns.
    pub deferred: bool,
}

impl PyHandler {
    /// The leading arguments: `[event,] [namespace,] sid`.
    fn lead<'py>(
        &self,
        py: Python<'py>,
        socket: &Socket,
        event: Option<&str>,
    ) -> Vec<Bound<'py, PyAny>> {
        let mut args = Vec::with_capacity(3);
        if let Some(event) = event {
            args.push(PyString::new(py, event).into_any());
        }
        if self.with_namespace {
            args.push(PyString::new(py, socket.namespace()).into_any());
        }
        args.push(sid_str(py, socket));
        args
    }
}

/// What a client's ack gets when the handler raised or returned something that cannot
/// be sent: one argument, `{"error": "internal server error"}` (the exception and its
/// traceback are logged, never sent). python-socketio sends no ack at all then, which
/// leaves the client's `call` waiting for its timeout.
fn error_ack() -> Payload {
    Payload::new(vec![serde_json::json!({"error": "internal server error"})])
}

/// Whether `func` can be called with `n` positional arguments (true when unknown).
pub(crate) fn accepts(py: Python<'_>, func: &Bound<'_, PyAny>, n: usize) -> bool {
    let sig = match py
        .import("inspect")
        .and_then(|inspect| inspect.call_method1("signature", (func,)))
    {
        Ok(sig) => sig,
        Err(_) => return true,
    };
    let args: Vec<Py<PyAny>> = (0..n).map(|_| py.None()).collect();
    match PyTuple::new(py, args) {
        Ok(args) => sig.call_method1("bind", args).is_ok(),
        Err(_) => true,
    }
}

fn sid_str<'py>(py: Python<'py>, socket: &Socket) -> Bound<'py, PyAny> {
    PyString::new(py, socket.id()).into_any()
}

/// `handler(sid, *args)`; its return value answers the ack, if the client asked for one.
pub(crate) fn install_event(
    host: &Host,
    nsp: &str,
    name: &str,
    handler: Arc<PyHandler>,
) -> Result<(), HostError> {
    host.on(nsp, name, move |socket, event, ack| {
        Python::try_attach(|py| match handler.deferred {
            true => call_deferred(py, &handler, socket, event, ack, false),
            false => call_event(py, &handler, socket, event, ack, false),
        });
    })
}

/// Catch-all: `handler(event, sid, *args)` for events without a handler of their own.
pub(crate) fn install_any(
    host: &Host,
    nsp: &str,
    handler: Arc<PyHandler>,
) -> Result<(), HostError> {
    host.on_any(nsp, move |socket, event, ack| {
        Python::try_attach(|py| match handler.deferred {
            true => call_deferred(py, &handler, socket, event, ack, true),
            false => call_event(py, &handler, socket, event, ack, true),
        });
    })
}

/// The answer to one client ack, handed to a deferred handler (see
/// [`PyHandler::deferred`]) to send when it is done. Answered at most once; one dropped
/// unanswered sends nothing (the client's `call` times out).
#[pyclass(frozen, module = "swarmcast._native", name = "_Ack")]
pub struct PyAck {
    sender: Mutex<Option<AckSender>>,
}

impl PyAck {
    fn take(&self) -> Option<AckSender> {
        self.sender.lock().take()
    }
}

#[pymethods]
impl PyAck {
    /// Answer with `value` as a handler's return value would (`None`: no argument, a
    /// tuple: several). A value that cannot be sent answers with the error payload and
    /// raises `TypeError`. False if it was answered already. May wait under
    /// backpressure like an emit (at most `emit_max_wait`), with the GIL released.
    #[pyo3(signature = (value = None))]
    fn send(&self, py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(sender) = self.take() else {
            return Ok(false);
        };
        match convert::to_payload(value.as_ref(), "return value") {
            Ok(payload) => {
                py.detach(|| sender.send_payload(&payload))
                    .map_err(crate::errors::emit_error)?;
                Ok(true)
            }
            Err(e) => {
                let _ = py.detach(|| sender.send_payload(&error_ack()));
                Err(e)
            }
        }
    }

    /// `send` for code that must not block (an event loop): `None` when the client
    /// is behind on its queue (above the backpressure watermark; nothing is sent, the
    /// ack stays pending: call `send` from a thread that may wait), else the answer
    /// is queued without waiting (True; False if it was answered already).
    #[pyo3(signature = (value = None))]
    fn try_send(&self, py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<Option<bool>> {
        let payload = convert::to_payload(value.as_ref(), "return value");
        let mut slot = self.sender.lock();
        let Some(sender) = slot.take() else {
            return Ok(Some(false));
        };
        let payload = match payload {
            Ok(payload) if sender.is_behind() => {
                *slot = Some(sender);
                drop(payload);
                return Ok(None);
            }
            Ok(payload) => payload,
            Err(e) => {
                drop(slot);
                let _ = py.detach(|| sender.send_payload_no_wait(&error_ack()));
                return Err(e);
            }
        };
        drop(slot);
        py.detach(|| sender.send_payload_no_wait(&payload))
            .map_err(crate::errors::emit_error)?;
        Ok(Some(true))
    }

    /// Answer with the error payload a raising handler's ack gets,
    /// `{"error": "internal server error"}`. False if it was answered already.
    fn fail(&self, py: Python<'_>) -> PyResult<bool> {
        let Some(sender) = self.take() else {
            return Ok(false);
        };
        py.detach(|| sender.send_payload(&error_ack()))
            .map_err(crate::errors::emit_error)?;
        Ok(true)
    }

    /// Whether `send` or `fail` was called.
    #[getter]
    fn answered(&self) -> bool {
        self.sender.lock().is_none()
    }
}

/// A deferred handler: `handler(ack, [event,] [namespace,] sid, *args)`, return value
/// ignored. If the call itself raises, an unanswered ack gets the error payload.
fn call_deferred(
    py: Python<'_>,
    handler: &PyHandler,
    socket: &Socket,
    event: Event,
    ack: Option<AckSender>,
    with_name: bool,
) {
    let mut pending: Option<Bound<'_, PyAck>> = None;
    let called = (|| -> PyResult<()> {
        let mut args = vec![match ack {
            Some(sender) => {
                let obj = Bound::new(
                    py,
                    PyAck {
                        sender: Mutex::new(Some(sender)),
                    },
                )?;
                pending = Some(obj.clone());
                obj.into_any()
            }
            None => py.None().into_bound(py),
        }];
        args.extend(handler.lead(py, socket, with_name.then_some(event.name.as_str())));
        args.extend(convert::args_to_python(py, &event.payload)?);
        handler.func.bind(py).call1(PyTuple::new(py, args)?)?;
        Ok(())
    })();
    if let Err(e) = called {
        if let Some(ack) = pending.as_ref().and_then(|a| a.get().take()) {
            let _ = py.detach(|| ack.send_payload(&error_ack()));
        }
        let context = format!(
            "error in the handler of event '{}' (namespace '{}', sid {})",
            event.name,
            socket.namespace(),
            socket.id()
        );
        log_exception(py, e, &context);
    }
}

fn call_event(
    py: Python<'_>,
    handler: &PyHandler,
    socket: &Socket,
    event: Event,
    ack: Option<AckSender>,
    with_name: bool,
) {
    let answer = (|| -> PyResult<Payload> {
        let mut args = handler.lead(py, socket, with_name.then_some(event.name.as_str()));
        args.extend(convert::args_to_python(py, &event.payload)?);
        let ret = handler.func.bind(py).call1(PyTuple::new(py, args)?)?;
        if ack.is_none() {
            return Ok(Payload::default());
        }
        convert::to_payload(Some(&ret), "return value")
    })();
    let (payload, failed) = match answer {
        Ok(payload) => (payload, None),
        Err(e) => (error_ack(), Some(e)),
    };
    let sent = match ack {
        Some(ack) => py
            .detach(|| ack.send_payload(&payload))
            .err()
            .map(crate::errors::emit_error),
        None => None,
    };
    let outcome: Option<PyErr> = failed.or(sent);
    let context = format!(
        "error in the handler of event '{}' (namespace '{}', sid {})",
        event.name,
        socket.namespace(),
        socket.id()
    );
    if let Some(e) = outcome {
        log_exception(py, e, &context);
    }
}

/// Connect decisions: `handler(sid, auth)` on a handler thread (the host sends the
/// result back to the waiting connection). `False` or `ConnectionRefusedError` refuse.
pub(crate) fn install_connect(
    host: &Host,
    nsp: &str,
    handler: Arc<PyHandler>,
) -> Result<(), HostError> {
    host.on_connect(nsp, move |socket| {
        Python::try_attach(|py| call_connect(py, &handler, socket))
            .unwrap_or_else(|| Err(ConnectError::new("server shutting down")))
    })
}

fn call_connect(py: Python<'_>, handler: &PyHandler, socket: &Socket) -> Result<(), ConnectError> {
    let call = || -> PyResult<Bound<'_, PyAny>> {
        let func = handler.func.bind(py);
        let mut args = handler.lead(py, socket, None);
        if handler.takes_extra {
            args.push(match socket.auth() {
                Some(auth) => convert::to_python(py, auth, &[])?,
                None => py.None().into_bound(py),
            });
        }
        func.call1(PyTuple::new(py, args)?)
    };
    match call() {
        Ok(ret) => {
            // python-socketio: only an explicit False refuses.
            if ret.is_instance_of::<pyo3::types::PyBool>() && !ret.is_truthy().unwrap_or(true) {
                Err(ConnectError::new(REFUSED))
            } else {
                Ok(())
            }
        }
        Err(e) if e.is_instance_of::<ConnectionRefusedError>(py) => Err(refusal(py, &e)),
        Err(e) => {
            log_exception(
                py,
                e,
                &format!(
                    "error in the connect handler (namespace '{}', sid {}); connection refused",
                    socket.namespace(),
                    socket.id()
                ),
            );
            Err(ConnectError::new(REFUSED))
        }
    }
}

/// `ConnectionRefusedError(message, data)` (python-socketio's rules: no argument gives the
/// default message, a third or later argument makes `data` a list).
fn refusal(py: Python<'_>, err: &PyErr) -> ConnectError {
    let args = err.value(py).getattr("args").ok();
    let args: Vec<Bound<'_, PyAny>> = args
        .and_then(|a| a.cast_into::<PyTuple>().ok())
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let message = match args.first() {
        Some(m) => m
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| REFUSED.to_string()),
        None => REFUSED.to_string(),
    };
    let mut refusal = ConnectError::new(message);
    let data = match args.len() {
        0 | 1 => None,
        2 => Some(args[1].clone()),
        _ => PyTuple::new(py, &args[1..]).ok().map(|t| t.into_any()),
    };
    if let Some(data) = data {
        match convert::to_value(&data, "ConnectionRefusedError data") {
            Ok(value) => refusal = refusal.with_data(value),
            Err(e) => log_exception(py, e, "the refusal's data is not sent"),
        }
    }
    refusal
}

/// `handler(sid, reason)` once a socket has left.
pub(crate) fn install_disconnect(
    host: &Host,
    nsp: &str,
    handler: Arc<PyHandler>,
) -> Result<(), HostError> {
    host.on_disconnect(nsp, move |socket, reason| {
        Python::try_attach(|py| {
            let func = handler.func.bind(py);
            let mut args = handler.lead(py, socket, None);
            if handler.takes_extra {
                args.push(PyString::new(py, reason.as_str()).into_any());
            }
            let result = PyTuple::new(py, args).and_then(|args| func.call1(args));
            if let Err(e) = result {
                let context = format!(
                    "error in the disconnect handler (namespace '{}', sid {})",
                    socket.namespace(),
                    socket.id()
                );
                log_exception(py, e, &context);
            }
        });
    })
}

/// Register `handler` for `event` of `namespace` on `host` (what `on()` and the
/// decorators do). `deferred`: see [`PyHandler::deferred`] (event and catch-all
/// handlers only).
pub(crate) fn register(
    py: Python<'_>,
    host: &Host,
    event: &str,
    handler: &Bound<'_, PyAny>,
    namespace: &str,
    deferred: bool,
) -> PyResult<()> {
    if !handler.is_callable() {
        return Err(PyTypeError::new_err("the handler must be callable"));
    }
    if deferred && matches!(event, "connect" | "disconnect") {
        return Err(PyValueError::new_err(format!(
            "a {event} handler cannot answer an ack: register it with on()"
        )));
    }
    let with_namespace = namespace == "*";
    let make = |extra: bool| {
        Arc::new(PyHandler {
            func: handler.clone().unbind(),
            takes_extra: extra,
            with_namespace,
            deferred,
        })
    };
    // connect: (sid, auth) or (sid); disconnect: (sid, reason) or (sid); one more
    // leading argument (the namespace) on the catch-all namespace.
    let lead = 1 + usize::from(with_namespace);
    let installed = match event {
        "connect" => {
            let extra = accepts(py, handler, lead + 1);
            install_connect(host, namespace, make(extra))
        }
        "disconnect" => {
            let extra = accepts(py, handler, lead + 1);
            install_disconnect(host, namespace, make(extra))
        }
        "*" => install_any(host, namespace, make(true)),
        _ => install_event(host, namespace, event, make(true)),
    };
    installed.map_err(errors::host_error)
}
