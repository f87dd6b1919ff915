//! Broadcasts with acknowledgements: one event to many clients, every client's answer
//! collected within a timeout, on this node and (through a cluster adapter) on every
//! other one.
//!
//! The pieces every adapter shares live here: the local round (the packet encoded once
//! with one ack id, a waiter registered on each targeted socket, the waiters removed
//! again when the round ends), the events a collector receives ([`AckEvent`]: a
//! client's reply, a node's count of the clients it reached, how many nodes will
//! report), and the tally that decides when the round is complete and what it reports
//! ([`BroadcastAcks`]). The local adapter feeds the collector from local sockets only;
//! the Redis adapter also from the answers of the other nodes.
//!
//! As in socket.io, a reply is the **first argument** of the client's ack (`null` when
//! it sent none): that is all socket.io's cluster adapters forward between nodes, so
//! every node reports the same shape.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::LocalNamespace;
use crate::engine::SendError;
use crate::socketio::emitter::EmitError;
use crate::socketio::namespace::Outgoing;
use crate::socketio::packet::{self, Payload};
use crate::socketio::socket::Socket;

/// One client's answer to a broadcast with acknowledgements.
#[derive(Debug, Clone, PartialEq)]
pub struct AckReply {
    /// The socket that answered; `None` when its node does not name it (a Node
    /// socket.io server: its cluster adapter forwards the answer only).
    pub socket: Option<String>,
    /// The first argument of the client's ack (`null` when it sent none), in a payload
    /// of one argument with the binary attachments its placeholders refer to.
    pub data: Payload,
    /// Whether the socket is on this node.
    pub local: bool,
}

/// What a broadcast with acknowledgements collected
/// ([`Broadcast::emit_with_ack`](crate::Broadcast::emit_with_ack)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastAcks {
    /// Every answer that came within the timeout, in arrival order.
    pub replies: Vec<AckReply>,
    /// Replies expected: the clients the event was sent to, over this node and every
    /// node that said how many it reached.
    pub expected: usize,
    /// Clients that got the event and did not answer within the timeout (slow, gone, or
    /// not answering), by socket id: this node's and other swarmcast nodes'.
    pub timed_out: Vec<String>,
    /// Clients that did not answer within the timeout on nodes that report only how
    /// many clients they reached, not which (Node socket.io servers).
    pub timed_out_unnamed: usize,
    /// This node's sockets whose outbound queue was full: they did not get the event
    /// (the slow-consumer policy applies to them), and are not expected to answer.
    pub full: Vec<String>,
    /// Other nodes that did not say, within the timeout, how many clients they reached:
    /// their clients' answers may be missing without being counted above.
    pub silent_nodes: usize,
}

impl BroadcastAcks {
    /// Whether every node reported and every client it reached answered in time.
    pub fn is_complete(&self) -> bool {
        self.timed_out.is_empty() && self.timed_out_unnamed == 0 && self.silent_nodes == 0
    }
}

/// Why a broadcast with acknowledgements could not be made at all (a round that times
/// out is not an error: its [`BroadcastAcks`] says who did not answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastAckError {
    /// The event could not be encoded or sent.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// This node already waits for that many broadcasts' acknowledgements (the
    /// cluster adapter's bound, `RedisConfig::max_ack_requests`): try again later.
    #[error("{0} broadcasts already wait for acknowledgements on this node")]
    TooManyPending(usize),
}

/// A broadcast's acknowledgements, once every client answered or the timeout passed.
/// Await it inside the server's runtime (or use
/// [`Broadcast::emit_with_ack_callback`](crate::Broadcast::emit_with_ack_callback)).
pub type BroadcastAckFuture =
    Pin<Box<dyn Future<Output = Result<BroadcastAcks, BroadcastAckError>> + Send>>;

/// What a collector receives.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug)]
pub(crate) enum AckEvent {
    /// A client's answer (already cut to its first argument).
    Reply {
        socket: Option<Arc<str>>,
        data: Payload,
        local: bool,
    },
    /// A node says how many clients it reached (swarmcast nodes also say which).
    Count {
        node: String,
        count: usize,
        sockets: Option<Vec<String>>,
    },
    /// How many other nodes will report a count (known once the cluster was asked).
    Nodes(usize),
}

/// Where the replies of one round go.
pub(crate) type AckSink = mpsc::UnboundedSender<AckEvent>;

/// The first argument of an ack, as broadcasts report it.
pub(crate) fn first_arg(mut payload: Payload) -> Payload {
    let first = if payload.args.is_empty() {
        Value::Null
    } else {
        payload.args.swap_remove(0)
    };
    payload.args = vec![first];
    payload
}

/// Ack ids of broadcasts: one id per broadcast, shared by every socket it reaches, so
/// that the packet is encoded once. They come from one process-wide counter above the
/// range of [`Socket::emit_with_ack`]'s per-socket ids (which start at 0), so the two
/// never meet on one socket; still below 2^53, the integers JavaScript clients parse
/// exactly.
fn next_broadcast_ack_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 32);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The local part of a broadcast with acknowledgements: the sockets that got the event
/// wait for their answer until the round is dropped, which removes their waiters (the
/// timeout, or the caller gave up). Nothing is left behind on a socket.
pub(crate) struct LocalRound {
    id: u64,
    sockets: Vec<Socket>,
    /// Sockets whose queue was full (not sent, not expected).
    pub full: Vec<Arc<str>>,
}

impl LocalRound {
    /// The ids of the sockets the event was sent to.
    pub fn reached(&self) -> Vec<Arc<str>> {
        self.sockets.iter().map(Socket::id_arc).collect()
    }
}

impl Drop for LocalRound {
    fn drop(&mut self) {
        for socket in &self.sockets {
            socket.forget_ack(self.id);
        }
    }
}

/// Encode `out` once with a fresh ack id and send it to every local socket it targets,
/// each with a waiter that forwards its answer to `sink`. Never waits for a slow
/// client: a full queue is not sent to (reported in [`LocalRound::full`], and the
/// slow-consumer policy applies).
pub(crate) fn emit_local(
    ns: &dyn LocalNamespace,
    out: &Outgoing<'_>,
    sink: &AckSink,
) -> Result<LocalRound, EmitError> {
    let id = next_broadcast_ack_id();
    let encoded = packet::encode_event(
        ns.name(),
        out.event,
        Some(id),
        out.attachments,
        out.args,
        None,
    )?;
    ns.admit(encoded.frames.len(), encoded.size())?;
    let mut round = LocalRound {
        id,
        sockets: Vec::new(),
        full: Vec::new(),
    };
    let mut slow = Vec::new();
    for socket in ns.targets(out.target, out.filter_key) {
        // The waiter first: an answer can come before `push_frames` returns.
        socket.expect_ack(id, sink.clone());
        match socket.push_frames(&encoded.frames) {
            Ok(_) => round.sockets.push(socket),
            Err(SendError::QueueFull) if out.volatile => socket.forget_ack(id),
            Err(SendError::QueueFull) => {
                socket.forget_ack(id);
                round.full.push(socket.id_arc());
                slow.push(socket);
            }
            Err(SendError::Closed) => socket.forget_ack(id),
        }
    }
    ns.drop_slow(slow);
    Ok(round)
}

/// The state of one round: who must still report, who answered.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Other nodes that will report a count (None until the cluster was asked).
    nodes: Option<usize>,
    reported: HashSet<String>,
    /// Sockets expected to answer, by id (this node's and swarmcast nodes').
    named: Vec<String>,
    named_set: HashSet<String>,
    /// Clients expected on nodes that do not name them.
    unnamed: usize,
    answered: HashSet<String>,
    unnamed_replies: usize,
    replies: Vec<AckReply>,
    full: Vec<String>,
}

impl Tally {
    /// A tally that starts with this node's round; `nodes`: how many other nodes will
    /// report, when already known (0 without a cluster).
    pub fn new(round: &LocalRound, nodes: Option<usize>) -> Self {
        let mut tally = Self {
            nodes,
            full: round.full.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        };
        tally.expect_named(round.reached().iter().map(|s| s.to_string()));
        tally
    }

    fn expect_named(&mut self, sockets: impl IntoIterator<Item = String>) {
        for sid in sockets {
            if self.named_set.insert(sid.clone()) {
                self.named.push(sid);
            }
        }
    }

    fn expected(&self) -> usize {
        self.named.len() + self.unnamed
    }

    /// Take one event into account.
    pub fn apply(&mut self, event: AckEvent) {
        match event {
            AckEvent::Nodes(n) => self.nodes = Some(n),
            AckEvent::Count {
                node,
                count,
                sockets,
            } => {
                if !self.reported.insert(node) {
                    return; // A node reports once.
                }
                match sockets {
                    Some(sockets) => self.expect_named(sockets),
                    None => self.unnamed = self.unnamed.saturating_add(count),
                }
            }
            AckEvent::Reply {
                socket,
                data,
                local,
            } => {
                match &socket {
                    Some(sid) if !self.answered.insert(sid.to_string()) => return,
                    Some(_) => {}
                    None => self.unnamed_replies += 1,
                }
                self.replies.push(AckReply {
                    socket: socket.map(|s| s.to_string()),
                    data,
                    local,
                });
            }
        }
    }

    /// Every node reported and every client it reached answered.
    pub fn done(&self) -> bool {
        self.nodes.is_some_and(|n| self.reported.len() >= n)
            && self.replies.len() >= self.expected()
    }

    /// The report.
    pub fn finish(self) -> BroadcastAcks {
        let expected = self.expected();
        let silent_nodes = self
            .nodes
            .map_or(0, |n| n.saturating_sub(self.reported.len()));
        let timed_out = self
            .named
            .into_iter()
            .filter(|sid| !self.answered.contains(sid))
            .collect();
        BroadcastAcks {
            replies: self.replies,
            expected,
            timed_out,
            timed_out_unnamed: self.unnamed.saturating_sub(self.unnamed_replies),
            full: self.full,
            silent_nodes,
        }
    }
}

/// Collect a round's events until it is complete or `deadline` passes, then remove the
/// local waiters (dropping `round`) and report.
pub(crate) async fn collect(
    mut events: mpsc::UnboundedReceiver<AckEvent>,
    round: LocalRound,
    mut tally: Tally,
    deadline: Instant,
) -> BroadcastAcks {
    let deadline = tokio::time::Instant::from_std(deadline);
    while !tally.done() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => tally.apply(event),
            // Every sender is gone (nothing more can come), or the time is up.
            Ok(None) | Err(_) => break,
        }
    }
    // Answers that are already here count, even at the deadline.
    while let Ok(event) = events.try_recv() {
        tally.apply(event);
    }
    drop(round);
    tally.finish()
}

/// A broadcast with acknowledgements that reaches only this node's sockets (the local
/// adapter's, and a cluster adapter's when the cluster cannot be asked).
pub(crate) fn local_only(
    ns: &dyn LocalNamespace,
    out: &Outgoing<'_>,
    timeout: Duration,
) -> Result<BroadcastAckFuture, BroadcastAckError> {
    let deadline = Instant::now() + timeout;
    let (sink, events) = mpsc::unbounded_channel();
    let round = emit_local(ns, out, &sink)?;
    drop(sink);
    let tally = Tally::new(&round, Some(0));
    Ok(Box::pin(async move {
        Ok(collect(events, round, tally, deadline).await)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round(sockets: &[&str]) -> Tally {
        let mut tally = Tally {
            nodes: None,
            ..Tally::default()
        };
        tally.expect_named(sockets.iter().map(|s| s.to_string()));
        tally
    }

    fn reply(sid: Option<&str>, v: Value, local: bool) -> AckEvent {
        AckEvent::Reply {
            socket: sid.map(Arc::from),
            data: Payload::new(vec![v]),
            local,
        }
    }

    #[test]
    fn a_round_completes_when_every_node_reported_and_every_client_answered() {
        let mut t = round(&["a1", "a2"]);
        t.apply(reply(Some("a1"), json!(1), true));
        t.apply(reply(Some("a2"), json!(2), true));
        assert!(!t.done(), "the cluster's size is not known yet");
        t.apply(AckEvent::Nodes(2));
        // A Node server's answer may come before its count.
        t.apply(reply(None, json!("n"), false));
        t.apply(AckEvent::Count {
            node: "node".into(),
            count: 1,
            sockets: None,
        });
        assert!(!t.done(), "one node has not reported");
        t.apply(AckEvent::Count {
            node: "b".into(),
            count: 1,
            sockets: Some(vec!["b1".into()]),
        });
        assert!(!t.done(), "b1 has not answered");
        t.apply(reply(Some("b1"), json!(3), false));
        assert!(t.done());
        let acks = t.finish();
        assert!(acks.is_complete(), "{acks:?}");
        assert_eq!(acks.expected, 4);
        assert_eq!(acks.replies.len(), 4);
    }

    #[test]
    fn what_did_not_come_is_reported() {
        let mut t = round(&["a1", "a2"]);
        t.apply(AckEvent::Nodes(3));
        t.apply(reply(Some("a1"), json!(1), true));
        t.apply(AckEvent::Count {
            node: "node".into(),
            count: 3,
            sockets: None,
        });
        t.apply(reply(None, json!(1), false));
        t.apply(AckEvent::Count {
            node: "b".into(),
            count: 1,
            sockets: Some(vec!["b1".into()]),
        });
        // Duplicates count once: a second count from a node, a second answer.
        t.apply(AckEvent::Count {
            node: "b".into(),
            count: 5,
            sockets: Some(vec!["b9".into()]),
        });
        t.apply(reply(Some("a1"), json!(1), true));
        assert!(!t.done());
        let acks = t.finish();
        assert_eq!(acks.timed_out, vec!["a2".to_string(), "b1".to_string()]);
        assert_eq!(acks.timed_out_unnamed, 2);
        assert_eq!(acks.silent_nodes, 1);
        assert_eq!(acks.expected, 6);
        assert_eq!(acks.replies.len(), 2);
        assert!(!acks.is_complete());
    }

    #[test]
    fn an_ack_is_cut_to_its_first_argument() {
        assert_eq!(
            first_arg(Payload::new(vec![json!(1), json!(2)])).args,
            vec![json!(1)]
        );
        assert_eq!(first_arg(Payload::default()).args, vec![Value::Null]);
    }

    #[test]
    fn broadcast_ack_ids_stay_apart_from_socket_ids_and_exact_in_javascript() {
        let id = next_broadcast_ack_id();
        assert!(id >= 1 << 32);
        assert!(id < 1 << 53);
    }
}
