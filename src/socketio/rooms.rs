//! Room registry of one namespace and the resolution of a broadcast target to sockets.
//!
//! Every socket is implicitly in the room named by its own id (as in Socket.IO), so
//! `to(sid)` and `except(sid)` need no entry of their own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::socketio::socket::Socket;

/// A room name.
pub type Room = Arc<str>;

/// Who a broadcast goes to: sockets in any of `rooms` (all sockets of the namespace
/// when empty), minus sockets in any of `except`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Rooms to reach; empty means every socket of the namespace.
    pub rooms: Vec<Room>,
    /// Rooms (or socket ids) to leave out.
    pub except: Vec<Room>,
}

impl Target {
    /// Every socket.
    pub fn all() -> Self {
        Self::default()
    }

    /// The sockets of one room (or the socket with that id).
    pub fn room(room: impl Into<Room>) -> Self {
        Self {
            rooms: vec![room.into()],
            except: Vec::new(),
        }
    }
}

/// The builder methods every broadcast type shares (the server's `Broadcast`, the
/// Redis emitter's `RedisBroadcast`): for a struct with `target: Target` and
/// `volatile: bool` fields.
macro_rules! target_builders {
    () => {
        /// Also reach the sockets of `room` (or the socket with that id).
        pub fn to(mut self, room: impl Into<$crate::Room>) -> Self {
            self.target.rooms.push(room.into());
            self
        }

        /// Leave out the sockets of `room` (or the socket with that id).
        pub fn except(mut self, room: impl Into<$crate::Room>) -> Self {
            self.target.except.push(room.into());
            self
        }

        /// Not kept for recovery; dropped for clients that cannot take it now instead of
        /// being waited for or reported.
        pub fn volatile(mut self) -> Self {
            self.volatile = true;
            self
        }
    };
}
pub(crate) use target_builders;

/// A subscription filter: the event names (for a room) or state keys (for a state map)
/// a socket wants from one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub names: HashSet<String>,
}

/// What a socket left behind when it was removed.
pub(crate) struct Removed {
    pub rooms: Vec<Room>,
    pub filters: Vec<(Room, Filter)>,
}

/// Sockets and room memberships of one namespace.
#[derive(Default)]
pub(crate) struct RoomRegistry {
    sockets: HashMap<Arc<str>, Socket>,
    rooms: HashMap<Room, HashSet<Arc<str>>>,
    memberships: HashMap<Arc<str>, HashSet<Room>>,
    /// Only rooms with filtered members appear here, so unfiltered fan-out pays one
    /// failed lookup per room, not per socket.
    filters: HashMap<Room, HashMap<Arc<str>, Filter>>,
}

impl RoomRegistry {
    pub fn insert(&mut self, socket: Socket) {
        self.sockets.insert(socket.id_arc(), socket);
    }

    /// Remove a socket and all its memberships.
    pub fn remove(&mut self, sid: &str) -> Option<Removed> {
        self.sockets.remove(sid)?;
        let mut removed = Removed {
            rooms: Vec::new(),
            filters: Vec::new(),
        };
        if let Some(rooms) = self.memberships.remove(sid) {
            for room in rooms {
                if let Some(filter) = self.drop_member(&room, sid) {
                    removed.filters.push((room.clone(), filter));
                }
                removed.rooms.push(room);
            }
        }
        Some(removed)
    }

    /// Take `sid` out of `room`; returns its filter there, if it had one.
    fn drop_member(&mut self, room: &str, sid: &str) -> Option<Filter> {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(sid);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
        let filters = self.filters.get_mut(room)?;
        let filter = filters.remove(sid);
        if filters.is_empty() {
            self.filters.remove(room);
        }
        filter
    }

    /// Restrict what `sid` receives through `room` (None lifts the restriction).
    pub fn set_filter(&mut self, sid: &str, room: &Room, filter: Option<Filter>) {
        let Some(sid) = self.sockets.get_key_value(sid).map(|(k, _)| k.clone()) else {
            return;
        };
        match filter {
            Some(f) => {
                self.filters.entry(room.clone()).or_default().insert(sid, f);
            }
            None => {
                if let Some(filters) = self.filters.get_mut(room) {
                    filters.remove(&sid);
                    if filters.is_empty() {
                        self.filters.remove(room);
                    }
                }
            }
        }
    }

    pub fn get(&self, sid: &str) -> Option<&Socket> {
        self.sockets.get(sid)
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn sockets(&self) -> impl Iterator<Item = &Socket> {
        self.sockets.values()
    }

    /// Returns false when the socket is unknown.
    pub fn join(&mut self, sid: &str, room: Room) -> bool {
        let Some(sid) = self.sockets.get_key_value(sid).map(|(k, _)| k.clone()) else {
            return false;
        };
        self.memberships
            .entry(sid.clone())
            .or_default()
            .insert(room.clone());
        self.rooms.entry(room).or_default().insert(sid);
        true
    }

    pub fn leave(&mut self, sid: &str, room: &str) {
        if let Some(rooms) = self.memberships.get_mut(sid) {
            rooms.remove(room);
        }
        let _ = self.drop_member(room, sid);
    }

    /// Remove every member of a room (Flask-SocketIO's `close_room`).
    pub fn clear_room(&mut self, room: &str) {
        if let Some(members) = self.rooms.remove(room) {
            for sid in members {
                if let Some(rooms) = self.memberships.get_mut(&sid) {
                    rooms.remove(room);
                }
            }
        }
        self.filters.remove(room);
    }

    /// The rooms a socket joined (not its own id room) and its filters there.
    /// The members of `room`, each with its filter there, if any.
    pub fn members_of(&self, room: &str) -> Vec<(Socket, Option<Filter>)> {
        let filters = self.filters.get(room);
        self.rooms
            .get(room)
            .into_iter()
            .flatten()
            .filter_map(|sid| {
                let socket = self.sockets.get(sid)?.clone();
                Some((socket, filters.and_then(|f| f.get(sid)).cloned()))
            })
            .collect()
    }

    pub fn memberships(&self, sid: &str) -> (Vec<Room>, Vec<(Room, Filter)>) {
        let rooms: Vec<Room> = self
            .memberships
            .get(sid)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default();
        let filters = rooms
            .iter()
            .filter_map(|room| {
                let filter = self.filters.get(room)?.get(sid)?;
                Some((room.clone(), filter.clone()))
            })
            .collect();
        (rooms, filters)
    }

    /// The socket's own id room first, then the rooms it joined, sorted.
    pub fn rooms_of(&self, sid: &str) -> Vec<String> {
        let mut joined: Vec<String> = self
            .memberships
            .get(sid)
            .map(|r| r.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        joined.sort();
        if self.sockets.contains_key(sid) {
            joined.insert(0, sid.to_string());
        }
        joined
    }

    /// Members of a room, including the socket whose id the room is named after.
    /// Members whose filter on this room does not list `filter_key` are skipped.
    fn for_each_in_room<'s>(
        &'s self,
        room: &str,
        filter_key: Option<&str>,
        f: &mut impl FnMut(&'s Socket),
    ) {
        if let Some(members) = self.rooms.get(room) {
            let filters = filter_key.and_then(|_| self.filters.get(room));
            for sid in members {
                if let (Some(filter), Some(key)) = (filters.and_then(|fs| fs.get(sid)), filter_key)
                {
                    if !filter.names.contains(key) {
                        continue;
                    }
                }
                if let Some(s) = self.sockets.get(sid) {
                    f(s);
                }
            }
        }
        if let Some(s) = self.sockets.get(room) {
            // A socket joined to a room named after its own id is already counted.
            if !self.rooms.get(room).is_some_and(|m| m.contains(room)) {
                f(s);
            }
        }
    }

    /// Call `f` once for every socket the target reaches. `filter_key` (an event name
    /// or a state key) is matched against subscription filters of the target rooms;
    /// None ignores filters.
    pub fn for_each_target<'s>(
        &'s self,
        target: &Target,
        filter_key: Option<&str>,
        mut f: impl FnMut(&'s Socket),
    ) {
        let excluded: HashSet<&str> = if target.except.is_empty() {
            HashSet::new()
        } else {
            let mut set = HashSet::new();
            for room in &target.except {
                if let Some(members) = self.rooms.get(room) {
                    set.extend(members.iter().map(|s| &**s));
                }
                if let Some((sid, _)) = self.sockets.get_key_value(&**room) {
                    set.insert(&**sid);
                }
            }
            set
        };
        let mut deliver = |s: &'s Socket| {
            if excluded.is_empty() || !excluded.contains(s.id()) {
                f(s)
            }
        };
        match target.rooms.as_slice() {
            [] => self.sockets.values().for_each(&mut deliver),
            [room] => self.for_each_in_room(room, filter_key, &mut deliver),
            rooms => {
                // A socket in several of the rooms gets the packet once.
                let mut seen: HashSet<&str> = HashSet::new();
                for room in rooms {
                    self.for_each_in_room(room, filter_key, &mut |s: &'s Socket| {
                        if seen.insert(s.id()) {
                            deliver(s)
                        }
                    });
                }
            }
        }
    }
}
