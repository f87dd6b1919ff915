//! [`Node`]: the state one server process shares among its namespace links and
//! background tasks (queues, pending ordered broadcasts, outstanding requests, the
//! command connection), its [`AdapterNode`] side (start, ready, stop), and the
//! startup that announces the node and loads its shared state. The tasks
//! themselves live in their own files.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::acks::{asker, Ask};
use super::config::RedisConfig;
use super::link::NsLink;
use super::loader::{load_map, loader};
use super::publisher::{publisher, Command};
use super::reader::reader;
use super::recover::RecoverRequest;
use super::status::{Status, Task};
use super::subscriber::subscriber;
use super::ticker::ticker;
use super::wire::{self, kind};
use crate::metrics::{ClusterGauge, Stats};
use crate::socketio::adapter::acks::AckSink;
use crate::socketio::adapter::{
    AdapterNode, BoxFuture, ClusterBroadcast, LocalNamespace, NamespaceAdapter, Namespaces,
    Readiness, SocketInfo,
};
use crate::socketio::context::Context;

/// An ordered broadcast of this node waiting for the log.
pub(super) struct Pending {
    pub(super) nsp: String,
    pub(super) msg: ClusterBroadcast,
    pub(super) since: Instant,
    /// The log id, once Redis answered the XADD.
    pub(super) id: Option<String>,
}

/// Reconnection delays: 50 ms doubling to 500 ms, so that a node notices Redis back
/// (and `/readyz` flips) within a second.
pub(super) fn backoff(attempt: u32) -> Duration {
    let ms = 50u64.saturating_mul(1u64 << attempt.min(4));
    Duration::from_millis(ms.min(500))
}

pub(super) struct Node {
    this: Weak<Node>,
    pub(super) config: RedisConfig,
    pub(super) client: redis::Client,
    pub(super) uid: String,
    tx: mpsc::Sender<Command>,
    rx: Mutex<Option<mpsc::Receiver<Command>>>,
    pub(super) recover_tx: mpsc::Sender<RecoverRequest>,
    recover_rx: Mutex<Option<mpsc::Receiver<RecoverRequest>>>,
    sub_tx: mpsc::UnboundedSender<String>,
    sub_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    pub(super) load_tx: mpsc::UnboundedSender<(String, String)>,
    load_rx: Mutex<Option<mpsc::UnboundedReceiver<(String, String)>>>,
    pub(super) started: AtomicBool,
    pub(super) closing: CancellationToken,
    stats: OnceLock<Arc<Stats>>,
    core: OnceLock<Weak<dyn Namespaces>>,
    pub(super) pending: Mutex<HashMap<u64, Pending>>,
    pub(super) next_seq: AtomicU64,
    pub(super) requests: Mutex<HashMap<String, mpsc::UnboundedSender<Vec<SocketInfo>>>>,
    /// This node's broadcasts with acknowledgements waiting for the other nodes, by
    /// request id (at most `max_ack_requests`; each removed at its timeout).
    pub(super) ack_requests: Mutex<HashMap<String, AckSink>>,
    /// Other nodes' broadcasts with acknowledgements whose answers this node forwards.
    pub(super) ack_rounds: AtomicUsize,
    /// Answers to broadcasts with acknowledgements that came for no waiting request
    /// (late, after the timeout, or never asked).
    pub(super) unknown_acks: AtomicU64,
    /// The server's runtime, once started (tasks spawned from other threads).
    pub(super) runtime: OnceLock<tokio::runtime::Handle>,
    /// This node's broadcasts with acknowledgements, to the task that publishes them.
    pub(super) ack_tx: mpsc::UnboundedSender<Ask>,
    ack_rx: Mutex<Option<mpsc::UnboundedReceiver<Ask>>>,
    /// The command connection, while the publisher holds a live one.
    pub(super) cmd: Mutex<Option<MultiplexedConnection>>,
    namespaces: Mutex<Vec<String>>,
    ready: watch::Sender<bool>,
    pub(super) status: Status,
    /// Tells the publisher its connection is probably dead (another task saw Redis go).
    pub(super) reconnect: Notify,
    /// Orders this node's local deliveries of its own ordered broadcasts when some are
    /// delivered from the log (the reader) and others at once (during an outage).
    pub(super) order: Mutex<()>,
    /// Wall-clock ms when the node started: where its reader starts when Redis was
    /// unreachable then (see `reader.rs`).
    pub(super) start_ms: AtomicU64,
}

impl Node {
    pub(super) fn new(config: RedisConfig, client: redis::Client) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(16));
        let (recover_tx, recover_rx) = mpsc::channel(4096);
        let (sub_tx, sub_rx) = mpsc::unbounded_channel();
        let (load_tx, load_rx) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        Arc::new_cyclic(|this| Self {
            this: this.clone(),
            uid: format!("{:016x}", rand::random::<u64>()),
            config,
            client,
            tx,
            rx: Mutex::new(Some(rx)),
            recover_tx,
            recover_rx: Mutex::new(Some(recover_rx)),
            sub_tx,
            sub_rx: Mutex::new(Some(sub_rx)),
            load_tx,
            load_rx: Mutex::new(Some(load_rx)),
            started: AtomicBool::new(false),
            closing: CancellationToken::new(),
            stats: OnceLock::new(),
            core: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(1),
            requests: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
            ack_rounds: AtomicUsize::new(0),
            unknown_acks: AtomicU64::new(0),
            runtime: OnceLock::new(),
            ack_tx,
            ack_rx: Mutex::new(Some(ack_rx)),
            cmd: Mutex::new(None),
            namespaces: Mutex::new(Vec::new()),
            ready: watch::channel(false).0,
            status: Status::new(),
            reconnect: Notify::new(),
            order: Mutex::new(()),
            start_ms: AtomicU64::new(0),
        })
    }

    pub(super) fn stats(&self) -> Option<&Arc<Stats>> {
        self.stats.get()
    }

    pub(super) fn failed(&self, n: u64) {
        if let Some(stats) = self.stats() {
            stats.cluster_publish_failed(n);
        }
    }

    pub(super) fn malformed(&self, error: &wire::Malformed) {
        tracing::debug!(%error, "dropped a cluster message");
        if let Some(stats) = self.stats() {
            stats.cluster_malformed();
        }
    }

    /// The namespaces of this node, once started.
    pub(super) fn core(&self) -> Option<Arc<dyn Namespaces>> {
        self.core.get()?.upgrade()
    }

    /// A namespace of this node by name.
    pub(super) fn namespace(&self, name: &str) -> Option<Arc<dyn LocalNamespace>> {
        self.core()?.get(name)
    }

    pub(super) fn cmd_conn(&self) -> Option<MultiplexedConnection> {
        self.cmd.lock().clone()
    }

    /// A connection of `task` failed: note it and, when that cuts ordered broadcasts off
    /// from the log, deliver the waiting ones now.
    pub(super) fn conn_failed(&self, task: Task, error: &redis::RedisError) {
        self.status.down(task, error);
        if task != Task::Publisher {
            self.reconnect.notify_one();
        }
        self.flush_pending();
        self.update_connected();
    }

    /// A connection of `task` is up. Returns true when it was down before.
    pub(super) fn conn_up(&self, task: Task) -> bool {
        let again = self.status.up(task);
        if again {
            if let Some(stats) = self.stats() {
                stats.cluster_reconnected();
            }
        }
        self.update_connected();
        again
    }

    fn update_connected(&self) {
        if let Some(stats) = self.stats() {
            stats.cluster_gauge(
                ClusterGauge::RedisConnected,
                u64::from(self.status.all_up()),
            );
        }
    }

    /// Deliver every ordered broadcast still waiting for the log, in emit order, now.
    pub(super) fn flush_pending(&self) {
        let _order = self.order.lock();
        self.flush_pending_locked();
    }

    /// [`Node::flush_pending`] with `order` held.
    pub(super) fn flush_pending_locked(&self) {
        let mut seqs: Vec<u64> = self.pending.lock().keys().copied().collect();
        seqs.sort_unstable();
        for seq in seqs {
            self.deliver_pending_now(seq);
        }
    }

    /// Queue a command; never waits. A full hand-off queue (the publisher far behind)
    /// counts as a failure, and an ordered broadcast is then delivered locally at once.
    pub(super) fn enqueue(&self, command: Command) {
        if let Err(e) = self.tx.try_send(command) {
            let command = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            self.failed(1);
            self.failed_locally(command);
        }
    }

    /// Deliver an ordered broadcast of this node without the log (it could not be
    /// written, or the log did not return it in time).
    pub(super) fn deliver_pending_now(&self, seq: u64) {
        let Some(p) = self.pending.lock().remove(&seq) else {
            return;
        };
        if let Some(ns) = self.namespace(&p.nsp) {
            let offset = p.id.as_deref();
            if let Err(e) = ns.deliver(&p.msg, offset) {
                tracing::warn!(error = %e, "broadcast not delivered");
            }
        }
        if let Some(stats) = self.stats() {
            stats.cluster_late_delivery(1);
        }
    }

    pub(super) fn entry(&self, nsp: &str, kind: u64, data: Option<String>) {
        self.enqueue(Command::Entry {
            nsp: nsp.to_string(),
            kind,
            data,
        });
    }

    pub(super) fn namespace_names(&self) -> Vec<String> {
        self.namespaces.lock().clone()
    }

    pub(super) fn session_key(&self, pid: &str) -> String {
        format!("{}{pid}", self.config.session_key_prefix)
    }
}

impl AdapterNode for Node {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn namespace(&self, name: &str, ctx: &Context) -> Arc<dyn NamespaceAdapter> {
        let _ = self.stats.set(ctx.stats.clone());
        let new = {
            let mut names = self.namespaces.lock();
            if names.iter().any(|n| n == name) {
                false
            } else {
                names.push(name.to_string());
                true
            }
        };
        if new && self.started.load(Ordering::Acquire) {
            let _ = self.sub_tx.send(name.to_string());
            self.entry(name, kind::INITIAL_HEARTBEAT, None);
        }
        Arc::new(NsLink {
            node: self.me(),
            name: name.to_string(),
            recovery: ctx.recovery.is_some(),
        })
    }

    fn start(&self, core: Weak<dyn Namespaces>, runtime: tokio::runtime::Handle) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.start_ms.store(now_ms, Ordering::Relaxed);
        if let Some(stats) = self.stats() {
            stats.cluster_gauge(ClusterGauge::Enabled, 1);
        }
        let _ = self.core.set(core);
        let _ = self.runtime.set(runtime.clone());
        let me = self.me();
        if let Some(rx) = self.rx.lock().take() {
            runtime.spawn(publisher(me.clone(), rx));
        }
        if let Some(rx) = self.recover_rx.lock().take() {
            runtime.spawn(reader(me.clone(), rx));
        }
        if let Some(rx) = self.sub_rx.lock().take() {
            runtime.spawn(subscriber(me.clone(), rx));
        }
        if let Some(rx) = self.load_rx.lock().take() {
            runtime.spawn(loader(me.clone(), rx));
        }
        if let Some(rx) = self.ack_rx.lock().take() {
            runtime.spawn(asker(me.clone(), rx));
        }
        runtime.spawn(ticker(me.clone()));
        runtime.spawn(startup(me));
    }

    /// Resolves once the node has joined the cluster and loaded its shared state, or
    /// at once when Redis cannot be reached (the node then serves its own clients,
    /// reports not ready, and joins when Redis comes). Bounded by 2 s (a Redis that
    /// neither answers nor refuses).
    fn ready(&self) -> BoxFuture<()> {
        let mut rx = self.ready.subscribe();
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|r| *r)).await;
        })
    }

    fn readiness(&self) -> Readiness {
        let buffered = self
            .stats()
            .map(|s| s.cluster_snapshot().outage_buffer_bytes)
            .unwrap_or(0);
        self.status.readiness(self.config.max_reader_lag, buffered)
    }

    fn stop(&self) {
        for nsp in self.namespace_names() {
            self.entry(&nsp, kind::ADAPTER_CLOSE, None);
        }
        self.closing.cancel();
    }

    /// A stopped node's link is closed for good (its tasks and channels are gone).
    fn restartable(&self) -> bool {
        false
    }
}

impl Node {
    /// An Arc of this node, for its tasks (a node lives in an Arc from its creation).
    pub(super) fn me(&self) -> Arc<Node> {
        match self.this.upgrade() {
            Some(me) => me,
            // Only reachable while the last Arc is being dropped, when nothing calls us.
            None => unreachable!("a node is used while it is alive"),
        }
    }
}

/// Announce the node and load the shared state it serves, once every connection is
/// up. The server waits for this (`ready`) unless Redis is unreachable: then it serves
/// at once, and the node joins when Redis comes.
async fn startup(node: Arc<Node>) {
    let since = Instant::now();
    loop {
        if node.status.all_up() {
            break;
        }
        if node.status.any_failed() {
            // Serve locally now; keep waiting to join.
            let _ = node.ready.send(true);
        }
        // Fine-grained while starting (start-up time), coarse during a long outage.
        let poll = if since.elapsed() < Duration::from_secs(2) {
            5
        } else {
            100
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(poll)) => {}
            _ = node.closing.cancelled() => return,
        }
    }
    for nsp in node.namespace_names() {
        node.entry(&nsp, kind::INITIAL_HEARTBEAT, None);
    }
    if let (Some(mut conn), Some(core)) = (node.cmd_conn(), node.core()) {
        for ns in core.all() {
            let mut maps: HashSet<String> = ns.state_names().into_iter().collect();
            let known: Result<Vec<String>, _> = redis::cmd("HKEYS")
                .arg(node.config.state_maps_key(ns.name()))
                .query_async(&mut conn)
                .await;
            maps.extend(known.unwrap_or_default());
            for map in maps {
                load_map(&node, ns.name(), &map).await;
            }
        }
    }
    let _ = node.ready.send(true);
}
