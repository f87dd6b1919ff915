//! Rooms, disconnecting a socket, and keyed live state: the `swarmcast_server_*`
//! functions that act on the namespace's registry rather than emit.

use std::ffi::c_char;

use crate::ffi::{json_arg, name_arg, out_arg, str_arg};
use crate::panic::boundary;
use crate::result::swarmcast_result;
use crate::server::{namespace_arg, server_arg, swarmcast_server};

/// Put socket `socket_id` of namespace `nsp` in room `room`. Returns
/// `SWARMCAST_RESULT_UNKNOWN_SOCKET` if it is not connected.
///
/// Thread safety: any thread, concurrently, including callbacks (a connect callback
/// may already put the new socket in rooms).
///
/// # Safety
/// `server` is a live server; `nsp`, `socket_id`, `room` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_join(
    server: *const swarmcast_server,
    nsp: *const c_char,
    socket_id: *const c_char,
    room: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, sid, room) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                str_arg(socket_id)?,
                name_arg(room)?,
            )
        };
        s.after_handed_off();
        if s.live_namespace(nsp)?.join_room(sid, room) {
            Ok(())
        } else {
            Err(swarmcast_result::UnknownSocket)
        }
    })
}

/// Take socket `socket_id` of namespace `nsp` out of room `room` (no error if it was
/// not in it). Returns `SWARMCAST_RESULT_UNKNOWN_SOCKET` if it is not connected.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `nsp`, `socket_id`, `room` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_leave(
    server: *const swarmcast_server,
    nsp: *const c_char,
    socket_id: *const c_char,
    room: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, sid, room) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                str_arg(socket_id)?,
                name_arg(room)?,
            )
        };
        s.after_handed_off();
        if s.live_namespace(nsp)?.leave_room(sid, room) {
            Ok(())
        } else {
            Err(swarmcast_result::UnknownSocket)
        }
    })
}

/// Disconnect socket `socket_id` from namespace `nsp` (the client sees "io server
/// disconnect"; the disconnect callback runs with "server namespace disconnect").
/// Returns `SWARMCAST_RESULT_UNKNOWN_SOCKET` if it is not connected.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `nsp` and `socket_id` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_disconnect_socket(
    server: *const swarmcast_server,
    nsp: *const c_char,
    socket_id: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, sid) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                str_arg(socket_id)?,
            )
        };
        s.after_handed_off();
        if s.live_namespace(nsp)?.disconnect(sid) {
            Ok(())
        } else {
            Err(swarmcast_result::UnknownSocket)
        }
    })
}

/// Set `key` of the keyed live state map `map` (namespace `nsp`) to one JSON value
/// (`json_len` bytes at `json`). Clients subscribed to the map (built-in `subscribe`
/// event with `{"state": map}`, see `swarmcast_config_add_subscribe_pattern`) first get
/// the whole map as a `swarmcast:snapshot` event, then one `swarmcast:delta` per
/// change; a slow client's pending deltas of one key collapse to the latest. Works
/// before the start too (the map is kept for later subscribers). An empty `map` or
/// `key` is `SWARMCAST_RESULT_INVALID_ARGUMENT`. With
/// `swarmcast_config_set_emit_in_background`, the change is handed off like an emit
/// (in order with the emits made before it; `SWARMCAST_RESULT_TOO_LARGE` still comes
/// at once).
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `nsp`, `map`, `key` are NUL-terminated strings; `json`
/// points to `json_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_state_set(
    server: *const swarmcast_server,
    nsp: *const c_char,
    map: *const c_char,
    key: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, map, key, data) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                name_arg(map)?,
                name_arg(key)?,
                json_arg(json, json_len)?,
            )
        };
        let value: serde_json::Value =
            serde_json::from_str(data.get()).map_err(|_| swarmcast_result::InvalidJson)?;
        let map = s.live_namespace(nsp)?.state(map);
        match s.handoff() {
            // In order with the emits handed off before it.
            Some(handoff) => sc::PreparedEmit::set_state(&map, key, value)
                .and_then(|change| handoff.send(change)),
            None => map.set_value(key, value),
        }
        .map_err(swarmcast_result::from)
    })
}

/// Remove `key` from the keyed live state map `map` (namespace `nsp`); subscribers get
/// a `swarmcast:delta` with `"deleted": true`. `*out_deleted` receives whether the key
/// was there (with `emit_in_background`, after the changes and emits handed off before
/// it, which it waits for).
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `nsp`, `map`, `key` are NUL-terminated strings;
/// `out_deleted` points to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_state_delete(
    server: *const swarmcast_server,
    nsp: *const c_char,
    map: *const c_char,
    key: *const c_char,
    out_deleted: *mut bool,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: pointer arguments as documented above.
        let (s, nsp, map, key) = unsafe {
            (
                server_arg(server)?,
                namespace_arg(nsp)?,
                name_arg(map)?,
                name_arg(key)?,
            )
        };
        let out = out_arg(out_deleted)?;
        let map = s.live_namespace(nsp)?.state(map);
        // Whether the key was there depends on the changes handed off before.
        s.after_handed_off();
        let deleted = map.delete(key);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(deleted) };
        Ok(())
    })
}
