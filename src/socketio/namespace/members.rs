//! The sockets of one namespace on this node and their room memberships: the room
//! registry behind its lock, with the operations the namespace and its adapter need.

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::socketio::adapter::{SessionRecord, SocketInfo};
use crate::socketio::rooms::{Filter, Removed, Room, RoomRegistry, Target};
use crate::socketio::socket::Socket;

/// The local sockets and rooms of a namespace.
#[derive(Default)]
pub(crate) struct Members(RwLock<RoomRegistry>);

impl Members {
    pub fn insert(&self, socket: Socket) {
        self.0.write().insert(socket);
    }

    /// Remove a socket and its memberships; None when it was not here.
    pub fn remove(&self, sid: &str) -> Option<Removed> {
        self.0.write().remove(sid)
    }

    /// Returns false for a socket unknown here.
    pub fn join(&self, sid: &str, room: Room) -> bool {
        self.0.write().join(sid, room)
    }

    pub fn leave(&self, sid: &str, room: &str) {
        self.0.write().leave(sid, room);
    }

    /// Join a room with an optional subscription filter.
    pub fn subscribe(&self, sid: &str, room: &Room, filter: Option<Filter>) {
        let mut registry = self.0.write();
        registry.join(sid, room.clone());
        registry.set_filter(sid, room, filter);
    }

    pub fn clear_room(&self, room: &str) {
        self.0.write().clear_room(room);
    }

    /// The socket's own id room first, then the rooms it joined.
    pub fn rooms_of(&self, sid: &str) -> Vec<String> {
        self.0.read().rooms_of(sid)
    }

    pub fn get(&self, sid: &str) -> Option<Socket> {
        self.0.read().get(sid).cloned()
    }

    pub fn contains(&self, sid: &str) -> bool {
        self.0.read().get(sid).is_some()
    }

    /// The sockets in `room`, each with its filter there.
    pub fn members_of(&self, room: &str) -> Vec<(Socket, Option<Filter>)> {
        self.0.read().members_of(room)
    }

    pub fn all(&self) -> Vec<Socket> {
        self.0.read().sockets().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.0.read().len()
    }

    /// Call `f` for every socket the target reaches, under the read lock (`f` must not
    /// take the registry's write lock). `filter_key` is matched against subscription
    /// filters; None ignores them.
    pub fn for_each_target(
        &self,
        target: &Target,
        filter_key: Option<&str>,
        f: impl FnMut(&Socket),
    ) {
        self.0.read().for_each_target(target, filter_key, f);
    }

    /// The sockets the target reaches (ignoring filters).
    pub fn targets(&self, target: &Target) -> Vec<Socket> {
        let mut sockets = Vec::new();
        self.for_each_target(target, None, |s| sockets.push(s.clone()));
        sockets
    }

    /// Number of sockets the target reaches (ignoring filters).
    pub fn count(&self, target: &Target) -> usize {
        let mut n = 0;
        self.for_each_target(target, None, |_| n += 1);
        n
    }

    /// The sockets the target reaches join `rooms`; returns their ids.
    pub fn join_target(&self, target: &Target, rooms: &[Room]) -> Vec<Arc<str>> {
        let sids: Vec<Arc<str>> = self.targets(target).iter().map(Socket::id_arc).collect();
        let mut registry = self.0.write();
        for sid in &sids {
            for room in rooms {
                registry.join(sid, room.clone());
            }
        }
        sids
    }

    /// The sockets the target reaches leave `rooms`; returns their ids.
    pub fn leave_target(&self, target: &Target, rooms: &[Room]) -> Vec<Arc<str>> {
        let sids: Vec<Arc<str>> = self.targets(target).iter().map(Socket::id_arc).collect();
        let mut registry = self.0.write();
        for sid in &sids {
            for room in rooms {
                registry.leave(sid, room);
            }
        }
        sids
    }

    /// What listings report of a local socket.
    pub fn info(&self, socket: &Socket) -> SocketInfo {
        SocketInfo {
            id: socket.id().to_string(),
            rooms: self.rooms_of(socket.id()),
            auth: socket.auth().cloned().unwrap_or(Value::Null),
            local: true,
        }
    }

    /// The session of a live socket as recovery keeps it (None without a pid).
    pub fn session_record(&self, sid: &str) -> Option<SessionRecord> {
        let registry = self.0.read();
        let socket = registry.get(sid)?;
        let (rooms, filters) = registry.memberships(sid);
        socket.session_record(rooms, filters)
    }

    /// Register a recovered socket with its rooms and filters.
    pub fn restore(&self, socket: Socket, rooms: Vec<Room>, filters: Vec<(Room, Filter)>) {
        let sid = socket.id_arc();
        let mut registry = self.0.write();
        registry.insert(socket);
        for room in rooms {
            if *room != *sid {
                registry.join(&sid, room);
            }
        }
        for (room, filter) in filters {
            registry.set_filter(&sid, &room, Some(filter));
        }
    }
}
