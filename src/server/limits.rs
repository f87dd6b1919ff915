//! What one client may hold or do: the connection cap, timeouts, attachment bytes and
//! rate limits ([`Limits`]), and their validation.

use std::time::Duration;

use crate::socketio::limits::RateLimit;

/// Bounds on what clients may make the server hold, and for how long. The defaults
/// (in `docs/deployment.md`, "Security") hold one hostile client to a few MB and a few
/// seconds while letting every well-behaved one through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most TCP connections open at once (HTTP and WebSocket). Past it, a new connection
    /// is answered `503 Service Unavailable` and closed, and counted in
    /// `swarmcast_connections_refused`. Default 10,000; keep it below the process's
    /// file descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Length of the kernel's queue of connections not yet accepted (`listen(2)`
    /// backlog; Linux caps it at `net.core.somaxconn`). Default 1024: 128 stalls bursts
    /// of new connections for a second at a time.
    pub listen_backlog: u32,
    /// How long a client may take to send a request's headers, counted from when the
    /// server waits for them: a new connection that sends nothing, a slow one, and an
    /// idle keep-alive connection are all closed after it. Request bodies (polling POSTs,
    /// `/api/emit`) get as long again. Default 10 s.
    pub request_timeout: Duration,
    /// A write to a client that makes no progress for this long (the client stopped
    /// reading) ends its connection; its socket is reset, so the kernel frees what it
    /// held. A session that closes (slow consumer, server close) gives its socket a
    /// quarter of a second at most to take the last frames. Default 5 s.
    pub write_timeout: Duration,
    /// Most bytes of binary attachments one connection may hold while it waits for the
    /// rest of their packet. Default 1,000,000 (the default `max_payload`: one message's
    /// worth); raise it with `max_payload` if clients send large binary events.
    pub max_attachment_bytes: usize,
    /// Most bytes of pending attachments all connections together may hold. A
    /// connection that would go past it is closed. Default 64 MiB.
    pub max_attachment_bytes_total: usize,
    /// Incoming events and bytes per second per connection (off by default).
    pub rate_limit: RateLimit,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            listen_backlog: 1024,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            max_attachment_bytes: 1_000_000,
            max_attachment_bytes_total: 64 * 1024 * 1024,
            rate_limit: RateLimit::default(),
        }
    }
}

impl Limits {
    /// The first value that cannot work, as a message naming it.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_connections", self.max_connections as u128),
            ("listen_backlog", self.listen_backlog.into()),
            ("request_timeout", self.request_timeout.as_millis()),
            ("write_timeout", self.write_timeout.as_millis()),
            ("max_attachment_bytes", self.max_attachment_bytes as u128),
            (
                "max_attachment_bytes_total",
                self.max_attachment_bytes_total as u128,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be > 0 (at least 1 ms for durations)"));
        }
        if self.max_attachment_bytes_total < self.max_attachment_bytes {
            return Err("max_attachment_bytes_total must be >= max_attachment_bytes".into());
        }
        // Timers past this are as good as never, and overflow tokio's clock.
        let year = Duration::from_secs(365 * 24 * 3600);
        if self.request_timeout > year || self.write_timeout > year {
            return Err("request_timeout and write_timeout must be at most a year".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_named() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero = Limits {
            write_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert!(zero.validate().unwrap_err().contains("write_timeout"));
        let small_total = Limits {
            max_attachment_bytes_total: 10,
            ..Limits::default()
        };
        assert!(small_total.validate().is_err());
    }
}
