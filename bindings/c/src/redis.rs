//! The Redis cluster from C: `swarmcast_redis_emitter` (publish into a cluster without
//! a server) over the core's [`sc::RedisEmitter`], and the URL check that
//! `swarmcast_config_set_redis` shares with it. One core, thin bindings: the Python
//! binding's `RedisEmitter` wraps the same type the same way (a one-thread runtime of
//! its own, every call bounded by a timeout).
//!
//! Built without the cargo feature `redis`, every function here exists and returns
//! `SWARMCAST_RESULT_UNSUPPORTED`: one header, one ABI.

use std::ffi::c_char;

use crate::ffi::{json_arg, name_arg, out_arg, str_arg};
use crate::panic::{boundary, boundary_void};
use crate::result::swarmcast_result;
use crate::server::{event_arg, namespace_arg};

/// How long a Redis emitter's call (`swarmcast_redis_emitter_new`,
/// `swarmcast_redis_emitter_emit`) waits for Redis, at most, in milliseconds; past it,
/// `SWARMCAST_RESULT_REDIS_FAILED`.
pub const SWARMCAST_REDIS_TIMEOUT_MS: u64 = 10_000;

/// Publishes events into a cluster of swarmcast nodes (C servers with
/// `swarmcast_config_set_redis`, `swarmcast serve --redis`, Python servers with
/// `message_queue=`) or of socket.io servers using `@socket.io/redis-streams-adapter`,
/// through Redis, without a server of its own. Created with
/// `swarmcast_redis_emitter_new`, freed with `swarmcast_redis_emitter_free`.
///
/// Thread safety: `swarmcast_redis_emitter_emit` may be called from any thread,
/// concurrently (one connection, multiplexed); `swarmcast_redis_emitter_free` must not
/// overlap any other call on the same emitter.
pub struct swarmcast_redis_emitter {
    #[cfg(feature = "redis")]
    inner: imp::Emitter,
    #[cfg(not(feature = "redis"))]
    _unsupported: (),
}

/// A list argument of `len` names (rooms): `len` pointers to NUL-terminated, non-empty
/// UTF-8 strings. With `len` 0 the pointer is not read and may be NULL.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable pointers, each NULL or a NUL-terminated
/// string, all valid and unchanged for `'a`.
pub(crate) unsafe fn names_arg<'a>(
    ptr: *const *const c_char,
    len: usize,
) -> Result<Vec<&'a str>, swarmcast_result> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(swarmcast_result::NullParameter);
    }
    // SAFETY: non-NULL, `len` readable pointers, as the caller promises.
    let ptrs = unsafe { std::slice::from_raw_parts(ptr, len) };
    ptrs.iter()
        // SAFETY: each NULL or NUL-terminated, as the caller promises.
        .map(|p| unsafe { name_arg(*p) })
        .collect()
}

/// Connect to Redis at `url` (`redis://[user:password@]host[:port][/db]`, or
/// `rediss://` for TLS) and publish into the cluster whose broadcast log is the stream
/// `stream` ("socket.io" for nodes with the default settings, as
/// `@socket.io/redis-streams-adapter` names it; it must match the nodes'
/// `swarmcast_config_set_redis`). `*out_emitter` receives the emitter. Blocks until
/// Redis answers, at most `SWARMCAST_REDIS_TIMEOUT_MS`.
///
/// Returns `SWARMCAST_RESULT_INVALID_ARGUMENT` for a URL that is not one (or a
/// `rediss://` URL in a build without TLS), `SWARMCAST_RESULT_INVALID_ARGUMENT` for an
/// empty `stream`, `SWARMCAST_RESULT_REDIS_FAILED` when Redis cannot be reached or
/// refuses (wrong password...), `SWARMCAST_RESULT_RUNTIME_FAILED` when its thread
/// cannot start, `SWARMCAST_RESULT_UNSUPPORTED` in a build without Redis. The reason in
/// words goes to the log callback (`swarmcast_set_log_callback`, WARN).
///
/// Thread safety: any thread; blocks.
///
/// # Safety
/// `url` and `stream` are NUL-terminated strings; `out_emitter` points to a writable
/// `swarmcast_redis_emitter *`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_redis_emitter_new(
    url: *const c_char,
    stream: *const c_char,
    out_emitter: *mut *mut swarmcast_redis_emitter,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: NUL-terminated strings, as documented above.
        let (url, stream) = unsafe { (str_arg(url)?, name_arg(stream)?) };
        let out = out_arg(out_emitter)?;
        #[cfg(feature = "redis")]
        {
            check_url(url)?;
            let inner = imp::Emitter::connect(url, stream).map_err(imp::failed)?;
            let boxed = Box::new(swarmcast_redis_emitter { inner });
            // SAFETY: checked non-NULL; the caller promises it is writable.
            unsafe { out.write(Box::into_raw(boxed)) };
            Ok(())
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (url, stream, out);
            Err(swarmcast_result::Unsupported)
        }
    })
}

/// Free an emitter (its connection and thread). NULL is a no-op.
///
/// Thread safety: no other call may use `emitter` during or after this one.
///
/// # Safety
/// `emitter` is NULL or from `swarmcast_redis_emitter_new`, and not freed before.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_redis_emitter_free(emitter: *mut swarmcast_redis_emitter) {
    boundary_void(|| {
        if !emitter.is_null() {
            // SAFETY: from `Box::into_raw` in `swarmcast_redis_emitter_new`, freed once,
            // with no other call in progress (API contract).
            drop(unsafe { Box::from_raw(emitter) });
        }
    })
}

/// Emit event `event` with one JSON argument (`json_len` bytes at `json`) to the
/// clients of namespace `nsp` on every node of the cluster: all of them, or, when
/// `rooms_len` > 0, those in any of the `rooms_len` rooms at `rooms` (a socket id is a
/// room too), minus those in any of the `except_len` rooms at `except`. Appended to
/// the cluster's stream as a node appends its own broadcasts, so every node delivers it
/// (with a recovery offset when recovery is on). Returns once Redis has it, at most
/// `SWARMCAST_REDIS_TIMEOUT_MS`. A namespace no node declared reaches nobody.
///
/// Returns `SWARMCAST_RESULT_INVALID_ARGUMENT` for a namespace without a leading '/'
/// or an empty room or event name, `SWARMCAST_RESULT_RESERVED_EVENT` for a name
/// Socket.IO reserves or `swarmcast:snapshot` / `swarmcast:delta`,
/// `SWARMCAST_RESULT_INVALID_UTF8` / `SWARMCAST_RESULT_INVALID_JSON` for a bad payload
/// (as `swarmcast_server_emit`), `SWARMCAST_RESULT_REDIS_FAILED` when Redis refuses or
/// does not answer in time (the log callback gets why), `SWARMCAST_RESULT_UNSUPPORTED`
/// in a build without Redis. Arguments are checked before anything is sent.
///
/// Thread safety: any thread, concurrently, including a server's callbacks; blocks
/// for one Redis round trip.
///
/// # Safety
/// `emitter` is a live emitter; `nsp` and `event` are NUL-terminated strings; `rooms`
/// points to `rooms_len` NUL-terminated strings and `except` to `except_len` (either
/// may be NULL when its length is 0); `json` points to `json_len` readable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn swarmcast_redis_emitter_emit(
    emitter: *const swarmcast_redis_emitter,
    nsp: *const c_char,
    rooms: *const *const c_char,
    rooms_len: usize,
    except: *const *const c_char,
    except_len: usize,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: NULL or live, as documented above.
        let e = unsafe { emitter.as_ref() }.ok_or(swarmcast_result::NullParameter)?;
        // SAFETY: pointer arguments as documented above, checked in parameter order.
        let (nsp, rooms, except, event, data) = unsafe {
            (
                namespace_arg(nsp)?,
                names_arg(rooms, rooms_len)?,
                names_arg(except, except_len)?,
                event_arg(event)?,
                json_arg(json, json_len)?,
            )
        };
        #[cfg(feature = "redis")]
        {
            e.inner
                .emit(nsp, &rooms, &except, event, data)
                .map(drop)
                .map_err(imp::failed)
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (e, nsp, rooms, except, event, data);
            Err(swarmcast_result::Unsupported)
        }
    })
}

/// Set `key` of the keyed live state map `map` (namespace `nsp`) to one JSON value
/// (`json_len` bytes at `json`) on every node: stored in Redis, and the
/// `swarmcast:delta` reaches the map's subscribers on every node (as
/// `swarmcast_server_state_set` does on one node). Returns once Redis has it, at most
/// `SWARMCAST_REDIS_TIMEOUT_MS`.
///
/// Returns `SWARMCAST_RESULT_INVALID_ARGUMENT` for an empty `map` or `key` or a
/// namespace without a leading '/', `SWARMCAST_RESULT_INVALID_UTF8` /
/// `SWARMCAST_RESULT_INVALID_JSON` for a bad value, `SWARMCAST_RESULT_REDIS_FAILED`,
/// `SWARMCAST_RESULT_UNSUPPORTED` as `swarmcast_redis_emitter_emit`.
///
/// Thread safety: any thread, concurrently; blocks for one Redis round trip.
///
/// # Safety
/// `emitter` is a live emitter; `nsp`, `map`, `key` are NUL-terminated strings; `json`
/// points to `json_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_redis_emitter_state_set(
    emitter: *const swarmcast_redis_emitter,
    nsp: *const c_char,
    map: *const c_char,
    key: *const c_char,
    json: *const c_char,
    json_len: usize,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: NULL or live, as documented above.
        let e = unsafe { emitter.as_ref() }.ok_or(swarmcast_result::NullParameter)?;
        // SAFETY: pointer arguments as documented above, checked in parameter order.
        let (nsp, map, key, data) = unsafe {
            (
                namespace_arg(nsp)?,
                name_arg(map)?,
                name_arg(key)?,
                json_arg(json, json_len)?,
            )
        };
        #[cfg(feature = "redis")]
        {
            e.inner
                .state(nsp, map, key, Some(data))
                .map_err(imp::failed)
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (e, nsp, map, key, data);
            Err(swarmcast_result::Unsupported)
        }
    })
}

/// Delete `key` of the keyed live state map `map` (namespace `nsp`) on every node;
/// subscribers get a `swarmcast:delta` with `"deleted": true` (also when the key was
/// not there). Returns and fails as `swarmcast_redis_emitter_state_set`.
///
/// Thread safety: any thread, concurrently; blocks for one Redis round trip.
///
/// # Safety
/// `emitter` is a live emitter; `nsp`, `map`, `key` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_redis_emitter_state_delete(
    emitter: *const swarmcast_redis_emitter,
    nsp: *const c_char,
    map: *const c_char,
    key: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: NULL or live, as documented above.
        let e = unsafe { emitter.as_ref() }.ok_or(swarmcast_result::NullParameter)?;
        // SAFETY: pointer arguments as documented above, checked in parameter order.
        let (nsp, map, key) = unsafe { (namespace_arg(nsp)?, name_arg(map)?, name_arg(key)?) };
        #[cfg(feature = "redis")]
        {
            e.inner.state(nsp, map, key, None).map_err(imp::failed)
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (e, nsp, map, key);
            Err(swarmcast_result::Unsupported)
        }
    })
}

/// A Redis URL the core accepts (`SWARMCAST_RESULT_INVALID_ARGUMENT` otherwise, the
/// reason logged at WARN).
#[cfg(feature = "redis")]
pub(crate) fn check_url(url: &str) -> Result<(), swarmcast_result> {
    // `RedisAdapter::new` fails only on an invalid URL and connects nothing.
    match sc::RedisAdapter::new(sc::RedisConfig::new(url)) {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!("invalid redis url: {e}");
            Err(swarmcast_result::InvalidArgument)
        }
    }
}

#[cfg(feature = "redis")]
mod imp {
    use std::time::Duration;

    use serde_json::value::RawValue;

    use super::SWARMCAST_REDIS_TIMEOUT_MS;
    use crate::result::swarmcast_result;

    const TIMEOUT: Duration = Duration::from_millis(SWARMCAST_REDIS_TIMEOUT_MS);

    /// Why an emitter call failed, before it becomes a result code.
    #[derive(Debug, thiserror::Error)]
    pub(super) enum Error {
        #[error("cannot start the emitter's thread: {0}")]
        Runtime(#[from] std::io::Error),
        #[error("redis did not answer within {} ms", TIMEOUT.as_millis())]
        Timeout,
        #[error(transparent)]
        Redis(#[from] sc::RedisEmitterError),
    }

    /// The one mapping of emitter errors to result codes; the words go to the log.
    pub(super) fn failed(e: Error) -> swarmcast_result {
        tracing::warn!("redis emitter: {e}");
        match e {
            Error::Runtime(_) => swarmcast_result::RuntimeFailed,
            Error::Timeout | Error::Redis(sc::RedisEmitterError::Redis(_)) => {
                swarmcast_result::RedisFailed
            }
            Error::Redis(sc::RedisEmitterError::Encode(_)) => swarmcast_result::EncodeFailed,
        }
    }

    /// The core's emitter and the one-thread runtime its connection runs on.
    /// Both fields are `Some` until the drop, which ends the connection first, then
    /// its runtime (within a second).
    pub(super) struct Emitter {
        emitter: Option<sc::RedisEmitter>,
        runtime: Option<tokio::runtime::Runtime>,
    }

    impl Emitter {
        pub(super) fn connect(url: &str, stream: &str) -> Result<Self, Error> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("swarmcast-redis")
                .enable_all()
                .build()?;
            let mut config = sc::RedisConfig::new(url);
            config.stream_name = stream.to_string();
            let emitter = block(&runtime, sc::RedisEmitter::with_config(config));
            match emitter {
                Ok(emitter) => Ok(Self {
                    emitter: Some(emitter),
                    runtime: Some(runtime),
                }),
                Err(e) => {
                    runtime.shutdown_timeout(Duration::from_secs(1));
                    Err(e)
                }
            }
        }

        pub(super) fn emit(
            &self,
            nsp: &str,
            rooms: &[&str],
            except: &[&str],
            event: &str,
            data: &RawValue,
        ) -> Result<String, Error> {
            let (emitter, runtime) = self.parts();
            let mut op = emitter.of(nsp);
            for room in rooms {
                op = op.to(*room);
            }
            for room in except {
                op = op.except(*room);
            }
            block(runtime, op.emit(event, data))
        }
    }

    impl Emitter {
        fn parts(&self) -> (&sc::RedisEmitter, &tokio::runtime::Runtime) {
            match (&self.emitter, &self.runtime) {
                (Some(emitter), Some(runtime)) => (emitter, runtime),
                _ => unreachable!("an emitter is whole until it is dropped"),
            }
        }

        /// Set (`Some`) or delete (`None`) a key of a keyed state map.
        pub(super) fn state(
            &self,
            nsp: &str,
            map: &str,
            key: &str,
            value: Option<&RawValue>,
        ) -> Result<(), Error> {
            let (emitter, runtime) = self.parts();
            match value {
                Some(value) => block(runtime, emitter.set_state(nsp, map, key, value)),
                None => block(runtime, emitter.delete_state(nsp, map, key)),
            }
        }
    }

    impl Drop for Emitter {
        fn drop(&mut self) {
            // The connection first; then its tasks end, within the bound.
            drop(self.emitter.take());
            if let Some(runtime) = self.runtime.take() {
                runtime.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }

    /// Run `fut` on `runtime` from the caller's thread, within [`TIMEOUT`].
    fn block<T>(
        runtime: &tokio::runtime::Runtime,
        fut: impl std::future::Future<Output = Result<T, sc::RedisEmitterError>>,
    ) -> Result<T, Error> {
        runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, fut).await })
            .map_err(|_| Error::Timeout)?
            .map_err(Error::from)
    }
}

/// Join the cluster of Redis at `url` whose broadcast log is the stream `stream`:
/// servers created from this config are nodes of it (the core's Redis adapter).
/// Broadcasts (`swarmcast_server_emit*` to everyone or a room), room changes of other
/// nodes' sockets, recovery and keyed state then cross nodes; Redis emitters
/// (`swarmcast_redis_emitter_emit`) reach this node's clients. `stream` is "socket.io"
/// for the default cluster (as `swarmcast serve --redis` and
/// `@socket.io/redis-streams-adapter`); every node and emitter of one cluster uses the
/// same. Replaces an earlier call.
///
/// Nothing connects here: the URL is checked (`SWARMCAST_RESULT_INVALID_ARGUMENT` for
/// one that is not a Redis URL, or `rediss://` in a build without TLS, and for an empty
/// `stream`). A started node whose Redis is unreachable still serves its own clients,
/// keeps what must cross nodes in a bounded outage buffer and joins when Redis answers
/// (see docs/cluster.md): `swarmcast_server_cluster_ready` tells whether it is joined
/// now, and the log callback gets why not. A node cannot start again after a stop
/// (`SWARMCAST_RESULT_INVALID_CONFIG`): create a new server.
///
/// Returns `SWARMCAST_RESULT_UNSUPPORTED` in a build without Redis.
///
/// Thread safety: one thread at a time per config.
///
/// # Safety
/// `config` is a live config used by no other thread during the call; `url` and
/// `stream` are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_config_set_redis(
    config: *mut crate::config::swarmcast_config,
    url: *const c_char,
    stream: *const c_char,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live config and NUL-terminated strings, as documented above.
        let (c, url, stream) = unsafe {
            (
                crate::config::config_arg(config)?,
                str_arg(url)?,
                name_arg(stream)?,
            )
        };
        #[cfg(feature = "redis")]
        {
            check_url(url)?;
            c.redis = Some((url.to_string(), stream.to_string()));
            Ok(())
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (c, url, stream);
            Err(swarmcast_result::Unsupported)
        }
    })
}

/// Whether the server is joined to its cluster now: `*out_ready` is true while every
/// Redis connection is up and the stream reader keeps up (what `GET /readyz` answers),
/// false while Redis is unreachable, refuses the credentials, or before the start.
/// Always true for a server without `swarmcast_config_set_redis`. Why not ready goes
/// to the log callback (WARN or ERROR) as it happens.
///
/// Thread safety: any thread, concurrently, including callbacks.
///
/// # Safety
/// `server` is a live server; `out_ready` points to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_cluster_ready(
    server: *const crate::server::swarmcast_server,
    out_ready: *mut bool,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live server, as documented above.
        let s = unsafe { crate::server::server_arg(server)? };
        let out = out_arg(out_ready)?;
        #[cfg(feature = "redis")]
        let ready = s.cluster.as_ref().is_none_or(|c| c.readiness().ready);
        #[cfg(not(feature = "redis"))]
        let ready = {
            let _ = s;
            true
        };
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(ready) };
        Ok(())
    })
}

/// Wait, at most `timeout_ms` milliseconds, until the running server is joined to its
/// cluster (see `swarmcast_server_cluster_ready`): for programs that would rather not
/// serve while cut off from the other nodes, call it after `swarmcast_server_start`
/// and stop on failure.
///
/// Returns `SWARMCAST_RESULT_OK` once joined (at once for a server without
/// `swarmcast_config_set_redis`), `SWARMCAST_RESULT_REDIS_FAILED` when it is still not
/// joined at the deadline (Redis unreachable, credentials refused: the log callback
/// has the reason), `SWARMCAST_RESULT_NOT_RUNNING` when the server is not running,
/// `SWARMCAST_RESULT_INVALID_ARGUMENT` for a `timeout_ms` over
/// `SWARMCAST_MAX_DURATION_MS`.
///
/// Thread safety: any thread; blocks (in a callback, it holds that handler thread).
///
/// # Safety
/// `server` is a live server.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_server_wait_cluster_ready(
    server: *const crate::server::swarmcast_server,
    timeout_ms: u64,
) -> swarmcast_result {
    boundary(|| {
        // SAFETY: a live server, as documented above.
        let s = unsafe { crate::server::server_arg(server)? };
        if timeout_ms > crate::config::SWARMCAST_MAX_DURATION_MS {
            return Err(swarmcast_result::InvalidArgument);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
        loop {
            if !s.is_running() {
                return Err(swarmcast_result::NotRunning);
            }
            #[cfg(feature = "redis")]
            let ready = s.cluster.as_ref().is_none_or(|c| c.readiness().ready);
            #[cfg(not(feature = "redis"))]
            let ready = true;
            if ready {
                return Ok(());
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(swarmcast_result::RedisFailed);
            }
            std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(20)));
        }
    })
}

/// Make `server` a node of the cluster its config names (if any); the adapter is kept
/// for its readiness.
#[cfg(feature = "redis")]
pub(crate) fn join_cluster(
    server: &mut sc::Server,
    config: &crate::config::swarmcast_config,
) -> Result<Option<sc::RedisAdapter>, swarmcast_result> {
    let Some((url, stream)) = &config.redis else {
        return Ok(None);
    };
    let mut redis = sc::RedisConfig::new(url.as_str());
    redis.stream_name = stream.clone();
    let adapter = sc::RedisAdapter::new(redis).map_err(|e| {
        tracing::warn!("invalid redis url: {e}");
        swarmcast_result::InvalidArgument
    })?;
    server
        .set_adapter(adapter.clone())
        .map_err(swarmcast_result::from)?;
    Ok(Some(adapter))
}

/// A build without Redis joins nothing (`swarmcast_config_set_redis` refused it).
#[cfg(not(feature = "redis"))]
pub(crate) fn join_cluster(
    _: &mut sc::Server,
    _: &crate::config::swarmcast_config,
) -> Result<Option<()>, swarmcast_result> {
    Ok(None)
}
