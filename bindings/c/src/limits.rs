//! `swarmcast_config_*` setters of what clients may hold or do: the connection cap,
//! timeouts, attachment bytes, rate limits, and who may reach `/metrics` and the
//! server at all (`Host` names). Defaults and reasons are in docs/deployment.md,
//! "Security".

use std::ffi::c_char;

use crate::config::{config_arg, duration_ms, positive, swarmcast_config};
use crate::ffi::str_arg;
use crate::panic::boundary;
use crate::result::swarmcast_result;

/// What happens to a client over its rate limit. Passed to
/// `swarmcast_config_set_rate_limit` as a `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum swarmcast_rate_limit_policy {
    /// Drop the events over the limit (counted in `swarmcast_rate_limited`). The default.
    Drop = 0,
    /// Close the connection.
    Disconnect = 1,
}

/// Most TCP connections open at once (> 0; default 10000). Past it, new connections
/// are answered 503 and closed.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_max_connections(
    config: *mut swarmcast_config,
    max: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.limits.max_connections = positive(max)?;
        Ok(())
    })
}

/// Listen backlog (> 0; default 1024; the kernel caps it at `net.core.somaxconn`).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_listen_backlog(
    config: *mut swarmcast_config,
    backlog: u32,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.limits.listen_backlog = positive(backlog)?;
        Ok(())
    })
}

/// How long a client may take to send a request's headers (and then its body), in
/// milliseconds (> 0; default 10000). Idle connections are closed after it too.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_request_timeout_ms(
    config: *mut swarmcast_config,
    ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.limits.request_timeout = duration_ms(ms)?;
        Ok(())
    })
}

/// How long a write to a client may make no progress before its connection is reset,
/// in milliseconds (> 0; default 5000).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_write_timeout_ms(
    config: *mut swarmcast_config,
    ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        c.server.limits.write_timeout = duration_ms(ms)?;
        Ok(())
    })
}

/// Most bytes of binary attachments waiting for the rest of their packet: per
/// connection (default 1000000) and for all connections together (default 64 MiB).
/// Both > 0, and `total` >= `per_connection`.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_max_attachment_bytes(
    config: *mut swarmcast_config,
    per_connection: usize,
    total: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        if positive(total)? < positive(per_connection)? {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.limits.max_attachment_bytes = per_connection;
        c.server.limits.max_attachment_bytes_total = total;
        Ok(())
    })
}

/// Incoming events and bytes per second per connection (0 turns a limit off; both off
/// by default), and what happens over them: a `swarmcast_rate_limit_policy`.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_rate_limit(
    config: *mut swarmcast_config,
    events_per_second: u32,
    bytes_per_second: u64,
    policy: u32,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        let policy = match policy {
            p if p == swarmcast_rate_limit_policy::Drop as u32 => sc::RateLimitPolicy::Drop,
            p if p == swarmcast_rate_limit_policy::Disconnect as u32 => {
                sc::RateLimitPolicy::Disconnect
            }
            _ => return Err(swarmcast_result::InvalidArgument),
        };
        c.server.limits.rate_limit = sc::RateLimit {
            events_per_second,
            bytes_per_second,
            policy,
        };
        Ok(())
    })
}

/// Serve `GET /metrics` or not (`enabled`, default true), and the bearer token it
/// requires (`token`, NULL for none; not empty).
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `token` is NULL
/// or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_metrics(
    config: *mut swarmcast_config,
    enabled: bool,
    token: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        let token = if token.is_null() {
            None
        } else {
            // SAFETY: a NUL-terminated string, as documented above.
            let token = unsafe { str_arg(token)? };
            if token.is_empty() {
                return Err(swarmcast_result::InvalidArgument);
            }
            Some(token.to_string())
        };
        c.server.metrics = enabled;
        c.server.metrics_token = token;
        Ok(())
    })
}

/// Allow requests whose `Host` is `name` (without the port; "*" for any). Without any,
/// only loopback names are served when the server listens on a loopback address (DNS
/// rebinding), and any name otherwise. One call per name.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `name` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_add_allowed_host(
    config: *mut swarmcast_config,
    name: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config, as documented above.
        let c = unsafe { config_arg(config)? };
        // SAFETY: a NUL-terminated string, as documented above.
        let name = unsafe { str_arg(name)? };
        if name.is_empty() {
            return Err(swarmcast_result::InvalidArgument);
        }
        c.server.allowed_hosts.push(name.to_string());
        Ok(())
    })
}

/// Keep rooms matching `pattern` (`*` wildcards) from the built-in `subscribe`, whatever
/// the subscribe patterns allow. A socket's own room is always refused. One call per
/// pattern.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `pattern` is a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_add_reserved_room(
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
        c.server.reserved_rooms.push(pattern.to_string());
        Ok(())
    })
}
