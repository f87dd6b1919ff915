//! C callbacks: their types, what they receive, acks and connect refusals, and their
//! registration on the core's [`sc::Host`] (which runs them on its dispatcher, never on
//! a network thread, and gates them by the connect decision).

use std::ffi::{c_char, c_void};

use serde_json::Value;

use crate::ffi::{c_bytes, c_string, json_arg, str_arg, UserData};
use crate::panic::{boundary, boundary_void};
use crate::result::swarmcast_result;

/// Decides whether a client may connect to a namespace. Return true to accept. To
/// refuse, return false, after optionally describing the refusal with
/// `swarmcast_connect_refusal_set_message` / `_set_data` (the client gets a
/// `connect_error` whose `message` defaults to "refused").
///
/// Thread: one of the server's handler threads (never a network thread: the
/// connection waits for the answer without blocking anything else). Overlap: calls for
/// one socket never overlap and come before any other callback for that socket; calls
/// for different sockets may run at the same time on different handler threads.
/// Lifetime: `info`, its strings and `refusal` are valid only until the callback
/// returns.
pub type swarmcast_connect_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        info: *const swarmcast_connect_info,
        refusal: *mut swarmcast_connect_refusal,
    ) -> bool,
>;

/// Told that a socket left a namespace, with the Socket.IO reason string ("client
/// namespace disconnect", "transport close", "ping timeout", "server shutting down",
/// "slow consumer", ...). Called once per socket that was accepted (never for a
/// refused one).
///
/// Thread: one of the server's handler threads. Overlap: after every other callback
/// for that socket, never overlapping them; calls for different sockets may run at the
/// same time. Lifetime: the strings are valid only until the callback returns.
pub type swarmcast_disconnect_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        nsp: *const c_char,
        socket_id: *const c_char,
        reason: *const c_char,
    ),
>;

/// Handles an event a client emitted. `ack` is NULL unless the client asked for an
/// acknowledgement; then the callback owns it and must, exactly once, either answer
/// it with `swarmcast_ack_send` or drop it with `swarmcast_ack_free` (now, or later
/// from any thread).
///
/// Thread: one of the server's handler threads. Overlap: one socket's events come one
/// at a time, in the order the client sent them; different sockets' events may be
/// handled at the same time on different handler threads. Lifetime: `event`, its
/// strings and attachments are valid only until the callback returns (copy what you
/// keep); `ack` lives until it is sent or freed.
pub type swarmcast_event_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        event: *const swarmcast_event,
        ack: *mut swarmcast_ack,
    ),
>;

/// A byte buffer owned by swarmcast: `len` bytes at `data`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct swarmcast_bytes {
    /// The bytes.
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

/// An event received from a client, as passed to a `swarmcast_event_callback`. Every
/// string is NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug)]
pub struct swarmcast_event {
    /// The namespace, for example "/".
    pub nsp: *const c_char,
    /// The id of the socket that sent the event (use it with
    /// `swarmcast_server_emit_to_socket`, `swarmcast_server_join`...).
    pub socket_id: *const c_char,
    /// The event name.
    pub name: *const c_char,
    /// The event's arguments as a JSON array (`[]` when there are none), `args_json_len`
    /// bytes long (not counting the terminating NUL): each argument's bytes as the
    /// client sent them (key order, number spelling, escapes); only the separators
    /// between arguments are rewritten.
    pub args_json: *const c_char,
    /// Length of `args_json`.
    pub args_json_len: usize,
    /// Binary attachments. In `args_json`, attachment `i` appears as the placeholder
    /// object `{"_placeholder":true,"num":i}`. NULL when `attachments_len` is 0.
    pub attachments: *const swarmcast_bytes,
    /// Number of attachments.
    pub attachments_len: usize,
    /// Length of `name` in bytes (not counting the terminating NUL). A client may send
    /// an event name holding a NUL byte ("ev\0il"): `name` then keeps every byte, so
    /// `strlen(name) != name_len` tells such a name apart from the shorter one. Such an
    /// event only ever reaches a catch-all callback (`swarmcast_server_on_any_event`),
    /// since no name registered from C holds a NUL.
    pub name_len: usize,
}

/// A client asking to connect, as passed to a `swarmcast_connect_callback`.
#[repr(C)]
#[derive(Debug)]
pub struct swarmcast_connect_info {
    /// The namespace, for example "/".
    pub nsp: *const c_char,
    /// The id the socket will have.
    pub socket_id: *const c_char,
    /// The client's `auth` payload as JSON ("null" when it sent none), `auth_json_len`
    /// bytes long (not counting the terminating NUL).
    pub auth_json: *const c_char,
    /// Length of `auth_json`.
    pub auth_json_len: usize,
}

/// How a connect callback refuses a client: set through
/// `swarmcast_connect_refusal_set_message` / `_set_data`, inside the callback only.
#[derive(Debug, Default)]
pub struct swarmcast_connect_refusal {
    message: Option<String>,
    data: Option<Value>,
}

/// A pending acknowledgement: the client waits for the answer. Owned by whoever
/// received it from an event callback until `swarmcast_ack_send` or
/// `swarmcast_ack_free`.
#[derive(Debug)]
pub struct swarmcast_ack {
    sender: sc::AckSender,
}

/// Set the message the refused client gets (`err.message` in socket.io-client).
///
/// Thread safety: only inside the connect callback that received `refusal`, on its
/// thread.
///
/// # Safety
/// `refusal` is the pointer the running connect callback received; `message` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_connect_refusal_set_message(
    refusal: *mut swarmcast_connect_refusal,
    message: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: the caller passes the live refusal of the running callback; nothing
        // else touches it during the callback.
        let refusal = unsafe { refusal.as_mut() }.ok_or(swarmcast_result::NullParameter)?;
        // SAFETY: NUL-terminated, as the caller promises.
        let message = unsafe { str_arg(message)? };
        refusal.message = Some(message.to_string());
        Ok(())
    })
}

/// Set the JSON data the refused client gets (`err.data` in socket.io-client).
///
/// Thread safety: only inside the connect callback that received `refusal`, on its
/// thread.
///
/// # Safety
/// `refusal` is the pointer the running connect callback received; `json` points to
/// `json_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_connect_refusal_set_data(
    refusal: *mut swarmcast_connect_refusal,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: as in `swarmcast_connect_refusal_set_message`.
        let refusal = unsafe { refusal.as_mut() }.ok_or(swarmcast_result::NullParameter)?;
        // SAFETY: `json_len` readable bytes, as the caller promises.
        let raw = unsafe { json_arg(json, json_len)? };
        let value: Value =
            serde_json::from_str(raw.get()).map_err(|_| swarmcast_result::InvalidJson)?;
        refusal.data = Some(value);
        Ok(())
    })
}

/// Answer a client's acknowledgement request with one JSON value (`json_len` bytes at
/// `json`): the client's ack callback receives it as its argument.
///
/// Always consumes `ack`, whatever the result (on an error the client gets no
/// answer): do not use or free it afterwards. Returns `SWARMCAST_RESULT_INVALID_UTF8` /
/// `SWARMCAST_RESULT_INVALID_JSON` for a bad payload, `SWARMCAST_RESULT_DISCONNECTED` if
/// the client has gone, `SWARMCAST_RESULT_QUEUE_FULL` if it does not keep up. With
/// `swarmcast_config_set_emit_in_background`, it first waits for the emits handed off
/// before it, so that the answer does not overtake them.
///
/// Thread safety: any thread, inside the event callback or later; each ack is used by
/// one thread at a time.
///
/// # Safety
/// `ack` is NULL or an ack received from an event callback and not yet sent or freed;
/// `json` points to `json_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_ack_send(
    ack: *mut swarmcast_ack,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    boundary(|| {
        if ack.is_null() {
            return Err(swarmcast_result::NullParameter);
        }
        // SAFETY: from `Box::into_raw` when the event was delivered; the caller hands
        // it back exactly once.
        let ack = unsafe { Box::from_raw(ack) };
        // SAFETY: `json_len` readable bytes, as the caller promises.
        let raw = unsafe { json_arg(json, json_len)? };
        ack.sender.send(raw).map_err(swarmcast_result::from)
    })
}

/// Drop an acknowledgement without answering it (the client's ack callback is never
/// called; socket.io-client's `timeout()` reports it). NULL is a no-op.
///
/// Thread safety: any thread; no other call may use `ack` during or after this one.
///
/// # Safety
/// `ack` is NULL or an ack received from an event callback and not yet sent or freed.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_ack_free(ack: *mut swarmcast_ack) {
    boundary_void(|| {
        if !ack.is_null() {
            // SAFETY: from `Box::into_raw`, handed back once.
            drop(unsafe { Box::from_raw(ack) });
        }
    })
}

/// A C function pointer and its userdata.
#[derive(Clone, Copy)]
pub(crate) struct Callback<F> {
    pub f: F,
    pub userdata: UserData,
}

type ConnectFn = unsafe extern "C" fn(
    *mut c_void,
    *const swarmcast_connect_info,
    *mut swarmcast_connect_refusal,
) -> bool;
type EventFn = unsafe extern "C" fn(*mut c_void, *const swarmcast_event, *mut swarmcast_ack);

/// Register a C connect callback on the host (a NULL one is refused).
pub(crate) fn on_connect(
    host: &sc::Host,
    nsp: &str,
    f: swarmcast_connect_callback,
    userdata: *mut c_void,
) -> Result<(), swarmcast_result> {
    let cb = callback(f, userdata)?;
    Ok(host.on_connect(nsp, move |socket| connect(cb, socket))?)
}

/// Register a C disconnect callback on the host (a NULL one is refused).
pub(crate) fn on_disconnect(
    host: &sc::Host,
    nsp: &str,
    f: swarmcast_disconnect_callback,
    userdata: *mut c_void,
) -> Result<(), swarmcast_result> {
    let cb = callback(f, userdata)?;
    Ok(host.on_disconnect(nsp, move |socket, reason| {
        let (nsp, sid) = (c_string(socket.namespace()), c_string(socket.id()));
        let reason = c_string(reason.as_str());
        // SAFETY: a C function pointer registered by the user, called with strings
        // that outlive the call.
        unsafe {
            (cb.f)(
                cb.userdata.get(),
                nsp.as_ptr(),
                sid.as_ptr(),
                reason.as_ptr(),
            )
        }
    })?)
}

/// Register a C event callback on the host: for `event`, or the catch-all for `None`
/// (a NULL callback is refused).
pub(crate) fn on_event(
    host: &sc::Host,
    nsp: &str,
    event: Option<&str>,
    f: swarmcast_event_callback,
    userdata: *mut c_void,
) -> Result<(), swarmcast_result> {
    let cb = callback(f, userdata)?;
    let handler = move |socket: &sc::Socket, event: sc::Event, ack: Option<sc::AckSender>| {
        deliver_event(cb, socket, event, ack)
    };
    Ok(match event {
        Some(name) => host.on(nsp, name, handler),
        None => host.on_any(nsp, handler),
    }?)
}

fn callback<F>(f: Option<F>, userdata: *mut c_void) -> Result<Callback<F>, swarmcast_result> {
    let f = f.ok_or(swarmcast_result::NullParameter)?;
    Ok(Callback {
        f,
        userdata: UserData::new(userdata),
    })
}

/// Ask the C connect callback (on the socket's handler thread).
fn connect(cb: Callback<ConnectFn>, socket: &sc::Socket) -> Result<(), sc::ConnectError> {
    let nsp = c_string(socket.namespace());
    let id = c_string(socket.id());
    let auth = c_string(
        &socket
            .auth()
            .map_or_else(|| "null".to_string(), Value::to_string),
    );
    let info = swarmcast_connect_info {
        nsp: nsp.as_ptr(),
        socket_id: id.as_ptr(),
        auth_json: auth.as_ptr(),
        auth_json_len: auth.as_bytes().len(),
    };
    let mut refusal = swarmcast_connect_refusal::default();
    let refusal_ptr: *mut swarmcast_connect_refusal = &mut refusal;
    // SAFETY: a C function pointer registered by the user; `info`, its strings and
    // `refusal` outlive the call.
    if unsafe { (cb.f)(cb.userdata.get(), &info, refusal_ptr) } {
        return Ok(());
    }
    let mut error = sc::ConnectError::new(refusal.message.as_deref().unwrap_or("refused"));
    if let Some(data) = refusal.data {
        error = error.with_data(data);
    }
    Err(error)
}

/// Hand an event to the C event callback (on the socket's handler thread).
fn deliver_event(
    cb: Callback<EventFn>,
    socket: &sc::Socket,
    event: sc::Event,
    ack: Option<sc::AckSender>,
) {
    let args = match &event.raw_args {
        Some(raw) => raw.to_string(),
        None => serde_json::to_string(&event.payload.args).unwrap_or_else(|_| "[]".into()),
    };
    let (nsp, sid, name, args) = (
        c_string(socket.namespace()),
        c_string(socket.id()),
        c_bytes(&event.name),
        c_string(&args),
    );
    let attachments: Vec<swarmcast_bytes> = event
        .payload
        .attachments
        .iter()
        .map(|b| swarmcast_bytes {
            data: b.as_ptr(),
            len: b.len(),
        })
        .collect();
    let c_event = swarmcast_event {
        nsp: nsp.as_ptr(),
        socket_id: sid.as_ptr(),
        name: name.as_ptr().cast(),
        name_len: name.len() - 1,
        args_json: args.as_ptr(),
        args_json_len: args.as_bytes().len(),
        attachments: if attachments.is_empty() {
            std::ptr::null()
        } else {
            attachments.as_ptr()
        },
        attachments_len: attachments.len(),
    };
    // Ownership of the ack passes to C (swarmcast_ack_send / swarmcast_ack_free).
    let ack = ack.map_or(std::ptr::null_mut(), |sender| {
        Box::into_raw(Box::new(swarmcast_ack { sender }))
    });
    // SAFETY: a C function pointer registered by the user; the event, its strings and
    // attachment buffers outlive the call.
    unsafe { (cb.f)(cb.userdata.get(), &c_event, ack) }
}
