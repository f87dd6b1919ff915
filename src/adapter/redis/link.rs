//! [`NsLink`]: the cluster link of one namespace, the [`ClusterNamespace`] a
//! namespace calls for what must cross nodes. Every call only queues work for the
//! node's tasks (or, for listings and recoveries, returns a future that waits on
//! them), so a namespace never waits on Redis.

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
use crate::adapter::{
    BoxFuture, ClusterBroadcast, ClusterNamespace, SessionRecord, SocketInfo, StateChange,
};
use crate::engine::EngineSocket;
use crate::namespace::Namespace;
use crate::rooms::{Room, Target};
use crate::socket::Socket;

/// The cluster link of one namespace.
pub(super) struct NsLink {
    pub(super) node: Arc<Node>,
    pub(super) name: String,
}

impl ClusterNamespace for NsLink {
    fn ordered(&self) -> bool {
        self.node.config.ordered_delivery
    }

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
        });
    }

    fn sockets_join(&self, target: &Target, rooms: &[Room]) {
        let data = wire::rooms_op_data(target, rooms);
        self.node.entry(&self.name, kind::SOCKETS_JOIN, Some(data));
    }

    fn sockets_leave(&self, target: &Target, rooms: &[Room]) {
        let data = wire::rooms_op_data(target, rooms);
        self.node.entry(&self.name, kind::SOCKETS_LEAVE, Some(data));
    }

    fn disconnect_sockets(&self, target: &Target, close: bool) {
        let data = wire::disconnect_data(target, close);
        self.node
            .entry(&self.name, kind::DISCONNECT_SOCKETS, Some(data));
    }

    fn fetch_sockets(&self, target: &Target) -> BoxFuture<Vec<SocketInfo>> {
        let node = self.node.clone();
        let nsp = self.name.clone();
        let target = target.clone();
        Box::pin(async move { fetch_remote_sockets(node, nsp, target).await })
    }

    fn persist_session(&self, session: SessionRecord, disconnected: bool) {
        let Some(core) = self.node.core() else {
            return;
        };
        let Some(window) = core
            .get(&self.name)
            .and_then(|ns| ns.recovery_config().map(|c| c.max_disconnection_duration))
        else {
            return;
        };
        let px = if disconnected {
            window
        } else {
            // A live socket's session outlives its node by at most this much.
            window + 2 * refresh_interval(window, &self.node.config)
        };
        self.node.enqueue(Command::SetSession {
            key: self.node.session_key(&session.pid),
            value: wire::encode_session(&session),
            px: u64::try_from(px.as_millis()).unwrap_or(u64::MAX).max(1),
        });
    }

    fn drop_session(&self, pid: &str) {
        self.node.enqueue(Command::DelSession {
            key: self.node.session_key(pid),
        });
    }

    fn recover(
        &self,
        ns: Arc<Namespace>,
        engine: EngineSocket,
        pid: String,
        offset: String,
        auth: Option<Value>,
    ) -> BoxFuture<Option<Socket>> {
        let node = self.node.clone();
        Box::pin(async move {
            // Offsets in a cluster are log ids (as the Node adapter checks).
            let offset = StreamId::parse(&offset)?;
            let (reply, answer) = oneshot::channel();
            let request = RecoverRequest {
                ns,
                engine,
                pid,
                offset,
                auth,
                reply,
                deadline: Instant::now() + Duration::from_secs(3),
            };
            node.recover_tx.try_send(request).ok()?;
            tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .ok()?
                .ok()?
        })
    }

    fn state_change(&self, change: StateChange) {
        self.node.enqueue(Command::State {
            nsp: self.name.clone(),
            change,
        });
    }

    fn state_opened(&self, map: &str) {
        if self.node.started.load(Ordering::Acquire) {
            let _ = self.node.load_tx.send((self.name.clone(), map.to_string()));
        }
    }
}
