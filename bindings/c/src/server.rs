//! `swarmcast_server`: lifecycle, callbacks registration, emits, rooms, keyed state.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use crate::callbacks::{
    self, swarmcast_connect_callback, swarmcast_disconnect_callback, swarmcast_event_callback,
};
use crate::config::swarmcast_config;
use crate::ffi::{json_arg, name_arg, out_arg, str_arg};
use crate::panic::{boundary, boundary_void};
use crate::result::swarmcast_result;

/// A Socket.IO server. Created with `swarmcast_server_new`, given callbacks with
/// `swarmcast_server_on_*`, started with `swarmcast_server_start` (it then runs on
/// threads of its own), stopped with `swarmcast_server_stop` and freed with
/// `swarmcast_server_free`. A stopped server can start again, with its callbacks,
/// namespaces and state maps.
///
/// Thread safety: the functions taking a `const swarmcast_server *` (emits, rooms,
/// state, `swarmcast_server_local_port`) may be called from any thread, concurrently
/// with each other and with `swarmcast_server_start` / `_stop`, and from inside
/// callbacks. Those taking a `swarmcast_server *` are synchronised too, but
/// `swarmcast_server_free` must not overlap any other call on the same server.
pub struct swarmcast_server {
    /// The core's host layer: lifecycle, handler threads, callback gating.
    host: sc::Host,
    /// The cluster adapter, when the config joined one (kept for its readiness).
    #[cfg(feature = "redis")]
    pub(crate) cluster: Option<sc::RedisAdapter>,
}

/// A namespace argument: a string starting with '/'.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn namespace_arg<'a>(nsp: *const c_char) -> Result<&'a str, swarmcast_result> {
    // SAFETY: forwarded from the caller.
    let nsp = unsafe { str_arg(nsp)? };
    if nsp.starts_with('/') {
        Ok(nsp)
    } else {
        Err(swarmcast_result::InvalidArgument)
    }
}

/// An event name to emit: not empty, not one Socket.IO reserves, and not one of the
/// keyed-state events swarmcast itself sends (`swarmcast:snapshot`,
/// `swarmcast:delta`), which subscribers would take for state changes.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn event_arg<'a>(event: *const c_char) -> Result<&'a str, swarmcast_result> {
    // SAFETY: forwarded from the caller.
    let event = unsafe { name_arg(event)? };
    if sc::is_reserved_event(event) || event == sc::SNAPSHOT_EVENT || event == sc::DELTA_EVENT {
        return Err(swarmcast_result::ReservedEvent);
    }
    Ok(event)
}

/// An event name to handle: not empty, not one Socket.IO reserves (`connect`,
/// `disconnect`... have callbacks of their own and never arrive as events).
///
/// # Safety
/// As [`str_arg`].
unsafe fn handled_event_arg<'a>(event: *const c_char) -> Result<&'a str, swarmcast_result> {
    // SAFETY: forwarded from the caller.
    let event = unsafe { name_arg(event)? };
    if sc::is_reserved_event(event) {
        return Err(swarmcast_result::ReservedEvent);
    }
    Ok(event)
}

impl swarmcast_server {
    /// A namespace emits may use: refused while stopped (emits before the first start
    /// succeed and reach nobody).
    pub(crate) fn live_namespace(&self, nsp: &str) -> Result<Arc<sc::Namespace>, swarmcast_result> {
        if self.host.state() == sc::HostState::Stopped {
            return Err(swarmcast_result::NotRunning);
        }
        self.host
            .namespace(nsp)
            .ok_or(swarmcast_result::UnknownNamespace)
    }

    /// Wait for the emits handed off so far (`swarmcast_config_set_emit_in_background`):
    /// a room change or a disconnect must not overtake them.
    pub(crate) fn after_handed_off(&self) {
        self.host.wait_for_handed_off();
    }

    /// The handoff, with `swarmcast_config_set_emit_in_background`.
    pub(crate) fn handoff(&self) -> Option<&sc::Handoff> {
        self.host.handoff()
    }

    /// Whether the server runs now.
    pub(crate) fn is_running(&self) -> bool {
        self.host.is_running()
    }

    /// Callbacks are registered while the server is not running.
    fn register(
        &self,
        f: impl FnOnce(&sc::Host) -> Result<(), swarmcast_result>,
    ) -> Result<(), swarmcast_result> {
        if self.host.is_running() {
            return Err(swarmcast_result::AlreadyStarted);
        }
        f(&self.host)
    }

    fn stop(&self) -> Result<(), swarmcast_result> {
        if self.host.in_handler() {
            return Err(swarmcast_result::InCallback);
        }
        Ok(self.host.stop()?)
    }

    fn stop_within(&self, timeout: std::time::Duration) -> Result<(), swarmcast_result> {
        if self.host.in_handler() {
            return Err(swarmcast_result::InCallback);
        }
        if self.host.stop_within(timeout)? {
            Ok(())
        } else {
            Err(swarmcast_result::TimedOut)
        }
    }
}

/// The server behind a pointer argument.
///
/// # Safety
/// `server` is NULL or a live server from `swarmcast_server_new`. Only shared
/// references are ever made (everything inside is synchronised), except in
/// `swarmcast_server_free`, which the API forbids to overlap any other call.
pub(crate) unsafe fn server_arg<'a>(
    server: *const swarmcast_server,
) -> Result<&'a swarmcast_server, swarmcast_result> {
    // SAFETY: NULL or live, as the caller promises.
    unsafe { server.as_ref() }.ok_or(swarmcast_result::NullParameter)
}

/// Create a server from `config` (copied: the config may be freed right after);
/// `*out_server` receives it. The server does not listen until
/// `swarmcast_server_start`. Free it with `swarmcast_server_free`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `config` is a live config not being changed by another thread; `out_server` points
/// to a writable `swarmcast_server *`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_new(
    config: *const swarmcast_config,
    out_server: *mut *mut swarmcast_server,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: NULL or live, as the caller promises.
        let config = unsafe { config.as_ref() }.ok_or(swarmcast_result::NullParameter)?;
        let out = out_arg(out_server)?;
        let mut server = sc::Server::new(config.server.clone());
        for nsp in &config.namespaces {
            server.namespace(nsp);
        }
        // `Option<()>` in a build without Redis.
        let _cluster = crate::redis::join_cluster(&mut server, config)?;
        let host = sc::Host::new(server, config.handler_threads);
        if config.emit_in_background {
            host.enable_handoff()
                .map_err(|_| swarmcast_result::RuntimeFailed)?;
        }
        let boxed = Box::new(swarmcast_server {
            host,
            #[cfg(feature = "redis")]
            cluster: _cluster,
        });
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(Box::into_raw(boxed)) };
        Ok(())
    })
}

/// Stop the server if it runs (as `swarmcast_server_stop`), then free it. NULL is a
/// no-op. Pending `swarmcast_ack` handles stay valid (answering them then gives
/// `SWARMCAST_RESULT_DISCONNECTED`) and must still be freed.
///
/// Thread safety: no other call may use `server` during or after this one. Called from
/// outside the server's callbacks, it returns once no callback of the server runs any
/// more. Called from one of the server's own callbacks, the stop and free happen on a
/// new thread after this call returns, so the callbacks still queued may run after it:
/// `swarmcast_wait_teardown`, from another thread, waits until they have.
///
/// # Safety
/// `server` is NULL or from `swarmcast_server_new`, and not freed before.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_free(server: *mut swarmcast_server) {
    boundary_void(|| {
        if server.is_null() {
            return;
        }
        // SAFETY: from `Box::into_raw` in `swarmcast_server_new`, freed once, with no
        // other call in progress (API contract).
        let server = unsafe { Box::from_raw(server) };
        if server.host.in_handler() {
            // Stopping waits for the handler threads, this one included: do it on a
            // thread of its own. (Should spawning fail, the closure, and with it the
            // server, is dropped here: the dispatcher then skips joining this thread.)
            // The guard makes `swarmcast_wait_teardown` wait for that thread from now.
            let guard = sc::TeardownGuard::new();
            let _ = std::thread::Builder::new()
                .name("swarmcast-free".into())
                .spawn(move || {
                    // A stop proper, while the host is whole: the disconnect callbacks
                    // run (dropping a running host only closes its connections).
                    let _ = server.host.stop();
                    drop(server);
                    drop(guard);
                });
        } else {
            let _ = server.host.stop();
            drop(server);
        }
    })
}

/// Register the connect callback of namespace `nsp` (declaring it), replacing any
/// previous one. Without one, every client is accepted. `userdata` (may be NULL) is
/// passed back to the callback; it must stay valid until the server is stopped or
/// freed.
///
/// Returns `SWARMCAST_RESULT_NULL_PARAMETER` for a NULL `callback`,
/// `SWARMCAST_RESULT_ALREADY_STARTED` while the server runs: register callbacks before
/// `swarmcast_server_start` (or while it is stopped; they serve every later start).
///
/// Thread safety: any thread.
///
/// # Safety
/// `server` is a live server; `nsp` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_on_connect(
    server: *mut swarmcast_server,
    nsp: *const c_char,
    callback: swarmcast_connect_callback,
    userdata: *mut c_void,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp) = unsafe { (server_arg(server)?, namespace_arg(nsp)?) };
        s.register(|host| callbacks::on_connect(host, nsp, callback, userdata))
    })
}

/// Register the disconnect callback of namespace `nsp` (declaring it), replacing any
/// previous one. `userdata` as for `swarmcast_server_on_connect`.
///
/// Returns `SWARMCAST_RESULT_ALREADY_STARTED` while the server runs.
///
/// Thread safety: any thread.
///
/// # Safety
/// `server` is a live server; `nsp` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_on_disconnect(
    server: *mut swarmcast_server,
    nsp: *const c_char,
    callback: swarmcast_disconnect_callback,
    userdata: *mut c_void,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp) = unsafe { (server_arg(server)?, namespace_arg(nsp)?) };
        s.register(|host| callbacks::on_disconnect(host, nsp, callback, userdata))
    })
}

/// Register the callback for event `event` on namespace `nsp` (declaring it),
/// replacing any previous one for that name. `userdata` as for
/// `swarmcast_server_on_connect`.
///
/// Returns `SWARMCAST_RESULT_INVALID_ARGUMENT` for an empty `event`,
/// `SWARMCAST_RESULT_RESERVED_EVENT` for a name Socket.IO reserves ("connect",
/// "disconnect"...: use `swarmcast_server_on_connect` / `_on_disconnect`),
/// `SWARMCAST_RESULT_ALREADY_STARTED` while the server runs.
///
/// Thread safety: any thread.
///
/// # Safety
/// `server` is a live server; `nsp` and `event` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_on_event(
    server: *mut swarmcast_server,
    nsp: *const c_char,
    event: *const c_char,
    callback: swarmcast_event_callback,
    userdata: *mut c_void,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, event) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                handled_event_arg(event)?,
            )
        };
        s.register(|host| callbacks::on_event(host, nsp, Some(event), callback, userdata))
    })
}

/// Register the catch-all callback of namespace `nsp` (declaring it): it receives
/// every event that has no callback of its own. `userdata` as for
/// `swarmcast_server_on_connect`.
///
/// Returns `SWARMCAST_RESULT_ALREADY_STARTED` while the server runs.
///
/// Thread safety: any thread.
///
/// # Safety
/// `server` is a live server; `nsp` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_on_any_event(
    server: *mut swarmcast_server,
    nsp: *const c_char,
    callback: swarmcast_event_callback,
    userdata: *mut c_void,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp) = unsafe { (server_arg(server)?, namespace_arg(nsp)?) };
        s.register(|host| callbacks::on_event(host, nsp, None, callback, userdata))
    })
}

/// Bind and start serving on threads of the server's own; returns once listening.
///
/// Returns `SWARMCAST_RESULT_BIND_FAILED` (port in use...),
/// `SWARMCAST_RESULT_INVALID_CONFIG`, `SWARMCAST_RESULT_RUNTIME_FAILED`, or
/// `SWARMCAST_RESULT_ALREADY_STARTED` while it runs (or another thread starts or stops
/// it). After `swarmcast_server_stop`, or a failed start, it starts again with its
/// callbacks, namespaces and state maps.
///
/// Thread safety: any thread.
///
/// # Safety
/// `server` is a live server.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_start(server: *mut swarmcast_server) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer argument as documented above.
        let s = unsafe { server_arg(server)? };
        s.host.start()?;
        Ok(())
    })
}

/// Stop the server: run the callbacks already queued (up to 0.5 s) while the connections
/// are open, let long-polling clients fetch what is queued for them (acks included),
/// close every connection (flushing what is queued, waiting up to 5 s in all), call the
/// disconnect callbacks, and wait for every callback to finish, without limit (see
/// `swarmcast_server_stop_timeout` for a deadline). Once it returns, no callback of this server runs any more. Emits after it
/// return `SWARMCAST_RESULT_NOT_RUNNING` until the server starts again.
///
/// Returns `SWARMCAST_RESULT_NOT_RUNNING` if the server is not running (never started,
/// or already stopped: a second stop is harmless), `SWARMCAST_RESULT_IN_CALLBACK` when
/// called from one of this server's callbacks (it would wait for itself; stop from
/// another thread, or call `swarmcast_server_free`).
///
/// Thread safety: any thread but this server's callbacks; blocks.
///
/// # Safety
/// `server` is a live server.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_stop(server: *mut swarmcast_server) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer argument as documented above.
        let s = unsafe { server_arg(server)? };
        s.stop()
    })
}

/// `swarmcast_server_stop` with a deadline: returns after about `timeout_ms`
/// milliseconds at most (plus up to one second for the network threads to leave).
/// Within it: the callbacks already queued run while their connections are open, then
/// long-polling clients get what is queued for them (acks included) with their next
/// request, then every connection closes (the disconnect callbacks run), then the
/// handler threads finish.
///
/// Returns `SWARMCAST_RESULT_OK` when every callback has finished;
/// `SWARMCAST_RESULT_TIMED_OUT` when the server is stopped but some callback still runs
/// (one that blocks): it finishes on its own thread, so `userdata` must stay valid
/// until `swarmcast_wait_teardown` returns `SWARMCAST_RESULT_OK`. Otherwise as
/// `swarmcast_server_stop` (`SWARMCAST_RESULT_NOT_RUNNING`,
/// `SWARMCAST_RESULT_IN_CALLBACK`). The server can start again either way.
///
/// Thread safety: any thread but this server's callbacks; blocks.
///
/// # Safety
/// `server` is a live server.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_stop_timeout(
    server: *mut swarmcast_server,
    timeout_ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer argument as documented above.
        let s = unsafe { server_arg(server)? };
        s.stop_within(std::time::Duration::from_millis(timeout_ms))
    })
}

/// Wait, at most `timeout_ms` milliseconds, until no callback of any stopped or freed
/// server runs any more: after `swarmcast_server_free` called from a callback, or a
/// `swarmcast_server_stop_timeout` that returned `SWARMCAST_RESULT_TIMED_OUT`. Once it
/// returns `SWARMCAST_RESULT_OK`, the `userdata` of those servers may be freed and the
/// library unloaded. Process-wide; servers still running are not waited for.
///
/// Returns `SWARMCAST_RESULT_TIMED_OUT` when some callback still runs at the deadline,
/// `SWARMCAST_RESULT_IN_CALLBACK` when called from a callback (it would wait for itself).
///
/// Thread safety: any thread but the servers' callbacks; blocks.
#[no_mangle]
pub extern "C" fn swarmcast_wait_teardown(timeout_ms: u64) -> swarmcast_result {
    boundary(|| {
        if sc::on_dispatcher_thread() {
            return Err(swarmcast_result::InCallback);
        }
        if sc::wait_for_teardown(std::time::Duration::from_millis(timeout_ms)) {
            Ok(())
        } else {
            Err(swarmcast_result::TimedOut)
        }
    })
}

/// The port the running server listens on (useful after `swarmcast_config_set_port(c,
/// 0)`); `*out_port` receives it. `SWARMCAST_RESULT_NOT_RUNNING` before the start and
/// after the stop.
///
/// Thread safety: any thread.
///
/// # Safety
/// `server` is a live server; `out_port` points to a writable `uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_local_port(
    server: *const swarmcast_server,
    out_port: *mut u16,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer argument as documented above.
        let s = unsafe { server_arg(server)? };
        let out = out_arg(out_port)?;
        let port = s
            .host
            .local_addr()
            .ok_or(swarmcast_result::NotRunning)?
            .port();
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(port) };
        Ok(())
    })
}

fn broadcast_result(report: Result<sc::EmitReport, sc::EmitError>) -> Result<(), swarmcast_result> {
    let report = report?;
    if report.full.is_empty() {
        Ok(())
    } else {
        Err(swarmcast_result::QueueFull)
    }
}

/// Whom an emit goes to.
#[derive(Clone, Copy)]
enum Recipients {
    All,
    /// A room (NUL-terminated string).
    Room(*const c_char),
    /// One socket id (NUL-terminated string).
    Socket(*const c_char),
}

/// The body every `swarmcast_server_emit*` shares: check the arguments (in the order of
/// the parameters), then forward to the core.
///
/// # Safety
/// As `swarmcast_server_emit`; the room or socket id of `to` is a NUL-terminated string.
unsafe fn emit(
    server: *const swarmcast_server,
    nsp: *const c_char,
    to: Recipients,
    volatile: bool,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as the caller promises.
        let (s, nsp) = unsafe { (server_arg(server)?, namespace_arg(nsp)?) };
        let target = match to {
            Recipients::All => None,
            // SAFETY: NUL-terminated, as the caller promises.
            Recipients::Room(name) => Some(unsafe { name_arg(name)? }),
            // SAFETY: NUL-terminated, as the caller promises.
            Recipients::Socket(name) => Some(unsafe { str_arg(name)? }),
        };
        // SAFETY: as the caller promises.
        let (event, data) = unsafe { (event_arg(event)?, json_arg(json, json_len)?) };
        let ns = s.live_namespace(nsp)?;
        if let Some(handoff) = s.host.handoff() {
            let target = target.map(|name| (name, matches!(to, Recipients::Socket(_))));
            return hand_off(s, handoff, &ns, nsp, target, volatile, event, data);
        }
        let mut broadcast = match (to, target) {
            (Recipients::Socket(_), Some(sid)) => {
                let socket = ns.socket(sid).ok_or(swarmcast_result::UnknownSocket)?;
                return socket.emit(event, data).map_err(swarmcast_result::from);
            }
            (_, Some(room)) => ns.to(room),
            (_, None) => ns.broadcast(),
        };
        if volatile {
            broadcast = broadcast.volatile();
        }
        broadcast_result(broadcast.emit(event, data))
    })
}

/// [`emit`] with the fan-out on the server's handoff thread: `target` is a room, or a
/// socket id (checked: the direct emit's `SWARMCAST_RESULT_UNKNOWN_SOCKET`), whose own
/// room reaches it.
#[allow(clippy::too_many_arguments)]
fn hand_off(
    s: &swarmcast_server,
    handoff: &sc::Handoff,
    ns: &sc::Namespace,
    nsp: &str,
    target: Option<(&str, bool)>,
    volatile: bool,
    event: &str,
    data: &serde_json::value::RawValue,
) -> Result<(), swarmcast_result> {
    let mut broadcast = s.host.emitter().of(nsp);
    if let Some((name, is_socket)) = target {
        if is_socket && ns.socket(name).is_none() {
            return Err(swarmcast_result::UnknownSocket);
        }
        broadcast = broadcast.to(name);
    }
    if volatile {
        broadcast = broadcast.volatile();
    }
    let prepared = sc::PreparedEmit::json(broadcast, event, data.to_owned())?;
    handoff.send(prepared).map_err(swarmcast_result::from)
}

/// With `swarmcast_config_set_emit_in_background`: wait until every emit handed off
/// so far has been written to its clients' queues, at most `timeout_ms` milliseconds.
/// Returns `SWARMCAST_RESULT_TIMED_OUT` if some are still pending then. Without the
/// option, `SWARMCAST_RESULT_OK` at once.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_flush(
    server: *const swarmcast_server,
    timeout_ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live server, as documented above.
        let s = unsafe { server_arg(server)? };
        let Some(handoff) = s.host.handoff() else {
            return Ok(());
        };
        let timeout = std::time::Duration::from_millis(timeout_ms);
        if handoff.fence().wait_timeout(timeout) {
            Ok(())
        } else {
            Err(swarmcast_result::TimedOut)
        }
    })
}

/// Emit event `event` with one JSON argument (`json_len` bytes at `json`, for example
/// `{"agent":7,"status":"busy"}`) to every client of namespace `nsp`. Encoded once,
/// queued to each client, never blocks on a slow one. Events emitted by one thread
/// reach each client in the order they were emitted.
///
/// Returns `SWARMCAST_RESULT_INVALID_UTF8` / `SWARMCAST_RESULT_INVALID_JSON` for a bad
/// payload (nested deeper than 128 levels or holding a number no double can hold, such
/// as `1e400`, is invalid too), `SWARMCAST_RESULT_INVALID_ARGUMENT` for an empty event
/// (or room) name, `SWARMCAST_RESULT_RESERVED_EVENT` for a name Socket.IO reserves or
/// `swarmcast:snapshot` / `swarmcast:delta`, `SWARMCAST_RESULT_UNKNOWN_NAMESPACE`,
/// `SWARMCAST_RESULT_NOT_RUNNING` after the stop, `SWARMCAST_RESULT_QUEUE_FULL` when
/// some client's queue was full (every other client got the event). Before the start
/// it succeeds and reaches nobody.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `nsp` and `event` are NUL-terminated strings; `json`
/// points to `json_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_emit(
    server: *const swarmcast_server,
    nsp: *const c_char,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    // SAFETY: forwarded, as documented above.
    unsafe { emit(server, nsp, Recipients::All, false, event, json, json_len) }
}

/// Like `swarmcast_server_emit`, to the clients in room `room` of namespace `nsp`
/// (every socket is also in the room named by its own id).
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// As `swarmcast_server_emit`; `room` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_emit_to_room(
    server: *const swarmcast_server,
    nsp: *const c_char,
    room: *const c_char,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    // SAFETY: forwarded, as documented above.
    unsafe {
        emit(
            server,
            nsp,
            Recipients::Room(room),
            false,
            event,
            json,
            json_len,
        )
    }
}

/// Like `swarmcast_server_emit`, to the one socket `socket_id` of namespace `nsp`.
/// Returns `SWARMCAST_RESULT_UNKNOWN_SOCKET` if it is not connected,
/// `SWARMCAST_RESULT_QUEUE_FULL` if its queue is full.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// As `swarmcast_server_emit`; `socket_id` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_emit_to_socket(
    server: *const swarmcast_server,
    nsp: *const c_char,
    socket_id: *const c_char,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    // SAFETY: forwarded, as documented above.
    unsafe {
        emit(
            server,
            nsp,
            Recipients::Socket(socket_id),
            false,
            event,
            json,
            json_len,
        )
    }
}

/// Like `swarmcast_server_emit`, but volatile: clients whose queue is full simply miss
/// the event (no error, no slow-consumer policy). For frequent samples where only the
/// latest matters.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// As `swarmcast_server_emit`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_emit_volatile(
    server: *const swarmcast_server,
    nsp: *const c_char,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    // SAFETY: forwarded, as documented above.
    unsafe { emit(server, nsp, Recipients::All, true, event, json, json_len) }
}

/// Volatile emit (see `swarmcast_server_emit_volatile`) to room `room`.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// As `swarmcast_server_emit_to_room`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_emit_volatile_to_room(
    server: *const swarmcast_server,
    nsp: *const c_char,
    room: *const c_char,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    // SAFETY: forwarded, as documented above.
    unsafe {
        emit(
            server,
            nsp,
            Recipients::Room(room),
            true,
            event,
            json,
            json_len,
        )
    }
}
