//! Connection state recovery across nodes: a [`RecoverRequest`] waits in the
//! reader until the log reaches the client's offset, then the session is taken
//! from Redis and the entries the client missed are replayed from the log. Also
//! the reader's periodic sweep of requests and ordered broadcasts that waited too
//! long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value as RValue;
use serde_json::Value;
use tokio::sync::oneshot;

use super::node::Node;
use super::reply::parse_entries;
use super::wire::{self, kind, Message, StreamId};
use crate::engine::EngineSocket;
use crate::metrics::RecoveryMiss;
use crate::socketio::adapter::{LocalNamespace, SessionRecord};
use crate::socketio::rooms::Room;
use crate::socketio::socket::Socket;

/// A client asking to recover its session, waiting for the reader.
pub(super) struct RecoverRequest {
    pub(super) ns: Arc<dyn LocalNamespace>,
    pub(super) engine: EngineSocket,
    pub(super) pid: String,
    pub(super) offset: StreamId,
    pub(super) auth: Option<Value>,
    pub(super) reply: oneshot::Sender<Option<Socket>>,
    pub(super) deadline: Instant,
}

/// Count a recovery that starts a fresh session.
pub(super) fn count_miss(node: &Node, why: RecoveryMiss) {
    tracing::debug!(?why, "a client could not recover: fresh session");
    if let Some(stats) = node.stats() {
        stats.cluster_recovery_miss(why);
    }
}

/// After each read and periodically: recover the deferred clients the reader has now
/// passed (once the command connection is up), give up on those that waited too long,
/// and deliver ordered broadcasts the log did not return in time (Redis lost them).
pub(super) async fn sweep(node: &Node, deferred: &mut Vec<RecoverRequest>, position: StreamId) {
    if !deferred.is_empty() {
        let now = Instant::now();
        let connected = node.cmd_conn().is_some();
        for request in std::mem::take(deferred) {
            if connected && request.offset <= position {
                recover_at(node, request, position).await;
            } else if request.deadline <= now {
                count_miss(node, RecoveryMiss::Timeout);
                let _ = request.reply.send(None);
            } else {
                deferred.push(request);
            }
        }
    }
    let overdue: Vec<u64> = node
        .pending
        .lock()
        .iter()
        .filter(|(_, p)| p.since.elapsed() > Duration::from_secs(10))
        .map(|(seq, _)| *seq)
        .collect();
    let mut overdue = overdue;
    overdue.sort_unstable();
    for seq in overdue {
        node.deliver_pending_now(seq);
    }
}

/// Recover a client at log position `position`: its session, every entry after its
/// offset up to `position` that reaches it, then live delivery from `position` on.
pub(super) async fn recover_at(node: &Node, request: RecoverRequest, position: StreamId) {
    let socket = match recover_session(node, &request, position).await {
        Ok(socket) => socket,
        Err(why) => {
            count_miss(node, why);
            None
        }
    };
    let _ = request.reply.send(socket);
}

async fn recover_session(
    node: &Node,
    request: &RecoverRequest,
    position: StreamId,
) -> Result<Option<Socket>, RecoveryMiss> {
    let mut conn = node.cmd_conn().ok_or(RecoveryMiss::Redis)?;
    let key = node.session_key(&request.pid);
    let (raw, _): (Option<Vec<u8>>, i64) = redis::pipe()
        .atomic()
        .cmd("GET")
        .arg(&key)
        .cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|_| RecoveryMiss::Redis)?;
    let session = match wire::decode_session(&raw.ok_or(RecoveryMiss::NoSession)?) {
        Ok(s) => s,
        Err(e) => {
            node.malformed(&e);
            return Err(RecoveryMiss::NoSession);
        }
    };
    let mut rooms: Vec<Room> = vec![session.sid.clone()];
    rooms.extend(session.rooms.iter().cloned());
    let ns = &request.ns;
    let mut missed = Vec::new();
    let mut start = request.offset;
    let mut first = true;
    for _ in 0..100 {
        let reply: RValue = redis::cmd("XRANGE")
            .arg(&node.config.stream_name)
            .arg(start.to_string())
            .arg(position.to_string())
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|_| RecoveryMiss::Redis)?;
        let entries = parse_entries(&reply);
        if first {
            // The client's offset must still be in the log, or packets were trimmed
            // (or lost with Redis's data).
            if entries.first().map(|e| e.id.as_str()) != Some(&request.offset.to_string()) {
                return Err(RecoveryMiss::OffsetGone);
            }
            first = false;
        }
        let count = entries.len();
        for entry in &entries {
            let Some(id) = StreamId::parse(&entry.id) else {
                continue;
            };
            start = id.next();
            if id <= request.offset || entry.nsp != ns.name() || entry.kind != kind::BROADCAST_TEXT
            {
                continue;
            }
            let Ok(Message::Broadcast { msg, meta, .. }) = wire::decode_entry(entry) else {
                continue;
            };
            if msg.volatile || meta.has_packet_id || meta.request_id.is_some() {
                continue;
            }
            if !wire::reaches(&msg.target, &rooms) {
                continue;
            }
            match ns.encode(&msg, Some(&entry.id)) {
                Ok(encoded) => missed.push(encoded),
                Err(e) => tracing::debug!(error = %e, "cannot replay a packet"),
            }
        }
        if count < 1000 || start > position {
            break;
        }
    }
    let session = SessionRecord {
        pid: request.pid.clone(),
        auth: request.auth.clone().or(session.auth),
        ..session
    };
    Ok(ns.clone().restore(&request.engine, session, &missed))
}
