//! The runtime context of one Socket.IO server: what its namespaces share (the tokio
//! runtime handle while it runs, counters, policies, the adapter node) and the table
//! of its namespaces.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

use crate::metrics::Stats;
use crate::socketio::adapter::{AdapterNode, LocalAdapter, LocalNamespace, Namespaces};
use crate::socketio::emitter::SlowConsumerPolicy;
use crate::socketio::namespace::{Handlers, Namespace};
use crate::socketio::recovery::RecoveryConfig;
use crate::socketio::subscriptions::SubscribePolicy;

/// Runtime-wide state shared by namespaces and emitters.
#[derive(Default)]
pub(crate) struct Context {
    /// The runtime the server runs on; None before start and after stop.
    runtime: RwLock<Option<tokio::runtime::Handle>>,
    pub stats: Arc<Stats>,
    pub slow_consumer: SlowConsumerPolicy,
    pub recovery: Option<RecoveryConfig>,
    pub subscribe: SubscribePolicy,
    /// How long an emit may wait for slow clients (backpressure).
    pub emit_max_wait: Duration,
    /// The largest packet a client's outbound queue can hold (its byte bound).
    pub max_packet_bytes: usize,
    /// The adapter node, once one is set; the local adapter until then.
    adapter: OnceLock<Arc<dyn AdapterNode>>,
    /// The handlers of the catch-all namespace `*`, once it is declared.
    catch_all: OnceLock<Arc<Handlers>>,
}

impl Context {
    pub fn new(
        slow_consumer: SlowConsumerPolicy,
        recovery: Option<RecoveryConfig>,
        subscribe: SubscribePolicy,
        emit_max_wait: Duration,
        max_packet_bytes: usize,
    ) -> Self {
        Self {
            slow_consumer,
            recovery,
            subscribe,
            emit_max_wait,
            max_packet_bytes,
            ..Self::default()
        }
    }

    pub fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.read().clone()
    }

    pub fn set_runtime(&self, handle: Option<tokio::runtime::Handle>) {
        *self.runtime.write() = handle;
    }

    /// The adapter node: the one set with [`Context::set_adapter`], or the local one.
    pub fn adapter(&self) -> Arc<dyn AdapterNode> {
        match self.adapter.get() {
            Some(node) => node.clone(),
            None => Arc::new(LocalAdapter),
        }
    }

    /// The handlers of the catch-all namespace `*`, if it is declared.
    pub fn catch_all(&self) -> Option<&Arc<Handlers>> {
        self.catch_all.get()
    }

    pub fn set_catch_all(&self, handlers: Arc<Handlers>) {
        let _ = self.catch_all.set(handlers);
    }

    /// Set the adapter node (once). False when one was set already.
    pub fn set_adapter(&self, node: Arc<dyn AdapterNode>) -> bool {
        self.adapter.set(node).is_ok()
    }
}

/// The name of the catch-all namespace: its handlers serve every namespace a client
/// asks for that is not declared.
pub(crate) const CATCH_ALL: &str = "*";

/// The namespaces of one Socket.IO server.
pub(crate) struct IoCore {
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// The main namespace, kept apart so the common emit needs no map lookup.
    root: Arc<Namespace>,
    pub ctx: Arc<Context>,
}

impl IoCore {
    pub fn new(ctx: Context) -> Arc<Self> {
        let ctx = Arc::new(ctx);
        let root = Arc::new(Namespace::new("/", ctx.clone()));
        let mut namespaces = HashMap::new();
        namespaces.insert("/".to_string(), root.clone());
        Arc::new(Self {
            namespaces: RwLock::new(namespaces),
            root,
            ctx,
        })
    }

    /// The main namespace `/`.
    pub fn root(&self) -> &Arc<Namespace> {
        &self.root
    }

    pub fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        if name == "/" {
            return Some(self.root.clone());
        }
        self.namespaces.read().get(name).cloned()
    }

    /// The namespace a client's CONNECT names: a declared one, or, when the catch-all
    /// namespace `*` is declared, one made now, served by the handlers of `*` (as
    /// python-socketio's `namespace='*'` and socket.io's dynamic namespaces do).
    pub fn get_or_dynamic(&self, name: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.get(name) {
            return Some(ns);
        }
        if name == CATCH_ALL || !name.starts_with('/') {
            return None;
        }
        self.ctx.catch_all()?;
        let ns = self
            .namespaces
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Namespace::dynamic(name, self.ctx.clone())))
            .clone();
        Some(ns)
    }

    pub fn all(&self) -> Vec<Arc<Namespace>> {
        self.namespaces.read().values().cloned().collect()
    }

    pub fn get_or_create(&self, name: &str) -> Arc<Namespace> {
        if let Some(ns) = self.get(name) {
            return ns;
        }
        self.namespaces
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Namespace::new(name, self.ctx.clone())))
            .clone()
    }

    /// Use `node` as the adapter of every namespace, existing and future. False when
    /// an adapter was set already.
    pub fn set_adapter(&self, node: Arc<dyn AdapterNode>) -> bool {
        if !self.ctx.set_adapter(node.clone()) {
            return false;
        }
        for ns in self.all() {
            ns.set_adapter(node.namespace(ns.name(), &self.ctx));
        }
        true
    }
}

impl Namespaces for IoCore {
    fn get(&self, name: &str) -> Option<Arc<dyn LocalNamespace>> {
        IoCore::get(self, name).map(|ns| ns as Arc<dyn LocalNamespace>)
    }

    fn all(&self) -> Vec<Arc<dyn LocalNamespace>> {
        IoCore::all(self)
            .into_iter()
            .map(|ns| ns as Arc<dyn LocalNamespace>)
            .collect()
    }
}
