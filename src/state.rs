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

use crate::adapter::{ClusterBroadcast, StateChange};
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
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Apply a delta that came through the cluster log and deliver it to this node's
    /// subscribers, both under the map's lock (so that a subscriber's snapshot and its
    /// first delta neither overlap nor leave a gap). Deltas the map already includes
    /// (version not newer) are skipped. Returns true when versions were skipped: this
    /// node's copy missed changes and should be reloaded.
    pub(crate) fn apply_cluster_delta(
        &self,
        ns: &Namespace,
        version: u64,
        key: &str,
        value: Option<Value>,
        msg: &ClusterBroadcast,
        offset: Option<&str>,
    ) -> bool {
        let mut data = self.data.lock();
        if version <= data.version {
            return false;
        }
        let gap = version > data.version + 1;
        match value {
            Some(value) => {
                data.entries.insert(key.to_string(), value);
            }
            None => {
                data.entries.remove(key);
            }
        }
        data.version = version;
        if let Err(e) = ns.deliver_cluster(msg, offset) {
            tracing::warn!(error = %e, map = %self.name, "state delta not delivered");
        }
        gap
    }

    /// A change that could not reach the shared store (Redis down): this node's
    /// subscribers still get it, at the map's current version, without an offset.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn deliver_local_change(&self, ns: &Namespace, key: &str, value: Option<Value>) {
        let mut data = self.data.lock();
        let delta = Delta {
            map: &self.name,
            version: data.version,
            key,
            value: value.as_ref(),
            deleted: value.is_none(),
        };
        let mut tail = Vec::new();
        if crate::packet::write_one(&delta)(&mut tail).is_ok() {
            let msg = ClusterBroadcast {
                event: DELTA_EVENT.to_string(),
                tail,
                attachments: Vec::new(),
                target: Target::room(self.room.clone()),
                volatile: false,
                keyed: Some(delta_queue_key(&self.name, key)),
                filter_key: key.to_string(),
            };
            if let Err(e) = ns.deliver_cluster(&msg, None) {
                tracing::warn!(error = %e, map = %self.name, "state delta not delivered");
            }
        }
        match value {
            Some(v) => {
                data.entries.insert(key.to_string(), v);
            }
            None => {
                data.entries.remove(key);
            }
        }
    }

    /// Replace this node's copy with what the shared store holds, unless the copy is
    /// already newer.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn load_cluster_snapshot(&self, version: u64, entries: Map<String, Value>) {
        let mut data = self.data.lock();
        if version >= data.version {
            data.entries = entries;
            data.version = version;
        }
    }
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

/// The queue key under which deltas of one map key coalesce.
pub(crate) fn delta_queue_key(map: &str, key: &str) -> Arc<str> {
    format!("{map}\0{key}").into()
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
        if let Some(cluster) = self.ns.cluster() {
            // The shared store orders the change and gives it its version; the delta
            // comes back through the log to every node, this one included. Until then
            // this node already reads its own write.
            self.shared
                .data
                .lock()
                .entries
                .insert(key.to_string(), value.clone());
            cluster.state_change(StateChange {
                map: self.shared.name.to_string(),
                key: key.to_string(),
                value: Some(value),
            });
            return Ok(());
        }
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
        if let Some(cluster) = self.ns.cluster() {
            let had = self.shared.data.lock().entries.remove(key).is_some();
            cluster.state_change(StateChange {
                map: self.shared.name.to_string(),
                key: key.to_string(),
                value: None,
            });
            return had;
        }
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
        let queue_key = delta_queue_key(&self.shared.name, delta.key);
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
        let out = Outgoing {
            event: SNAPSHOT_EVENT,
            attachments: &[],
            target: &to_socket,
            volatile: false,
            keyed: None,
            filter_key: SNAPSHOT_EVENT,
        };
        if self.ns.cluster().is_some() {
            // Straight to the socket: through the log it could come after deltas this
            // node delivers meanwhile.
            self.ns
                .send_local(socket, &out, crate::packet::write_one(&snapshot))?;
        } else {
            self.ns.publish(&out, crate::packet::write_one(&snapshot))?;
        }
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
