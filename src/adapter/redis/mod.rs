//! The Redis cluster adapter (cargo feature `redis`), wire-compatible with
//! `@socket.io/redis-streams-adapter` 0.3 and `@socket.io/redis-emitter` 5.
//!
//! One [`RedisAdapter`] per server process ("node"). Its background tasks, on the
//! server's runtime:
//!
//! - the **publisher** drains a bounded queue of commands (broadcasts, room operations,
//!   sessions, state changes) and sends them to Redis in pipelines;
//! - the **reader** follows the stream with `XREAD BLOCK` and delivers what other nodes
//!   broadcast; in ordered mode (recovery on) it also delivers this node's own
//!   broadcasts, so that every node delivers in log order with the log ids as offsets.
//!   It is also where recovering clients are slotted in: between two entries;
//! - the **subscriber** listens on the pub/sub channels for requests (socket listings),
//!   answers, and what `@socket.io/redis-emitter` publishes;
//! - the **ticker** sends heartbeats and refreshes the sessions of live sockets.
//!
//! While Redis is unreachable, local delivery goes on, every message that could not
//! cross is counted (`swarmcast_cluster_publish_failures_total`), the outage is logged
//! once, and the tasks reconnect with backoff. Formats: `docs/cluster.md`.

mod emitter;
pub(crate) mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::Value as RValue;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use self::wire::{kind, Entry, Message, PubSub, StreamId};
use super::{
    Adapter, BoxFuture, ClusterBroadcast, ClusterNamespace, ClusterNode, SessionRecord, SocketInfo,
    StateChange,
};
use crate::emitter::IoCore;
use crate::engine::EngineSocket;
use crate::metrics::Stats;
use crate::namespace::Namespace;
use crate::rooms::{Room, Target};
use crate::socket::Socket;

pub use self::emitter::{RedisBroadcast, RedisEmitter, RedisEmitterError};

/// Where and how a node (or a [`RedisEmitter`]) talks to Redis. The defaults are those
/// of `@socket.io/redis-streams-adapter`, so that Node servers using it join the same
/// cluster unchanged.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS (cargo
    /// feature `redis-tls`; append `#insecure` to skip certificate checks).
    pub url: String,
    /// The stream holding the broadcast log (`streamName`).
    pub stream_name: String,
    /// `MAXLEN ~` bound of the stream (`maxLen`): size it for the recovery window
    /// (see `docs/deployment.md`).
    pub max_len: usize,
    /// Prefix of the pub/sub channels (`channelPrefix`).
    pub channel_prefix: String,
    /// Prefix of the recovery session keys (`sessionKeyPrefix`).
    pub session_key_prefix: String,
    /// Prefix of the keyed-state hashes (swarmcast only).
    pub state_key_prefix: String,
    /// Entries per `XREAD` (`readCount`).
    pub read_count: usize,
    /// `XREAD BLOCK` time (`blockTimeInMs`).
    pub block_time: Duration,
    /// How often the node says it is alive (`heartbeatInterval`).
    pub heartbeat_interval: Duration,
    /// How long a socket listing waits for the other nodes.
    pub request_timeout: Duration,
    /// How long one Redis command may take before it counts as failed.
    pub response_timeout: Duration,
    /// Commands waiting for Redis, at most; beyond, they are counted as failures (local
    /// delivery is not affected).
    pub queue_capacity: usize,
    /// With recovery on, deliver this node's broadcasts locally in log order (their
    /// offsets are then log ids, recoverable on any node). Off: local delivery is
    /// immediate and offsets of local broadcasts only recover on this node.
    pub ordered_delivery: bool,
}

impl RedisConfig {
    /// The defaults with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream_name: "socket.io".into(),
            max_len: 10_000,
            channel_prefix: "socket.io".into(),
            session_key_prefix: "sio:session:".into(),
            state_key_prefix: "swarmcast:state:".into(),
            read_count: 100,
            block_time: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(2),
            queue_capacity: 65_536,
            ordered_delivery: true,
        }
    }

    fn public_channel(&self, nsp: &str) -> String {
        format!("{}#{nsp}#", self.channel_prefix)
    }

    fn private_channel(&self, nsp: &str, uid: &str) -> String {
        format!("{}#{nsp}#{uid}#", self.channel_prefix)
    }

    fn emitter_request_channel(&self, nsp: &str) -> String {
        format!("{}-request#{nsp}#", self.channel_prefix)
    }

    fn state_entries_key(&self, nsp: &str, map: &str) -> String {
        format!(
            "{}{}:map:{}",
            self.state_key_prefix,
            wire::key_part(nsp),
            wire::key_part(map)
        )
    }

    fn state_maps_key(&self, nsp: &str) -> String {
        format!("{}{}:maps", self.state_key_prefix, wire::key_part(nsp))
    }

    pub(crate) fn client(&self) -> Result<redis::Client, redis::RedisError> {
        #[cfg(feature = "redis-tls")]
        {
            // rustls needs a process-wide crypto provider; ours unless one is set.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        redis::Client::open(self.url.as_str())
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(self.response_timeout))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(3)
    }
}

/// A cluster of swarmcast nodes (and Node socket.io servers using
/// `@socket.io/redis-streams-adapter`) joined through Redis.
///
/// ```no_run
/// use swarmcast::{RedisAdapter, RedisConfig, Server, ServerConfig};
///
/// let mut server = Server::new(ServerConfig::default());
/// server
///     .set_adapter(RedisAdapter::new(RedisConfig::new("redis://127.0.0.1:6379"))?)?;
/// let running = server.start()?;
/// // Reaches the clients of every node.
/// running.emitter().emit("hello", &"world")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisAdapter {
    node: Arc<Node>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.node.uid)
            .field("stream", &self.node.config.stream_name)
            .finish_non_exhaustive()
    }
}

impl RedisAdapter {
    /// An adapter for this configuration. Connects when the server starts (and
    /// reconnects by itself); fails only on an invalid URL.
    pub fn new(config: RedisConfig) -> Result<Self, RedisEmitterError> {
        let client = config.client().map_err(RedisEmitterError::from)?;
        Ok(Self {
            node: Node::new(config, client),
        })
    }

    /// This node's id in the cluster (the `uid` of its messages).
    pub fn uid(&self) -> &str {
        &self.node.uid
    }
}

impl From<RedisAdapter> for Adapter {
    fn from(adapter: RedisAdapter) -> Self {
        Adapter {
            node: Some(adapter.node as Arc<dyn ClusterNode>),
        }
    }
}

/// A queued command for Redis.
enum Command {
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

/// An ordered broadcast of this node waiting for the log.
struct Pending {
    nsp: String,
    msg: ClusterBroadcast,
    since: Instant,
    /// The log id, once Redis answered the XADD.
    id: Option<String>,
}

struct RecoverRequest {
    ns: Arc<Namespace>,
    engine: EngineSocket,
    pid: String,
    offset: StreamId,
    auth: Option<Value>,
    reply: oneshot::Sender<Option<Socket>>,
    deadline: Instant,
}

/// Logs an outage once, and its end.
struct Outage {
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

    fn failed(&self, error: &dyn std::fmt::Display, n: u64) {
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
    fn ok(&self) -> bool {
        if self.down.swap(false, Ordering::AcqRel) {
            let n = self.failures.swap(0, Ordering::Relaxed);
            tracing::info!(task = self.what, failed = n, "redis reachable again");
            return true;
        }
        false
    }
}

fn backoff(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempt.min(5));
    Duration::from_millis(ms.min(2_000))
}

pub(crate) struct Node {
    this: Weak<Node>,
    config: RedisConfig,
    client: redis::Client,
    uid: String,
    tx: mpsc::Sender<Command>,
    rx: Mutex<Option<mpsc::Receiver<Command>>>,
    recover_tx: mpsc::Sender<RecoverRequest>,
    recover_rx: Mutex<Option<mpsc::Receiver<RecoverRequest>>>,
    sub_tx: mpsc::UnboundedSender<String>,
    sub_rx: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    load_tx: mpsc::UnboundedSender<(String, String)>,
    load_rx: Mutex<Option<mpsc::UnboundedReceiver<(String, String)>>>,
    started: AtomicBool,
    closing: CancellationToken,
    stats: OnceLock<Arc<Stats>>,
    core: OnceLock<Weak<IoCore>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_seq: AtomicU64,
    requests: Mutex<HashMap<String, mpsc::UnboundedSender<Vec<SocketInfo>>>>,
    cmd: Mutex<Option<ConnectionManager>>,
    namespaces: Mutex<Vec<String>>,
    reader_ready: watch::Sender<bool>,
    subscribed: watch::Sender<bool>,
    ready: watch::Sender<bool>,
    publish_outage: Outage,
}

impl Node {
    fn new(config: RedisConfig, client: redis::Client) -> Arc<Self> {
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

    fn stats(&self) -> Option<&Arc<Stats>> {
        self.stats.get()
    }

    fn failed(&self, n: u64) {
        if let Some(stats) = self.stats() {
            stats.cluster_publish_failed(n);
        }
    }

    fn malformed(&self, error: &wire::Malformed) {
        tracing::debug!(%error, "dropped a cluster message");
        if let Some(stats) = self.stats() {
            stats.cluster_malformed();
        }
    }

    fn core(&self) -> Option<Arc<IoCore>> {
        self.core.get()?.upgrade()
    }

    fn cmd_conn(&self) -> Option<ConnectionManager> {
        self.cmd.lock().clone()
    }

    /// Queue a command; never waits. A full queue (Redis far behind) counts as a
    /// failure, and an ordered broadcast is then delivered locally at once.
    fn enqueue(&self, command: Command) {
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
    fn deliver_pending_now(&self, seq: u64) {
        let Some(p) = self.pending.lock().remove(&seq) else {
            return;
        };
        if let Some(ns) = self.core().and_then(|c| c.get(&p.nsp)) {
            let offset = p.id.as_deref();
            if let Err(e) = ns.deliver_cluster(&p.msg, offset) {
                tracing::warn!(error = %e, "broadcast not delivered");
            }
        }
        if let Some(stats) = self.stats() {
            stats.cluster_late_delivery(1);
        }
    }

    fn entry(&self, nsp: &str, kind: u64, data: Option<String>) {
        self.enqueue(Command::Entry {
            nsp: nsp.to_string(),
            kind,
            data,
        });
    }

    fn namespace_names(&self) -> Vec<String> {
        self.namespaces.lock().clone()
    }

    fn session_key(&self, pid: &str) -> String {
        format!("{}{pid}", self.config.session_key_prefix)
    }
}

impl ClusterNode for Node {
    fn namespace(&self, name: &str, stats: &Arc<Stats>) -> Arc<dyn ClusterNamespace> {
        let _ = self.stats.set(stats.clone());
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
        })
    }

    fn start(&self, core: Weak<IoCore>, runtime: tokio::runtime::Handle) {
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

/// The cluster link of one namespace.
struct NsLink {
    node: Arc<Node>,
    name: String,
}

impl ClusterNamespace for NsLink {
    fn ordered(&self) -> bool {
        self.node.config.ordered_delivery
    }

    fn publish(&self, msg: ClusterBroadcast, ordered: bool) {
        let seq = ordered.then(|| {
            let seq = self.node.next_seq.fetch_add(1, Ordering::Relaxed);
            self.node.pending.lock().insert(
                seq,
                Pending {
                    nsp: self.name.clone(),
                    msg: msg.clone(),
                    since: Instant::now(),
                    id: None,
                },
            );
            seq
        });
        self.node.enqueue(Command::Broadcast {
            nsp: self.name.clone(),
            msg,
            seq,
        });
    }

    fn sockets_join(&self, target: &Target, rooms: &[Room]) {
        let data = wire::rooms_op_data(target, rooms);
        self.node.entry(&self.name, kind::SOCKETS_JOIN, Some(data));
    }

    fn sockets_leave(&self, target: &Target, rooms: &[Room]) {
        let data = wire::rooms_op_data(target, rooms);
        self.node.entry(&self.name, kind::SOCKETS_LEAVE, Some(data));
    }

    fn disconnect_sockets(&self, target: &Target, close: bool) {
        let data = wire::disconnect_data(target, close);
        self.node
            .entry(&self.name, kind::DISCONNECT_SOCKETS, Some(data));
    }

    fn fetch_sockets(&self, target: &Target) -> BoxFuture<Vec<SocketInfo>> {
        let node = self.node.clone();
        let nsp = self.name.clone();
        let target = target.clone();
        Box::pin(async move { fetch_remote_sockets(node, nsp, target).await })
    }

    fn persist_session(&self, session: SessionRecord, disconnected: bool) {
        let Some(core) = self.node.core() else {
            return;
        };
        let Some(window) = core
            .get(&self.name)
            .and_then(|ns| ns.recovery_config().map(|c| c.max_disconnection_duration))
        else {
            return;
        };
        let px = if disconnected {
            window
        } else {
            // A live socket's session outlives its node by at most this much.
            window + 2 * refresh_interval(window, &self.node.config)
        };
        self.node.enqueue(Command::SetSession {
            key: self.node.session_key(&session.pid),
            value: wire::encode_session(&session),
            px: u64::try_from(px.as_millis()).unwrap_or(u64::MAX).max(1),
        });
    }

    fn drop_session(&self, pid: &str) {
        self.node.enqueue(Command::DelSession {
            key: self.node.session_key(pid),
        });
    }

    fn recover(
        &self,
        ns: Arc<Namespace>,
        engine: EngineSocket,
        pid: String,
        offset: String,
        auth: Option<Value>,
    ) -> BoxFuture<Option<Socket>> {
        let node = self.node.clone();
        Box::pin(async move {
            // Offsets in a cluster are log ids (as the Node adapter checks).
            let offset = StreamId::parse(&offset)?;
            let (reply, answer) = oneshot::channel();
            let request = RecoverRequest {
                ns,
                engine,
                pid,
                offset,
                auth,
                reply,
                deadline: Instant::now() + Duration::from_secs(3),
            };
            node.recover_tx.try_send(request).ok()?;
            tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .ok()?
                .ok()?
        })
    }

    fn state_change(&self, change: StateChange) {
        self.node.enqueue(Command::State {
            nsp: self.name.clone(),
            change,
        });
    }

    fn state_opened(&self, map: &str) {
        if self.node.started.load(Ordering::Acquire) {
            let _ = self.node.load_tx.send((self.name.clone(), map.to_string()));
        }
    }
}

/// How often the sessions of live sockets are written again.
fn refresh_interval(window: Duration, config: &RedisConfig) -> Duration {
    (window / 4).max(config.heartbeat_interval)
}

// ---------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------

/// A keyed-state change: the hash, the map's version and the delta's log entry move
/// together, so that versions follow log order on every node.
const STATE_SCRIPT: &str = r"
if ARGV[1] == 'del' then
  if redis.call('HDEL', KEYS[1], ARGV[3]) == 0 then return false end
else
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
end
local v = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
  'uid', ARGV[6], 'nsp', ARGV[7], 'type', '3', 'data', ARGV[8] .. v .. ARGV[9], 'sc', 's')
return {v, id}
";

/// A map's version and entries, read together.
const LOAD_SCRIPT: &str = r"
local v = redis.call('HGET', KEYS[2], ARGV[1])
return {v or '0', redis.call('HGETALL', KEYS[1])}
";

/// The EVAL of a state change, with the delta's JSON split around its version.
pub(crate) fn state_command(
    config: &RedisConfig,
    uid: &str,
    nsp: &str,
    change: &StateChange,
) -> redis::Cmd {
    let map_json = Value::from(change.map.as_str()).to_string();
    let key_json = Value::from(change.key.as_str()).to_string();
    let prefix = format!(
        r#"{{"packet":{{"type":2,"data":["{}",{{"map":{map_json},"version":"#,
        crate::state::DELTA_EVENT
    );
    let rest = match &change.value {
        Some(v) => format!(r#","key":{key_json},"value":{v}}}"#),
        None => format!(r#","key":{key_json},"deleted":true}}"#),
    };
    let room = crate::state::state_room(&change.map);
    let target = Target::room(room);
    let suffix = format!(
        r#"{rest}],"nsp":{}}},"opts":{}}}"#,
        Value::from(nsp),
        wire::opts_json(&target, false)
    );
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(STATE_SCRIPT)
        .arg(3)
        .arg(config.state_entries_key(nsp, &change.map))
        .arg(config.state_maps_key(nsp))
        .arg(&config.stream_name)
        .arg(if change.value.is_some() { "set" } else { "del" })
        .arg(&change.map)
        .arg(&change.key)
        .arg(
            change
                .value
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
        )
        .arg(config.max_len)
        .arg(uid)
        .arg(nsp)
        .arg(prefix)
        .arg(suffix);
    cmd
}

/// XADD of one cluster message in the adapter's format.
pub(crate) fn xadd_command(
    config: &RedisConfig,
    uid: &str,
    nsp: &str,
    kind: u64,
    data: Option<&str>,
    sc: Option<&str>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&config.stream_name)
        .arg("MAXLEN")
        .arg("~")
        .arg(config.max_len)
        .arg("*")
        .arg("uid")
        .arg(uid)
        .arg("nsp")
        .arg(nsp)
        .arg("type")
        .arg(kind.to_string());
    if let Some(data) = data {
        cmd.arg("data").arg(data);
    }
    if let Some(sc) = sc {
        cmd.arg("sc").arg(sc);
    }
    cmd
}

// ---------------------------------------------------------------------------
// Redis replies
// ---------------------------------------------------------------------------

fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        RValue::VerbatimString { text, .. } => Some(text.clone()),
        RValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn items(v: &RValue) -> Vec<&RValue> {
    match v {
        RValue::Array(a) | RValue::Set(a) => a.iter().collect(),
        RValue::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        RValue::Attribute { data, .. } => items(data),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, ...]], ...]` (XRANGE, or one stream of XREAD).
fn parse_entries(v: &RValue) -> Vec<Entry> {
    let mut out = Vec::new();
    for entry in items(v) {
        let parts = items(entry);
        let (Some(id), Some(fields)) = (parts.first().and_then(|i| text(i)), parts.get(1)) else {
            continue;
        };
        let mut e = Entry {
            id,
            ..Entry::default()
        };
        let fields = items(fields);
        for pair in fields.chunks(2) {
            let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) else {
                continue;
            };
            let v = text(v);
            match k.as_str() {
                "uid" => e.uid = v.unwrap_or_default(),
                "nsp" => e.nsp = v.unwrap_or_default(),
                "type" => e.kind = v.unwrap_or_default(),
                "data" => e.data = v,
                "sc" => e.sc = v,
                _ => {}
            }
        }
        out.push(e);
    }
    out
}

/// XREAD: `[[stream, entries]]` (RESP2) or `{stream: entries}` (RESP3); nil on timeout.
fn parse_xread(v: &RValue) -> Vec<Entry> {
    match v {
        RValue::Nil => Vec::new(),
        RValue::Map(streams) => streams
            .iter()
            .flat_map(|(_, entries)| parse_entries(entries))
            .collect(),
        other => items(other)
            .into_iter()
            .flat_map(|stream| {
                let parts = items(stream);
                parts.get(1).map(|e| parse_entries(e)).unwrap_or_default()
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

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
async fn publisher(node: Arc<Node>, mut rx: mpsc::Receiver<Command>) {
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
    fn failed_locally(&self, command: Command) {
        match command {
            Command::Broadcast { seq: Some(seq), .. } => self.deliver_pending_now(seq),
            Command::State { nsp, change } => {
                if let Some(ns) = self.core().and_then(|c| c.get(&nsp)) {
                    ns.state_shared(&change.map).deliver_local_change(
                        &ns,
                        &change.key,
                        change.value,
                    );
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

/// Follows the stream and delivers; slots recovering clients in between entries.
async fn reader(node: Arc<Node>, mut recover_rx: mpsc::Receiver<RecoverRequest>) {
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

fn fail_recoveries(deferred: &mut Vec<RecoverRequest>) {
    for request in deferred.drain(..) {
        let _ = request.reply.send(None);
    }
}

/// Periodic: give up on recoveries that waited too long, and deliver ordered
/// broadcasts the log did not return in time (Redis lost them).
async fn sweep(node: &Node, deferred: &mut Vec<RecoverRequest>, _position: StreamId) {
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
                    if let Some(ns) = node.core().and_then(|c| c.get(&p.nsp)) {
                        let offset = ns.recovery_enabled().then_some(entry.id.as_str());
                        if let Err(e) = ns.deliver_cluster(&p.msg, offset) {
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
    let Some(ns) = node.core().and_then(|c| c.get(&entry.nsp)) else {
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
            let offset = (ns.recovery_enabled() && !msg.volatile && !meta.has_packet_id)
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
fn deliver(
    node: &Node,
    ns: &Arc<Namespace>,
    msg: &ClusterBroadcast,
    delta: Option<wire::DeltaInfo>,
    offset: Option<&str>,
) {
    match delta {
        Some(d) => {
            let shared = ns.state_shared(&d.map);
            let gap = shared.apply_cluster_delta(ns, d.version, &d.key, d.value, msg, offset);
            if gap {
                let _ = node.load_tx.send((ns.name().to_string(), d.map));
            }
        }
        None => {
            if let Err(e) = ns.deliver_cluster(msg, offset) {
                tracing::warn!(error = %e, "cluster broadcast not delivered");
            }
        }
    }
}

/// Room operations, disconnects and heartbeats from another node.
fn apply_message(node: &Node, ns: &Arc<Namespace>, from: &str, message: Message) {
    match message {
        Message::SocketsJoin { target, rooms } => ns.local_sockets_join(&target, &rooms),
        Message::SocketsLeave { target, rooms } => ns.local_sockets_leave(&target, &rooms),
        Message::DisconnectSockets { target, close } => ns.local_disconnect(&target, close),
        Message::InitialHeartbeat if from != node.uid => {
            node.entry(ns.name(), kind::HEARTBEAT, None);
        }
        _ => {}
    }
}

/// Recover a client at log position `position`: its session, every entry after its
/// offset up to `position` that reaches it, then live delivery from `position` on.
async fn recover_at(node: &Node, request: RecoverRequest, position: StreamId) {
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
            if id <= request.offset || entry.nsp != ns.name() || entry.kind != "3" {
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
            match ns.encode_cluster(&msg, Some(&entry.id)) {
                Ok(encoded) => missed.push(encoded),
                Err(e) => tracing::debug!(error = %e, "cannot replay a packet"),
            }
        }
        if count < 1000 || start > position {
            break;
        }
    }
    ns.restore_socket(
        &request.engine,
        request.auth.clone().or(session.auth),
        session.sid,
        &request.pid,
        session.rooms,
        session.filters,
        &missed,
    )
}

/// Ask every other node for its sockets the target reaches.
async fn fetch_remote_sockets(node: Arc<Node>, nsp: String, target: Target) -> Vec<SocketInfo> {
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
async fn subscriber(node: Arc<Node>, mut new_namespaces: mpsc::UnboundedReceiver<String>) {
    use futures_util::StreamExt;
    let mut attempt = 0u32;
    let mut lost = false;
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
            _ => {
                lost = true;
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
            lost = true;
            tokio::time::sleep(backoff(attempt)).await;
            attempt = attempt.saturating_add(1);
            continue;
        }
        attempt = 0;
        let _ = node.subscribed.send(true);
        if std::mem::take(&mut lost) {
            tracing::info!("pub/sub listener reconnected to redis");
            if let Some(stats) = node.stats() {
                stats.cluster_reconnected();
            }
        }
        loop {
            tokio::select! {
                _ = node.closing.cancelled() => return,
                Some(nsp) = new_namespaces.recv() => {
                    if !subscribe_namespace(&node, &mut sink, &nsp).await {
                        lost = true;
                        break;
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        lost = true;
                        break;
                    };
                    on_pubsub(&node, msg.get_channel_name(), msg.from_pattern(), msg.get_payload_bytes());
                }
            }
        }
    }
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

fn on_cluster_pubsub(node: &Node, ns: &Arc<Namespace>, from: &str, message: Message) {
    match message {
        Message::FetchSockets { target, request_id } => {
            let mut sockets = Vec::new();
            ns.for_each_target(&target, |s| sockets.push(ns.socket_info(s)));
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
            Some(request_id) => {
                // Acknowledgements cannot cross to this server: answer that none of
                // its clients will acknowledge, so that the sender does not wait.
                node.enqueue(Command::Publish {
                    channel: node.config.private_channel(ns.name(), from),
                    payload: wire::encode_pubsub(
                        &node.uid,
                        ns.name(),
                        kind::BROADCAST_CLIENT_COUNT,
                        wire::client_count(&request_id, 0),
                    ),
                });
            }
            None => deliver(node, ns, &msg, delta, None),
        },
        other => apply_message(node, ns, from, other),
    }
}

/// Loads state maps from Redis into this node's copies.
async fn loader(node: Arc<Node>, mut rx: mpsc::UnboundedReceiver<(String, String)>) {
    loop {
        let next = tokio::select! {
            n = rx.recv() => n,
            _ = node.closing.cancelled() => return,
        };
        let Some((nsp, map)) = next else {
            return;
        };
        load_map(&node, &nsp, &map).await;
    }
}

async fn load_map(node: &Node, nsp: &str, map: &str) {
    let (Some(mut conn), Some(ns)) = (node.cmd_conn(), node.core().and_then(|c| c.get(nsp))) else {
        return;
    };
    let reply: Result<RValue, _> = redis::cmd("EVAL")
        .arg(LOAD_SCRIPT)
        .arg(2)
        .arg(node.config.state_entries_key(nsp, map))
        .arg(node.config.state_maps_key(nsp))
        .arg(map)
        .query_async(&mut conn)
        .await;
    let Ok(reply) = reply else {
        return;
    };
    let parts = items(&reply);
    let version = parts
        .first()
        .and_then(|v| text(v))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut entries = Map::new();
    if let Some(flat) = parts.get(1) {
        for pair in items(flat).chunks(2) {
            if let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) {
                let value = text(v)
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or(Value::Null);
                entries.insert(k, value);
            }
        }
    }
    ns.state_shared(map).load_cluster_snapshot(version, entries);
}

/// Heartbeats, and the sessions of live sockets written again before they expire.
async fn ticker(node: Arc<Node>) {
    let mut heartbeat = tokio::time::interval(
        node.config
            .heartbeat_interval
            .max(Duration::from_millis(100)),
    );
    let mut last_refresh = Instant::now();
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {}
            _ = node.closing.cancelled() => return,
        }
        for nsp in node.namespace_names() {
            node.entry(&nsp, kind::HEARTBEAT, None);
        }
        let Some(core) = node.core() else {
            continue;
        };
        let window = core
            .all()
            .iter()
            .filter_map(|ns| ns.recovery_config().map(|c| c.max_disconnection_duration))
            .min();
        let Some(window) = window else {
            continue;
        };
        if last_refresh.elapsed() < refresh_interval(window, &node.config) {
            continue;
        }
        last_refresh = Instant::now();
        for ns in core.all() {
            for socket in ns.sockets() {
                ns.touch_session(socket.id());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RValue {
        RValue::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_replies_parse() {
        let entry = RValue::Array(vec![
            bulk("1-2"),
            RValue::Array(vec![
                bulk("uid"),
                bulk("u"),
                bulk("nsp"),
                bulk("/"),
                bulk("type"),
                bulk("3"),
                bulk("data"),
                bulk("{}"),
                bulk("sc"),
                bulk("7"),
            ]),
        ]);
        let resp2 = RValue::Array(vec![RValue::Array(vec![
            bulk("socket.io"),
            RValue::Array(vec![entry.clone()]),
        ])]);
        let parsed = parse_xread(&resp2);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].id, "1-2");
        assert_eq!(parsed[0].sc.as_deref(), Some("7"));
        let resp3 = RValue::Map(vec![(bulk("socket.io"), RValue::Array(vec![entry]))]);
        assert_eq!(parse_xread(&resp3), parsed);
        assert!(parse_xread(&RValue::Nil).is_empty());
        assert!(parse_xread(&RValue::Int(3)).is_empty());
    }

    #[test]
    fn state_commands_carry_the_delta_around_the_version() {
        let config = RedisConfig::new("redis://127.0.0.1");
        let change = StateChange {
            map: "agents".into(),
            key: "a1".into(),
            value: Some(serde_json::json!({"s": 1})),
        };
        let cmd = state_command(&config, "u", "/", &change);
        let args: Vec<String> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        let prefix = &args[args.len() - 2];
        let suffix = &args[args.len() - 1];
        let data = format!("{prefix}7{suffix}");
        let (msg, _, delta) = wire::decode_broadcast(&data).expect("a broadcast");
        let delta = delta.expect("a delta");
        assert_eq!(delta.version, 7);
        assert_eq!(delta.value, Some(serde_json::json!({"s": 1})));
        assert_eq!(msg.target, Target::room("state:agents"));
        assert_eq!(args[3], "swarmcast:state:/:map:agents");
    }
}
