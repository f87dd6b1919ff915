//! The stream reader task: follows the log with `XREAD BLOCK` from where it stood
//! when the node started, and delivers or applies each entry (in ordered mode,
//! this node's own broadcasts too, with their log ids as offsets). Recovering
//! clients are slotted in between two entries (see `recover.rs`).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value as RValue;
use tokio::sync::mpsc;

use super::node::{backoff, Node};
use super::recover::{fail_recoveries, recover_at, sweep, RecoverRequest};
use super::reply::{parse_entries, parse_xread};
use super::wire::{self, kind, Entry, Message, StreamId};
use crate::socketio::adapter::ClusterBroadcast;
use crate::socketio::adapter::LocalNamespace;

/// Follows the stream and delivers; slots recovering clients in between entries.
pub(super) async fn reader(node: Arc<Node>, mut recover_rx: mpsc::Receiver<RecoverRequest>) {
    let mut last: Option<StreamId> = None;
    let mut attempt = 0u32;
    let mut deferred: Vec<RecoverRequest> = Vec::new();
    let mut lost = false;
    'connect: loop {
        if node.closing.is_cancelled() {
            return;
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(node.config.block_time + Duration::from_secs(5)));
        let conn = tokio::select! {
            c = node.client.get_multiplexed_async_connection_with_config(&config) => c,
            _ = node.closing.cancelled() => return,
        };
        let mut conn: MultiplexedConnection = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "stream reader cannot connect");
                lost = true;
                fail_recoveries(&mut deferred);
                tokio::select! {
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                    _ = node.closing.cancelled() => return,
                }
                attempt = attempt.saturating_add(1);
                continue 'connect;
            }
        };
        attempt = 0;
        if std::mem::take(&mut lost) {
            tracing::info!("stream reader reconnected to redis");
            if let Some(stats) = node.stats() {
                stats.cluster_reconnected();
            }
        }
        if last.is_none() {
            // Start at the end of the log, fixed before this node publishes anything.
            let tail: Result<RValue, _> = redis::cmd("XREVRANGE")
                .arg(&node.config.stream_name)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await;
            match tail {
                Ok(v) => {
                    let id = parse_entries(&v)
                        .first()
                        .and_then(|e| StreamId::parse(&e.id))
                        .unwrap_or_default();
                    last = Some(id);
                    let _ = node.reader_ready.send(true);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot read the end of the stream");
                    lost = true;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue 'connect;
                }
            }
        }
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
                        if request.offset > position {
                            // The client saw more than this node delivered so far.
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
                                for entry in parse_xread(&v) {
                                    if let Some(id) = StreamId::parse(&entry.id) {
                                        if last.is_some_and(|l| id <= l) {
                                            continue;
                                        }
                                        process_entry(&node, &entry);
                                        last = Some(id);
                                    }
                                }
                                let position = last.unwrap_or_default();
                                let ready: Vec<RecoverRequest> = {
                                    let (ready, wait) = deferred.drain(..).partition(|r| r.offset <= position);
                                    deferred = wait;
                                    ready
                                };
                                for request in ready {
                                    recover_at(&node, request, position).await;
                                }
                                break;
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "stream reader lost redis");
                                lost = true;
                                continue 'connect;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One log entry: deliver it, apply it, or skip it.
fn process_entry(node: &Node, entry: &Entry) {
    let own = entry.uid == node.uid;
    if own {
        match entry.sc.as_deref() {
            // A state delta of this node: applied like everyone else's.
            Some("s") => {}
            Some(seq) => {
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
