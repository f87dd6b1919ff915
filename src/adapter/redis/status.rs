//! [`Status`]: what a node knows of its link to the cluster, as its tasks report it:
//! the state of each Redis connection (publisher, stream reader, pub/sub listener),
//! the reader's position and lag, the peers it has seen. It decides two things:
//! whether this node's ordered broadcasts may wait for the log ([`Status::degraded`]),
//! and whether the node is ready ([`Status::readiness`], `GET /readyz`). Transitions
//! are logged once each way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

use super::wire::StreamId;
use crate::socketio::adapter::Readiness;

/// The tasks that hold a Redis connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Task {
    Publisher = 0,
    Reader = 1,
    Subscriber = 2,
}

impl Task {
    const ALL: [Task; 3] = [Task::Publisher, Task::Reader, Task::Subscriber];

    fn name(self) -> &'static str {
        match self {
            Task::Publisher => "publisher",
            Task::Reader => "stream reader",
            Task::Subscriber => "pub/sub listener",
        }
    }
}

/// The state of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conn {
    /// Not tried yet.
    Connecting = 0,
    Up = 1,
    /// Unreachable, timed out, or lost.
    Down = 2,
    /// Redis refused the credentials (wrong password, unknown ACL user, NOPERM).
    AuthRefused = 3,
}

impl Conn {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Conn::Up,
            2 => Conn::Down,
            3 => Conn::AuthRefused,
            _ => Conn::Connecting,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Conn::Connecting => "connecting",
            Conn::Up => "up",
            Conn::Down => "down",
            Conn::AuthRefused => "auth_refused",
        }
    }
}

/// Whether a Redis error means the credentials were refused.
pub(super) fn is_auth_error(e: &redis::RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return true;
    }
    let text = e.to_string();
    [
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "invalid password",
        "invalid username",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Where the stream reader stands, for the lag gauges.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReaderPosition {
    /// The last entry delivered (or the starting point).
    pub id: StreamId,
    /// `entries-added` of the stream at the starting point (Redis >= 7), minus what
    /// was unread there; plus `read`, what the reader has passed since.
    pub base: i64,
    pub read: u64,
}

pub(super) struct Status {
    conns: [AtomicU8; 3],
    last_error: Mutex<Option<String>>,
    pub(super) position: Mutex<ReaderPosition>,
    /// Reader lag in ms (Redis clock), from the last check.
    pub(super) lag_ms: AtomicU64,
    peers: Mutex<HashMap<String, Instant>>,
    /// The last publish sequence read from each peer (dropped with the peer).
    seen_ps: Mutex<HashMap<String, u64>>,
}

impl Status {
    pub(super) fn new() -> Self {
        Self {
            conns: [AtomicU8::new(0), AtomicU8::new(0), AtomicU8::new(0)],
            last_error: Mutex::new(None),
            position: Mutex::new(ReaderPosition::default()),
            lag_ms: AtomicU64::new(0),
            peers: Mutex::new(HashMap::new()),
            seen_ps: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn get(&self, task: Task) -> Conn {
        Conn::from_u8(self.conns[task as usize].load(Ordering::Acquire))
    }

    /// A connection came up. Returns true when it was down before (a reconnection).
    pub(super) fn up(&self, task: Task) -> bool {
        let was = Conn::from_u8(self.conns[task as usize].swap(Conn::Up as u8, Ordering::AcqRel));
        match was {
            Conn::Down | Conn::AuthRefused => {
                tracing::info!(task = task.name(), "redis reachable again");
                true
            }
            _ => false,
        }
    }

    /// A connection failed or was lost. Logged once per outage of that task. Returns
    /// true when this is the transition (it was up or connecting).
    pub(super) fn down(&self, task: Task, error: &redis::RedisError) -> bool {
        let state = if is_auth_error(error) {
            Conn::AuthRefused
        } else {
            Conn::Down
        };
        *self.last_error.lock() = Some(error.to_string());
        let was = Conn::from_u8(self.conns[task as usize].swap(state as u8, Ordering::AcqRel));
        if was == state {
            return false;
        }
        if state == Conn::AuthRefused {
            tracing::error!(
                %error,
                task = task.name(),
                "redis refused the credentials: this node is cut off from its cluster \
                 (GET /readyz answers 503); local delivery continues"
            );
        } else {
            tracing::warn!(
                %error,
                task = task.name(),
                "redis unreachable: local delivery continues; cluster messages are kept \
                 in the outage buffer and published when redis returns"
            );
        }
        true
    }

    /// Whether any connection has failed (the node serves locally for now).
    pub(super) fn any_failed(&self) -> bool {
        Task::ALL
            .iter()
            .any(|t| matches!(self.get(*t), Conn::Down | Conn::AuthRefused))
    }

    pub(super) fn all_up(&self) -> bool {
        Task::ALL.iter().all(|t| self.get(*t) == Conn::Up)
    }

    /// Ordered broadcasts cannot come back through the log now: deliver them locally
    /// at once.
    pub(super) fn degraded(&self) -> bool {
        self.get(Task::Publisher) != Conn::Up || self.get(Task::Reader) != Conn::Up
    }

    /// Another node showed up in the stream.
    pub(super) fn peer_seen(&self, uid: &str) {
        let mut peers = self.peers.lock();
        match peers.get_mut(uid) {
            Some(seen) => *seen = Instant::now(),
            None => {
                // Bounded: forget the stale ones before adding.
                if peers.len() >= 1024 {
                    peers.retain(|_, seen| seen.elapsed() < Duration::from_secs(60));
                }
                peers.insert(uid.to_string(), Instant::now());
            }
        }
    }

    pub(super) fn peer_gone(&self, uid: &str) {
        self.peers.lock().remove(uid);
        self.seen_ps.lock().remove(uid);
    }

    /// Whether the entry with publish sequence `ps` from `uid` is new (and note it).
    /// A node publishes in sequence, so anything not above the last one read is a
    /// copy sent again.
    pub(super) fn first_time(&self, uid: &str, ps: u64) -> bool {
        let mut seen = self.seen_ps.lock();
        match seen.get_mut(uid) {
            Some(last) if ps <= *last => false,
            Some(last) => {
                *last = ps;
                true
            }
            None => {
                if seen.len() >= 1024 {
                    let peers = self.peers.lock();
                    seen.retain(|uid, _| peers.contains_key(uid));
                }
                seen.insert(uid.to_string(), ps);
                true
            }
        }
    }

    /// Peers seen within `within`.
    pub(super) fn peers(&self, within: Duration) -> usize {
        let mut peers = self.peers.lock();
        peers.retain(|_, seen| seen.elapsed() < within.max(Duration::from_secs(60)));
        peers
            .values()
            .filter(|seen| seen.elapsed() < within)
            .count()
    }

    /// Ready when every connection is up and the reader is within `max_lag`.
    pub(super) fn readiness(&self, max_lag: Duration, buffer_bytes: u64) -> Readiness {
        let lag_ms = self.lag_ms.load(Ordering::Relaxed);
        let states: Vec<(Task, Conn)> = Task::ALL.iter().map(|t| (*t, self.get(*t))).collect();
        let reason = if let Some((t, _)) = states.iter().find(|(_, c)| *c == Conn::AuthRefused) {
            Some(format!(
                "redis refused authentication ({}): {}",
                t.name(),
                self.last_error.lock().clone().unwrap_or_default()
            ))
        } else if let Some((t, c)) = states.iter().find(|(_, c)| *c != Conn::Up) {
            Some(match c {
                Conn::Connecting => format!("connecting to redis ({})", t.name()),
                _ => format!(
                    "redis unreachable ({}): {}",
                    t.name(),
                    self.last_error.lock().clone().unwrap_or_default()
                ),
            })
        } else if u128::from(lag_ms) > max_lag.as_millis() {
            Some(format!(
                "stream reader {lag_ms} ms behind (bound {} ms)",
                max_lag.as_millis()
            ))
        } else {
            None
        };
        let mut connections = serde_json::Map::new();
        for (t, c) in &states {
            connections.insert(
                match t {
                    Task::Publisher => "publisher",
                    Task::Reader => "reader",
                    Task::Subscriber => "subscriber",
                }
                .to_string(),
                json!(c.name()),
            );
        }
        let detail = json!({
            "adapter": "redis",
            "redis": connections,
            "stream_lag_ms": lag_ms,
            "outage_buffer_bytes": buffer_bytes,
        });
        Readiness {
            ready: reason.is_none(),
            reason: reason.unwrap_or_default(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_error() -> redis::RedisError {
        redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ))
    }

    #[test]
    fn ready_only_when_every_connection_is_up_and_the_reader_keeps_up() {
        let s = Status::new();
        let lag = Duration::from_secs(5);
        assert!(!s.readiness(lag, 0).ready, "not before connecting");
        for t in Task::ALL {
            assert!(!s.up(t), "not a reconnection");
        }
        assert!(s.readiness(lag, 0).ready);
        assert!(!s.degraded());
        assert!(s.down(Task::Reader, &io_error()));
        assert!(!s.down(Task::Reader, &io_error()), "logged once");
        let r = s.readiness(lag, 10);
        assert!(!r.ready && r.reason.contains("unreachable"), "{r:?}");
        assert!(s.degraded());
        assert!(s.up(Task::Reader), "a reconnection");
        s.lag_ms.store(6_000, Ordering::Relaxed);
        assert!(s.readiness(lag, 0).reason.contains("behind"));
    }

    #[test]
    fn refused_credentials_are_told_apart() {
        let s = Status::new();
        let e = redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(is_auth_error(&e));
        s.down(Task::Publisher, &e);
        let r = s.readiness(Duration::from_secs(5), 0);
        assert!(r.reason.contains("authentication"), "{r:?}");
        assert_eq!(r.detail["redis"]["publisher"], "auth_refused");
    }
}
