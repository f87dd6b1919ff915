//! Broadcasts with acknowledgements across nodes, as socket.io's cluster adapter does
//! them (`broadcastWithAck` in `socket.io-adapter`'s `cluster-adapter.ts`), over
//! pub/sub as `@socket.io/redis-streams-adapter` sends them:
//!
//! 1. The requester sends to its own sockets, then publishes the BROADCAST with a
//!    `requestId` and `opts.flags.timeout` on the namespace's public channel
//!    (`<prefix>#<nsp>#`), and asks Redis how many nodes listen there
//!    (`PUBSUB NUMSUB`, as the Node adapter counts servers), one request at a time in
//!    emit order ([`asker`]).
//! 2. Every other node sends the event to its sockets with an ack request, answers
//!    at once with BROADCAST_CLIENT_COUNT on the requester's private channel
//!    (`<prefix>#<nsp>#<uid>#`), then forwards each client's answer as BROADCAST_ACK
//!    until they all came or the timeout passed. swarmcast adds which sockets it
//!    reached (`sids`) and which one answered (`sid`); Node ignores both.
//! 3. The requester completes when every node reported and every client counted
//!    answered, or at the timeout ([`crate::BroadcastAcks`]).
//!
//! Nothing outlives a round's timeout: the requester removes its request id (also when
//! the caller drops the future), and both sides remove the waiters from their sockets.
//! Both sides are bounded (`RedisConfig::max_ack_requests`). An answer for an unknown
//! request (late, or never asked) is counted and dropped; a malformed one is counted as
//! malformed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Value as RValue;
use serde_json::Value;
use tokio::sync::mpsc;

use super::node::Node;
use super::publisher::Command;
use super::reply::{items, text};
use super::wire::{self, kind};
use crate::socketio::adapter::acks::{self, AckEvent, AckSink, Tally};
use crate::socketio::adapter::{
    BroadcastAckError, BroadcastAckFuture, ClusterBroadcast, LocalNamespace,
};
use crate::socketio::namespace::Outgoing;

/// The longest wait for a remote request's answers, whatever timeout it names: a
/// request's waiters never stay longer on this node's sockets.
const MAX_REMOTE_TIMEOUT: Duration = Duration::from_secs(600);

/// Removes a request id from the node's map when the round ends (or is dropped).
struct Registered {
    node: Arc<Node>,
    request_id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.node.ack_requests.lock().remove(&self.request_id);
    }
}

/// The requester's side: send to this node's sockets, ask every other node, collect.
pub(super) fn broadcast_with_ack(
    node: &Arc<Node>,
    nsp: &str,
    ns: &dyn LocalNamespace,
    out: &Outgoing<'_>,
    timeout: Duration,
) -> Result<BroadcastAckFuture, BroadcastAckError> {
    let deadline = Instant::now() + timeout;
    if node.runtime.get().is_none() {
        // Not started: no cluster to ask yet.
        return acks::local_only(ns, out, timeout);
    }
    let msg = ClusterBroadcast::from_outgoing(out).map_err(crate::EmitError::from)?;
    let request_id = format!("{:016x}", rand::random::<u64>());
    let (sink, events) = mpsc::unbounded_channel();
    {
        let mut requests = node.ack_requests.lock();
        let limit = node.config.max_ack_requests;
        if requests.len() >= limit {
            return Err(BroadcastAckError::TooManyPending(limit));
        }
        requests.insert(request_id.clone(), sink.clone());
    }
    let registered = Registered {
        node: node.clone(),
        request_id: request_id.clone(),
    };
    let round = acks::emit_local(ns, out, &sink)?;
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let payload = wire::encode_pubsub(
        &node.uid,
        nsp,
        kind::BROADCAST,
        wire::ack_request(nsp, &msg, &request_id, timeout_ms),
    );
    let ask = Ask {
        nsp: nsp.to_string(),
        payload,
        sink,
    };
    if let Err(unsent) = node.ack_tx.send(ask) {
        // The node stopped: no other node will report.
        let _ = unsent.0.sink.send(AckEvent::Nodes(0));
    }
    let tally = Tally::new(&round, None);
    Ok(Box::pin(async move {
        let acks = acks::collect(events, round, tally, deadline).await;
        drop(registered);
        Ok(acks)
    }))
}

/// A request on its way to the other nodes.
pub(super) struct Ask {
    nsp: String,
    payload: Vec<u8>,
    sink: AckSink,
}

/// The task that publishes this node's requests, one at a time in emit order (so that
/// every node sends one node's broadcasts with acknowledgements to its clients in the
/// order they were made), and tells each collector how many other nodes will report:
/// none when Redis cannot be reached (the round then collects this node's answers).
pub(super) async fn asker(node: Arc<Node>, mut asks: mpsc::UnboundedReceiver<Ask>) {
    loop {
        let ask = tokio::select! {
            ask = asks.recv() => ask,
            _ = node.closing.cancelled() => return,
        };
        let Some(Ask { nsp, payload, sink }) = ask else {
            return;
        };
        if sink.is_closed() {
            continue; // Its round is over already: do not ask late.
        }
        let nodes = ask_cluster(&node, &nsp, payload).await;
        let _ = sink.send(AckEvent::Nodes(nodes));
    }
}

/// `PUBSUB NUMSUB` and `PUBLISH` in one round trip: the other nodes that got the request.
async fn ask_cluster(node: &Node, nsp: &str, payload: Vec<u8>) -> usize {
    let Some(mut conn) = node.cmd_conn() else {
        return 0;
    };
    let public = node.config.public_channel(nsp);
    let reply: Result<(RValue, i64), _> = redis::pipe()
        .cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&public)
        .cmd("PUBLISH")
        .arg(&public)
        .arg(payload)
        .query_async(&mut conn)
        .await;
    match reply {
        Ok((numsub, _)) => items(&numsub)
            .get(1)
            .and_then(|n| text(n))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
            .saturating_sub(1),
        Err(e) => {
            tracing::warn!(error = %e, "broadcast with acknowledgements not sent to the other nodes");
            node.failed(1);
            0
        }
    }
}

/// An answer from another node to one of this node's requests.
pub(super) fn on_response(node: &Node, from: &str, request_id: &str, event: AckEvent) {
    let sink = node.ack_requests.lock().get(request_id).cloned();
    let delivered = sink.is_some_and(|sink| sink.send(event).is_ok());
    if !delivered {
        node.unknown_acks.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            from,
            request_id,
            "an answer to a broadcast with acknowledgements that no request waits for (late?)"
        );
    }
}

/// Ends a remote round on this node: frees its slot in the bound.
struct Slot(Arc<Node>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.ack_rounds.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The responder's side: another node's broadcast with acknowledgements reached this
/// node. Send it to the local sockets it targets, answer with their count, then
/// forward their answers until all came or the request's timeout passed.
pub(super) fn answer(
    node: &Node,
    ns: &dyn LocalNamespace,
    from: &str,
    msg: &ClusterBroadcast,
    request_id: Value,
    timeout_ms: Option<u64>,
) {
    let node = node.me();
    let reply_to = node.config.private_channel(ns.name(), from);
    let publish = |kind: u64, data| {
        node.enqueue(Command::Publish {
            channel: reply_to.clone(),
            payload: wire::encode_pubsub(&node.uid, ns.name(), kind, data),
        });
    };
    let limit = node.config.max_ack_requests;
    if node.ack_rounds.fetch_add(1, Ordering::AcqRel) >= limit {
        node.ack_rounds.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!(
            limit,
            "too many broadcasts with acknowledgements at once: answered that none reached a client here"
        );
        return publish(
            kind::BROADCAST_CLIENT_COUNT,
            wire::client_count(&request_id, &[]),
        );
    }
    let slot = Slot(node.clone());
    let Some(runtime) = node.runtime.get().cloned() else {
        return publish(
            kind::BROADCAST_CLIENT_COUNT,
            wire::client_count(&request_id, &[]),
        );
    };
    let timeout = timeout_ms
        .map_or(node.config.request_timeout, Duration::from_millis)
        .min(MAX_REMOTE_TIMEOUT);
    let deadline = tokio::time::Instant::now() + timeout;
    let (sink, mut events) = mpsc::unbounded_channel();
    let round = msg.with_outgoing(|out| acks::emit_local(ns, out, &sink));
    drop(sink);
    let round = match round {
        Ok(round) => round,
        Err(e) => {
            tracing::warn!(error = %e, "broadcast with acknowledgements from another node not delivered");
            return publish(
                kind::BROADCAST_CLIENT_COUNT,
                wire::client_count(&request_id, &[]),
            );
        }
    };
    let reached = round.reached();
    let sids: Vec<&str> = reached.iter().map(|s| &**s).collect();
    // The count goes first: the answers follow it through the same ordered queue.
    publish(
        kind::BROADCAST_CLIENT_COUNT,
        wire::client_count(&request_id, &sids),
    );
    if reached.is_empty() {
        return;
    }
    let mut left = reached.len();
    let nsp = ns.name().to_string();
    runtime.spawn(async move {
        let _slot = slot;
        while left > 0 {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(AckEvent::Reply {
                    socket: Some(sid),
                    data,
                    ..
                })) => {
                    left -= 1;
                    node.enqueue(Command::Publish {
                        channel: reply_to.clone(),
                        payload: wire::encode_pubsub(
                            &node.uid,
                            &nsp,
                            kind::BROADCAST_ACK,
                            wire::broadcast_ack(&request_id, &data, &sid),
                        ),
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        // Removes the waiters of the sockets that did not answer.
        drop(round);
    });
}
