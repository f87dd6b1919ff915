//! BROADCAST bodies `{packet, opts, requestId?}`: written as JSON, or base64
//! msgpack when the packet carries binary (as the Node adapter writes them), and
//! read in either form; a keyed-state delta is recognised on the way in.

use base64::Engine as _;
use bytes::Bytes;
use rmpv::Value as Mp;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::msgpack::{json_to_mp, mp_decode, mp_encode, mp_get, mp_target, mp_to_json, opts_mp};
use super::{bad, BroadcastMeta, DeltaInfo, Malformed};
use crate::socketio::adapter::ClusterBroadcast;
use crate::socketio::rooms::{Room, Target};
use crate::socketio::state::{delta_queue_key, DELTA_EVENT};

// ---------------------------------------------------------------------------
// Broadcast options: {rooms, except, flags}
// ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct JsonOpts {
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    flags: Option<JsonFlags>,
}

#[derive(Debug, Default, Deserialize)]
struct JsonFlags {
    #[serde(default)]
    volatile: Option<bool>,
    /// The ack timeout of a broadcast with acknowledgements, in ms.
    #[serde(default)]
    timeout: Option<f64>,
}

impl JsonOpts {
    fn target(&self) -> Target {
        Target {
            rooms: self.rooms.iter().map(|r| Room::from(r.as_str())).collect(),
            except: self.except.iter().map(|r| Room::from(r.as_str())).collect(),
        }
    }

    fn volatile(&self) -> bool {
        self.flags
            .as_ref()
            .and_then(|f| f.volatile)
            .unwrap_or(false)
    }

    fn timeout(&self) -> Option<u64> {
        self.flags.as_ref().and_then(|f| f.timeout).and_then(ms)
    }
}

/// A timeout in ms as JavaScript writes it (any number); None when it is not one.
fn ms(v: f64) -> Option<u64> {
    // `as` saturates; NaN and negatives are not timeouts.
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

/// `{"rooms":[...],"except":[...],"flags":{...}}` as JSON text.
pub(crate) fn opts_json(target: &Target, volatile: bool) -> String {
    let rooms: Vec<&str> = target.rooms.iter().map(|r| &**r).collect();
    let except: Vec<&str> = target.except.iter().map(|r| &**r).collect();
    let flags = if volatile {
        serde_json::json!({"volatile": true})
    } else {
        serde_json::json!({})
    };
    serde_json::json!({"rooms": rooms, "except": except, "flags": flags}).to_string()
}

/// The `data` array of an EVENT packet as JSON text (`["event",...args]`).
fn data_array(msg: &ClusterBroadcast) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.event.len() + msg.tail.len() + 4);
    out.push(b'[');
    // A string always serialises.
    let _ = serde_json::to_writer(&mut out, &msg.event);
    out.extend_from_slice(&msg.tail);
    out.push(b']');
    out
}

/// The `data` field of a BROADCAST stream entry: JSON, or base64 msgpack when the
/// packet carries binary (as the Node adapter writes it).
pub(crate) fn broadcast_data(nsp: &str, msg: &ClusterBroadcast) -> String {
    if msg.attachments.is_empty() {
        let mut out = String::with_capacity(msg.tail.len() + msg.event.len() + 96);
        out.push_str(r#"{"packet":{"type":2,"data":"#);
        out.push_str(&String::from_utf8_lossy(&data_array(msg)));
        out.push_str(r#","nsp":"#);
        out.push_str(&Value::from(nsp).to_string());
        out.push_str(r#"},"opts":"#);
        out.push_str(&opts_json(&msg.target, msg.volatile));
        out.push('}');
        return out;
    }
    let data: Value =
        serde_json::from_slice(&data_array(msg)).unwrap_or_else(|_| Value::Array(Vec::new()));
    let packet = Mp::Map(vec![
        (Mp::from("type"), Mp::from(2u64)),
        (Mp::from("data"), json_to_mp(&data, &msg.attachments)),
        (Mp::from("nsp"), Mp::from(nsp)),
    ]);
    let body = Mp::Map(vec![
        (Mp::from("packet"), packet),
        (Mp::from("opts"), opts_mp(&msg.target, msg.volatile)),
    ]);
    base64::engine::general_purpose::STANDARD.encode(mp_encode(&body))
}

/// A BROADCAST with an acknowledgement request, as pub/sub carries it (the msgpack
/// `data` of the message): `{packet, requestId, opts}`, with the ack timeout in
/// `opts.flags.timeout` (ms) as socket.io sets it. Never written to the stream.
pub(crate) fn ack_request(
    nsp: &str,
    msg: &ClusterBroadcast,
    request_id: &str,
    timeout_ms: u64,
) -> Mp {
    let data: Value =
        serde_json::from_slice(&data_array(msg)).unwrap_or_else(|_| Value::Array(Vec::new()));
    let packet = Mp::Map(vec![
        (Mp::from("type"), Mp::from(2u64)),
        (Mp::from("data"), json_to_mp(&data, &msg.attachments)),
        (Mp::from("nsp"), Mp::from(nsp)),
    ]);
    let mut opts = opts_mp(&msg.target, msg.volatile);
    if let Mp::Map(entries) = &mut opts {
        for (key, value) in entries.iter_mut() {
            if let (Some("flags"), Mp::Map(flags)) = (key.as_str(), value) {
                flags.push((Mp::from("timeout"), Mp::from(timeout_ms)));
            }
        }
    }
    Mp::Map(vec![
        (Mp::from("packet"), packet),
        (Mp::from("requestId"), Mp::from(request_id)),
        (Mp::from("opts"), opts),
    ])
}

/// Build the broadcast from the event name and the other arguments, each already JSON.
fn broadcast_from_args<'a>(
    event: &str,
    args: impl Iterator<Item = &'a str>,
    attachments: Vec<Bytes>,
    target: Target,
    volatile: bool,
) -> (ClusterBroadcast, Option<DeltaInfo>) {
    let mut tail = Vec::new();
    let mut first_arg = None;
    for arg in args {
        if first_arg.is_none() {
            first_arg = Some(arg);
        }
        tail.push(b',');
        tail.extend_from_slice(arg.as_bytes());
    }
    let delta = (event == DELTA_EVENT)
        .then(|| first_arg.and_then(parse_delta))
        .flatten();
    let (keyed, filter_key) = match &delta {
        Some(d) => (Some(delta_queue_key(&d.map, &d.key)), d.key.clone()),
        None => (None, event.to_string()),
    };
    (
        ClusterBroadcast {
            event: event.to_string(),
            tail,
            attachments,
            target,
            volatile,
            keyed,
            filter_key,
        },
        delta,
    )
}

fn parse_delta(arg: &str) -> Option<DeltaInfo> {
    #[derive(Deserialize)]
    struct D {
        map: String,
        version: u64,
        key: String,
        #[serde(default)]
        value: Option<Value>,
        #[serde(default)]
        deleted: bool,
    }
    let d: D = serde_json::from_str(arg).ok()?;
    Some(DeltaInfo {
        map: d.map,
        version: d.version,
        key: d.key,
        value: if d.deleted {
            None
        } else {
            Some(d.value.unwrap_or(Value::Null))
        },
    })
}

/// A packet's `data` array as JSON values (binary already turned into placeholders).
pub(super) fn broadcast_from_values(
    data: &[Value],
    attachments: Vec<Bytes>,
    target: Target,
    volatile: bool,
) -> Result<(ClusterBroadcast, Option<DeltaInfo>), Malformed> {
    let Some(Value::String(event)) = data.first() else {
        return Err(bad("event without a name"));
    };
    let args: Vec<String> = data[1..].iter().map(Value::to_string).collect();
    Ok(broadcast_from_args(
        event,
        args.iter().map(String::as_str),
        attachments,
        target,
        volatile,
    ))
}

/// Decode the `data` of a BROADCAST (stream entry: JSON text or base64 msgpack).
pub(crate) fn decode_broadcast(
    data: &str,
) -> Result<(ClusterBroadcast, BroadcastMeta, Option<DeltaInfo>), Malformed> {
    if data.starts_with('{') {
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            packet: Packet<'a>,
            #[serde(default)]
            opts: JsonOpts,
            #[serde(default, rename = "requestId")]
            request_id: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Packet<'a> {
            #[serde(borrow)]
            data: &'a RawValue,
            #[serde(default)]
            id: Option<Value>,
        }
        let body: Body<'_> =
            serde_json::from_str(data).map_err(|e| bad(format!("broadcast JSON: {e}")))?;
        let items: Vec<&RawValue> = serde_json::from_str(body.packet.data.get())
            .map_err(|_| bad("packet data is not an array"))?;
        let Some(Ok(event)) = items
            .first()
            .map(|e| serde_json::from_str::<String>(e.get()))
        else {
            return Err(bad("event without a name"));
        };
        let (msg, delta) = broadcast_from_args(
            &event,
            items[1..].iter().map(|r| r.get()),
            Vec::new(),
            body.opts.target(),
            body.opts.volatile(),
        );
        let meta = BroadcastMeta {
            request_id: body.request_id.filter(|r| !r.is_null()),
            has_packet_id: body.packet.id.is_some_and(|i| !i.is_null()),
            timeout_ms: body.opts.timeout(),
        };
        return Ok((msg, meta, delta));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad("broadcast data is neither JSON nor base64"))?;
    decode_broadcast_mp(&mp_decode(&raw)?)
}

/// Decode a BROADCAST body given as msgpack (`{packet, opts, requestId?}`).
pub(super) fn decode_broadcast_mp(
    body: &Mp,
) -> Result<(ClusterBroadcast, BroadcastMeta, Option<DeltaInfo>), Malformed> {
    let packet = mp_get(body, "packet").ok_or_else(|| bad("broadcast without a packet"))?;
    let mut attachments = Vec::new();
    let data = match mp_get(packet, "data").map(|d| mp_to_json(d, &mut attachments)) {
        Some(Value::Array(items)) => items,
        _ => return Err(bad("packet data is not an array")),
    };
    let (target, volatile) = mp_target(mp_get(body, "opts"));
    let (msg, delta) = broadcast_from_values(&data, attachments, target, volatile)?;
    let meta = BroadcastMeta {
        request_id: mp_get(body, "requestId")
            .filter(|r| !r.is_nil())
            .map(|r| mp_to_json(r, &mut Vec::new())),
        has_packet_id: mp_get(packet, "id").is_some_and(|i| !i.is_nil()),
        timeout_ms: mp_get(body, "opts")
            .and_then(|o| mp_get(o, "flags"))
            .and_then(|f| mp_get(f, "timeout"))
            .and_then(|t| t.as_f64().or_else(|| t.as_u64().map(|u| u as f64)))
            .and_then(ms),
    };
    Ok((msg, meta, delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bcast(event: &str, tail: &str, target: Target) -> ClusterBroadcast {
        ClusterBroadcast {
            event: event.into(),
            tail: tail.as_bytes().to_vec(),
            attachments: Vec::new(),
            target,
            volatile: false,
            keyed: None,
            filter_key: event.into(),
        }
    }

    #[test]
    fn broadcast_entries_round_trip_as_json() {
        let mut target = Target::room("r1");
        target.except.push("x".into());
        let msg = bcast("tick", r#",{"seq":1},"two""#, target.clone());
        let data = broadcast_data("/", &msg);
        // The exact format of @socket.io/redis-streams-adapter (JSON.stringify of
        // {packet, opts}).
        assert_eq!(
            data,
            r#"{"packet":{"type":2,"data":["tick",{"seq":1},"two"],"nsp":"/"},"opts":{"except":["x"],"flags":{},"rooms":["r1"]}}"#
        );
        let (back, meta, delta) = decode_broadcast(&data).expect("decodes");
        assert_eq!(back, msg);
        assert_eq!(meta, BroadcastMeta::default());
        assert!(delta.is_none());
    }

    #[test]
    fn node_broadcasts_decode() {
        // What a Node server with the streams adapter writes for
        // io.to("room").except("sid").volatile.emit("hello", 1, {a: [true]}).
        let data = r#"{"packet":{"type":2,"data":["hello",1,{"a":[true]}]},"opts":{"rooms":["room"],"except":["sid"],"flags":{"volatile":true}}}"#;
        let (msg, meta, _) = decode_broadcast(data).expect("decodes");
        assert_eq!(msg.event, "hello");
        assert_eq!(msg.tail, br#",1,{"a":[true]}"#);
        assert_eq!(msg.target.rooms, vec![Room::from("room")]);
        assert_eq!(msg.target.except, vec![Room::from("sid")]);
        assert!(msg.volatile);
        assert!(meta.request_id.is_none());
        let with_ack = r#"{"packet":{"type":2,"data":["q"],"id":3},"requestId":"abc","opts":{"rooms":[],"except":[],"flags":{}}}"#;
        let (_, meta, _) = decode_broadcast(with_ack).expect("decodes");
        assert!(meta.has_packet_id);
        assert_eq!(meta.request_id, Some(json!("abc")));
    }

    #[test]
    fn binary_broadcasts_are_base64_msgpack() {
        let mut msg = bcast(
            "photo",
            r#",{"img":{"_placeholder":true,"num":0}}"#,
            Target::all(),
        );
        msg.attachments.push(Bytes::from_static(&[1, 2, 3]));
        let data = broadcast_data("/x", &msg);
        assert!(!data.starts_with('{'));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&data)
            .expect("base64");
        let v = mp_decode(&raw).expect("msgpack");
        let img = mp_get(&mp_get(&v, "packet").expect("packet").clone(), "data")
            .and_then(|d| d.as_array().map(|a| a[1].clone()))
            .and_then(|o| mp_get(&o, "img").cloned());
        assert_eq!(img, Some(Mp::Binary(vec![1, 2, 3])));
        let (back, _, _) = decode_broadcast(&data).expect("decodes");
        assert_eq!(back.attachments, msg.attachments);
        assert_eq!(back.tail, msg.tail);
    }

    #[test]
    fn deltas_are_recognised() {
        let data = r#"{"packet":{"type":2,"data":["swarmcast:delta",{"map":"agents","version":7,"key":"a1","value":{"s":1}}],"nsp":"/"},"opts":{"rooms":["state:agents"],"except":[],"flags":{}}}"#;
        let (msg, _, delta) = decode_broadcast(data).expect("decodes");
        let delta = delta.expect("a delta");
        assert_eq!(delta.version, 7);
        assert_eq!(delta.value, Some(json!({"s": 1})));
        assert_eq!(msg.filter_key, "a1");
        assert_eq!(msg.keyed.as_deref(), Some("agents\0a1"));
        let del = r#"{"packet":{"type":2,"data":["swarmcast:delta",{"map":"m","version":8,"key":"k","deleted":true}]},"opts":{}}"#;
        let (_, _, delta) = decode_broadcast(del).expect("decodes");
        assert_eq!(delta.expect("a delta").value, None);
    }
}
