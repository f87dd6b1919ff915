//! The wire formats shared with socket.io's own Redis packages (documented in
//! `docs/cluster.md`): stream entries of `@socket.io/redis-streams-adapter`, its
//! msgpack pub/sub messages, the messages of `@socket.io/redis-emitter`, and the
//! recovery sessions. Pure functions, unit-tested beside their code; nothing here
//! panics on what Redis or another node sends.
//!
//! This file holds the decoded types every format shares; the formats have a file
//! each: `broadcast` (the BROADCAST body, JSON or base64 msgpack), `entry` (stream
//! entries), `pubsub` (pub/sub and emitter messages), `session` (recovery
//! sessions), over `msgpack` (msgpack and JSON with binary attachments).

mod broadcast;
mod entry;
mod msgpack;
mod pubsub;
mod session;

use serde_json::Value;

use crate::socketio::adapter::{ClusterBroadcast, SocketInfo};
use crate::socketio::packet::Payload;
use crate::socketio::rooms::{Room, Target};

pub(crate) use self::broadcast::{ack_request, broadcast_data, opts_json};
// Only tests outside this folder read broadcasts back.
#[cfg(test)]
pub(crate) use self::broadcast::decode_broadcast;
pub(crate) use self::entry::{decode_entry, disconnect_data, rooms_op_data, Entry};
pub(crate) use self::pubsub::{
    broadcast_ack, client_count, decode_emitter_request, decode_pubsub, encode_pubsub,
    fetch_request, fetch_response, PubSub,
};
pub(crate) use self::session::{decode_session, encode_session, reaches};

/// socket.io-adapter's `MessageType`.
pub(crate) mod kind {
    pub const INITIAL_HEARTBEAT: u64 = 1;
    pub const HEARTBEAT: u64 = 2;
    pub const BROADCAST: u64 = 3;
    /// [`BROADCAST`] as the `type` field of a stream entry holds it.
    pub const BROADCAST_TEXT: &str = "3";
    pub const SOCKETS_JOIN: u64 = 4;
    pub const SOCKETS_LEAVE: u64 = 5;
    pub const DISCONNECT_SOCKETS: u64 = 6;
    pub const FETCH_SOCKETS: u64 = 7;
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    pub const BROADCAST_ACK: u64 = 12;
    pub const ADAPTER_CLOSE: u64 = 13;
}

/// The uid `@socket.io/redis-emitter` publishes with.
pub(crate) const EMITTER_UID: &str = "emitter";

/// A Redis stream id, `<ms>-<seq>`: the recovery offset in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id after this one (XRANGE bounds are inclusive).
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What a broadcast carries besides its packet.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BroadcastMeta {
    /// Carries an ack request id: broadcast with acknowledgements (not delivered here).
    pub request_id: Option<Value>,
    /// The packet has an ack id: never stored for recovery.
    pub has_packet_id: bool,
    /// `opts.flags.timeout` (ms): how long the sender of a broadcast with
    /// acknowledgements waits for them.
    pub timeout_ms: Option<u64>,
}

/// A keyed-state delta found in a broadcast.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeltaInfo {
    pub map: String,
    pub version: u64,
    pub key: String,
    /// None: the key was deleted.
    pub value: Option<Value>,
}

/// A cluster message, decoded. Short-lived (decoded, applied, dropped), so the size of
/// its broadcast variant does not matter.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Message {
    Broadcast {
        msg: ClusterBroadcast,
        meta: BroadcastMeta,
        delta: Option<DeltaInfo>,
    },
    SocketsJoin {
        target: Target,
        rooms: Vec<Room>,
    },
    SocketsLeave {
        target: Target,
        rooms: Vec<Room>,
    },
    DisconnectSockets {
        target: Target,
        close: bool,
    },
    FetchSockets {
        target: Target,
        request_id: String,
    },
    FetchSocketsResponse {
        request_id: String,
        sockets: Vec<SocketInfo>,
    },
    /// How many clients a node sent a broadcast with acknowledgements to (and, from
    /// swarmcast nodes, which: the `sids` field Node ignores).
    BroadcastClientCount {
        request_id: String,
        count: usize,
        sids: Option<Vec<String>>,
    },
    /// One client's answer to a broadcast with acknowledgements (its first argument),
    /// and from swarmcast nodes the socket that gave it (`sid`).
    BroadcastAck {
        request_id: String,
        data: Payload,
        sid: Option<String>,
    },
    InitialHeartbeat,
    Heartbeat,
    AdapterClose,
    /// Another type (server-side emits and their answers...): ignored.
    Other(u64),
}

impl PartialEq for ClusterBroadcast {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
            && self.tail == other.tail
            && self.attachments == other.attachments
            && self.target == other.target
            && self.volatile == other.volatile
            && self.keyed == other.keyed
            && self.filter_key == other.filter_key
    }
}

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed cluster message: {0}")]
pub(crate) struct Malformed(pub String);

fn bad(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// Keys of the keyed-state store: names are escaped so that no two (namespace, map)
/// pairs share a key.
pub(crate) fn key_part(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_and_step() {
        let a = StreamId::parse("1700000000000-5").expect("id");
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!(a < StreamId::parse("1700000000001-0").expect("id"));
        assert_eq!(a.next().to_string(), "1700000000000-6");
        assert!(StreamId::parse("17").is_none());
        assert!(StreamId::parse("a-b").is_none());
    }

    #[test]
    fn kinds_in_text_match_their_numbers() {
        assert_eq!(kind::BROADCAST_TEXT, kind::BROADCAST.to_string());
    }

    #[test]
    fn garbage_never_panics() {
        for payload in [
            &b""[..],
            b"\xc1",
            b"\x93\x01",
            b"\x81\xa4type\xa1x",
            b"\x92\xa1a\x01",
        ] {
            let _ = decode_pubsub(payload);
        }
        let _ = decode_emitter_request(b"{\"type\":2}");
        let _ = decode_broadcast("{\"packet\":{\"data\":[1]}}");
        let _ = decode_broadcast("not base64 !!");
        assert_eq!(key_part("a:b%c"), "a%3Ab%25c");
    }
}
