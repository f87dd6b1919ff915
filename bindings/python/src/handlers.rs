//! Python handlers behind core handlers: the runtime hands each call to the core
//! [`Dispatcher`] (keyed by socket id: one socket's events in wire order), whose thread
//! takes the GIL only for the Python call. The runtime itself never waits for Python:
//! connect decisions travel back through a oneshot channel (`on_connect_async`).

use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use swarmcast::{AckSender, ConnectError, Dispatcher, Event, Namespace, Socket};

use crate::convert;
use crate::errors::ConnectionRefusedError;

/// The message python-socketio sends when a connect handler returns `False`.
pub(crate) const REFUSED: &str = "Connection rejected by server";

/// The handler threads of one server. Empty before `start()` and after `stop()`.
#[derive(Default)]
pub(crate) struct Runner {
    dispatcher: RwLock<Option<Dispatcher>>,
}

impl Runner {
    pub fn start(&self, threads: usize) {
        let mut slot = self.dispatcher.write();
        if slot.is_none() {
            *slot = Some(Dispatcher::new(threads, "swarmcast-handler"));
        }
    }

    /// Take the dispatcher out; dropping it runs what is queued, then joins its threads.
    /// Call without the GIL (queued jobs need it).
    pub fn take(&self) -> Option<Dispatcher> {
        self.dispatcher.write().take()
    }

    /// Queue `job` on the thread owning `key`; false (job dropped) when not running.
    pub fn run(&self, key: &str, job: impl FnOnce() + Send + 'static) -> bool {
        // Recursive read: a handler thread that queues a job (a disconnect it causes) must
        // not wait behind a pending `take`.
        match &*self.dispatcher.read_recursive() {
            Some(d) => {
                d.run(key, job);
                true
            }
            None => false,
        }
    }
}

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
    ns: &Namespace,
    runner: &Arc<Runner>,
    name: &str,
    handler: Arc<PyHandler>,
) {
    let runner = runner.clone();
    ns.on(name, move |socket, event, ack| {
        let owned = socket.clone();
        let handler = handler.clone();
        runner.run(socket.id(), move || {
            Python::try_attach(|py| call_event(py, &handler, &owned, event, ack, false));
        });
    });
}

/// Catch-all: `handler(event, sid, *args)` for events without a handler of their own.
pub(crate) fn install_any(ns: &Namespace, runner: &Arc<Runner>, handler: Arc<PyHandler>) {
    let runner = runner.clone();
    ns.on_any(move |socket, event, ack| {
        let owned = socket.clone();
        let handler = handler.clone();
        runner.run(socket.id(), move || {
            Python::try_attach(|py| call_event(py, &handler, &owned, event, ack, true));
        });
    });
}

fn call_event(
    py: Python<'_>,
    handler: &PyHandler,
    socket: &Socket,
    event: Event,
    ack: Option<AckSender>,
    with_name: bool,
) {
    let outcome = (|| -> PyResult<Option<PyErr>> {
        let mut args = Vec::with_capacity(event.payload.args.len() + 2);
        if with_name {
            args.push(PyString::new(py, &event.name).into_any());
        }
        args.push(sid_str(py, socket));
        args.extend(convert::args_to_python(py, &event.payload)?);
        let ret = handler.func.bind(py).call1(PyTuple::new(py, args)?)?;
        let Some(ack) = ack else { return Ok(None) };
        let payload = convert::to_payload(Some(&ret), "return value")?;
        if let Err(e) = py.detach(|| ack.send_payload(&payload)) {
            return Ok(Some(crate::errors::emit_error(e)));
        }
        Ok(None)
    })();
    let context = format!(
        "error in the handler of event '{}' (namespace '{}', sid {})",
        event.name,
        socket.namespace(),
        socket.id()
    );
    match outcome {
        Ok(None) => {}
        Ok(Some(e)) | Err(e) => log_exception(py, e, &context),
    }
}

/// Connect decisions: `handler(sid, auth)` on a handler thread, the result sent back to
/// the waiting runtime task. `False` or `ConnectionRefusedError` refuse.
pub(crate) fn install_connect(ns: &Namespace, runner: &Arc<Runner>, handler: Arc<PyHandler>) {
    let runner = runner.clone();
    ns.on_connect_async(move |socket| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handler = handler.clone();
        let key = socket.id().to_owned();
        runner.run(&key, move || {
            let decision = Python::try_attach(|py| call_connect(py, &handler, &socket))
                .unwrap_or_else(|| Err(ConnectError::new("server shutting down")));
            let _ = tx.send(decision);
        });
        // A dropped job (server stopping) drops the sender: refuse.
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(ConnectError::new("server shutting down")))
        })
    });
}

fn call_connect(py: Python<'_>, handler: &PyHandler, socket: &Socket) -> Result<(), ConnectError> {
    let call = || -> PyResult<Bound<'_, PyAny>> {
        let func = handler.func.bind(py);
        if handler.takes_extra {
            let auth = match socket.auth() {
                Some(auth) => convert::to_python(py, auth, &[])?,
                None => py.None().into_bound(py),
            };
            func.call1((sid_str(py, socket), auth))
        } else {
            func.call1((sid_str(py, socket),))
        }
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
pub(crate) fn install_disconnect(ns: &Namespace, runner: &Arc<Runner>, handler: Arc<PyHandler>) {
    let runner = runner.clone();
    ns.on_disconnect(move |socket, reason| {
        let owned = socket.clone();
        let handler = handler.clone();
        runner.run(socket.id(), move || {
            let socket = owned;
            Python::try_attach(|py| {
                let func = handler.func.bind(py);
                let result = if handler.takes_extra {
                    func.call1((sid_str(py, &socket), reason.as_str()))
                } else {
                    func.call1((sid_str(py, &socket),))
                };
                if let Err(e) = result {
                    let context = format!(
                        "error in the disconnect handler (namespace '{}', sid {})",
                        socket.namespace(),
                        socket.id()
                    );
                    log_exception(py, e, &context);
                }
            });
        });
    });
}
