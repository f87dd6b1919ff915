//! The publisher task: drains the node's bounded queue of [`Command`]s and sends
//! them to Redis in pipelines, on a connection manager it (re)connects with
//! backoff. What Redis does not take is counted as a failure, and what local
//! delivery still owes for it is done here ([`Node::failed_locally`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::Value as RValue;
use tokio::sync::mpsc;

use super::commands::{state_command, xadd_command};
use super::node::{backoff, Node};
use super::reply::text;
use super::wire::{self, kind};
use super::StateChange;
use crate::socketio::adapter::ClusterBroadcast;

/// A queued command for Redis.
pub(super) enum Command {
    Broadcast {
        nsp: String,
        msg: ClusterBroadcast,
        /// Ordered mode: the local delivery waiting for the log.
        seq: Option<u64>,
    },
    Entry {
        nsp: String,
        kind: u64,
        data: Option<String>,
    },
    Publish {
        channel: String,
        payload: Vec<u8>,
    },
    SetSession {
        key: String,
        value: String,
        px: u64,
    },
    DelSession {
        key: String,
    },
    State {
        nsp: String,
        change: StateChange,
    },
}

async fn connect_manager(node: &Node) -> Result<ConnectionManager, redis::RedisError> {
    let fut = node
        .client
        .get_connection_manager_with_config(node.config.manager_config());
    match tokio::time::timeout(Duration::from_secs(3), fut).await {
        Ok(res) => res,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connecting to redis timed out",
        ))),
    }
}

/// Sends queued commands to Redis in pipelines.
pub(super) async fn publisher(node: Arc<Node>, mut rx: mpsc::Receiver<Command>) {
    // Ordered broadcasts need the reader's starting point fixed first.
    let mut reader_ready = node.reader_ready.subscribe();
    // Bounded: with Redis down at startup, commands must start failing (and local
    // delivery go on) soon.
    let _ = tokio::time::timeout(Duration::from_secs(2), reader_ready.wait_for(|r| *r)).await;
    let mut conn: Option<ConnectionManager> = node.cmd_conn();
    let mut next_attempt = Instant::now();
    let mut attempt = 0u32;
    let mut batch: Vec<Command> = Vec::with_capacity(256);
    let mut closing_since: Option<Instant> = None;
    loop {
        batch.clear();
        if closing_since.is_none() {
            tokio::select! {
                received = rx.recv_many(&mut batch, 256) => {
                    if received == 0 {
                        return;
                    }
                }
                _ = node.closing.cancelled() => {
                    closing_since = Some(Instant::now());
                    continue;
                }
            }
        } else {
            // Closing: flush what is queued (the last sessions, ADAPTER_CLOSE), briefly.
            let since = closing_since.unwrap_or_else(Instant::now);
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                if since.elapsed() > Duration::from_millis(300) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            if since.elapsed() > Duration::from_secs(2) {
                return;
            }
        }
        if conn.is_none() && Instant::now() >= next_attempt {
            match connect_manager(&node).await {
                Ok(c) => {
                    *node.cmd.lock() = Some(c.clone());
                    conn = Some(c);
                    attempt = 0;
                }
                Err(e) => {
                    node.publish_outage.failed(&e, 0);
                    next_attempt = Instant::now() + backoff(attempt);
                    attempt = attempt.saturating_add(1);
                }
            }
        }
        match conn.as_mut() {
            Some(c) => send_batch(&node, c, &mut batch).await,
            None => fail_batch(&node, &mut batch, &"no connection to redis"),
        }
    }
}

fn fail_batch(node: &Node, batch: &mut Vec<Command>, error: &dyn std::fmt::Display) {
    node.publish_outage.failed(error, batch.len() as u64);
    node.failed(batch.len() as u64);
    for command in batch.drain(..) {
        node.failed_locally(command);
    }
}

impl Node {
    /// What local delivery still owes for a command Redis did not take.
    pub(super) fn failed_locally(&self, command: Command) {
        match command {
            Command::Broadcast { seq: Some(seq), .. } => self.deliver_pending_now(seq),
            Command::State { nsp, change } => {
                if let Some(ns) = self.namespace(&nsp) {
                    ns.state(&change.map)
                        .deliver_local_change(&*ns, &change.key, change.value);
                }
            }
            _ => {}
        }
    }
}

async fn send_batch(node: &Node, conn: &mut ConnectionManager, batch: &mut Vec<Command>) {
    let config = &node.config;
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for command in batch.iter() {
        match command {
            Command::Broadcast { nsp, msg, seq } => {
                let data = wire::broadcast_data(nsp, msg);
                let sc = seq.map(|s| s.to_string());
                pipe.add_command(xadd_command(
                    config,
                    &node.uid,
                    nsp,
                    kind::BROADCAST,
                    Some(&data),
                    sc.as_deref(),
                ));
            }
            Command::Entry { nsp, kind, data } => {
                pipe.add_command(xadd_command(
                    config,
                    &node.uid,
                    nsp,
                    *kind,
                    data.as_deref(),
                    None,
                ));
            }
            Command::Publish { channel, payload } => {
                pipe.cmd("PUBLISH").arg(channel).arg(payload.as_slice());
            }
            Command::SetSession { key, value, px } => {
                pipe.cmd("SET").arg(key).arg(value).arg("PX").arg(*px);
            }
            Command::DelSession { key } => {
                pipe.cmd("DEL").arg(key);
            }
            Command::State { nsp, change } => {
                pipe.add_command(state_command(config, &node.uid, nsp, change));
            }
        }
    }
    let replies: Vec<RValue> = match pipe.query_async(conn).await {
        Ok(r) => r,
        Err(e) => return fail_batch(node, batch, &e),
    };
    if node.publish_outage.ok() {
        if let Some(stats) = node.stats() {
            stats.cluster_reconnected();
        }
    }
    let mut failures = 0u64;
    for (command, reply) in batch
        .drain(..)
        .zip(replies.iter().map(Some).chain(std::iter::repeat(None)))
    {
        let failed = match reply {
            None => true,
            Some(RValue::ServerError(e)) => {
                tracing::warn!(error = ?e, "redis refused a cluster command");
                true
            }
            Some(_) => false,
        };
        if failed {
            failures += 1;
        }
        match (&command, failed) {
            (Command::Broadcast { seq: Some(seq), .. }, false) => {
                if let Some(p) = node.pending.lock().get_mut(seq) {
                    p.id = reply.and_then(text);
                }
            }
            (_, true) => node.failed_locally(command),
            _ => {}
        }
    }
    if failures > 0 {
        node.failed(failures);
    }
}
