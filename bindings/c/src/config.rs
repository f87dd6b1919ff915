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
    /// The cluster to join: Redis URL and stream (`swarmcast_config_set_redis`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) redis: Option<(String, String)>,
    /// Emits handed to a thread of the library (`swarmcast_config_set_emit_in_background`).
    pub(crate) emit_in_background: bool,
}

impl Default for swarmcast_config {
    fn default() -> Self {
        Self {
            // Events reach C with their arguments as the client sent them.
            server: sc::ServerConfig {
                keep_raw_args: true,
                ..sc::ServerConfig::default()
            },
            namespaces: Vec::new(),
            handler_threads: 2,
            redis: None,
            emit_in_background: false,
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

/// Most threads `swarmcast_config_set_worker_threads` and
/// `swarmcast_config_set_handler_threads` accept.
pub const SWARMCAST_MAX_THREADS: usize = 1024;
/// Longest duration, in milliseconds, a `swarmcast_config_set_*_ms` setter accepts (one
/// hour). Socket.IO clients add the ping interval and timeout into one timer, which
/// JavaScript fires at once past 2^31 - 1 ms: a longer one would let no client stay.
pub const SWARMCAST_MAX_DURATION_MS: u64 = 3_600_000;
/// Largest byte bound `swarmcast_config_set_max_payload` and
/// `swarmcast_config_set_queue_bytes` accept (1 GiB).
pub const SWARMCAST_MAX_BYTES: usize = 1 << 30;
/// Largest packet bound `swarmcast_config_set_queue_packets` accepts.
pub const SWARMCAST_MAX_QUEUE_PACKETS: usize = 1 << 20;

/// `v` within `1..=max`.
fn in_range<T: PartialOrd + From<u8>>(v: T, max: T) -> Result<T, swarmcast_result> {
    if v >= T::from(1) && v <= max {
        Ok(v)
    } else {
        Err(swarmcast_result::InvalidArgument)
    }
}

/// `v` other than zero.
pub(crate) fn positive<T: PartialOrd + From<u8>>(v: T) -> Result<T, swarmcast_result> {
    if v >= T::from(1) {
        Ok(v)
    } else {
        Err(swarmcast_result::InvalidArgument)
    }
}

/// A duration setter's argument: 1 ..= [`SWARMCAST_MAX_DURATION_MS`].
pub(crate) fn duration_ms(ms: u64) -> Result<Duration, swarmcast_result> {
    in_range(ms, SWARMCAST_MAX_DURATION_MS).map(Duration::from_millis)
}

/// A host to listen on: an IP address or a DNS name (letters, digits, '-', '.',
/// labels of 1 to 63 characters).
fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// An HTTP path: starts with '/', printable ASCII, no query or fragment.
fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// A browser origin as the `Origin` header spells it: `scheme://host[:port]`, no path,
/// lower-case scheme; or "*".
fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal: "[::1]" or "[::1]:8080".
        Some((h, p)) if !rest.ends_with(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        valid_host(host)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    scheme_ok && host_ok && port_ok
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
/// every interface. Anything else (empty, spaces, a URL) is
/// `SWARMCAST_RESULT_INVALID_ARGUMENT`.
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
        if !valid_host(host) {
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

/// Socket.IO endpoint path (default "/socket.io"): it must start with '/' and be
/// printable ASCII without '?' or '#' (else `SWARMCAST_RESULT_INVALID_ARGUMENT`).
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
        if !valid_path(path) {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.path = path.to_string();
        Ok(())
    })
}

/// Allow browser pages from `origin` (for example "http://localhost:8050"), one call
/// per origin; "*" allows any origin. Without any, only same-origin pages (and
/// non-browser clients) may connect. An origin is `scheme://host[:port]`, as browsers
/// send it (no path, no trailing '/'); anything else is
/// `SWARMCAST_RESULT_INVALID_ARGUMENT`.
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
        if !valid_origin(origin) {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.cors_allowed_origins.push(origin.to_string());
        Ok(())
    })
}

/// Interval between server PINGs, in milliseconds (1 ..= `SWARMCAST_MAX_DURATION_MS`,
/// else `SWARMCAST_RESULT_INVALID_ARGUMENT`).
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
        c.server.engine.ping_interval = duration_ms(ms)?;
        Ok(())
    })
}

/// How long to wait for a client's PONG before closing, in milliseconds (1 ..=
/// `SWARMCAST_MAX_DURATION_MS`, else `SWARMCAST_RESULT_INVALID_ARGUMENT`).
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
        c.server.engine.ping_timeout = duration_ms(ms)?;
        Ok(())
    })
}

/// Largest message (or long-polling request body) accepted from a client, in bytes
/// (1 ..= `SWARMCAST_MAX_BYTES`, else `SWARMCAST_RESULT_INVALID_ARGUMENT`).
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
        c.server.engine.max_payload = in_range(bytes, SWARMCAST_MAX_BYTES)?;
        Ok(())
    })
}

/// Bound of each client's outbound queue, in packets (1 ..=
/// `SWARMCAST_MAX_QUEUE_PACKETS`, else `SWARMCAST_RESULT_INVALID_ARGUMENT`). When it is
/// full, the slow-consumer policy applies.
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
        c.server.engine.queue_packets = in_range(packets, SWARMCAST_MAX_QUEUE_PACKETS)?;
        Ok(())
    })
}

/// Bound of each client's outbound queue, in bytes (1 ..= `SWARMCAST_MAX_BYTES`, else
/// `SWARMCAST_RESULT_INVALID_ARGUMENT`).
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
        c.server.engine.queue_bytes = in_range(bytes, SWARMCAST_MAX_BYTES)?;
        Ok(())
    })
}

/// How long a client may take to send its first Socket.IO CONNECT, in milliseconds
/// (1 ..= `SWARMCAST_MAX_DURATION_MS`, else `SWARMCAST_RESULT_INVALID_ARGUMENT`).
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
        c.server.connect_timeout = duration_ms(ms)?;
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

/// Threads of the server's network runtime (1 ..= `SWARMCAST_MAX_THREADS`, else
/// `SWARMCAST_RESULT_INVALID_ARGUMENT`; default 2).
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
        c.server.worker_threads = in_range(threads, SWARMCAST_MAX_THREADS)?;
        Ok(())
    })
}

/// Threads that run the C callbacks (1 ..= `SWARMCAST_MAX_THREADS`, else
/// `SWARMCAST_RESULT_INVALID_ARGUMENT`; default 2). One socket's callbacks run one at a
/// time, in order; more threads let more sockets be handled at once. A callback that
/// blocks holds its thread: with N handler threads, N blocking callbacks stall every
/// other socket's callbacks, connect decisions included, until one returns. Size this
/// to the callbacks that may block at once, plus one. Should the system refuse the
/// threads, `swarmcast_server_start` returns `SWARMCAST_RESULT_RUNTIME_FAILED`.
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
        c.handler_threads = in_range(threads, SWARMCAST_MAX_THREADS)?;
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
        if ms > SWARMCAST_MAX_DURATION_MS {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.emit_max_wait = std::time::Duration::from_millis(ms);
        Ok(())
    })
}

/// Hand every emit of the server to a thread of the library, which fans it out (off
/// by default): an emit then checks its arguments, queues one job and returns, in
/// about a microsecond whatever the number of clients, instead of writing to every
/// client's queue itself (~0.1-0.25 us per client). Order is kept: emits from one
/// thread reach each client in that order, and `swarmcast_server_join`, `_leave`,
/// `_disconnect_socket` and the stop first wait for the emits handed off before them.
/// Errors an emit can see at once (bad JSON, an unknown namespace or socket, a
/// reserved name, `SWARMCAST_RESULT_TOO_LARGE`) are still returned;
/// `SWARMCAST_RESULT_QUEUE_FULL` is not (a client whose queue stays full is logged at
/// WARN). Up to 1,024 emits (64 MiB) wait for the thread; past that an emit waits for
/// room. `swarmcast_server_flush` waits until they are out. Keyed state changes
/// (`swarmcast_server_state_set`) are handed off too, in order with the emits.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_emit_in_background(
    config: *mut swarmcast_config,
    enabled: bool,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.emit_in_background = enabled;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_paths_and_origins() {
        for ok in [
            "127.0.0.1",
            "0.0.0.0",
            "::1",
            "localhost",
            "my-host.example.com",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in ["", "not a host", "http://x", "-x", "a..b", "x\u{7f}"] {
            assert!(!valid_host(bad), "{bad}");
        }
        assert!(valid_path("/socket.io") && valid_path("/"));
        for bad in ["socket.io", "/a b", "/a?b", "/a#b", ""] {
            assert!(!valid_path(bad), "{bad}");
        }
        for ok in [
            "*",
            "http://localhost:8050",
            "https://example.com",
            "http://127.0.0.1",
            "http://[::1]:3000",
            "app+x://host",
        ] {
            assert!(valid_origin(ok), "{ok}");
        }
        for bad in [
            "not a url",
            "",
            "http://",
            "http://host/",
            "http://host:",
            "http://host:99999",
            "localhost:8050",
            "HTTP://host",
            "http://[zz]:1",
        ] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }
}
