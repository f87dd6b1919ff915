//! Emits of `swarmcast.Server`: the data converted once, the broadcast published with
//! the GIL released (waiting under backpressure or not), and emits with an ack callback.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use swarmcast::{AckError, Broadcast, Handoff, Host, Payload, PreparedEmit, Room, Socket};

use crate::convert;
use crate::errors;
use crate::handlers;

/// An emit's data, converted once.
pub(crate) struct Encoded {
    /// One argument without binary data (the common emit), written straight to JSON.
    pub direct: Option<Box<serde_json::value::RawValue>>,
    /// Anything else (several arguments, attachments), as the core's Payload.
    pub payload: Payload,
}

impl Encoded {
    pub(crate) fn new(data: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let direct = match data {
            Some(d) if !d.is_none() && !d.is_instance_of::<PyTuple>() => {
                convert::to_raw_json(d, "data")?
            }
            _ => None,
        };
        let payload = match direct {
            Some(_) => Payload::default(),
            None => convert::to_payload(data, "data")?,
        };
        Ok(Self { direct, payload })
    }
}

/// The broadcast an emit makes: namespace, rooms, exceptions, volatility.
fn broadcast(
    host: &Host,
    namespace: &str,
    to: Vec<String>,
    except: Vec<String>,
    volatile: bool,
) -> Broadcast<'static> {
    let mut b = host.emitter().of(namespace);
    for room in to {
        b = b.to(Room::from(room));
    }
    for room in except {
        b = b.except(Room::from(room));
    }
    if volatile {
        b = b.volatile();
    }
    b
}

/// Hand the emit to the server's handoff thread (`emit_in_background=True`). The GIL
/// is released only when the handoff is full and `wait` says to wait for room.
/// Returns whether it was handed off (false: full, and not waiting).
#[allow(clippy::too_many_arguments)]
pub(crate) fn hand_off(
    py: Python<'_>,
    host: &Host,
    handoff: &Handoff,
    event: &str,
    data: Encoded,
    to: Vec<String>,
    except: Vec<String>,
    namespace: &str,
    volatile: bool,
    wait: bool,
) -> PyResult<bool> {
    let b = broadcast(host, namespace, to, except, volatile);
    let prepared = match data.direct {
        Some(raw) => PreparedEmit::json(b, event, raw),
        None => PreparedEmit::payload(b, event, data.payload),
    }
    .map_err(errors::emit_error)?;
    send_prepared(py, handoff, prepared, wait)
}

/// Hand a prepared emit (or state change) to the handoff thread: the GIL is released
/// only when the handoff is full and `wait` says to wait for room. Returns whether it
/// was handed off.
pub(crate) fn send_prepared(
    py: Python<'_>,
    handoff: &Handoff,
    prepared: PreparedEmit,
    wait: bool,
) -> PyResult<bool> {
    // The common case: room now, no GIL release.
    let Err(prepared) = handoff.try_send(prepared) else {
        return Ok(true);
    };
    if !wait {
        return Ok(false);
    }
    py.detach(|| handoff.send(prepared))
        .map(|()| true)
        .map_err(errors::emit_error)
}

/// Emit to `to` minus `except` with the GIL released. `wait`: as `emit` (may wait
/// under backpressure, at most `emit_max_wait`). Otherwise `None` when a target is
/// above its watermark (nothing sent), else an emit that never waits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn publish(
    py: Python<'_>,
    host: &Host,
    report_full: bool,
    event: &str,
    data: &Encoded,
    to: Vec<String>,
    except: Vec<String>,
    namespace: &str,
    volatile: bool,
    wait: bool,
) -> PyResult<Option<usize>> {
    let report = py
        .detach(|| {
            let mut b = broadcast(host, namespace, to, except, volatile);
            if !wait {
                if !b.behind()?.is_empty() {
                    return Ok(None);
                }
                b = b.no_wait();
            }
            match &data.direct {
                Some(raw) => b.emit(event, raw),
                None => b.emit_payload(event, &data.payload),
            }
            .map(Some)
        })
        .map_err(errors::emit_error)?;
    let Some(report) = report else {
        return Ok(None);
    };
    if report_full {
        errors::check_report(&report).map(Some)
    } else {
        Ok(Some(report.delivered))
    }
}

/// Emit to one socket asking for an ack; `callback(*args)` is called with the GIL on
/// the socket's handler thread when it comes (never on a timeout or a disconnect, as in
/// python-socketio).
pub(crate) fn with_callback(
    py: Python<'_>,
    host: &Host,
    socket: &Socket,
    event: &str,
    payload: &Payload,
    callback: Bound<'_, PyAny>,
    timeout: Duration,
) {
    let callback = callback.unbind();
    py.detach(|| {
        host.emit_with_ack(socket, event, payload, timeout, move |result| {
            // python-socketio calls the callback only when the ack comes.
            let Ok(payload) = result else { return };
            Python::try_attach(|py| {
                let called = convert::args_to_python(py, &payload)
                    .and_then(|args| PyTuple::new(py, args))
                    .and_then(|args| callback.bind(py).call1(args));
                if let Err(e) = called {
                    handlers::log_exception(py, e, "error in an emit callback");
                }
            });
        })
    });
}

/// Emit to `socket` asking for an ack and wait for it (GIL released, in slices so that
/// Ctrl-C interrupts the wait), at most `timeout` (and a second of slack).
pub(crate) fn wait_for_ack(
    py: Python<'_>,
    socket: &Socket,
    event: &str,
    payload: &Payload,
    timeout: Duration,
) -> PyResult<Result<Payload, AckError>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    socket.emit_with_ack_callback(event, payload, timeout, move |result| {
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
    Ok(result)
}

/// Wait until the emits handed off so far are fanned out, at most `timeout` seconds
/// (None: no limit), in slices so that Ctrl-C interrupts it; whether they all were.
pub(crate) fn flush(py: Python<'_>, handoff: &Handoff, timeout: Option<f64>) -> PyResult<bool> {
    let deadline = match timeout {
        Some(t) => Some(std::time::Instant::now() + crate::args::seconds_or_zero("timeout", t)?),
        None => None,
    };
    let fence = handoff.fence();
    loop {
        if py.detach(|| fence.wait_timeout(Duration::from_millis(100))) {
            return Ok(true);
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(false);
        }
    }
}
