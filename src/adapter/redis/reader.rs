//! The stream reader task: follows the log with `XREAD BLOCK` from where it stood
//! when the node started, and delivers or applies each entry (in ordered mode,
//! this node's own broadcasts too, with their log ids as offsets). Recovering
//! clients are slotted in between two entries (see `recover.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value as RValue;
use tokio::sync::mpsc;

use super::node::{backoff, Node};
use super::publisher::connect;
use super::recover::{recover_at, sweep, RecoverRequest};
use super::reply::{parse_entries, parse_xread, stream_info};
use super::status::{ReaderPosition, Task};
use super::wire::{self, kind, Entry, Message, StreamId};
use crate::socketio::adapter::ClusterBroadcast;
use crate::socketio::adapter::LocalNamespace;

/// Follows the stream and delivers; slots recovering clients in between entries.
pub(super) async fn reader(node: Arc<Node>, mut recover_rx: mpsc::Receiver<RecoverRequest>) {
    let mut last: Option<StreamId> = None;
    let mut attempt = 0u32;
    let mut deferred: Vec<RecoverRequest> = Vec::new();
    // Whether a connection has failed before the starting point was fixed.
    let mut failed_early = false;
    'connect: loop {
        if node.closing.is_cancelled() {
            return;
        }
        let response = node.config.block_time + Duration::from_secs(5);
        let conn = tokio::select! {
            c = connect(&node, response) => c,
            _ = node.closing.cancelled() => return,
        };
        let synced = match conn {
            Ok(mut conn) => match sync_position(&node, &mut conn, &mut last, failed_early).await {
                Ok(()) => Ok(conn),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let conn: MultiplexedConnection = match synced {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "stream reader cannot read the stream");
                failed_early |= last.is_none();
                node.conn_failed(Task::Reader, &e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                    _ = node.closing.cancelled() => return,
                }
                attempt = attempt.saturating_add(1);
                continue 'connect;
            }
        };
        attempt = 0;
        node.conn_up(Task::Reader);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let from = last.unwrap_or_default();
            let mut read_conn = conn.clone();
            let block_ms = u64::try_from(node.config.block_time.as_millis()).unwrap_or(5_000);
            let mut read = redis::cmd("XREAD");
            read.arg("COUNT")
                .arg(node.config.read_count.max(1))
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&node.config.stream_name)
                .arg(from.to_string());
            let mut xread =
                Box::pin(async move { read.query_async::<RValue>(&mut read_conn).await });
            loop {
                tokio::select! {
                    biased;
                    _ = node.closing.cancelled() => return,
                    Some(request) = recover_rx.recv() => {
                        let position = last.unwrap_or_default();
                        if request.offset > position || node.cmd_conn().is_none() {
                            // The client saw more than this node delivered so far, or
                            // the command connection is not back yet.
                            deferred.push(request);
                        } else {
                            recover_at(&node, request, position).await;
                        }
                    }
                    _ = tick.tick() => {
                        sweep(&node, &mut deferred, last.unwrap_or_default()).await;
                    }
                    read = &mut xread => {
                        match read {
                            Ok(v) => {
                                let mut read = 0u64;
                                for entry in parse_xread(&v) {
                                    if let Some(id) = StreamId::parse(&entry.id) {
                                        if last.is_some_and(|l| id <= l) {
                                            continue;
                                        }
                                        process_entry(&node, &entry);
                                        last = Some(id);
                                        read += 1;
                                    }
                                }
                                if let Some(id) = last {
                                    let mut position = node.status.position.lock();
                                    position.id = id;
                                    position.read += read;
                                }
                                sweep(&node, &mut deferred, last.unwrap_or_default()).await;
                                break;
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "stream reader lost redis");
                                node.conn_failed(Task::Reader, &e);
                                continue 'connect;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Fix where the reader stands on a fresh connection, and notice a stream that lost
/// what this node had read (Redis restarted without persistence).
///
/// The first time, the reader starts at the end of the stream, fixed before this node
/// publishes anything. If Redis could not be reached before that (`failed_early`), it
/// starts at the node's start time instead: what other nodes published since (the
/// backlogs of their own outage included) reaches this node's clients too.
async fn sync_position(
    node: &Node,
    conn: &mut MultiplexedConnection,
    last: &mut Option<StreamId>,
    failed_early: bool,
) -> Result<(), redis::RedisError> {
    let info = stream_info(conn, &node.config.stream_name).await?;
    let added = info
        .entries_added
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let mut position = node.status.position.lock();
    match *last {
        None => {
            let mut start = info.last_id;
            if failed_early {
                let ms = node.start_ms.load(Ordering::Relaxed);
                start = start.min(StreamId { ms, seq: 0 });
            }
            *last = Some(start);
            drop(position);
            // Entries between the starting point and the end are still to read.
            let unread = if start < info.last_id {
                count_after(conn, &node.config.stream_name, start).await
            } else {
                0
            };
            let mut position = node.status.position.lock();
            *position = ReaderPosition {
                id: start,
                base: added.unwrap_or(0) - unread,
                read: 0,
            };
        }
        Some(at) => {
            let behind_count = added.is_some_and(|a| a < position.base + position.read as i64);
            if info.last_id < at || behind_count {
                // Everything the new stream holds came after the restart (ids are
                // times), hence after `at`: all of it is still to read.
                *position = ReaderPosition {
                    id: at,
                    base: -(position.read as i64),
                    read: position.read,
                };
                drop(position);
                tracing::warn!(
                    at = %at,
                    "redis came back without the stream entries this node had read (a \
                     restart without persistence?): clients whose last offset is older \
                     get a fresh session when they recover"
                );
                if let Some(stats) = node.stats() {
                    stats.cluster_stream_reset();
                }
            }
        }
    }
    Ok(())
}

/// Entries after `id` (bounded count: used once, when a node starts behind the end).
async fn count_after(conn: &mut MultiplexedConnection, stream: &str, id: StreamId) -> i64 {
    let reply: Result<RValue, _> = redis::cmd("XRANGE")
        .arg(stream)
        .arg(format!("({id}"))
        .arg("+")
        .arg("COUNT")
        .arg(10_000)
        .query_async(conn)
        .await;
    reply.map(|v| parse_entries(&v).len() as i64).unwrap_or(0)
}

/// One log entry: deliver it, apply it, or skip it.
fn process_entry(node: &Node, entry: &Entry) {
    let own = entry.uid == node.uid;
    if !own && entry.uid != wire::EMITTER_UID && !entry.uid.is_empty() {
        // `kind::ADAPTER_CLOSE` (13), as the stream spells it.
        if entry.kind == "13" {
            node.status.peer_gone(&entry.uid);
        } else {
            node.status.peer_seen(&entry.uid);
        }
    }
    if let (false, Some(ps)) = (own, entry.ps) {
        if !node.status.first_time(&entry.uid, ps) {
            return;
        }
    }
    if own {
        match entry.sc.as_deref() {
            // A state delta of this node: applied like everyone else's.
            Some("s") => {}
            Some(seq) => {
                // In order with what an outage delivers at once (see `Node::order`).
                let _order = node.order.lock();
                let pending = seq
                    .parse()
                    .ok()
                    .and_then(|s: u64| node.pending.lock().remove(&s));
                if let Some(p) = pending {
                    if let Some(ns) = node.namespace(&p.nsp) {
                        let offset = ns.recovery_config().is_some().then_some(entry.id.as_str());
                        if let Err(e) = ns.deliver(&p.msg, offset) {
                            tracing::warn!(error = %e, "broadcast not delivered");
                        }
                    }
                }
                return;
            }
            // Delivered locally when it was emitted.
            None => return,
        }
    }
    let Some(ns) = node.namespace(&entry.nsp) else {
        return;
    };
    let message = match wire::decode_entry(entry) {
        Ok(m) => m,
        Err(e) => return node.malformed(&e),
    };
    match message {
        Message::Broadcast { msg, meta, delta } => {
            if meta.request_id.is_some() {
                // Broadcasts with acknowledgements travel by pub/sub; not from a stream.
                return;
            }
            let offset = (ns.recovery_config().is_some() && !msg.volatile && !meta.has_packet_id)
                .then_some(entry.id.as_str());
            deliver(node, &ns, &msg, delta, offset);
            if !own {
                if let Some(stats) = node.stats() {
                    stats.cluster_remote_delivery();
                }
            }
        }
        other => apply_message(node, &ns, &entry.uid, other),
    }
}

/// Deliver a broadcast from the cluster, applying a keyed-state delta first.
pub(super) fn deliver(
    node: &Node,
    ns: &Arc<dyn LocalNamespace>,
    msg: &ClusterBroadcast,
    delta: Option<wire::DeltaInfo>,
    offset: Option<&str>,
) {
    match delta {
        Some(d) => {
            let shared = ns.state(&d.map);
            let gap = shared.apply_cluster_delta(&**ns, d.version, &d.key, d.value, msg, offset);
            if gap {
                let _ = node.load_tx.send((ns.name().to_string(), d.map));
            }
        }
        None => {
            if let Err(e) = ns.deliver(msg, offset) {
                tracing::warn!(error = %e, "cluster broadcast not delivered");
            }
        }
    }
}

/// Room operations, disconnects and heartbeats from another node.
pub(super) fn apply_message(
    node: &Node,
    ns: &Arc<dyn LocalNamespace>,
    from: &str,
    message: Message,
) {
    match message {
        Message::SocketsJoin { target, rooms } => ns.join(&target, &rooms),
        Message::SocketsLeave { target, rooms } => ns.leave(&target, &rooms),
        Message::DisconnectSockets { target, close } => ns.disconnect(&target, close),
        Message::InitialHeartbeat if from != node.uid => {
            node.entry(ns.name(), kind::HEARTBEAT, None);
        }
        _ => {}
    }
}
