//! The one result enum of the C API and the function that turns a code into a message.

use std::ffi::c_char;

use crate::ffi;
use crate::panic::boundary;

/// What a swarmcast function returns: `SWARMCAST_RESULT_OK` (0) or why it failed.
///
/// The numbers are stable: a code is never renumbered nor reused for another meaning,
/// new codes get new numbers. `swarmcast_result_message` describes any code.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum swarmcast_result {
    /// Success.
    Ok = 0,
    /// A Rust panic was caught at the API boundary (a bug in swarmcast: please report
    /// it). The object involved may be left in an unspecified but memory-safe state.
    Panic = 1,
    /// A pointer argument was NULL.
    NullParameter = 2,
    /// A string or JSON argument is not valid UTF-8.
    InvalidUtf8 = 3,
    /// A JSON argument is not one valid JSON value.
    InvalidJson = 4,
    /// An argument is out of range (a zero limit, a namespace without a leading '/',
    /// a zero-length message buffer...).
    InvalidArgument = 5,
    /// The caller's buffer is too small.
    InsufficientSize = 6,
    /// The server is running (or another thread starts or stops it): it cannot start, and
    /// callbacks cannot be registered, until it stops. (Before version 0.2: a server
    /// started at most once, even when the
    /// start failed), or a callback is registered after `swarmcast_server_start`.
    AlreadyStarted = 7,
    /// The server is not running: stopped (or never started, for `swarmcast_server_stop`
    /// and `swarmcast_server_local_port`).
    NotRunning = 8,
    /// `swarmcast_server_stop` was called from one of the same server's callbacks,
    /// which would wait for itself.
    InCallback = 9,
    /// The listening socket could not be bound (address in use, bad host, no permission).
    BindFailed = 10,
    /// The server's threads could not be started.
    RuntimeFailed = 11,
    /// The configuration is inconsistent (checked by `swarmcast_server_start`).
    InvalidConfig = 12,
    /// No such namespace is declared (see `swarmcast_config_add_namespace`).
    UnknownNamespace = 13,
    /// No socket with that id is connected to that namespace.
    UnknownSocket = 14,
    /// The event name is one Socket.IO reserves ("connect", "connect_error",
    /// "disconnect", "disconnecting", "newListener", "removeListener").
    ReservedEvent = 15,
    /// An outbound queue was full: the client does not keep up. For a broadcast, every
    /// other recipient got the event, and the slow ones were handled by the server's
    /// slow-consumer policy (see `swarmcast_config_set_slow_consumer`).
    QueueFull = 16,
    /// The socket has disconnected (for example before an ack could be answered).
    Disconnected = 17,
    /// The event could not be encoded.
    EncodeFailed = 18,
    /// The event is larger than a client's outbound queue can ever hold
    /// (`swarmcast_config_set_queue_bytes`): no client could take it, nobody got it.
    TooLarge = 19,
    /// A wait reached its deadline: `swarmcast_server_stop_timeout` stopped the server
    /// but some callbacks still run (they finish on their own; `swarmcast_wait_teardown`
    /// waits for them), `swarmcast_wait_teardown` gave up, or `swarmcast_server_flush`
    /// found emits still handed off.
    TimedOut = 20,
    /// Redis refused, could not be reached, or did not answer within
    /// `SWARMCAST_REDIS_TIMEOUT_MS` (a Redis emitter's connect or emit), or a node was
    /// not joined to its cluster by the deadline of
    /// `swarmcast_server_wait_cluster_ready`. The log callback
    /// (`swarmcast_set_log_callback`) receives Redis's own words at WARN.
    RedisFailed = 21,
    /// This build of libswarmcast lacks the feature (the Redis cluster: cargo feature
    /// `redis`, on by default).
    Unsupported = 22,
    /// The value asked for is not there: a header the request did not carry, a peer
    /// address the server does not know (`swarmcast_server_socket_request`).
    NotFound = 23,
}

impl swarmcast_result {
    /// Every code, for the message function and the tests.
    pub(crate) const ALL: [swarmcast_result; 24] = [
        Self::Ok,
        Self::Panic,
        Self::NullParameter,
        Self::InvalidUtf8,
        Self::InvalidJson,
        Self::InvalidArgument,
        Self::InsufficientSize,
        Self::AlreadyStarted,
        Self::NotRunning,
        Self::InCallback,
        Self::BindFailed,
        Self::RuntimeFailed,
        Self::InvalidConfig,
        Self::UnknownNamespace,
        Self::UnknownSocket,
        Self::ReservedEvent,
        Self::QueueFull,
        Self::Disconnected,
        Self::EncodeFailed,
        Self::TooLarge,
        Self::TimedOut,
        Self::RedisFailed,
        Self::Unsupported,
        Self::NotFound,
    ];

    pub(crate) fn from_u32(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u32 == code)
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Ok => "success",
            Self::Panic => "a panic was caught at the swarmcast API boundary (a bug)",
            Self::NullParameter => "a pointer argument was NULL",
            Self::InvalidUtf8 => "an argument is not valid UTF-8",
            Self::InvalidJson => "an argument is not valid JSON",
            Self::InvalidArgument => "an argument is out of range",
            Self::InsufficientSize => "the buffer is too small",
            Self::AlreadyStarted => "the server was already started",
            Self::NotRunning => "the server is not running",
            Self::InCallback => "cannot stop a server from one of its own callbacks",
            Self::BindFailed => "cannot bind the listening socket",
            Self::RuntimeFailed => "cannot start the server's threads",
            Self::InvalidConfig => "the configuration is invalid",
            Self::UnknownNamespace => "no such namespace is declared",
            Self::UnknownSocket => "no such socket is connected",
            Self::ReservedEvent => "the event name is reserved by Socket.IO",
            Self::QueueFull => "an outbound queue is full: a client does not keep up",
            Self::Disconnected => "the socket has disconnected",
            Self::EncodeFailed => "the event could not be encoded",
            Self::TooLarge => "the event is larger than a client's outbound queue can hold",
            Self::TimedOut => {
                "the deadline passed while callbacks (or handed-off emits) were still pending"
            }
            Self::RedisFailed => "redis refused, could not be reached, or did not answer in time",
            Self::Unsupported => "this build of libswarmcast lacks the feature (redis)",
            Self::NotFound => "the request has no such value (header, peer address)",
        }
    }
}

/// Write a short English description of `result` (any number; unknown ones are
/// described as such) into `buf`, NUL-terminated and truncated to `len - 1` bytes if
/// needed. `*out_n` receives the number of bytes written before the NUL.
///
/// Every message fits in 128 bytes. Returns `SWARMCAST_RESULT_NULL_PARAMETER` if `buf`
/// or `out_n` is NULL, `SWARMCAST_RESULT_INSUFFICIENT_SIZE` if `len` is 0 (nothing is
/// written then).
///
/// Thread safety: may be called from any thread, concurrently.
///
/// # Safety
/// `buf` must point to `len` writable bytes and `out_n` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> swarmcast_result {
    boundary(|| {
        if buf.is_null() || out_n.is_null() {
            return Err(swarmcast_result::NullParameter);
        }
        if len == 0 {
            return Err(swarmcast_result::InsufficientSize);
        }
        let message = swarmcast_result::from_u32(result)
            .map(swarmcast_result::message)
            .unwrap_or("unknown swarmcast result code");
        // SAFETY: the caller promises `len` writable bytes at `buf` (checked non-NULL).
        let n = unsafe { ffi::write_c_string(buf, len, message) };
        // SAFETY: non-NULL, and the caller promises it is writable.
        unsafe { out_n.write(n) };
        Ok(())
    })
}

impl From<sc::EmitError> for swarmcast_result {
    fn from(e: sc::EmitError) -> Self {
        match e {
            sc::EmitError::UnknownNamespace(_) => Self::UnknownNamespace,
            sc::EmitError::Encode(_) => Self::EncodeFailed,
            sc::EmitError::QueueFull(_) => Self::QueueFull,
            sc::EmitError::Disconnected(_) => Self::Disconnected,
            sc::EmitError::NotRunning => Self::NotRunning,
            sc::EmitError::TooLarge { .. } => Self::TooLarge,
        }
    }
}

impl From<sc::ServerError> for swarmcast_result {
    fn from(e: sc::ServerError) -> Self {
        match e {
            sc::ServerError::Bind { .. } => Self::BindFailed,
            sc::ServerError::Runtime(_) => Self::RuntimeFailed,
            sc::ServerError::Config(_) => Self::InvalidConfig,
            // A server joined to a cluster (`swarmcast_config_set_redis`) cannot start
            // again after a stop: a configuration matter.
            sc::ServerError::ClusterRestart => Self::InvalidConfig,
        }
    }
}

impl From<sc::HostError> for swarmcast_result {
    fn from(e: sc::HostError) -> Self {
        match e {
            sc::HostError::Server(e) => e.into(),
            sc::HostError::NotRunning => Self::NotRunning,
            sc::HostError::Undeclared(_) => Self::UnknownNamespace,
            // AlreadyRunning, Busy (another thread starts or stops it).
            _ => Self::AlreadyStarted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        for (i, code) in swarmcast_result::ALL.iter().enumerate() {
            // The table lists codes in numeric order with no gap: a new code goes at
            // the end with the next number.
            assert_eq!(*code as u32, i as u32);
            assert_eq!(swarmcast_result::from_u32(i as u32), Some(*code));
            assert!(code.message().len() < 128);
        }
        assert_eq!(swarmcast_result::from_u32(999), None);
    }

    #[test]
    fn message_truncates_and_terminates() {
        let mut buf = [0x7f as c_char; 8];
        let mut n = 0usize;
        // SAFETY: buf has 8 bytes, n is a valid usize.
        let r = unsafe { swarmcast_result_message(2, buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, swarmcast_result::Ok);
        assert_eq!(n, 7);
        assert_eq!(buf[7], 0);
        // SAFETY: as above; len 0 writes nothing.
        let r = unsafe { swarmcast_result_message(2, buf.as_mut_ptr(), 0, &mut n) };
        assert_eq!(r, swarmcast_result::InsufficientSize);
    }
}
