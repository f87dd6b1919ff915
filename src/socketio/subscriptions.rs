//! Client-driven subscriptions: the built-in `subscribe` / `unsubscribe` events.
//!
//! Off unless the server allows some room patterns (or installs a hook). A client emits
//! `subscribe` with `{"room": "agents:7", "events": ["status"]}` or
//! `{"state": "agents", "keys": ["a1"]}` (the filters are optional) and, if it asked for
//! an ack, gets `{"ok": true}` or `{"ok": false, "error": "..."}`. Patterns match room
//! names, with `*` for any run of characters; a state map `agents` is matched as
//! `state:agents`.
//!
//! Whatever the patterns say, a client can never subscribe to (or unsubscribe from) a
//! socket's own room (its id: that is how private events reach one socket) or a room
//! the application reserved, and no request creates a state map: subscribing to a map
//! the application has not opened joins its room with an empty snapshot. `unsubscribe`
//! is checked against the patterns as `subscribe` is (not against the hook).

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::socketio::namespace::Event;
use crate::socketio::rooms::Filter;
use crate::socketio::socket::{AckSender, Socket};
use crate::socketio::state;

/// What a client asked to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// A room, optionally only some event names.
    Room {
        /// Room name.
        room: String,
        /// Only these events, if given.
        events: Option<Vec<String>>,
    },
    /// A keyed state map, optionally only some keys.
    State {
        /// Map name.
        map: String,
        /// Only these keys, if given.
        keys: Option<Vec<String>>,
    },
}

impl Subscription {
    fn parse(v: &Value) -> Result<Self, &'static str> {
        let names = |field: &str| -> Result<Option<Vec<String>>, &'static str> {
            match v.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .ok_or("filters are lists of strings")
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                Some(_) => Err("filters are lists of strings"),
            }
        };
        match (v.get("room"), v.get("state")) {
            (Some(Value::String(room)), None) => Ok(Subscription::Room {
                room: room.clone(),
                events: names("events")?,
            }),
            (None, Some(Value::String(map))) => Ok(Subscription::State {
                map: map.clone(),
                keys: names("keys")?,
            }),
            _ => Err("expected {\"room\": name} or {\"state\": name}"),
        }
    }

    /// The name the allow-list patterns are matched against.
    pub fn room_name(&self) -> String {
        match self {
            Subscription::Room { room, .. } => room.clone(),
            Subscription::State { map, .. } => crate::socketio::state::state_room(map).to_string(),
        }
    }
}

type Hook = dyn Fn(&Socket, &Subscription) -> bool + Send + Sync;

/// Who may subscribe to what.
#[derive(Default)]
pub(crate) struct SubscribePolicy {
    patterns: Vec<String>,
    /// Room patterns no client may subscribe to, whatever `patterns` allow.
    reserved: Vec<String>,
    hook: RwLock<Option<Arc<Hook>>>,
}

impl SubscribePolicy {
    pub fn new(patterns: Vec<String>, reserved: Vec<String>) -> Self {
        Self {
            patterns,
            reserved,
            hook: RwLock::new(None),
        }
    }

    pub fn set_hook(&self, hook: Arc<Hook>) {
        *self.hook.write() = Some(hook);
    }

    pub fn enabled(&self) -> bool {
        !self.patterns.is_empty() || self.hook.read().is_some()
    }

    /// Allowed when the room is not reserved, a pattern matches and the hook (if any)
    /// agrees; with only a hook, the hook decides.
    fn allows(&self, socket: &Socket, sub: &Subscription) -> bool {
        self.allows_name(socket, sub) && self.hook.read().clone().is_none_or(|h| h(socket, sub))
    }

    /// The checks that do not ask the hook: the room is neither a socket's own room nor
    /// reserved, and a pattern (if any) matches.
    fn allows_name(&self, socket: &Socket, sub: &Subscription) -> bool {
        let name = sub.room_name();
        if let Subscription::Room { room, .. } = sub {
            if is_socket_room(socket, room) || self.reserved.iter().any(|p| glob(p, room)) {
                return false;
            }
        }
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob(p, &name))
    }
}

/// Whether `room` is (or looks like) a socket's own room: the id of a socket of this
/// namespace, or any name shaped like one (20 URL-safe base64 characters; ids of
/// sockets on other nodes of a cluster are not known here).
fn is_socket_room(socket: &Socket, room: &str) -> bool {
    let id_shaped = room.len() == 20
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    id_shaped || socket.0.ns.socket(room).is_some()
}

/// `*` matches any run of characters; everything else matches itself.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn answer(ack: Option<AckSender>, result: Result<(), String>) {
    if let Some(ack) = ack {
        let body = match result {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "error": e}),
        };
        let _ = ack.send(&body);
    }
}

/// Handle a built-in `subscribe` (or `unsubscribe`) event.
pub(crate) fn handle(
    policy: &SubscribePolicy,
    socket: &Socket,
    event: Event,
    ack: Option<AckSender>,
) {
    let subscribe = event.name == "subscribe";
    let request = event.payload.args.first().cloned().unwrap_or(Value::Null);
    let sub = match Subscription::parse(&request) {
        Ok(sub) => sub,
        Err(e) => return answer(ack, Err(e.to_string())),
    };
    let allowed = if subscribe {
        policy.allows(socket, &sub)
    } else {
        policy.allows_name(socket, &sub)
    };
    if !allowed {
        return answer(ack, Err("not allowed".to_string()));
    }
    let ns = socket.0.ns.clone();
    let result = match (&sub, subscribe) {
        (Subscription::Room { room, events }, true) => {
            let filter = events.as_ref().map(|e| Filter {
                names: e.iter().cloned().collect(),
            });
            ns.subscribe_room(socket.id(), &room.as_str().into(), filter);
            Ok(())
        }
        (Subscription::Room { room, .. }, false) => {
            socket.leave(room);
            Ok(())
        }
        (Subscription::State { map, keys }, true) => state::subscribe_client(
            &ns,
            map,
            socket,
            keys.as_ref()
                .map(|k| k.iter().cloned().collect::<HashSet<_>>()),
        )
        .map_err(|e| e.to_string()),
        (Subscription::State { .. }, false) => {
            // Leaving the map's room needs no map (and must not create one).
            socket.leave(&sub.room_name());
            Ok(())
        }
    };
    answer(ack, result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob("*", "anything"));
        assert!(glob("agents:*", "agents:7"));
        assert!(!glob("agents:*", "tasks:7"));
        assert!(glob("state:agents", "state:agents"));
        assert!(!glob("state:agents", "state:agents2"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("", ""));
    }

    #[test]
    fn parses_requests() {
        assert_eq!(
            Subscription::parse(&json!({"room": "r", "events": ["a"]})),
            Ok(Subscription::Room {
                room: "r".into(),
                events: Some(vec!["a".into()])
            })
        );
        assert_eq!(
            Subscription::parse(&json!({"state": "agents"})),
            Ok(Subscription::State {
                map: "agents".into(),
                keys: None
            })
        );
        assert!(Subscription::parse(&json!({"room": 1})).is_err());
        assert!(Subscription::parse(&json!({"room": "r", "events": [1]})).is_err());
        assert!(Subscription::parse(&json!({"room": "r", "state": "s"})).is_err());
    }
}
