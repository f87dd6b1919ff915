//! The publisher task: takes the node's [`Command`]s into its [`Outbox`] and sends
//! them to Redis in pipelines, in order, on a connection it (re)connects with
//! backoff. While Redis is away the outbox keeps them (bounded in bytes) and they go
//! out, in order, when it returns, after the sessions of the live sockets (which
//! Redis may have lost). What Redis refuses is counted as a failure, and what local
//! delivery still owes for it is done here ([`Node::failed_locally`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::Value as RValue;
use tokio::sync::mpsc;

use super::commands::{state_command, xadd_command};
use super::node::{backoff, Node};
use super::outbox::Outbox;
use super::reply::{parse_entries, text};
use super::status::Task;
use super::wire::{self, kind, StreamId};
use super::StateChange;
use crate::socketio::adapter::ClusterBroadcast;

/// A queued command for Redis.
#[derive(Clone)]
pub(super) enum Command {
    Broadcast {
        nsp: String,
        msg: ClusterBroadcast,
        /// Ordered mode: the local delivery waiting for the log.
        seq: Option<u64>,
        /// Publish sequence, given by the outbox.
        ps: Option<u64>,
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
        /// The session of a live socket (re-sent after every reconnection anyway).
        live: bool,
    },
    DelSession {
        key: String,
    },
    State {
        nsp: String,
        change: StateChange,
    },
}

/// A fresh command connection. `pub(super)`: the reader opens its own the same way.
pub(super) async fn connect(
    node: &Node,
    response: Duration,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let config = node.config.connection_config(response);
    let fut = node
        .client
        .get_multiplexed_async_connection_with_config(&config);
    match tokio::time::timeout(Duration::from_secs(3), fut).await {
        Ok(res) => res,
        Err(_) => Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connecting to redis timed out",
        ))),
    }
}

/// Commands per pipeline.
const BATCH: usize = 256;

/// Broadcasts Redis acknowledged lately. Redis can lose what it acknowledged (a crash
/// without persistence, or with `appendfsync everysec`, right after): when it comes
/// back without them, they go again, before the backlog (readers that had read them
/// skip them by their publish sequence).
#[derive(Default)]
struct Recent {
    items: VecDeque<(StreamId, Instant, Command)>,
}

impl Recent {
    const MAX: usize = 10_000;
    const AGE: Duration = Duration::from_secs(10);

    fn keep(&mut self, id: StreamId, command: Command) {
        self.items.push_back((id, Instant::now(), command));
        while self.items.len() > Self::MAX
            || self
                .items
                .front()
                .is_some_and(|(_, t, _)| t.elapsed() > Self::AGE)
        {
            self.items.pop_front();
        }
    }

    /// The broadcasts a Redis that came back no longer holds.
    async fn lost(&mut self, conn: &mut MultiplexedConnection, stream: &str) -> Vec<Command> {
        let Some(newest) = self.items.back().map(|(id, _, _)| *id) else {
            return Vec::new();
        };
        let range = |cmd: &str, from: String, to: String| {
            let mut c = redis::cmd(cmd);
            c.arg(stream).arg(from).arg(to).arg("COUNT").arg(1);
            c
        };
        let present: Result<RValue, _> = range("XRANGE", newest.to_string(), newest.to_string())
            .query_async(conn)
            .await;
        match present {
            Ok(v) if parse_entries(&v).is_empty() => {}
            _ => return Vec::new(),
        }
        // The newest entry Redis kept from before.
        let kept: Result<RValue, _> = range("XREVRANGE", newest.to_string(), "-".into())
            .query_async(conn)
            .await;
        let Ok(kept) = kept else {
            return Vec::new();
        };
        let kept = parse_entries(&kept)
            .first()
            .and_then(|e| StreamId::parse(&e.id))
            .unwrap_or_default();
        let lost: Vec<Command> = self
            .items
            .drain(..)
            .filter(|(id, _, _)| *id > kept)
            .map(|(_, _, mut command)| {
                if let Command::Broadcast { seq, .. } = &mut command {
                    // Delivered here already (when the outage began).
                    *seq = None;
                }
                command
            })
            .collect();
        if !lost.is_empty() {
            tracing::warn!(
                n = lost.len(),
                "redis came back without broadcasts it had acknowledged: publishing them again"
            );
        }
        lost
    }
}

/// Sends queued commands to Redis in pipelines; keeps them through outages.
pub(super) async fn publisher(node: Arc<Node>, mut rx: mpsc::Receiver<Command>) {
    let mut outbox = Outbox::new(node.config.outage_buffer_bytes, node.config.outage_policy);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut attempt = 0u32;
    let mut next_attempt = Instant::now();
    // Messages that waited out an outage and are still to go (for the counter).
    let mut backlog = 0usize;
    let mut incoming: Vec<Command> = Vec::with_capacity(BATCH);
    let mut recent = Recent::default();
    let mut closing_since: Option<Instant> = None;
    loop {
        if let Some(since) = closing_since {
            // Closing: flush what is queued (the last sessions, ADAPTER_CLOSE), briefly.
            while let Ok(c) = rx.try_recv() {
                outbox.push(&node, c, conn.is_some());
            }
            if outbox.is_empty() || conn.is_none() || since.elapsed() > Duration::from_secs(2) {
                return;
            }
        }
        if conn.is_none() && Instant::now() >= next_attempt {
            match connect(&node, node.config.response_timeout).await {
                Ok(mut c) => {
                    let lost = recent.lost(&mut c, &node.config.stream_name).await;
                    outbox.push_front(lost);
                    *node.cmd.lock() = Some(c.clone());
                    conn = Some(c);
                    attempt = 0;
                    backlog = outbox.len();
                    node.conn_up(Task::Publisher);
                    // Redis may have lost them (a restart without persistence): the
                    // sessions of live sockets first, so that their clients can
                    // recover on another node even if this one dies now.
                    outbox.push_front(node.live_sessions());
                }
                Err(e) => {
                    node.conn_failed(Task::Publisher, &e);
                    next_attempt = Instant::now() + backoff(attempt);
                    attempt = attempt.saturating_add(1);
                }
            }
        }
        if let (Some(c), false) = (conn.as_mut(), outbox.is_empty()) {
            let n = outbox.len().min(BATCH);
            let sent = send_batch(&node, c, &mut outbox, n, &mut recent).await;
            let published = match sent {
                Ok(published) => published,
                Err((published, e)) => {
                    conn = None;
                    *node.cmd.lock() = None;
                    node.conn_failed(Task::Publisher, &e);
                    next_attempt = Instant::now() + backoff(0);
                    attempt = 1;
                    published
                }
            };
            let late = published.min(backlog);
            backlog -= late;
            if late > 0 {
                if let Some(stats) = node.stats() {
                    stats.cluster_outage_published(late as u64);
                }
            }
            outbox.gauges(&node);
            continue;
        }
        if closing_since.is_some() {
            continue;
        }
        let reconnect_at = tokio::time::Instant::from_std(next_attempt);
        tokio::select! {
            received = rx.recv_many(&mut incoming, BATCH) => {
                if received == 0 {
                    return;
                }
                for c in incoming.drain(..) {
                    outbox.push(&node, c, conn.is_some());
                }
                outbox.gauges(&node);
            }
            _ = tokio::time::sleep_until(reconnect_at), if conn.is_none() => {}
            _ = node.reconnect.notified(), if conn.is_some() => {
                // Another task lost Redis: is this connection still alive?
                if let Some(c) = conn.as_mut() {
                    let pong: Result<String, _> = redis::cmd("PING").query_async(c).await;
                    if let Err(e) = pong {
                        conn = None;
                        *node.cmd.lock() = None;
                        node.conn_failed(Task::Publisher, &e);
                        next_attempt = Instant::now() + backoff(0);
                        attempt = 1;
                    }
                }
            }
            _ = node.closing.cancelled() => {
                closing_since = Some(Instant::now());
            }
        }
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

    /// The sessions of every live local socket, to write again.
    pub(super) fn live_sessions(&self) -> Vec<Command> {
        let Some(core) = self.core() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ns in core.all() {
            if ns.recovery_config().is_none() {
                continue;
            }
            for session in ns.session_records() {
                if let Some(command) = self.session_command(ns.name(), session, false) {
                    out.push(command);
                }
            }
        }
        out
    }
}

/// Server errors that mean "not now" for the whole connection (Redis loading its data
/// after a restart, a replica after a failover, credentials revoked): the batch stays
/// in the outbox from that command on, and the connection is dropped.
fn retry_later(e: &redis::ServerError) -> bool {
    matches!(
        e.code(),
        "LOADING" | "READONLY" | "MASTERDOWN" | "TRYAGAIN" | "NOAUTH" | "WRONGPASS" | "NOPERM"
    )
}

/// Send the first `n` commands of the outbox. Ok: how many went (all); Err: how many
/// went before the connection failed (those left the outbox; the rest stay).
async fn send_batch(
    node: &Node,
    conn: &mut MultiplexedConnection,
    outbox: &mut Outbox,
    n: usize,
    recent: &mut Recent,
) -> Result<usize, (usize, redis::RedisError)> {
    let config = &node.config;
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for command in outbox.front(n) {
        match command {
            Command::Broadcast { nsp, msg, seq, ps } => {
                let data = wire::broadcast_data(nsp, msg);
                let sc = seq.map(|s| s.to_string());
                pipe.add_command(xadd_command(
                    config,
                    &node.uid,
                    nsp,
                    kind::BROADCAST,
                    Some(&data),
                    sc.as_deref(),
                    *ps,
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
                    None,
                ));
            }
            Command::Publish { channel, payload } => {
                pipe.cmd("PUBLISH").arg(channel).arg(payload.as_slice());
            }
            Command::SetSession { key, value, px, .. } => {
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
    // A pipeline that fails as a whole stays in the outbox and goes again on the next
    // connection: Redis restarted (what it had executed is gone with it, unless it
    // persisted its last second), or the link broke (rare: at-least-once then).
    let replies: Vec<RValue> = pipe.query_async(conn).await.map_err(|e| (0, e))?;
    let stop = replies.iter().position(|r| match r {
        RValue::ServerError(e) => retry_later(e),
        _ => false,
    });
    let done = stop.unwrap_or(n).min(n);
    let batch = outbox.pop(done);
    let mut failures = 0u64;
    for (command, reply) in batch
        .into_iter()
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
            (Command::Broadcast { seq, .. }, false) => {
                let id = reply.and_then(text);
                if let Some(seq) = seq {
                    if let Some(p) = node.pending.lock().get_mut(seq) {
                        p.id = id.clone();
                    }
                }
                if let Some(id) = id.as_deref().and_then(StreamId::parse) {
                    recent.keep(id, command);
                }
            }
            (_, true) => node.failed_locally(command),
            _ => {}
        }
    }
    if failures > 0 {
        node.failed(failures);
    }
    match stop.and_then(|i| replies.get(i)) {
        Some(RValue::ServerError(e)) => Err((
            done,
            redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis cannot take writes now",
                format!("{}: {}", e.code(), e.details().unwrap_or_default()),
            )),
        )),
        _ => Ok(done),
    }
}
