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

pub(super) fn fail_recoveries(deferred: &mut Vec<RecoverRequest>) {
    for request in deferred.drain(..) {
        let _ = request.reply.send(None);
    }
}

/// Periodic: give up on recoveries that waited too long, and deliver ordered
/// broadcasts the log did not return in time (Redis lost them).
pub(super) async fn sweep(node: &Node, deferred: &mut Vec<RecoverRequest>, _position: StreamId) {
    let now = Instant::now();
    let (expired, wait): (Vec<_>, Vec<_>) = deferred.drain(..).partition(|r| r.deadline <= now);
    *deferred = wait;
    for request in expired {
        let _ = request.reply.send(None);
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
    let socket = recover_session(node, &request, position).await;
    let _ = request.reply.send(socket);
}

async fn recover_session(
    node: &Node,
    request: &RecoverRequest,
    position: StreamId,
) -> Option<Socket> {
    let mut conn = node.cmd_conn()?;
    let key = node.session_key(&request.pid);
    let (raw, _): (Option<Vec<u8>>, i64) = redis::pipe()
        .atomic()
        .cmd("GET")
        .arg(&key)
        .cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .ok()?;
    let session = match wire::decode_session(&raw?) {
        Ok(s) => s,
        Err(e) => {
            node.malformed(&e);
            return None;
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
            .ok()?;
        let entries = parse_entries(&reply);
        if first {
            // The client's offset must still be in the log, or packets were trimmed.
            if entries.first().map(|e| e.id.as_str()) != Some(&request.offset.to_string()) {
                return None;
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
    ns.clone().restore(&request.engine, session, &missed)
}
