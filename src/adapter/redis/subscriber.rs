//! The pub/sub side of the cluster: the subscriber task listens on every
//! namespace's channels for other nodes' requests and answers and for what
//! `@socket.io/redis-emitter` publishes; [`fetch_remote_sockets`] is the request
//! side of a socket listing (broadcasts with acknowledgements: `acks.rs`).

use std::sync::Arc;
use std::time::Duration;

use redis::Value as RValue;
use tokio::sync::mpsc;

use super::acks::{answer, on_response};
use super::node::{backoff, Node};
use super::publisher::Command;
use super::reader::{apply_message, deliver};
use super::reply::{items, text};
use super::status::Task;
use super::wire::{self, kind, Message, PubSub};
use crate::socketio::adapter::acks::AckEvent;
use crate::socketio::adapter::LocalNamespace;
use crate::socketio::adapter::SocketInfo;
use crate::socketio::rooms::Target;

/// Ask every other node for its sockets the target reaches.
pub(super) async fn fetch_remote_sockets(
    node: Arc<Node>,
    nsp: String,
    target: Target,
) -> Vec<SocketInfo> {
    let Some(mut conn) = node.cmd_conn() else {
        return Vec::new();
    };
    let public = node.config.public_channel(&nsp);
    let numsub: Result<RValue, _> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&public)
        .query_async(&mut conn)
        .await;
    let subscribers = numsub
        .ok()
        .and_then(|v| items(&v).get(1).and_then(|n| text(n)))
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    let expected = subscribers - 1;
    if expected <= 0 {
        return Vec::new();
    }
    let request_id = format!("{:016x}", rand::random::<u64>());
    let (tx, mut rx) = mpsc::unbounded_channel();
    node.requests.lock().insert(request_id.clone(), tx);
    let payload = wire::encode_pubsub(
        &node.uid,
        &nsp,
        kind::FETCH_SOCKETS,
        wire::fetch_request(&target, &request_id),
    );
    let published: Result<i64, _> = redis::cmd("PUBLISH")
        .arg(&public)
        .arg(payload)
        .query_async(&mut conn)
        .await;
    let mut sockets = Vec::new();
    if published.is_ok() {
        let deadline = tokio::time::Instant::now() + node.config.request_timeout;
        let mut answers = 0;
        while answers < expected {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(batch)) => {
                    sockets.extend(batch);
                    answers += 1;
                }
                _ => break,
            }
        }
    }
    node.requests.lock().remove(&request_id);
    sockets
}

/// Listens on the pub/sub channels of every namespace.
pub(super) async fn subscriber(
    node: Arc<Node>,
    mut new_namespaces: mpsc::UnboundedReceiver<String>,
) {
    use futures_util::StreamExt;
    let mut attempt = 0u32;
    loop {
        if node.closing.is_cancelled() {
            return;
        }
        let pubsub = tokio::select! {
            p = tokio::time::timeout(Duration::from_secs(3), node.client.get_async_pubsub()) => p,
            _ = node.closing.cancelled() => return,
        };
        let pubsub = match pubsub {
            Ok(Ok(p)) => p,
            failed => {
                let e = match failed {
                    Ok(Err(e)) => e,
                    _ => redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connecting to redis timed out",
                    )),
                };
                node.conn_failed(Task::Subscriber, &e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                    _ = node.closing.cancelled() => return,
                }
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed = true;
        for nsp in node.namespace_names() {
            subscribed &= subscribe_namespace(&node, &mut sink, &nsp).await;
        }
        if !subscribed {
            node.conn_failed(Task::Subscriber, &lost_error());
            tokio::time::sleep(backoff(attempt)).await;
            attempt = attempt.saturating_add(1);
            continue;
        }
        attempt = 0;
        node.conn_up(Task::Subscriber);
        loop {
            tokio::select! {
                _ = node.closing.cancelled() => return,
                Some(nsp) = new_namespaces.recv() => {
                    if !subscribe_namespace(&node, &mut sink, &nsp).await {
                        node.conn_failed(Task::Subscriber, &lost_error());
                        break;
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        node.conn_failed(Task::Subscriber, &lost_error());
                        break;
                    };
                    on_pubsub(&node, msg.get_channel_name(), msg.from_pattern(), msg.get_payload_bytes());
                }
            }
        }
    }
}

fn lost_error() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the pub/sub connection was lost",
    ))
}

async fn subscribe_namespace(node: &Node, sink: &mut redis::aio::PubSubSink, nsp: &str) -> bool {
    let config = &node.config;
    let channels = [
        config.public_channel(nsp),
        config.private_channel(nsp, &node.uid),
        config.emitter_request_channel(nsp),
    ];
    // Room channels of @socket.io/redis-emitter: `<prefix>#<nsp>#<room>#`.
    let pattern = format!("{}*", config.public_channel(nsp));
    sink.subscribe(&channels).await.is_ok() && sink.psubscribe(pattern).await.is_ok()
}

fn on_pubsub(node: &Node, channel: &str, from_pattern: bool, payload: &[u8]) {
    let config = &node.config;
    let Some(core) = node.core() else {
        return;
    };
    for nsp in node.namespace_names() {
        let public = config.public_channel(&nsp);
        let private = config.private_channel(&nsp, &node.uid);
        if channel == config.emitter_request_channel(&nsp) {
            let Some(ns) = core.get(&nsp) else {
                return;
            };
            match wire::decode_emitter_request(payload) {
                Ok(message) => apply_message(node, &ns, wire::EMITTER_UID, message),
                Err(e) => node.malformed(&e),
            }
            return;
        }
        let ours = channel == public || channel == private;
        if from_pattern && ours {
            // Also received through the plain subscription.
            return;
        }
        if !(ours || (from_pattern && channel.starts_with(&public))) {
            continue;
        }
        let Some(ns) = core.get(&nsp) else {
            return;
        };
        match wire::decode_pubsub(payload) {
            Ok(PubSub::Emitter { msg, delta, .. }) => {
                deliver(node, &ns, &msg, delta, None);
                if let Some(stats) = node.stats() {
                    stats.cluster_remote_delivery();
                }
            }
            // Other nodes' answers on their private channels match our pattern.
            Ok(PubSub::Cluster { .. }) if from_pattern => {}
            Ok(PubSub::Cluster { uid, message, .. }) if uid != node.uid => {
                on_cluster_pubsub(node, &ns, &uid, message);
            }
            Ok(PubSub::Cluster { .. }) => {}
            Err(e) => node.malformed(&e),
        }
        return;
    }
}

fn on_cluster_pubsub(node: &Node, ns: &Arc<dyn LocalNamespace>, from: &str, message: Message) {
    match message {
        Message::FetchSockets { target, request_id } => {
            let mut sockets = Vec::new();
            sockets.extend(ns.socket_infos(&target));
            node.enqueue(Command::Publish {
                channel: node.config.private_channel(ns.name(), from),
                payload: wire::encode_pubsub(
                    &node.uid,
                    ns.name(),
                    kind::FETCH_SOCKETS_RESPONSE,
                    wire::fetch_response(&request_id, &sockets),
                ),
            });
        }
        Message::FetchSocketsResponse {
            request_id,
            sockets,
        } => {
            if let Some(tx) = node.requests.lock().get(&request_id) {
                let _ = tx.send(sockets);
            }
        }
        Message::Broadcast { meta, msg, delta } => match meta.request_id {
            Some(request_id) => answer(node, &**ns, from, &msg, request_id, meta.timeout_ms),
            None => deliver(node, ns, &msg, delta, None),
        },
        Message::BroadcastClientCount {
            request_id,
            count,
            sids,
        } => on_response(
            node,
            from,
            &request_id,
            AckEvent::Count {
                node: from.to_string(),
                count,
                sockets: sids,
            },
        ),
        Message::BroadcastAck {
            request_id,
            data,
            sid,
        } => on_response(
            node,
            from,
            &request_id,
            AckEvent::Reply {
                socket: sid.map(Arc::from),
                data,
                local: false,
            },
        ),
        other => apply_message(node, ns, from, other),
    }
}
