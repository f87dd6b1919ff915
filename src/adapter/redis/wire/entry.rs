//! Stream entries `{uid, nsp, type, data}`: the fields of one entry, the decoding
//! of its message (the Node adapter's `decode`), and the `data` this node writes
//! for room operations. Pub/sub messages share the typed decoding.

use base64::Engine as _;
use serde_json::Value;

use super::broadcast::{decode_broadcast, opts_json};
use super::msgpack::{mp_decode, mp_to_json};
use super::{bad, kind, Malformed, Message};
use crate::socketio::adapter::SocketInfo;
use crate::socketio::rooms::{Room, Target};

/// The fields of one stream entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: String,
    pub uid: String,
    pub nsp: String,
    pub kind: String,
    pub data: Option<String>,
    /// swarmcast's own field: which local emit an entry of this node is.
    pub sc: Option<String>,
    /// swarmcast's own field: the node's publish sequence of a broadcast (readers
    /// skip one they have seen: a batch sent again after a lost reply or a Redis
    /// that lost its data).
    pub ps: Option<u64>,
}

/// Decode a stream entry's message (the Node adapter's `decode`).
pub(crate) fn decode_entry(entry: &Entry) -> Result<Message, Malformed> {
    let kind: u64 = entry
        .kind
        .parse()
        .map_err(|_| bad(format!("type `{}`", entry.kind)))?;
    let data = entry.data.as_deref().unwrap_or("");
    if kind == kind::BROADCAST {
        let (msg, meta, delta) = decode_broadcast(data)?;
        return Ok(Message::Broadcast { msg, meta, delta });
    }
    let body: Value = if data.is_empty() {
        Value::Null
    } else if data.starts_with('{') {
        serde_json::from_str(data).map_err(|e| bad(format!("data JSON: {e}")))?
    } else {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| bad("data is neither JSON nor base64"))?;
        mp_to_json(&mp_decode(&raw)?, &mut Vec::new())
    };
    decode_typed(kind, &body)
}

pub(super) fn json_target(opts: &Value) -> Target {
    let list = |v: &Value| -> Vec<Room> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str())
                    .map(Room::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    Target {
        rooms: list(&opts["rooms"]),
        except: list(&opts["except"]),
    }
}

pub(super) fn json_rooms(v: &Value) -> Vec<Room> {
    match v {
        Value::String(s) => vec![Room::from(s.as_str())],
        Value::Array(a) => a
            .iter()
            .filter_map(|r| r.as_str())
            .map(Room::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Decode a non-broadcast message from its (JSON) data.
pub(super) fn decode_typed(kind: u64, data: &Value) -> Result<Message, Malformed> {
    Ok(match kind {
        kind::INITIAL_HEARTBEAT => Message::InitialHeartbeat,
        kind::HEARTBEAT => Message::Heartbeat,
        kind::ADAPTER_CLOSE => Message::AdapterClose,
        kind::SOCKETS_JOIN => Message::SocketsJoin {
            target: json_target(&data["opts"]),
            rooms: json_rooms(&data["rooms"]),
        },
        kind::SOCKETS_LEAVE => Message::SocketsLeave {
            target: json_target(&data["opts"]),
            rooms: json_rooms(&data["rooms"]),
        },
        kind::DISCONNECT_SOCKETS => Message::DisconnectSockets {
            target: json_target(&data["opts"]),
            close: data["close"].as_bool().unwrap_or(false),
        },
        kind::FETCH_SOCKETS => Message::FetchSockets {
            target: json_target(&data["opts"]),
            request_id: request_id(&data["requestId"])?,
        },
        kind::FETCH_SOCKETS_RESPONSE => {
            let sockets = data["sockets"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| {
                            Some(SocketInfo {
                                id: s["id"].as_str()?.to_string(),
                                rooms: s["rooms"]
                                    .as_array()
                                    .map(|r| {
                                        r.iter()
                                            .filter_map(|r| r.as_str().map(str::to_string))
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                                auth: s["handshake"]["auth"].clone(),
                                local: false,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Message::FetchSocketsResponse {
                request_id: request_id(&data["requestId"])?,
                sockets,
            }
        }
        other => Message::Other(other),
    })
}

pub(super) fn request_id(v: &Value) -> Result<String, Malformed> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(bad("request without a requestId")),
    }
}

/// The `data` of a SOCKETS_JOIN / SOCKETS_LEAVE entry.
pub(crate) fn rooms_op_data(target: &Target, rooms: &[Room]) -> String {
    let rooms: Vec<&str> = rooms.iter().map(|r| &**r).collect();
    format!(
        r#"{{"opts":{},"rooms":{}}}"#,
        opts_json(target, false),
        Value::from(rooms)
    )
}

/// The `data` of a DISCONNECT_SOCKETS entry.
pub(crate) fn disconnect_data(target: &Target, close: bool) -> String {
    format!(r#"{{"opts":{},"close":{close}}}"#, opts_json(target, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_operations_decode() {
        let entry = Entry {
            id: "1-0".into(),
            uid: "u".into(),
            nsp: "/".into(),
            kind: "4".into(),
            data: Some(rooms_op_data(&Target::room("sid1"), &["a".into()])),
            sc: None,
            ps: None,
        };
        assert_eq!(
            decode_entry(&entry).expect("decodes"),
            Message::SocketsJoin {
                target: Target::room("sid1"),
                rooms: vec!["a".into()]
            }
        );
        let entry = Entry {
            kind: "6".into(),
            data: Some(disconnect_data(&Target::room("sid1"), true)),
            ..entry
        };
        assert_eq!(
            decode_entry(&entry).expect("decodes"),
            Message::DisconnectSockets {
                target: Target::room("sid1"),
                close: true
            }
        );
        let heartbeat = Entry {
            kind: "2".into(),
            data: None,
            ..entry
        };
        assert_eq!(decode_entry(&heartbeat), Ok(Message::Heartbeat));
        let garbage = Entry {
            kind: "x".into(),
            ..Entry::default()
        };
        assert!(decode_entry(&garbage).is_err());
        let garbage = Entry {
            kind: "3".into(),
            data: Some("{not json".into()),
            ..Entry::default()
        };
        assert!(decode_entry(&garbage).is_err());
    }
}
