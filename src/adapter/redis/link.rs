//! [`NsLink`]: the Redis adapter of one namespace, the [`NamespaceAdapter`] a
//! namespace calls for everything that reaches a set of sockets. It does the local part
//! through the namespace's narrow [`LocalNamespace`] face and queues the rest for the
//! node's tasks (or, for listings and recoveries, returns a future that waits on them),
//! so a namespace never waits on Redis.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;

use super::node::{Node, Pending};
use super::publisher::Command;
use super::recover::RecoverRequest;
use super::subscriber::fetch_remote_sockets;
use super::ticker::refresh_interval;
use super::wire::{self, kind, StreamId};
use super::StateChange;
use crate::engine::EngineSocket;
use crate::socketio::adapter::{
    BoxFuture, BroadcastAckError, BroadcastAckFuture, ClusterBroadcast, LocalNamespace,
    NamespaceAdapter, Recovered, SessionRecord, SocketInfo,
};
use crate::socketio::emitter::{EmitError, EmitReport};
use crate::socketio::namespace::Outgoing;
use crate::socketio::rooms::{Room, Target};
use crate::socketio::socket::Socket;
use crate::socketio::state::StateShared;

/// The Redis adapter of one namespace.
pub(super) struct NsLink {
    pub(super) node: Arc<Node>,
    pub(super) name: String,
    /// Whether connection state recovery is on (sessions and offsets go through Redis).
    pub(super) recovery: bool,
}

impl NsLink {
    /// Append a broadcast to the log. In ordered mode this node delivers it when the log
    /// returns it (or late, without the log, when Redis does not answer in time).
    fn publish(&self, msg: ClusterBroadcast, ordered: bool) {
        let seq = ordered.then(|| {
            let seq = self.node.next_seq.fetch_add(1, Ordering::Relaxed);
            self.node.pending.lock().insert(
                seq,
                Pending {
                    nsp: self.name.clone(),
                    msg: msg.clone(),
                    since: Instant::now(),
                    id: None,
                },
            );
            seq
        });
        self.node.enqueue(Command::Broadcast {
            nsp: self.name.clone(),
            msg,
            seq,
            ps: None,
        });
    }
}

impl NamespaceAdapter for NsLink {
    /// The arguments are serialised once, for the local encoding and for the cluster
    /// message. With recovery on (and ordered delivery), a non-volatile broadcast is
    /// delivered here too only once the shared log has ordered it: its offset is the
    /// log id, the same on every node; the report then counts the local sockets it
    /// targets now. While Redis is away (the log cannot return it), it is delivered
    /// here at once, without an offset, after every one still waiting for the log, and
    /// kept for the other nodes in the outage buffer.
    fn broadcast(
        &self,
        ns: &dyn LocalNamespace,
        out: &Outgoing<'_>,
    ) -> Result<EmitReport, EmitError> {
        let msg = ClusterBroadcast::from_outgoing(out)?;
        if self.recovery && !out.volatile && self.node.config.ordered_delivery {
            // Refuse what cannot be encoded or held now rather than in the log reader.
            crate::socketio::packet::check_event_name(out.event)?;
            let attachments: usize = msg.attachments.iter().map(|a| a.len()).sum();
            // The header and the name's quotes: a few dozen bytes at most.
            let text = 64 + msg.event.len() + msg.tail.len();
            ns.admit(1 + msg.attachments.len(), text + attachments)?;
            if self.node.status.degraded() {
                let _order = self.node.order.lock();
                self.node.flush_pending_locked();
                let report = ns.deliver(&msg, None)?;
                // Queued under the lock: the log gets them in local delivery order.
                self.publish(msg, false);
                return Ok(report);
            }
            let report = EmitReport {
                delivered: ns.count(out.target),
                ..EmitReport::default()
            };
            self.publish(msg, true);
            return Ok(report);
        }
        let report = ns.deliver(&msg, None)?;
        self.publish(msg, false);
        Ok(report)
    }

    fn broadcast_with_ack(
        &self,
        ns: &dyn LocalNamespace,
        out: &Outgoing<'_>,
        timeout: Duration,
    ) -> Result<BroadcastAckFuture, BroadcastAckError> {
        super::acks::broadcast_with_ack(&self.node, &self.name, ns, out, timeout)
    }

    fn send_snapshot(
        &self,
        ns: &dyn LocalNamespace,
        socket: &Socket,
        out: &Outgoing<'_>,
    ) -> Result<(), EmitError> {
        // Straight to the socket: through the log it could come after deltas this node
        // delivers meanwhile.
        ns.send_direct(socket, out)
    }

    fn sockets_join(&self, ns: &dyn LocalNamespace, target: &Target, rooms: &[Room]) {
        ns.join(target, rooms);
        let data = wire::rooms_op_data(target, rooms);
        self.node.entry(&self.name, kind::SOCKETS_JOIN, Some(data));
    }

    fn sockets_leave(&self, ns: &dyn LocalNamespace, target: &Target, rooms: &[Room]) {
        ns.leave(target, rooms);
        let data = wire::rooms_op_data(target, rooms);
        self.node.entry(&self.name, kind::SOCKETS_LEAVE, Some(data));
    }

    fn disconnect_sockets(&self, ns: &dyn LocalNamespace, target: &Target, close: bool) {
        ns.disconnect(target, close);
        let data = wire::disconnect_data(target, close);
        self.node
            .entry(&self.name, kind::DISCONNECT_SOCKETS, Some(data));
    }

    fn fetch_sockets(
        &self,
        ns: &dyn LocalNamespace,
        target: &Target,
    ) -> BoxFuture<Vec<SocketInfo>> {
        let mut sockets = ns.socket_infos(target);
        let node = self.node.clone();
        let nsp = self.name.clone();
        let target = target.clone();
        Box::pin(async move {
            sockets.extend(fetch_remote_sockets(node, nsp, target).await);
            sockets
        })
    }

    fn session_changed(&self, ns: &dyn LocalNamespace, sid: &str) {
        // Keep the shared copy of a live socket's session up to date (rooms, filters),
        // so that another node can recover it even if this one dies without a goodbye.
        if !self.recovery {
            return;
        }
        if let Some(session) = ns.session_record(sid) {
            self.node.persist_session(&self.name, session, false);
        }
    }

    fn socket_left(&self, session: Option<SessionRecord>, recoverable: bool) {
        let Some(session) = session else {
            return;
        };
        if recoverable && self.recovery {
            self.node.persist_session(&self.name, session, true);
        } else {
            self.node.enqueue(Command::DelSession {
                key: self.node.session_key(&session.pid),
            });
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
        // Offsets in a cluster are log ids (as the Node adapter checks).
        let (true, Some(offset)) = (self.recovery, StreamId::parse(offset)) else {
            return Recovered::Now(None);
        };
        let node = self.node.clone();
        let (reply, answer) = oneshot::channel();
        let request = RecoverRequest {
            ns,
            engine: engine.clone(),
            pid: pid.to_string(),
            offset,
            auth,
            reply,
            deadline: Instant::now() + Duration::from_secs(3),
        };
        if node.recover_tx.try_send(request).is_err() {
            super::recover::count_miss(&node, crate::metrics::RecoveryMiss::Timeout);
            return Recovered::Now(None);
        }
        Recovered::Later(Box::pin(async move {
            tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .ok()?
                .ok()?
        }))
    }

    fn state_change(
        &self,
        ns: &dyn LocalNamespace,
        map: &StateShared,
        key: &str,
        value: Option<Value>,
    ) -> Result<bool, EmitError> {
        // The shared store orders the change and gives it its version; the delta comes
        // back through the log to every node, this one included. Until then this node
        // already reads its own write.
        // While Redis is away this node's subscribers get the change at once (and once
        // more, with its cluster version, when the log returns it after the outage).
        let existed = map.set_local_copy(key, value.clone());
        if self.node.status.degraded() {
            map.deliver_local_change(ns, key, value.clone());
        }
        self.node.enqueue(Command::State {
            nsp: self.name.clone(),
            change: StateChange {
                map: map.name().to_string(),
                key: key.to_string(),
                value,
            },
        });
        Ok(existed)
    }

    fn state_opened(&self, map: &str) {
        if self.node.started.load(Ordering::Acquire) {
            let _ = self.node.load_tx.send((self.name.clone(), map.to_string()));
        }
    }
}

impl Node {
    /// Keep a session for recovery: `disconnected` ones expire after the recovery
    /// window; live ones are kept (and refreshed) while the socket lives.
    pub(super) fn persist_session(&self, nsp: &str, session: SessionRecord, disconnected: bool) {
        if let Some(command) = self.session_command(nsp, session, disconnected) {
            self.enqueue(command);
        }
    }

    /// The SET of a session (None when the namespace has no recovery).
    pub(super) fn session_command(
        &self,
        nsp: &str,
        session: SessionRecord,
        disconnected: bool,
    ) -> Option<Command> {
        let window = self
            .namespace(nsp)
            .and_then(|ns| ns.recovery_config().map(|c| c.max_disconnection_duration))?;
        let px = if disconnected {
            window
        } else {
            // A live socket's session outlives its node by at most this much.
            window + 2 * refresh_interval(window, &self.config)
        };
        Some(Command::SetSession {
            key: self.session_key(&session.pid),
            value: wire::encode_session(&session),
            px: u64::try_from(px.as_millis()).unwrap_or(u64::MAX).max(1),
            live: !disconnected,
        })
    }
}
