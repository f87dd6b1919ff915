//! The wire formats shared with socket.io's own Redis packages (documented in
//! `docs/cluster.md`): stream entries of `@socket.io/redis-streams-adapter`, its
//! msgpack pub/sub messages, the messages of `@socket.io/redis-emitter`, and the
//! recovery sessions. Pure functions, unit-tested here; nothing in this file panics on
//! what Redis or another node sends.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use rmpv::Value as Mp;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::adapter::{ClusterBroadcast, SessionRecord, SocketInfo};
use crate::protocol::socketio;
use crate::rooms::{Filter, Room, Target};
use crate::state::{delta_queue_key, DELTA_EVENT};

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

fn opts_mp(target: &Target, volatile: bool) -> Mp {
    let list = |rooms: &[Room]| Mp::Array(rooms.iter().map(|r| Mp::from(&**r)).collect());
    let mut flags = Vec::new();
    if volatile {
        flags.push((Mp::from("volatile"), Mp::Boolean(true)));
    }
    Mp::Map(vec![
        (Mp::from("rooms"), list(&target.rooms)),
        (Mp::from("except"), list(&target.except)),
        (Mp::from("flags"), Mp::Map(flags)),
    ])
}

// ---------------------------------------------------------------------------
// msgpack <-> JSON with binary attachments
// ---------------------------------------------------------------------------

/// msgpack to JSON; binary values become Socket.IO placeholders, their bytes
/// attachments.
pub(crate) fn mp_to_json(v: &Mp, attachments: &mut Vec<Bytes>) -> Value {
    match v {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(*b),
        Mp::Integer(i) => {
            if let Some(u) = i.as_u64() {
                Value::from(u)
            } else if let Some(s) = i.as_i64() {
                Value::from(s)
            } else {
                Value::Null
            }
        }
        Mp::F32(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        Mp::F64(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Mp::String(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Mp::Binary(b) => {
            let placeholder = socketio::placeholder(attachments.len());
            attachments.push(Bytes::copy_from_slice(b));
            placeholder
        }
        Mp::Array(items) => {
            Value::Array(items.iter().map(|i| mp_to_json(i, attachments)).collect())
        }
        Mp::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match k {
                    Mp::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    other => other.to_string(),
                };
                map.insert(key, mp_to_json(v, attachments));
            }
            Value::Object(map)
        }
        // Dates, `undefined` and other extensions have no JSON form.
        Mp::Ext(..) => Value::Null,
    }
}

/// JSON to msgpack; placeholders become the binary of their attachment.
pub(crate) fn json_to_mp(v: &Value, attachments: &[Bytes]) -> Mp {
    if let Some(num) = socketio::placeholder_index(v) {
        if let Some(data) = attachments.get(num) {
            return Mp::Binary(data.to_vec());
        }
    }
    match v {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(items) => {
            Mp::Array(items.iter().map(|i| json_to_mp(i, attachments)).collect())
        }
        Value::Object(map) => Mp::Map(
            map.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), json_to_mp(v, attachments)))
                .collect(),
        ),
    }
}

pub(crate) fn mp_encode(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

pub(crate) fn mp_decode(bytes: &[u8]) -> Result<Mp, Malformed> {
    let mut rd = bytes;
    rmpv::decode::read_value(&mut rd).map_err(|e| bad(format!("msgpack: {e}")))
}

fn mp_get<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    match map {
        Mp::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn mp_str(v: Option<&Mp>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

fn mp_strings(v: Option<&Mp>) -> Vec<String> {
    match v {
        Some(Mp::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn mp_target(opts: Option<&Mp>) -> (Target, bool) {
    let Some(opts) = opts else {
        return (Target::all(), false);
    };
    let target = Target {
        rooms: mp_strings(mp_get(opts, "rooms"))
            .into_iter()
            .map(Room::from)
            .collect(),
        except: mp_strings(mp_get(opts, "except"))
            .into_iter()
            .map(Room::from)
            .collect(),
    };
    let volatile = mp_get(opts, "flags")
        .and_then(|f| mp_get(f, "volatile"))
        .and_then(Mp::as_bool)
        .unwrap_or(false);
    (target, volatile)
}

// ---------------------------------------------------------------------------
// Broadcast packets
// ---------------------------------------------------------------------------

/// The `data` array of an EVENT packet as JSON text (`["event",...args]`).
pub(crate) fn data_array(msg: &ClusterBroadcast) -> Vec<u8> {
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
fn broadcast_from_values(
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
        };
        return Ok((msg, meta, delta));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad("broadcast data is neither JSON nor base64"))?;
    decode_broadcast_mp(&mp_decode(&raw)?)
}

/// Decode a BROADCAST body given as msgpack (`{packet, opts, requestId?}`).
fn decode_broadcast_mp(
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
    };
    Ok((msg, meta, delta))
}

// ---------------------------------------------------------------------------
// Stream entries: {uid, nsp, type, data}
// ---------------------------------------------------------------------------

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

fn json_target(opts: &Value) -> Target {
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

fn json_rooms(v: &Value) -> Vec<Room> {
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
fn decode_typed(kind: u64, data: &Value) -> Result<Message, Malformed> {
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

fn request_id(v: &Value) -> Result<String, Malformed> {
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

// ---------------------------------------------------------------------------
// Pub/sub: msgpack cluster messages and redis-emitter messages
// ---------------------------------------------------------------------------

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

/// BROADCAST_CLIENT_COUNT data (the answer to a broadcast with acknowledgements,
/// which swarmcast does not deliver).
pub(crate) fn client_count(request_id: &Value, count: u64) -> Mp {
    Mp::Map(vec![
        (Mp::from("requestId"), json_to_mp(request_id, &[])),
        (Mp::from("clientCount"), Mp::from(count)),
    ])
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

// ---------------------------------------------------------------------------
// Recovery sessions: base64(msgpack({sid, pid, rooms, data}))
// ---------------------------------------------------------------------------

/// Encode a session as the Node adapter stores it (its rooms include the socket's own
/// id, `data` is the application's `socket.data`); swarmcast's filters and auth ride
/// in an extra field the Node side ignores.
pub(crate) fn encode_session(s: &SessionRecord) -> String {
    let mut rooms = vec![Mp::from(&*s.sid)];
    rooms.extend(s.rooms.iter().map(|r| Mp::from(&**r)));
    let filters = s
        .filters
        .iter()
        .map(|(room, f)| {
            let mut names: Vec<&String> = f.names.iter().collect();
            names.sort();
            (
                Mp::from(&**room),
                Mp::Array(names.into_iter().map(|n| Mp::from(n.as_str())).collect()),
            )
        })
        .collect();
    let mut extra = vec![(Mp::from("filters"), Mp::Map(filters))];
    if let Some(auth) = &s.auth {
        extra.push((Mp::from("auth"), json_to_mp(auth, &[])));
    }
    let v = Mp::Map(vec![
        (Mp::from("sid"), Mp::from(&*s.sid)),
        (Mp::from("pid"), Mp::from(s.pid.as_str())),
        (Mp::from("rooms"), Mp::Array(rooms)),
        (Mp::from("data"), Mp::Map(Vec::new())),
        (Mp::from("swarmcast"), Mp::Map(extra)),
    ]);
    base64::engine::general_purpose::STANDARD.encode(mp_encode(&v))
}

/// Decode a stored session (written by swarmcast or by a Node server).
pub(crate) fn decode_session(raw: &[u8]) -> Result<SessionRecord, Malformed> {
    let text = std::str::from_utf8(raw).map_err(|_| bad("session is not text"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| bad("session is not base64"))?;
    let v = mp_decode(&bytes)?;
    let sid: Arc<str> = mp_str(mp_get(&v, "sid"))
        .ok_or_else(|| bad("session without a sid"))?
        .into();
    let pid = mp_str(mp_get(&v, "pid")).unwrap_or_default();
    let rooms = mp_strings(mp_get(&v, "rooms"))
        .into_iter()
        .filter(|r| **r != *sid)
        .map(Room::from)
        .collect();
    let extra = mp_get(&v, "swarmcast");
    let filters = match extra.and_then(|e| mp_get(e, "filters")) {
        Some(Mp::Map(entries)) => entries
            .iter()
            .filter_map(|(room, names)| {
                Some((
                    Room::from(room.as_str()?),
                    Filter {
                        names: mp_strings(Some(names)).into_iter().collect(),
                    },
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    let auth = extra
        .and_then(|e| mp_get(e, "auth"))
        .map(|a| mp_to_json(a, &mut Vec::new()));
    Ok(SessionRecord {
        pid,
        sid,
        rooms,
        filters,
        auth,
    })
}

/// Whether a broadcast reaches a session (socket.io's `shouldIncludePacket`): `rooms`
/// are the session's rooms including its own id.
pub(crate) fn reaches(target: &Target, rooms: &[Room]) -> bool {
    let included = target.rooms.is_empty() || rooms.iter().any(|r| target.rooms.contains(r));
    included && !rooms.iter().any(|r| target.except.contains(r))
}

/// Keys of the keyed-state store: names are escaped so that no two (namespace, map)
/// pairs share a key.
pub(crate) fn key_part(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
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
    fn room_operations_decode() {
        let entry = Entry {
            id: "1-0".into(),
            uid: "u".into(),
            nsp: "/".into(),
            kind: "4".into(),
            data: Some(rooms_op_data(&Target::room("sid1"), &["a".into()])),
            sc: None,
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

    #[test]
    fn sessions_round_trip_and_read_node_sessions() {
        let mut names = std::collections::HashSet::new();
        names.insert("status".to_string());
        let s = SessionRecord {
            pid: "p1".into(),
            sid: "s1".into(),
            rooms: vec!["r1".into()],
            filters: vec![("r1".into(), Filter { names })],
            auth: Some(json!({"token": "t"})),
        };
        let back = decode_session(encode_session(&s).as_bytes()).expect("decodes");
        assert_eq!(&*back.sid, "s1");
        assert_eq!(back.rooms, vec![Room::from("r1")]);
        assert_eq!(back.filters.len(), 1);
        assert_eq!(back.auth, Some(json!({"token": "t"})));
        // A Node server's session: {sid, pid, rooms (with its own id), data}.
        let node = Mp::Map(vec![
            (Mp::from("sid"), Mp::from("n1")),
            (Mp::from("pid"), Mp::from("np")),
            (
                Mp::from("rooms"),
                Mp::Array(vec![Mp::from("n1"), Mp::from("a")]),
            ),
            (Mp::from("data"), Mp::Map(vec![])),
        ]);
        let raw = base64::engine::general_purpose::STANDARD.encode(mp_encode(&node));
        let back = decode_session(raw.as_bytes()).expect("decodes");
        assert_eq!(back.rooms, vec![Room::from("a")]);
        assert!(decode_session(b"!!!").is_err());
    }

    #[test]
    fn packet_inclusion_follows_socket_io() {
        let rooms: Vec<Room> = vec!["me".into(), "a".into()];
        assert!(reaches(&Target::all(), &rooms));
        assert!(reaches(&Target::room("a"), &rooms));
        assert!(!reaches(&Target::room("b"), &rooms));
        let mut except = Target::all();
        except.except.push("me".into());
        assert!(!reaches(&except, &rooms));
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
