//! Recovery sessions `base64(msgpack({sid, pid, rooms, data}))`, readable by Node
//! servers and read from them, and which broadcasts a stored session would have
//! received (for replay).

use std::sync::Arc;

use base64::Engine as _;
use rmpv::Value as Mp;

use super::msgpack::{json_to_mp, mp_decode, mp_encode, mp_get, mp_str, mp_strings, mp_to_json};
use super::{bad, Malformed};
use crate::socketio::adapter::SessionRecord;
use crate::socketio::rooms::{Filter, Room, Target};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
