//! Keyed live state: a named map whose changes stream to subscribers.
//!
//! A subscriber first gets the whole map (`swarmcast:snapshot`), then one
//! `swarmcast:delta` per change. Both happen under the map's lock, so nothing falls
//! between the snapshot and the first delta and nothing comes twice. A delta whose key
//! still has an unwritten delta in a socket's queue replaces it where it stands: the
//! latest value wins, a slow client's queue never grows past one entry per key, and per
//! key the order never reverses. The wire format is in `docs/protocol.md`.
//!
//! Who orders a change is the adapter's business: in-process the map's own version
//! counter (here, [`StateShared::change_and_publish`]); in a cluster the shared store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::socketio::adapter::{ClusterBroadcast, LocalNamespace};
use crate::socketio::emitter::EmitError;
use crate::socketio::namespace::{Namespace, Outgoing};
use crate::socketio::packet::{write_one, EncodeError};
use crate::socketio::rooms::{Filter, Room, Target};
use crate::socketio::socket::Socket;

/// Event carrying a full map to a new subscriber.
pub const SNAPSHOT_EVENT: &str = "swarmcast:snapshot";
/// Event carrying one change.
pub const DELTA_EVENT: &str = "swarmcast:delta";

/// The state maps of one namespace, by name.
#[derive(Default)]
pub(crate) struct StateMaps(RwLock<HashMap<String, Arc<StateShared>>>);

impl StateMaps {
    /// The map `name`, and whether this call created it.
    pub fn get_or_create(&self, name: &str) -> (Arc<StateShared>, bool) {
        if let Some(shared) = self.0.read().get(name) {
            return (shared.clone(), false);
        }
        let mut created = false;
        let shared = self
            .0
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                created = true;
                Arc::new(StateShared::new(name))
            })
            .clone();
        (shared, created)
    }

    /// The names of the maps opened so far.
    pub fn names(&self) -> Vec<String> {
        self.0.read().keys().cloned().collect()
    }

    /// Run `f` on the map `name` if it exists, under the table's read lock: a map that
    /// does not exist cannot be created before `f` returns. Never creates a map (what
    /// clients reach goes through here: only the application creates maps).
    pub fn with_existing<R>(
        &self,
        name: &str,
        f: impl FnOnce(Option<&Arc<StateShared>>) -> R,
    ) -> R {
        let maps = self.0.read();
        f(maps.get(name))
    }
}

/// Subscribe a socket to the map `name` of `ns` without creating it: a map the
/// application has not opened gets an empty snapshot at version 0, and the socket joins
/// its room, so that the first change after the application opens it comes as a delta.
pub(crate) fn subscribe_client(
    ns: &Arc<Namespace>,
    name: &str,
    socket: &Socket,
    keys: Option<HashSet<String>>,
) -> Result<(), EmitError> {
    ns.states().with_existing(name, |shared| match shared {
        Some(shared) => StateMap::new(ns.clone(), shared.clone()).subscribe(socket, keys),
        None => send_snapshot(ns, name, &state_room(name), 0, &Map::new(), socket, keys),
    })
}

/// Send the snapshot `(version, entries)` of map `name` to `socket` (only `keys`, when
/// given), then make it a subscriber. The caller holds the lock that orders the map's
/// changes, so that nothing falls between the snapshot and the first delta.
fn send_snapshot(
    ns: &Namespace,
    name: &str,
    room: &Room,
    version: u64,
    all: &Map<String, Value>,
    socket: &Socket,
    keys: Option<HashSet<String>>,
) -> Result<(), EmitError> {
    snapshot_to(ns, name, version, all, socket, keys.as_ref())?;
    ns.subscribe_room(socket.id(), room, keys.map(|names| Filter { names }));
    Ok(())
}

/// Send the snapshot `(version, entries)` of map `name` to `socket`, only `keys` when
/// given.
fn snapshot_to(
    ns: &Namespace,
    name: &str,
    version: u64,
    all: &Map<String, Value>,
    socket: &Socket,
    keys: Option<&HashSet<String>>,
) -> Result<(), EmitError> {
    let filtered;
    let entries = match keys {
        None => all,
        Some(keys) => {
            filtered = all
                .iter()
                .filter(|(k, _)| keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            &filtered
        }
    };
    let snapshot = Snapshot {
        map: name,
        version,
        entries,
    };
    // A delta queued before the snapshot and replaced by a newer one would otherwise
    // go out before it, and the snapshot would then undo the newer change.
    socket.keyed_barrier();
    let to_socket = Target::room(socket.id_arc());
    let out = Outgoing {
        event: SNAPSHOT_EVENT,
        args: &write_one(&snapshot),
        attachments: &[],
        target: &to_socket,
        volatile: false,
        keyed: None,
        filter_key: SNAPSHOT_EVENT,
        wait: false,
    };
    ns.adapter().send_snapshot(ns, socket, &out)
}

#[derive(Default)]
struct StateData {
    entries: Map<String, Value>,
    version: u64,
}

/// One state map's data, shared by every handle on it.
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

    /// The map's name.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// In-process ordering: under the map's lock, bump the version, stream the delta
    /// through `publish` and apply the change. Returns whether the key existed; a
    /// delete of a missing key changes nothing and streams nothing.
    pub(crate) fn change_and_publish(
        &self,
        key: &str,
        value: Option<Value>,
        publish: impl FnOnce(&Outgoing<'_>) -> Result<(), EmitError>,
    ) -> Result<bool, EmitError> {
        let mut data = self.data.lock();
        let existed = data.entries.contains_key(key);
        if value.is_none() && !existed {
            return Ok(false);
        }
        data.version += 1;
        let published = self.with_delta(data.version, key, value.as_ref(), publish);
        match (published, value) {
            (Err(e), Some(_)) => {
                // A set whose delta could not be encoded is not applied.
                data.version -= 1;
                Err(e)
            }
            (published, Some(value)) => {
                data.entries.insert(key.to_string(), value);
                published.map(|()| existed)
            }
            (published, None) => {
                data.entries.remove(key);
                if let Err(e) = published {
                    tracing::warn!(error = %e, map = %self.name, "state delete not streamed");
                }
                Ok(existed)
            }
        }
    }

    /// Hand `f` the delta packet of a change of `key` (to `value`, or deleted) at
    /// `version`, addressed to the map's subscribers and coalescing per key.
    fn with_delta<R>(
        &self,
        version: u64,
        key: &str,
        value: Option<&Value>,
        f: impl FnOnce(&Outgoing<'_>) -> R,
    ) -> R {
        let delta = Delta {
            map: &self.name,
            version,
            key,
            value,
            deleted: value.is_none(),
        };
        let queue_key = delta_queue_key(&self.name, key);
        let target = Target::room(self.room.clone());
        let args = write_one(&delta);
        f(&Outgoing {
            event: DELTA_EVENT,
            args: &args,
            attachments: &[],
            target: &target,
            volatile: false,
            keyed: Some(&queue_key),
            filter_key: key,
            wait: true,
        })
    }

    /// Apply a change to this node's copy only, before the cluster orders it (so that
    /// this node reads its own write). Returns whether the key existed.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn set_local_copy(&self, key: &str, value: Option<Value>) -> bool {
        let mut data = self.data.lock();
        match value {
            Some(value) => data.entries.insert(key.to_string(), value).is_some(),
            None => data.entries.remove(key).is_some(),
        }
    }

    /// Apply a delta that came through the cluster log and deliver it to this node's
    /// subscribers, both under the map's lock (so that a subscriber's snapshot and its
    /// first delta neither overlap nor leave a gap). Deltas the map already includes
    /// (version not newer) are skipped. Returns true when versions were skipped: this
    /// node's copy missed changes and should be reloaded.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn apply_cluster_delta(
        &self,
        ns: &dyn LocalNamespace,
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
        if let Err(e) = ns.deliver(msg, offset) {
            tracing::warn!(error = %e, map = %self.name, "state delta not delivered");
        }
        gap
    }

    /// A change that could not reach the shared store (Redis down): this node's
    /// subscribers still get it, at the map's current version, without an offset.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn deliver_local_change(
        &self,
        ns: &dyn LocalNamespace,
        key: &str,
        value: Option<Value>,
    ) {
        let mut data = self.data.lock();
        let delivered = self.with_delta(data.version, key, value.as_ref(), |out| {
            out.encode(ns.name(), None)
                .map(|encoded| ns.fan_out(&encoded, out).1)
        });
        match value {
            Some(v) => {
                data.entries.insert(key.to_string(), v);
            }
            None => {
                data.entries.remove(key);
            }
        }
        drop(data);
        match delivered {
            Ok(slow) => ns.drop_slow(slow),
            Err(e) => tracing::warn!(error = %e, map = %self.name, "state delta not delivered"),
        }
    }

    /// Replace this node's copy with what the shared store holds, unless the copy is
    /// already newer. When that skips versions, the deltas between will be taken for
    /// old ones and never reach this node's subscribers: each of them gets the new
    /// snapshot instead (within its key filter), under the map's lock, so that the next
    /// delta follows it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn load_cluster_snapshot(
        &self,
        ns: &Namespace,
        version: u64,
        entries: Map<String, Value>,
    ) {
        let mut data = self.data.lock();
        if version < data.version {
            return;
        }
        let skipped = version > data.version;
        data.entries = entries;
        data.version = version;
        if !skipped {
            return;
        }
        for (socket, filter) in ns.subscribers(&self.room) {
            let keys = filter.map(|f| f.names);
            if let Err(e) = snapshot_to(
                ns,
                &self.name,
                version,
                &data.entries,
                &socket,
                keys.as_ref(),
            ) {
                tracing::warn!(error = %e, map = %self.name, sid = socket.id(), "state snapshot not sent");
            }
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

    /// The largest packet a subscriber's queue can hold (a delta beyond it is refused).
    pub(crate) fn packet_limit(&self) -> usize {
        self.ns.packet_limit()
    }

    /// Set `key` to `value` and stream the change to subscribers.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), EmitError> {
        let value = serde_json::to_value(value).map_err(EncodeError::from)?;
        self.set_value(key, value)
    }

    /// Set `key` to an already built JSON value.
    pub fn set_value(&self, key: &str, value: Value) -> Result<(), EmitError> {
        self.ns
            .adapter()
            .state_change(&*self.ns, &self.shared, key, Some(value))
            .map(|_| ())
    }

    /// Remove `key`; returns whether it was there. Subscribers get a delta with
    /// `"deleted": true`.
    pub fn delete(&self, key: &str) -> bool {
        match self
            .ns
            .adapter()
            .state_change(&*self.ns, &self.shared, key, None)
        {
            Ok(existed) => existed,
            Err(e) => {
                tracing::warn!(error = %e, map = %self.shared.name, "state delete not streamed");
                false
            }
        }
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
        send_snapshot(
            &self.ns,
            &self.shared.name,
            &self.shared.room,
            data.version,
            &data.entries,
            socket,
            keys,
        )
        // The map's lock is released here, after the socket joined the room: the first
        // delta it gets is the first change after its snapshot.
    }

    /// Stop streaming to a socket.
    pub fn unsubscribe(&self, socket: &Socket) {
        socket.leave(&self.shared.room);
    }
}
