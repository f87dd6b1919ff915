//! The one place core errors become Python exceptions. Every exception class is declared
//! here, lives in `swarmcast._native` and is re-exported by `swarmcast`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use swarmcast::{AckError, EmitError as CoreEmitError, EmitReport, HostError, ServerError};

create_exception!(
    swarmcast._native,
    SwarmcastError,
    PyException,
    "Base class of every error swarmcast raises."
);
create_exception!(
    swarmcast._native,
    EmitError,
    SwarmcastError,
    "An emit failed: unknown namespace, unencodable payload, server not running."
);
create_exception!(
    swarmcast._native,
    QueueFullError,
    EmitError,
    "A client's bounded outbound queue is full. `sids` lists the sockets that did not get \
     the event (the others did); `delivered` counts those that did."
);
create_exception!(
    swarmcast._native,
    DisconnectedError,
    EmitError,
    "The addressed socket is not connected (or disconnected before acknowledging)."
);
create_exception!(
    swarmcast._native,
    NotRunningError,
    EmitError,
    "The call needs the running server (acks wait on its runtime)."
);
create_exception!(
    swarmcast._native,
    ServerStartError,
    SwarmcastError,
    "The server could not start: the address is in use, the configuration is invalid, \
     or it was already started once."
);
create_exception!(
    swarmcast._native,
    ConnectionRefusedError,
    SwarmcastError,
    "Raise it in a connect handler to refuse the client: \
     `ConnectionRefusedError(message, data)` reaches the client as CONNECT_ERROR with \
     that message and data."
);

/// Map a core emit error to its exception.
pub(crate) fn emit_error(e: CoreEmitError) -> PyErr {
    let message = e.to_string();
    match e {
        CoreEmitError::QueueFull(sid) => queue_full(message, vec![sid], 0),
        CoreEmitError::Disconnected(_) => DisconnectedError::new_err(message),
        CoreEmitError::NotRunning => NotRunningError::new_err(message),
        // UnknownNamespace, Encode and whatever the core adds later.
        _ => EmitError::new_err(message),
    }
}

/// `QueueFullError` with its `sids` and `delivered` attributes set.
pub(crate) fn queue_full(message: String, sids: Vec<String>, delivered: usize) -> PyErr {
    Python::attach(|py| {
        let err = QueueFullError::new_err(message);
        let value = err.value(py);
        let attrs = PyList::new(py, &sids)
            .and_then(|list| value.setattr("sids", list))
            .and_then(|()| value.setattr("delivered", delivered));
        match attrs {
            Ok(()) => err,
            Err(e) => e,
        }
    })
}

/// A broadcast that left some sockets out because their queues were full.
pub(crate) fn check_report(report: &EmitReport) -> PyResult<usize> {
    if report.full.is_empty() {
        return Ok(report.delivered);
    }
    let sids: Vec<String> = report.full.iter().map(|s| s.to_string()).collect();
    Err(queue_full(
        format!(
            "the outbound queue of {} socket(s) is full: {} (delivered to {})",
            sids.len(),
            sids.join(", "),
            report.delivered
        ),
        sids,
        report.delivered,
    ))
}

/// Map a failed server-to-client ack.
pub(crate) fn ack_error(e: AckError) -> PyErr {
    match e {
        AckError::Timeout => PyTimeoutError::new_err(e.to_string()),
        AckError::Disconnected => DisconnectedError::new_err(e.to_string()),
        AckError::Emit(inner) => emit_error(inner),
    }
}

/// Map a start failure.
pub(crate) fn server_error(e: ServerError) -> PyErr {
    ServerStartError::new_err(e.to_string())
}

/// Map a lifecycle or registration failure of the core's host layer.
pub(crate) fn host_error(e: HostError) -> PyErr {
    match e {
        HostError::Server(e) => server_error(e),
        HostError::NotRunning => NotRunningError::new_err(e.to_string()),
        HostError::Undeclared(name) => PyRuntimeError::new_err(format!(
            "namespace '{name}' has no handler: declare its handlers before start()"
        )),
        // AlreadyRunning, Busy and whatever the core adds later.
        _ => ServerStartError::new_err(e.to_string()),
    }
}

/// Register every exception class on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SwarmcastError", py.get_type::<SwarmcastError>())?;
    m.add("EmitError", py.get_type::<EmitError>())?;
    m.add("QueueFullError", py.get_type::<QueueFullError>())?;
    m.add("DisconnectedError", py.get_type::<DisconnectedError>())?;
    m.add("NotRunningError", py.get_type::<NotRunningError>())?;
    m.add("ServerStartError", py.get_type::<ServerStartError>())?;
    m.add(
        "ConnectionRefusedError",
        py.get_type::<ConnectionRefusedError>(),
    )?;
    Ok(())
}
