//! [`LocalAdapter`]: everything in this process, the default adapter.
//!
//! A broadcast is encoded once and fanned out to the local sockets. With connection
//! state recovery on, the encode, the offset and the fan-out happen under the replay
//! buffer's lock, which thereby also orders concurrent emits: every socket sees
//! packets in offset order, and a recovering socket is slotted in between two packets
//! exactly.

use std::sync::{Arc, Weak};

use serde_json::Value;

use super::{
    AdapterNode, BoxFuture, LocalNamespace, NamespaceAdapter, Namespaces, Recovered, SessionRecord,
    SocketInfo,
};
use crate::engine::EngineSocket;
use crate::socketio::context::Context;
use crate::socketio::emitter::{EmitError, EmitReport};
use crate::socketio::namespace::Outgoing;
use crate::socketio::recovery::Recovery;
use crate::socketio::rooms::{Room, Target};
use crate::socketio::socket::Socket;
use crate::socketio::state::StateShared;

/// Everything in-process: the default. Broadcasts, rooms, socket listings, keyed state
/// and recovery sessions stay in this server's memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAdapter;

impl From<LocalAdapter> for super::Adapter {
    fn from(adapter: LocalAdapter) -> Self {
        super::Adapter {
            node: Arc::new(adapter),
        }
    }
}

impl AdapterNode for LocalAdapter {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn namespace(&self, _name: &str, ctx: &Context) -> Arc<dyn NamespaceAdapter> {
        Arc::new(LocalNamespaceAdapter {
            recovery: ctx.recovery.clone().map(Recovery::new),
        })
    }

    fn start(&self, _namespaces: Weak<dyn Namespaces>, _runtime: tokio::runtime::Handle) {}

    fn ready(&self) -> BoxFuture<()> {
        Box::pin(std::future::ready(()))
    }

    fn stop(&self) {}

    fn restartable(&self) -> bool {
        true
    }
}

/// The local adapter of one namespace: the replay buffer and the sessions of
/// disconnected sockets, when recovery is on.
struct LocalNamespaceAdapter {
    recovery: Option<Recovery>,
}

impl NamespaceAdapter for LocalNamespaceAdapter {
    fn broadcast(
        &self,
        ns: &dyn LocalNamespace,
        out: &Outgoing<'_>,
    ) -> Result<EmitReport, EmitError> {
        let (report, slow) = match self.recovery.as_ref().filter(|_| !out.volatile) {
            Some(recovery) => {
                let mut buffer = recovery.buffer.lock();
                let offset = buffer.next_offset().to_string();
                let encoded = out.encode(ns.name(), Some(&offset))?;
                ns.admit(encoded.frames.len(), encoded.size())?;
                buffer.push(out.target, &encoded, &recovery.config);
                ns.fan_out(&encoded, out)
            }
            None => {
                let encoded = out.encode(ns.name(), None)?;
                ns.admit(encoded.frames.len(), encoded.size())?;
                ns.fan_out(&encoded, out)
            }
        };
        ns.drop_slow(slow);
        Ok(report)
    }

    fn broadcast_with_ack(
        &self,
        ns: &dyn LocalNamespace,
        out: &Outgoing<'_>,
        timeout: std::time::Duration,
    ) -> Result<super::BroadcastAckFuture, super::BroadcastAckError> {
        super::acks::local_only(ns, out, timeout)
    }

    fn send_snapshot(
        &self,
        ns: &dyn LocalNamespace,
        socket: &Socket,
        out: &Outgoing<'_>,
    ) -> Result<(), EmitError> {
        // A broadcast to the socket's own room: with recovery on, the snapshot gets an
        // offset and a place in the replay buffer like any other packet.
        debug_assert!(out.target.rooms.iter().any(|r| **r == *socket.id()));
        self.broadcast(ns, out).map(|_| ())
    }

    fn sockets_join(&self, ns: &dyn LocalNamespace, target: &Target, rooms: &[Room]) {
        ns.join(target, rooms);
    }

    fn sockets_leave(&self, ns: &dyn LocalNamespace, target: &Target, rooms: &[Room]) {
        ns.leave(target, rooms);
    }

    fn disconnect_sockets(&self, ns: &dyn LocalNamespace, target: &Target, close: bool) {
        ns.disconnect(target, close);
    }

    fn fetch_sockets(
        &self,
        ns: &dyn LocalNamespace,
        target: &Target,
    ) -> BoxFuture<Vec<SocketInfo>> {
        Box::pin(std::future::ready(ns.socket_infos(target)))
    }

    fn session_changed(&self, _ns: &dyn LocalNamespace, _sid: &str) {
        // In-process sessions are taken when the socket leaves: nothing to keep now.
    }

    fn socket_left(&self, session: Option<SessionRecord>, recoverable: bool) {
        if let (Some(recovery), Some(session), true) = (&self.recovery, session, recoverable) {
            recovery.persist(session);
        }
    }

    fn recover(
        &self,
        ns: Arc<dyn LocalNamespace>,
        engine: &EngineSocket,
        pid: &str,
        offset: &str,
        auth: Option<Value>,
    ) -> Recovered {
        let Some(recovery) = &self.recovery else {
            return Recovered::Now(None);
        };
        let Some(mut session) = recovery.take_session(pid) else {
            return Recovered::Now(None);
        };
        // Restored under the buffer's lock: no packet can be emitted between the missed
        // ones and the socket's registration.
        let buffer = recovery.buffer.lock();
        let Some(missed) = buffer.missed(offset, &session.sid, &session.rooms) else {
            return Recovered::Now(None);
        };
        session.auth = auth;
        Recovered::Now(ns.restore(engine, session, &missed))
    }

    fn state_change(
        &self,
        ns: &dyn LocalNamespace,
        map: &StateShared,
        key: &str,
        value: Option<Value>,
    ) -> Result<bool, EmitError> {
        map.change_and_publish(key, value, |out| self.broadcast(ns, out).map(|_| ()))
    }

    fn state_opened(&self, _map: &str) {}
}
