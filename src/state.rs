//! Keyed live state: a named map whose changes stream to subscribers.
//!
//! A subscriber first gets the whole map (`swarmcast:snapshot`), then one
//! `swarmcast:delta` per change. Both happen under the map's lock, so nothing falls
//! between the snapshot and the first delta and nothing comes twice. A delta whose key
//! still has an unwritten delta in a socket's queue replaces it where it stands: the
//! latest value wins, a slow client's queue never grows past one entry per key, and per
//! key the order never reverses. The wire format is in `docs/protocol.md`.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::emitter::EmitError;
use crate::namespace::{Namespace, Outgoing};
use crate::packet::EncodeError;
use crate::rooms::{Filter, Room, Target};
use crate::socket::Socket;

/// Event carrying a full map to a new subscriber.
pub const SNAPSHOT_EVENT: &str = "swarmcast:snapshot";
/// Event carrying one change.
pub const DELTA_EVENT: &str = "swarmcast:delta";

#[derive(Default)]
struct StateData {
    entries: Map<String, Value>,
    version: u64,
}

pub(crate) struct StateShared {
    name: Arc<str>,
    room: Room,
    data: Mutex<StateData>,
}

impl StateShared {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            room: state_room(name),
            data: Mutex::new(StateData::default()),
        }
    }
}

/// The room a state map's subscribers are in.
pub(crate) fn state_room(name: &str) -> Room {
    format!("state:{name}").into()
}

#[derive(Serialize)]
struct Delta<'a> {
    map: &'a str,
    version: u64,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    map: &'a str,
    version: u64,
    entries: &'a Map<String, Value>,
}

/// A handle on one keyed state map of a namespace. Cheap to clone, usable from any
/// thread.
///
/// ```
/// let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
/// let agents = server.state("agents");
/// agents.set("a1", &serde_json::json!({"status": "thinking"})).unwrap();
/// agents.set("a1", &serde_json::json!({"status": "working"})).unwrap();
/// assert_eq!(agents.get("a1").unwrap()["status"], "working");
/// assert!(agents.delete("a1"));
/// assert!(agents.snapshot().is_empty());
/// ```
#[derive(Clone)]
pub struct StateMap {
    ns: Arc<Namespace>,
    shared: Arc<StateShared>,
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMap")
            .field("name", &self.shared.name)
            .field("namespace", &self.ns.name())
            .finish()
    }
}

impl StateMap {
    pub(crate) fn new(ns: Arc<Namespace>, shared: Arc<StateShared>) -> Self {
        Self { ns, shared }
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Set `key` to `value` and stream the change to subscribers.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), EmitError> {
        let value = serde_json::to_value(value).map_err(EncodeError::from)?;
        self.set_value(key, value)
    }

    /// Set `key` to an already built JSON value.
    pub fn set_value(&self, key: &str, value: Value) -> Result<(), EmitError> {
        let mut data = self.shared.data.lock();
        data.version += 1;
        let delta = Delta {
            map: &self.shared.name,
            version: data.version,
            key,
            value: Some(&value),
            deleted: false,
        };
        self.publish_delta(&delta)?;
        data.entries.insert(key.to_string(), value);
        Ok(())
    }

    /// Remove `key`; returns whether it was there. Subscribers get a delta with
    /// `"deleted": true`.
    pub fn delete(&self, key: &str) -> bool {
        let mut data = self.shared.data.lock();
        if data.entries.remove(key).is_none() {
            return false;
        }
        data.version += 1;
        let delta = Delta {
            map: &self.shared.name,
            version: data.version,
            key,
            value: None,
            deleted: true,
        };
        if let Err(e) = self.publish_delta(&delta) {
            tracing::warn!(error = %e, map = %self.shared.name, "state delete not streamed");
        }
        true
    }

    fn publish_delta(&self, delta: &Delta<'_>) -> Result<(), EmitError> {
        let queue_key: Arc<str> = format!("{}\0{}", self.shared.name, delta.key).into();
        let target = Target {
            rooms: vec![self.shared.room.clone()],
            except: Vec::new(),
        };
        self.ns.publish(
            &Outgoing {
                event: DELTA_EVENT,
                attachments: &[],
                target: &target,
                volatile: false,
                keyed: Some(&queue_key),
                filter_key: delta.key,
            },
            crate::packet::write_one(delta),
        )?;
        Ok(())
    }

    /// The current value of `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.shared.data.lock().entries.get(key).cloned()
    }

    /// A copy of the whole map.
    pub fn snapshot(&self) -> Map<String, Value> {
        self.shared.data.lock().entries.clone()
    }

    /// The version: the number of changes so far.
    pub fn version(&self) -> u64 {
        self.shared.data.lock().version
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.shared.data.lock().entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscribe a socket: it gets the snapshot (only `keys`, when given) now and the
    /// matching deltas from then on.
    pub fn subscribe(
        &self,
        socket: &Socket,
        keys: Option<HashSet<String>>,
    ) -> Result<(), EmitError> {
        let data = self.shared.data.lock();
        let filtered;
        let entries = match &keys {
            None => &data.entries,
            Some(keys) => {
                filtered = data
                    .entries
                    .iter()
                    .filter(|(k, _)| keys.contains(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                &filtered
            }
        };
        let snapshot = Snapshot {
            map: &self.shared.name,
            version: data.version,
            entries,
        };
        let to_socket = Target::room(socket.id_arc());
        self.ns.publish(
            &Outgoing {
                event: SNAPSHOT_EVENT,
                attachments: &[],
                target: &to_socket,
                volatile: false,
                keyed: None,
                filter_key: SNAPSHOT_EVENT,
            },
            crate::packet::write_one(&snapshot),
        )?;
        self.ns.subscribe_room(
            socket.id(),
            &self.shared.room,
            keys.map(|names| Filter { names }),
        );
        drop(data);
        Ok(())
    }

    /// Stop streaming to a socket.
    pub fn unsubscribe(&self, socket: &Socket) {
        socket.leave(&self.shared.room);
    }
}
