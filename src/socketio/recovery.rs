//! Connection state recovery (socket.io-client >= 4.6): a replay buffer of recent
//! packets and the sessions of recently disconnected sockets.
//!
//! With recovery on, every event without an ack id gets an offset, appended as its last
//! argument, and a copy in the namespace's replay buffer. The CONNECT reply carries a
//! private id (`pid`). A client that reconnects within `max_disconnection_duration`
//! sends `pid` and the last offset it saw in its CONNECT auth, and gets back its socket
//! id, its rooms and every packet it missed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::socketio::adapter::SessionRecord;
use crate::socketio::packet::Encoded;
use crate::socketio::rooms::{Room, Target};

/// How much a namespace keeps for clients that come back.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// How long a disconnected socket's session (and the packets it misses) are kept.
    pub max_disconnection_duration: Duration,
    /// Most packets in the replay buffer (oldest go first).
    pub max_packets: usize,
    /// Most bytes in the replay buffer.
    pub max_bytes: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            max_disconnection_duration: Duration::from_secs(120),
            max_packets: 100_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

struct Entry {
    offset: u64,
    at: Instant,
    target: Target,
    encoded: Encoded,
}

/// Recent packets, oldest first. Its lock is also the namespace's emit lock: offsets
/// are assigned and packets fanned out under it, so every socket sees packets in offset
/// order and a recovering socket can be slotted in between two packets exactly.
pub(crate) struct ReplayBuffer {
    next: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
}

/// What a socket had when it dropped, and when.
struct PersistedSession {
    session: SessionRecord,
    at: Instant,
}

pub(crate) struct Recovery {
    pub config: RecoveryConfig,
    pub buffer: Mutex<ReplayBuffer>,
    sessions: Mutex<HashMap<String, PersistedSession>>,
}

impl Recovery {
    pub fn new(config: RecoveryConfig) -> Self {
        Self {
            config,
            buffer: Mutex::new(ReplayBuffer {
                next: 1,
                entries: VecDeque::new(),
                bytes: 0,
            }),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Keep the session of a socket that dropped (expired ones are swept here).
    pub fn persist(&self, session: SessionRecord) {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let max_age = self.config.max_disconnection_duration;
        sessions.retain(|_, s| now.duration_since(s.at) < max_age);
        sessions.insert(session.pid.clone(), PersistedSession { session, at: now });
    }

    /// Take the session of `pid` if it is recent enough.
    pub fn take_session(&self, pid: &str) -> Option<SessionRecord> {
        let persisted = self.sessions.lock().remove(pid)?;
        (persisted.at.elapsed() < self.config.max_disconnection_duration)
            .then_some(persisted.session)
    }
}

impl ReplayBuffer {
    /// The offset the next packet gets.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    pub fn push(&mut self, target: &Target, encoded: &Encoded, config: &RecoveryConfig) {
        let now = Instant::now();
        let size = encoded.size();
        self.entries.push_back(Entry {
            offset: self.next,
            at: now,
            target: target.clone(),
            encoded: encoded.clone(),
        });
        self.next += 1;
        self.bytes += size;
        while let Some(oldest) = self.entries.front() {
            let too_old = now.duration_since(oldest.at) > config.max_disconnection_duration;
            if too_old || self.entries.len() > config.max_packets || self.bytes > config.max_bytes {
                self.bytes -= oldest.encoded.size();
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Packets after `offset` that reach a socket with id `sid` in `rooms`. None when
    /// some of them were already evicted (or the offset is not one we gave out).
    pub fn missed(&self, offset: &str, sid: &str, rooms: &[Room]) -> Option<Vec<Encoded>> {
        let offset: u64 = offset.parse().ok()?;
        if offset >= self.next {
            return None;
        }
        let oldest = self.entries.front().map_or(self.next, |e| e.offset);
        if offset + 1 < oldest {
            return None;
        }
        let in_room = |r: &Room| &**r == sid || rooms.contains(r);
        Some(
            self.entries
                .iter()
                .filter(|e| e.offset > offset)
                .filter(|e| e.target.rooms.is_empty() || e.target.rooms.iter().any(in_room))
                .filter(|e| !e.target.except.iter().any(in_room))
                .map(|e| e.encoded.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Frame;

    fn packet(n: u64) -> Encoded {
        Encoded {
            frames: vec![Frame::text(format!("42[\"n\",{n},\"{n}\"]"))],
        }
    }

    fn session(rooms: Vec<Room>) -> SessionRecord {
        SessionRecord {
            pid: "pid".into(),
            sid: "sid".into(),
            rooms,
            filters: vec![],
            auth: None,
        }
    }

    fn config(max_packets: usize) -> RecoveryConfig {
        RecoveryConfig {
            max_packets,
            ..RecoveryConfig::default()
        }
    }

    #[test]
    fn replays_what_a_socket_missed_in_its_rooms() {
        let r = Recovery::new(config(100));
        let mut b = r.buffer.lock();
        let cfg = r.config.clone();
        b.push(&Target::all(), &packet(1), &cfg);
        b.push(&Target::room("a"), &packet(2), &cfg);
        b.push(&Target::room("b"), &packet(3), &cfg);
        let mut except_me = Target::all();
        except_me.except.push("me".into());
        b.push(&except_me, &packet(4), &cfg);
        b.push(&Target::room("me"), &packet(5), &cfg);
        let missed = b.missed("1", "me", &["a".into()]).expect("recoverable");
        assert_eq!(missed.len(), 2, "room a and the socket's own room");
        assert_eq!(b.missed("5", "me", &[]).expect("up to date").len(), 0);
        assert!(
            b.missed("9", "me", &[]).is_none(),
            "an offset we never gave"
        );
        assert!(b.missed("x", "me", &[]).is_none());
    }

    #[test]
    fn evicted_packets_make_recovery_impossible() {
        let r = Recovery::new(config(2));
        let mut b = r.buffer.lock();
        let cfg = r.config.clone();
        for n in 1..=5 {
            b.push(&Target::all(), &packet(n), &cfg);
        }
        assert!(b.missed("1", "s", &[]).is_none(), "2 and 3 are gone");
        assert_eq!(b.missed("3", "s", &[]).expect("4 and 5 kept").len(), 2);
    }

    #[test]
    fn sessions_expire() {
        let r = Recovery::new(RecoveryConfig {
            max_disconnection_duration: Duration::from_millis(0),
            ..RecoveryConfig::default()
        });
        r.persist(session(vec![]));
        assert!(r.take_session("pid").is_none());
        let r = Recovery::new(RecoveryConfig::default());
        r.persist(session(vec!["a".into()]));
        assert_eq!(r.take_session("pid").expect("kept").rooms.len(), 1);
        assert!(r.take_session("pid").is_none(), "taken once");
    }
}
