//! Pub/sub messages: msgpack cluster messages `{uid, nsp, type, data}` (requests
//! and answers between nodes) and `@socket.io/redis-emitter`'s broadcasts
//! `[uid, packet, opts]` and JSON requests.

use rmpv::Value as Mp;
use serde_json::Value;

use super::broadcast::{broadcast_from_values, decode_broadcast_mp};
use super::entry::{decode_typed, json_rooms, json_target, request_id};
use super::msgpack::{
    json_to_mp, mp_decode, mp_encode, mp_get, mp_str, mp_target, mp_to_json, opts_mp,
};
use super::{bad, kind, DeltaInfo, Malformed, Message};
use crate::socketio::adapter::{ClusterBroadcast, SocketInfo};
use crate::socketio::packet::Payload;
use crate::socketio::rooms::Target;

/// A pub/sub message: a cluster message (`{uid, nsp, type, data}`) or an emitter
/// broadcast (`[uid, packet, opts]`).
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum PubSub {
    Cluster {
        uid: String,
        nsp: String,
        message: Message,
    },
    Emitter {
        nsp: Option<String>,
        msg: ClusterBroadcast,
        delta: Option<DeltaInfo>,
    },
}

pub(crate) fn decode_pubsub(payload: &[u8]) -> Result<PubSub, Malformed> {
    let value = mp_decode(payload)?;
    match &value {
        Mp::Array(items) if items.len() >= 2 => {
            // @socket.io/redis-emitter: [uid, packet, opts]
            let packet = &items[1];
            let nsp = mp_str(mp_get(packet, "nsp"));
            let mut attachments = Vec::new();
            let data = match mp_get(packet, "data").map(|d| mp_to_json(d, &mut attachments)) {
                Some(Value::Array(items)) => items,
                _ => return Err(bad("emitter packet data is not an array")),
            };
            let (target, volatile) = mp_target(items.get(2));
            let (msg, delta) = broadcast_from_values(&data, attachments, target, volatile)?;
            Ok(PubSub::Emitter { nsp, msg, delta })
        }
        Mp::Map(_) => {
            let uid = mp_str(mp_get(&value, "uid")).unwrap_or_default();
            let nsp = mp_str(mp_get(&value, "nsp")).unwrap_or_default();
            let kind = mp_get(&value, "type")
                .and_then(|t| {
                    t.as_u64()
                        .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
                })
                .ok_or_else(|| bad("message without a type"))?;
            let message = if kind == kind::BROADCAST {
                let body = mp_get(&value, "data").ok_or_else(|| bad("broadcast without data"))?;
                let (msg, meta, delta) = decode_broadcast_mp(body)?;
                Message::Broadcast { msg, meta, delta }
            } else if kind == kind::BROADCAST_CLIENT_COUNT || kind == kind::BROADCAST_ACK {
                let body = mp_get(&value, "data").ok_or_else(|| bad("response without data"))?;
                decode_ack_response(kind, body)?
            } else {
                let data = mp_get(&value, "data")
                    .map(|d| mp_to_json(d, &mut Vec::new()))
                    .unwrap_or(Value::Null);
                decode_typed(kind, &data)?
            };
            Ok(PubSub::Cluster { uid, nsp, message })
        }
        _ => Err(bad("pub/sub payload is neither a map nor an array")),
    }
}

/// A msgpack cluster message `{uid, nsp, type, data}`.
pub(crate) fn encode_pubsub(uid: &str, nsp: &str, kind: u64, data: Mp) -> Vec<u8> {
    mp_encode(&Mp::Map(vec![
        (Mp::from("uid"), Mp::from(uid)),
        (Mp::from("nsp"), Mp::from(nsp)),
        (Mp::from("type"), Mp::from(kind)),
        (Mp::from("data"), data),
    ]))
}

/// FETCH_SOCKETS request data.
pub(crate) fn fetch_request(target: &Target, request_id: &str) -> Mp {
    Mp::Map(vec![
        (Mp::from("opts"), opts_mp(target, false)),
        (Mp::from("requestId"), Mp::from(request_id)),
    ])
}

/// FETCH_SOCKETS_RESPONSE data, in the shape socket.io's `RemoteSocket` expects.
pub(crate) fn fetch_response(request_id: &str, sockets: &[SocketInfo]) -> Mp {
    let sockets = sockets
        .iter()
        .map(|s| {
            let handshake = Mp::Map(vec![
                (Mp::from("headers"), Mp::Map(Vec::new())),
                (Mp::from("time"), Mp::from("")),
                (Mp::from("address"), Mp::from("")),
                (Mp::from("xdomain"), Mp::Boolean(false)),
                (Mp::from("secure"), Mp::Boolean(false)),
                (Mp::from("issued"), Mp::from(0u64)),
                (Mp::from("url"), Mp::from("")),
                (Mp::from("query"), Mp::Map(Vec::new())),
                (
                    Mp::from("auth"),
                    match &s.auth {
                        Value::Null => Mp::Map(Vec::new()),
                        auth => json_to_mp(auth, &[]),
                    },
                ),
            ]);
            Mp::Map(vec![
                (Mp::from("id"), Mp::from(s.id.as_str())),
                (Mp::from("handshake"), handshake),
                (
                    Mp::from("rooms"),
                    Mp::Array(s.rooms.iter().map(|r| Mp::from(r.as_str())).collect()),
                ),
                (Mp::from("data"), Mp::Map(Vec::new())),
            ])
        })
        .collect();
    Mp::Map(vec![
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("sockets"), Mp::Array(sockets)),
    ])
}

/// BROADCAST_CLIENT_COUNT data: how many clients this node sent a broadcast with
/// acknowledgements to, and which (`sids`, swarmcast's own field; Node ignores it).
pub(crate) fn client_count(request_id: &Value, sids: &[&str]) -> Mp {
    Mp::Map(vec![
        (Mp::from("requestId"), json_to_mp(request_id, &[])),
        (Mp::from("clientCount"), Mp::from(sids.len() as u64)),
        (
            Mp::from("sids"),
            Mp::Array(sids.iter().map(|s| Mp::from(*s)).collect()),
        ),
    ])
}

/// BROADCAST_ACK data: one client's answer (its first argument, binary as msgpack
/// binary) and the socket that gave it (`sid`, swarmcast's own field).
pub(crate) fn broadcast_ack(request_id: &Value, reply: &Payload, sid: &str) -> Mp {
    let first = reply.args.first().unwrap_or(&Value::Null);
    Mp::Map(vec![
        (Mp::from("requestId"), json_to_mp(request_id, &[])),
        (Mp::from("packet"), json_to_mp(first, &reply.attachments)),
        (Mp::from("sid"), Mp::from(sid)),
    ])
}

/// BROADCAST_CLIENT_COUNT (11) and BROADCAST_ACK (12) bodies.
fn decode_ack_response(kind: u64, body: &Mp) -> Result<Message, Malformed> {
    let request_id = request_id(
        &mp_get(body, "requestId").map_or(Value::Null, |r| mp_to_json(r, &mut Vec::new())),
    )?;
    if kind == kind::BROADCAST_CLIENT_COUNT {
        let count = mp_get(body, "clientCount")
            .and_then(Mp::as_u64)
            .and_then(|c| usize::try_from(c).ok())
            .ok_or_else(|| bad("a client count that is not a count"))?;
        let sids = match mp_get(body, "sids") {
            Some(Mp::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        };
        return Ok(Message::BroadcastClientCount {
            request_id,
            count,
            sids,
        });
    }
    let mut attachments = Vec::new();
    let first = mp_get(body, "packet").map_or(Value::Null, |p| mp_to_json(p, &mut attachments));
    Ok(Message::BroadcastAck {
        request_id,
        data: Payload {
            args: vec![first],
            attachments,
        },
        sid: mp_str(mp_get(body, "sid")),
    })
}

/// A request on `@socket.io/redis-emitter`'s request channel (JSON): socketsJoin,
/// socketsLeave, disconnectSockets.
pub(crate) fn decode_emitter_request(payload: &[u8]) -> Result<Message, Malformed> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| bad(format!("emitter request: {e}")))?;
    Ok(match v["type"].as_u64() {
        Some(2) => Message::SocketsJoin {
            target: json_target(&v["opts"]),
            rooms: json_rooms(&v["rooms"]),
        },
        Some(3) => Message::SocketsLeave {
            target: json_target(&v["opts"]),
            rooms: json_rooms(&v["rooms"]),
        },
        Some(4) => Message::DisconnectSockets {
            target: json_target(&v["opts"]),
            close: v["close"].as_bool().unwrap_or(false),
        },
        other => Message::Other(other.unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    use crate::socketio::rooms::Room;

    #[test]
    fn emitter_messages_decode() {
        // notepack.io encoding of [uid, packet, opts] as @socket.io/redis-emitter sends.
        let v = Mp::Array(vec![
            Mp::from("emitter"),
            Mp::Map(vec![
                (Mp::from("type"), Mp::from(2u64)),
                (
                    Mp::from("data"),
                    Mp::Array(vec![Mp::from("news"), Mp::from(5u64), Mp::Binary(vec![9])]),
                ),
                (Mp::from("nsp"), Mp::from("/")),
            ]),
            Mp::Map(vec![
                (Mp::from("rooms"), Mp::Array(vec![Mp::from("r")])),
                (Mp::from("flags"), Mp::Map(vec![])),
                (Mp::from("except"), Mp::Array(vec![])),
            ]),
        ]);
        let PubSub::Emitter { nsp, msg, .. } = decode_pubsub(&mp_encode(&v)).expect("decodes")
        else {
            panic!("an emitter message")
        };
        assert_eq!(nsp.as_deref(), Some("/"));
        assert_eq!(msg.event, "news");
        assert_eq!(msg.tail, br#",5,{"_placeholder":true,"num":0}"#);
        assert_eq!(msg.attachments, vec![Bytes::from_static(&[9])]);
        assert_eq!(msg.target.rooms, vec![Room::from("r")]);
    }

    #[test]
    fn cluster_requests_round_trip() {
        let payload = encode_pubsub(
            "u1",
            "/",
            kind::FETCH_SOCKETS,
            fetch_request(&Target::room("r"), "req1"),
        );
        match decode_pubsub(&payload).expect("decodes") {
            PubSub::Cluster { uid, message, .. } => {
                assert_eq!(uid, "u1");
                assert_eq!(
                    message,
                    Message::FetchSockets {
                        target: Target::room("r"),
                        request_id: "req1".into()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let sockets = vec![SocketInfo {
            id: "s1".into(),
            rooms: vec!["s1".into(), "r".into()],
            auth: json!({"token": "t"}),
            local: true,
        }];
        let payload = encode_pubsub(
            "u2",
            "/",
            kind::FETCH_SOCKETS_RESPONSE,
            fetch_response("req1", &sockets),
        );
        match decode_pubsub(&payload).expect("decodes") {
            PubSub::Cluster {
                message:
                    Message::FetchSocketsResponse {
                        request_id,
                        sockets,
                    },
                ..
            } => {
                assert_eq!(request_id, "req1");
                assert_eq!(sockets[0].rooms, vec!["s1", "r"]);
                assert_eq!(sockets[0].auth, json!({"token": "t"}));
                assert!(!sockets[0].local);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broadcasts_with_acks_and_their_answers_round_trip() {
        use crate::socketio::adapter::ClusterBroadcast;
        let msg = ClusterBroadcast {
            event: "poll".into(),
            tail: br#",{"q":1},{"_placeholder":true,"num":0}"#.to_vec(),
            attachments: vec![Bytes::from_static(&[7])],
            target: Target::room("r"),
            volatile: false,
            keyed: None,
            filter_key: "poll".into(),
        };
        let payload = encode_pubsub(
            "u1",
            "/",
            kind::BROADCAST,
            super::super::ack_request("/", &msg, "req9", 1500),
        );
        let PubSub::Cluster { uid, message, .. } = decode_pubsub(&payload).expect("decodes") else {
            panic!("a cluster message")
        };
        assert_eq!(uid, "u1");
        let Message::Broadcast {
            msg: back, meta, ..
        } = message
        else {
            panic!("a broadcast")
        };
        assert_eq!(back, msg);
        assert_eq!(meta.request_id, Some(json!("req9")));
        assert_eq!(meta.timeout_ms, Some(1500));

        let count = encode_pubsub(
            "u2",
            "/",
            kind::BROADCAST_CLIENT_COUNT,
            client_count(&json!("req9"), &["s1", "s2"]),
        );
        match decode_pubsub(&count).expect("decodes") {
            PubSub::Cluster {
                message:
                    Message::BroadcastClientCount {
                        request_id,
                        count,
                        sids,
                    },
                ..
            } => {
                assert_eq!(request_id, "req9");
                assert_eq!(count, 2);
                assert_eq!(sids, Some(vec!["s1".to_string(), "s2".to_string()]));
            }
            other => panic!("{other:?}"),
        }
        let mut reply = Payload::default();
        let ph = reply.attach(Bytes::from_static(&[1, 2]));
        reply.args.push(json!({"img": ph}));
        let ack = encode_pubsub(
            "u2",
            "/",
            kind::BROADCAST_ACK,
            broadcast_ack(&json!("req9"), &reply, "s1"),
        );
        match decode_pubsub(&ack).expect("decodes") {
            PubSub::Cluster {
                message:
                    Message::BroadcastAck {
                        request_id,
                        data,
                        sid,
                    },
                ..
            } => {
                assert_eq!(request_id, "req9");
                assert_eq!(sid.as_deref(), Some("s1"));
                assert_eq!(data, reply);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn node_answers_to_broadcasts_with_acks_decode() {
        // What socket.io-adapter's publishResponse sends (@msgpack/msgpack): no sids,
        // no sid, and the ack's first argument as `packet`.
        let count = Mp::Map(vec![
            (Mp::from("uid"), Mp::from("n1")),
            (Mp::from("nsp"), Mp::from("/")),
            (Mp::from("type"), Mp::from(11u64)),
            (
                Mp::from("data"),
                Mp::Map(vec![
                    (Mp::from("requestId"), Mp::from("abc")),
                    (Mp::from("clientCount"), Mp::from(3u64)),
                ]),
            ),
        ]);
        match decode_pubsub(&mp_encode(&count)).expect("decodes") {
            PubSub::Cluster {
                message: Message::BroadcastClientCount { count, sids, .. },
                ..
            } => {
                assert_eq!(count, 3);
                assert_eq!(sids, None);
            }
            other => panic!("{other:?}"),
        }
        let ack = Mp::Map(vec![
            (Mp::from("uid"), Mp::from("n1")),
            (Mp::from("nsp"), Mp::from("/")),
            (Mp::from("type"), Mp::from(12u64)),
            (
                Mp::from("data"),
                Mp::Map(vec![
                    (Mp::from("requestId"), Mp::from("abc")),
                    (Mp::from("packet"), Mp::from("yes")),
                ]),
            ),
        ]);
        match decode_pubsub(&mp_encode(&ack)).expect("decodes") {
            PubSub::Cluster {
                message: Message::BroadcastAck { data, sid, .. },
                ..
            } => {
                assert_eq!(data.args, vec![json!("yes")]);
                assert_eq!(sid, None);
            }
            other => panic!("{other:?}"),
        }
        // Malformed answers are errors, never panics.
        for data in [
            Mp::Nil,
            Mp::Map(vec![(Mp::from("clientCount"), Mp::from(1u64))]),
            Mp::Map(vec![
                (Mp::from("requestId"), Mp::from("x")),
                (Mp::from("clientCount"), Mp::from(-1i64)),
            ]),
        ] {
            let bad = Mp::Map(vec![
                (Mp::from("type"), Mp::from(11u64)),
                (Mp::from("data"), data),
            ]);
            assert!(decode_pubsub(&mp_encode(&bad)).is_err());
        }
    }
}
