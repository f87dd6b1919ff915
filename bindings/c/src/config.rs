//! `swarmcast_config`: what a server is told before it is created.

use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::{out_arg, str_arg};
use crate::panic::{boundary, boundary_void};
use crate::result::swarmcast_result;

/// Settings for a server, built with the `swarmcast_config_*` setters and read by
/// `swarmcast_server_new` (which copies them: the config may then be changed, reused
/// for another server, or freed).
///
/// Defaults: host "127.0.0.1", port 5000, path "/socket.io", no CORS origin, ping
/// interval 25000 ms and timeout 20000 ms, max payload 1000000 bytes, 4096 queued
/// packets and 16 MiB per client, connect timeout 45000 ms, namespace "/" only, 2
/// worker threads, 2 handler threads, slow consumers disconnected, no client
/// subscriptions.
///
/// Thread safety: a config is not synchronised; do not use one from two threads at
/// once (reading it in two `swarmcast_server_new` calls at once is fine).
pub struct swarmcast_config {
    pub(crate) server: sc::ServerConfig,
    pub(crate) namespaces: Vec<String>,
    pub(crate) handler_threads: usize,
}

impl Default for swarmcast_config {
    fn default() -> Self {
        Self {
            server: sc::ServerConfig::default(),
            namespaces: Vec::new(),
            handler_threads: 2,
        }
    }
}

/// What happens to a client whose outbound queue is full when a (non-volatile) event
/// is emitted to it. Passed to `swarmcast_config_set_slow_consumer` as a `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum swarmcast_slow_consumer {
    /// Disconnect the client (reason "slow consumer"); it reconnects. The default.
    Disconnect = 0,
    /// Keep the client; it misses the event. The emit returns
    /// `SWARMCAST_RESULT_QUEUE_FULL` either way.
    Report = 1,
}

/// The config behind a pointer argument.
///
/// # Safety
/// `config` is NULL or a live config from `swarmcast_config_new`, not used by another
/// thread during the call.
pub(crate) unsafe fn config_arg<'a>(
    config: *mut swarmcast_config,
) -> Result<&'a mut swarmcast_config, swarmcast_result> {
    // SAFETY: NULL or live and exclusively ours for the call, as the caller promises.
    unsafe { config.as_mut() }.ok_or(swarmcast_result::NullParameter)
}

pub(crate) fn positive<T: PartialEq + Default>(v: T) -> Result<T, swarmcast_result> {
    if v == T::default() {
        Err(swarmcast_result::InvalidArgument)
    } else {
        Ok(v)
    }
}

/// Create a config with the defaults; `*out_config` receives it. Free it with
/// `swarmcast_config_free`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `out_config` must point to a writable `swarmcast_config *`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_new(
    out_config: *mut *mut swarmcast_config,
) -> swarmcast_result {
    boundary(|| {
        let out = out_arg(out_config)?;
        let config = Box::into_raw(Box::<swarmcast_config>::default());
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(config) };
        Ok(())
    })
}

/// Free a config. NULL is a no-op.
///
/// Thread safety: no other call may use `config` during or after this one.
///
/// # Safety
/// `config` is NULL or from `swarmcast_config_new`, and not freed before.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_free(config: *mut swarmcast_config) {
    boundary_void(|| {
        if !config.is_null() {
            // SAFETY: from `Box::into_raw` in `swarmcast_config_new`, freed once.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}

/// Address to listen on (an IP address or a host name), for example "0.0.0.0" for
/// every interface. Empty is `SWARMCAST_RESULT_INVALID_ARGUMENT`.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `host` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_host(
    config: *mut swarmcast_config,
    host: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        // SAFETY: a NUL-terminated string, as documented above.
        let host = unsafe { str_arg(host)? };
        if host.is_empty() {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.host = host.to_string();
        Ok(())
    })
}

/// Port to listen on; 0 picks a free one (read it back with
/// `swarmcast_server_local_port`).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_port(
    config: *mut swarmcast_config,
    port: u16,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.port = port;
        Ok(())
    })
}

/// Socket.IO endpoint path (default "/socket.io"); must start with '/'.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `path` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_path(
    config: *mut swarmcast_config,
    path: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        // SAFETY: a NUL-terminated string, as documented above.
        let path = unsafe { str_arg(path)? };
        if !path.starts_with('/') {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.path = path.to_string();
        Ok(())
    })
}

/// Allow browser pages from `origin` (for example "http://localhost:8050"), one call
/// per origin; "*" allows any origin. Without any, only same-origin pages (and
/// non-browser clients) may connect.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `origin` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_add_cors_origin(
    config: *mut swarmcast_config,
    origin: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        // SAFETY: a NUL-terminated string, as documented above.
        let origin = unsafe { str_arg(origin)? };
        if origin.is_empty() {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.cors_allowed_origins.push(origin.to_string());
        Ok(())
    })
}

/// Interval between server PINGs, in milliseconds (> 0).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_ping_interval_ms(
    config: *mut swarmcast_config,
    ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.engine.ping_interval = Duration::from_millis(positive(ms)?);
        Ok(())
    })
}

/// How long to wait for a client's PONG before closing, in milliseconds (> 0).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_ping_timeout_ms(
    config: *mut swarmcast_config,
    ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.engine.ping_timeout = Duration::from_millis(positive(ms)?);
        Ok(())
    })
}

/// Largest message (or long-polling request body) accepted from a client, in bytes
/// (> 0).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_max_payload(
    config: *mut swarmcast_config,
    bytes: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.engine.max_payload = positive(bytes)?;
        Ok(())
    })
}

/// Bound of each client's outbound queue, in packets (> 0). When it is full, the
/// slow-consumer policy applies.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_queue_packets(
    config: *mut swarmcast_config,
    packets: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.engine.queue_packets = positive(packets)?;
        Ok(())
    })
}

/// Bound of each client's outbound queue, in bytes (> 0).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_queue_bytes(
    config: *mut swarmcast_config,
    bytes: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.engine.queue_bytes = positive(bytes)?;
        Ok(())
    })
}

/// How long a client may take to send its first Socket.IO CONNECT, in milliseconds
/// (> 0).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_connect_timeout_ms(
    config: *mut swarmcast_config,
    ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.connect_timeout = Duration::from_millis(positive(ms)?);
        Ok(())
    })
}

/// Declare a namespace (for example "/agents"; it must start with '/'). "/" is always
/// declared. Clients connecting to an undeclared namespace are refused, and emitting
/// to one gives `SWARMCAST_RESULT_UNKNOWN_NAMESPACE`. Registering a callback on a
/// namespace declares it too.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `nsp` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_add_namespace(
    config: *mut swarmcast_config,
    nsp: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        // SAFETY: a NUL-terminated string, as documented above.
        let nsp = unsafe { crate::server::namespace_arg(nsp)? };
        if !c.namespaces.iter().any(|n| n == nsp) {
            c.namespaces.push(nsp.to_string());
        }
        Ok(())
    })
}

/// Threads of the server's network runtime (> 0; default 2).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_worker_threads(
    config: *mut swarmcast_config,
    threads: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.worker_threads = positive(threads)?;
        Ok(())
    })
}

/// Threads that run the C callbacks (> 0; default 2). One socket's callbacks always
/// run on the same thread, in order; more threads let more sockets be handled at once.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_handler_threads(
    config: *mut swarmcast_config,
    threads: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.handler_threads = positive(threads)?;
        Ok(())
    })
}

/// What to do with a client whose outbound queue is full: a `swarmcast_slow_consumer`
/// value (`SWARMCAST_SLOW_CONSUMER_DISCONNECT` or `SWARMCAST_SLOW_CONSUMER_REPORT`);
/// other numbers give `SWARMCAST_RESULT_INVALID_ARGUMENT`.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_slow_consumer(
    config: *mut swarmcast_config,
    policy: u32,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.slow_consumer = match policy {
            p if p == swarmcast_slow_consumer::Disconnect as u32 => {
                sc::SlowConsumerPolicy::Disconnect
            }
            p if p == swarmcast_slow_consumer::Report as u32 => sc::SlowConsumerPolicy::Report,
            _ => return Err(swarmcast_result::InvalidArgument),
        };
        Ok(())
    })
}

/// Backpressure: how long an emit may wait, in milliseconds, for a client whose
/// outbound queue it finds full or leaves above its watermark, before the slow-consumer
/// policy applies to that client (default 2000). Emits from callbacks and from your own
/// threads wait; a producer faster than the network thereby slows to its pace instead
/// of losing clients. 0 never waits (the emit then behaves as before backpressure:
/// `SWARMCAST_RESULT_QUEUE_FULL` and the policy at once).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_emit_max_wait_ms(
    config: *mut swarmcast_config,
    ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        if ms > 3_600_000 {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.emit_max_wait = std::time::Duration::from_millis(ms);
        Ok(())
    })
}

/// Let clients join rooms matching `pattern` themselves, with the built-in `subscribe`
/// event (`*` matches any run of characters; keyed state map `m` is the room
/// `state:m`, so "state:*" lets clients follow every state map). One call per pattern;
/// without any, the built-in `subscribe` event is off.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `pattern` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_add_subscribe_pattern(
    config: *mut swarmcast_config,
    pattern: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        // SAFETY: a NUL-terminated string, as documented above.
        let pattern = unsafe { str_arg(pattern)? };
        if pattern.is_empty() {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.allow_subscribe.push(pattern.to_string());
        Ok(())
    })
}
