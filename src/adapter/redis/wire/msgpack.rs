//! msgpack, the encoding of pub/sub messages, of binary broadcasts and of
//! sessions: values to and from JSON (binary values become Socket.IO placeholders
//! and attachments), and the readers and writers of the fields the formats share.

use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{Map, Value};

use super::{bad, Malformed};
use crate::protocol::socketio;
use crate::socketio::rooms::{Room, Target};

pub(super) fn opts_mp(target: &Target, volatile: bool) -> Mp {
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

/// msgpack to JSON; binary values become Socket.IO placeholders, their bytes
/// attachments.
pub(super) fn mp_to_json(v: &Mp, attachments: &mut Vec<Bytes>) -> Value {
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
pub(super) fn json_to_mp(v: &Value, attachments: &[Bytes]) -> Mp {
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

pub(super) fn mp_encode(v: &Mp) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

pub(super) fn mp_decode(bytes: &[u8]) -> Result<Mp, Malformed> {
    let mut rd = bytes;
    rmpv::decode::read_value(&mut rd).map_err(|e| bad(format!("msgpack: {e}")))
}

pub(super) fn mp_get<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    match map {
        Mp::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

pub(super) fn mp_str(v: Option<&Mp>) -> Option<String> {
    v.and_then(|v| v.as_str()).map(str::to_string)
}

pub(super) fn mp_strings(v: Option<&Mp>) -> Vec<String> {
    match v {
        Some(Mp::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn mp_target(opts: Option<&Mp>) -> (Target, bool) {
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
