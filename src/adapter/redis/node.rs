//! [`Node`]: the state one server process shares among its namespace links and
//! background tasks (queues, pending ordered broadcasts, outstanding requests, the
//! command connection), its [`AdapterNode`] side (start, ready, stop), and the
//! startup that announces the node and loads its shared state. The tasks
//! themselves live in their own files.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::config::RedisConfig;
use super::link::NsLink;
use super::loader::{load_map, loader};
use super::publisher::{publisher, Command};
use super::reader::reader;
use super::recover::RecoverRequest;
use super::subscriber::subscriber;
use super::ticker::ticker;
use super::wire::{self, kind};
use crate::metrics::Stats;
use crate::socketio::adapter::{
    AdapterNode, BoxFuture, ClusterBroadcast, LocalNamespace, NamespaceAdapter, Namespaces,
    SocketInfo,
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

/// Logs an outage once, and its end.
pub(super) struct Outage {
    what: &'static str,
    down: AtomicBool,
    failures: AtomicU64,
}

impl Outage {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            down: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    pub(super) fn failed(&self, error: &dyn std::fmt::Display, n: u64) {
        self.failures.fetch_add(n, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                %error,
                task = self.what,
                "redis unreachable: local delivery continues; what cannot cross nodes is \
                 counted in swarmcast_cluster_publish_failures_total"
            );
        }
    }

    /// Returns true when this ends an outage.
    pub(super) fn ok(&self) -> bool {
        if self.down.swap(false, Ordering::AcqRel) {
            let n = self.failures.swap(0, Ordering::Relaxed);
            tracing::info!(task = self.what, failed = n, "redis reachable again");
            return true;
        }
        false
    }
}

pub(super) fn backoff(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempt.min(5));
    Duration::from_millis(ms.min(2_000))
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
    pub(super) cmd: Mutex<Option<ConnectionManager>>,
    namespaces: Mutex<Vec<String>>,
    pub(super) reader_ready: watch::Sender<bool>,
    pub(super) subscribed: watch::Sender<bool>,
    ready: watch::Sender<bool>,
    pub(super) publish_outage: Outage,
}

impl Node {
    pub(super) fn new(config: RedisConfig, client: redis::Client) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(16));
        let (recover_tx, recover_rx) = mpsc::channel(4096);
        let (sub_tx, sub_rx) = mpsc::unbounded_channel();
        let (load_tx, load_rx) = mpsc::unbounded_channel();
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
            cmd: Mutex::new(None),
            namespaces: Mutex::new(Vec::new()),
            reader_ready: watch::channel(false).0,
            subscribed: watch::channel(false).0,
            ready: watch::channel(false).0,
            publish_outage: Outage::new("publish"),
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

    pub(super) fn cmd_conn(&self) -> Option<ConnectionManager> {
        self.cmd.lock().clone()
    }

    /// Queue a command; never waits. A full queue (Redis far behind) counts as a
    /// failure, and an ordered broadcast is then delivered locally at once.
    pub(super) fn enqueue(&self, command: Command) {
        if let Err(e) = self.tx.try_send(command) {
            let command = match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
            };
            self.publish_outage
                .failed(&"the queue of commands for redis is full", 1);
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
        let _ = self.core.set(core);
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
        runtime.spawn(ticker(me.clone()));
        runtime.spawn(startup(me));
    }

    fn ready(&self) -> BoxFuture<()> {
        let mut rx = self.ready.subscribe();
        Box::pin(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|r| *r)).await;
        })
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
    fn me(&self) -> Arc<Node> {
        match self.this.upgrade() {
            Some(me) => me,
            // Only reachable while the last Arc is being dropped, when nothing calls us.
            None => unreachable!("a node is used while it is alive"),
        }
    }
}

/// Announce the node and load the shared state it serves.
async fn startup(node: Arc<Node>) {
    let mut reader_ready = node.reader_ready.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(4), reader_ready.wait_for(|r| *r)).await;
    for nsp in node.namespace_names() {
        node.entry(&nsp, kind::INITIAL_HEARTBEAT, None);
    }
    // The publisher connects on its first batch: make sure there is one.
    let deadline = Instant::now() + Duration::from_secs(4);
    while node.cmd_conn().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    } else {
        tracing::warn!("redis is not reachable at startup: serving without the cluster for now");
    }
    // Answer other nodes' requests before serving clients.
    let mut subscribed = node.subscribed.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(2), subscribed.wait_for(|s| *s)).await;
    let _ = node.ready.send(true);
}
