//! The host layer: what a binding for another language (Python, C) drives.
//!
//! A [`Host`] owns a [`Server`] definition and the [`Dispatcher`] its handlers run on,
//! and gives a binding everything it would otherwise write again for itself:
//!
//! - the lifecycle: created -> running -> stopped -> running again ..., with the
//!   namespaces, handlers, state maps and configuration kept across restarts;
//! - handler registration: connect, disconnect and event handlers run on the
//!   dispatcher's threads keyed by socket id (never on a network thread), so one
//!   socket's callbacks run one at a time, in order;
//! - callback gating: a connect handler runs before any other handler of its socket,
//!   its decision travels back to the connection without blocking the runtime, and a
//!   disconnect handler runs only for a socket the connect handler accepted, after that
//!   socket's other handlers;
//! - routing: acknowledgement callbacks ([`Host::emit_with_ack`]) and any other job
//!   ([`Host::run`]) go to the handler thread of their socket.
//!
//! A binding then only converts (host-language values to and from core types) and
//! forwards.
//!
//! ```no_run
//! use swarmcast::{ConnectError, Host, Server, ServerConfig};
//!
//! let mut config = ServerConfig::default();
//! config.port = 0;
//! let host = Host::new(Server::new(config), 4);
//! host.on_connect("/", |socket| match socket.auth() {
//!     Some(_) => Ok(()),
//!     None => Err(ConnectError::new("unauthorized")),
//! })
//! .unwrap();
//! host.on("/", "ping", |_socket, _event, ack| {
//!     if let Some(ack) = ack {
//!         let _ = ack.send(&"pong");
//!     }
//! })
//! .unwrap();
//! host.start().unwrap();
//! host.emitter().emit("hello", &"world").unwrap();
//! host.stop().unwrap();
//! host.start().unwrap(); // again, on a fresh port if `port` is 0
//! host.stop().unwrap();
//! ```

mod dispatch;
mod handlers;
mod log;
mod pool;

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use dispatch::{on_dispatcher_thread, wait_for_teardown, Dispatcher, TeardownGuard};
pub use log::event_text;
pub use pool::{Reply, ReplyDropped, ReplySender, Ticket, WorkerPool};

use crate::{Emitter, Handoff, Namespace, Server, ServerError, ServerHandle};

/// Whether Socket.IO reserves `name` (`connect`, `disconnect`, ...): such events cannot
/// be emitted. The one list the core, the bindings and the Redis emitter go by.
///
/// ```
/// assert!(swarmcast::is_reserved_event("connect"));
/// assert!(!swarmcast::is_reserved_event("status"));
/// ```
pub fn is_reserved_event(name: &str) -> bool {
    crate::protocol::socketio::RESERVED_EVENTS.contains(&name)
}

/// Where a [`Host`] is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Created, never started.
    Created,
    /// Listening; handlers run.
    Running,
    /// Stopped (or stopping), or a start failed: emits reach nobody until the next
    /// start.
    Stopped,
}

/// Why a [`Host`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `start` while running.
    #[error("the server is already running")]
    AlreadyRunning,
    /// `stop` while not running.
    #[error("the server is not running")]
    NotRunning,
    /// `start` while another thread starts or stops the server.
    #[error("the server is starting or stopping")]
    Busy,
    /// A new namespace while running: declare namespaces (and their handlers) before
    /// the start, or while stopped.
    #[error("namespace '{0}' is not declared: declare it before the start")]
    Undeclared(String),
    /// The server could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
}

enum Phase {
    /// Not running: the definition.
    Idle(Server),
    Running(ServerHandle),
    /// Between the two, while a thread starts or stops the server (outside the lock).
    Busy,
}

/// How long [`Host::stop`] lets the handlers already queued run before it closes the
/// connections.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

thread_local! {
    /// The host whose handler this thread is running, if any.
    static IN_HANDLER: Cell<*const Inner> = const { Cell::new(std::ptr::null()) };
}

pub(crate) struct Inner {
    phase: Mutex<Phase>,
    /// Readable without the phase lock (handlers ask while a stop waits for them).
    state: Mutex<HostState>,
    local_addr: Mutex<Option<SocketAddr>>,
    emitter: Emitter,
    /// The handler threads: present while running. Dropping it runs what is queued,
    /// then joins its threads.
    dispatcher: RwLock<Option<Dispatcher>>,
    threads: usize,
    gates: Arc<handlers::Gates>,
    /// The thread emits are handed to, once [`Host::enable_handoff`] made it.
    handoff: std::sync::OnceLock<Handoff>,
}

impl Inner {
    fn wait_for_handed_off(&self) {
        if let Some(handoff) = self.handoff.get().filter(|h| h.pending() > 0) {
            handoff.flush();
        }
    }
}

/// A server as a host-language binding drives it: lifecycle, handler threads, callback
/// gating. See the [module documentation](self) for what it does and an example.
///
/// Every method may be called from any thread. Cloning gives another handle on the
/// same host. The last handle dropped stops a running server.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("state", &self.state())
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

impl Host {
    /// A host for `server`, whose handlers will run on `handler_threads` threads (at
    /// least one) while it runs.
    pub fn new(server: Server, handler_threads: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                emitter: server.emitter(),
                phase: Mutex::new(Phase::Idle(server)),
                state: Mutex::new(HostState::Created),
                local_addr: Mutex::new(None),
                dispatcher: RwLock::new(None),
                threads: handler_threads.max(1),
                gates: Arc::default(),
                handoff: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Bind and serve on threads of the server's own; returns the bound address once
    /// listening. Works again after [`Host::stop`] (and after a failed start).
    pub fn start(&self) -> Result<SocketAddr, HostError> {
        let server = {
            let mut phase = self.inner.phase.lock();
            match std::mem::replace(&mut *phase, Phase::Busy) {
                Phase::Idle(server) => server,
                other => {
                    let running = matches!(other, Phase::Running(_));
                    *phase = other;
                    return Err(if running {
                        HostError::AlreadyRunning
                    } else {
                        HostError::Busy
                    });
                }
            }
        };
        self.inner.gates.reset();
        // Handler threads first: the first connect may arrive as soon as we listen. All
        // of them or none: a system that refuses threads fails the start cleanly.
        match Dispatcher::try_new(self.inner.threads, "swarmcast-handler") {
            Ok(dispatcher) => *self.inner.dispatcher.write() = Some(dispatcher),
            Err(e) => {
                *self.inner.state.lock() = HostState::Stopped;
                *self.inner.phase.lock() = Phase::Idle(server);
                return Err(HostError::Server(ServerError::Runtime(e)));
            }
        }
        match server.try_start() {
            Ok(handle) => {
                let addr = handle.local_addr();
                *self.inner.local_addr.lock() = Some(addr);
                *self.inner.state.lock() = HostState::Running;
                *self.inner.phase.lock() = Phase::Running(handle);
                Ok(addr)
            }
            Err(failed) => {
                let (server, e) = *failed;
                drop(self.inner.dispatcher.write().take());
                *self.inner.state.lock() = HostState::Stopped;
                *self.inner.phase.lock() = Phase::Idle(server);
                Err(e.into())
            }
        }
    }

    /// Stop: stop accepting, close every connection (disconnect handlers run), wait for
    /// the handler threads to finish what is queued. The server keeps its namespaces,
    /// handlers and state maps; [`Host::start`] serves it again.
    ///
    /// Blocks. Called from one of this host's own handlers, it cannot wait for that
    /// handler's thread, which finishes its queue after the call returns (see
    /// [`Host::in_handler`]; the C binding refuses that case).
    pub fn stop(&self) -> Result<(), HostError> {
        self.stop_inner(None).map(drop)
    }

    /// [`Host::stop`] with a deadline: returns within about `timeout` (plus at most one
    /// second for the network threads to leave). Connections get what is left of it to
    /// flush (the server's `shutdown_timeout` at most), then the handler threads get
    /// the rest to run what is queued. `Ok(true)` when every handler has finished;
    /// `Ok(false)` when some still run (a handler that blocks): they finish on their own
    /// threads, and [`wait_for_teardown`] waits for them. The host is stopped either way
    /// and can start again.
    pub fn stop_within(&self, timeout: std::time::Duration) -> Result<bool, HostError> {
        self.stop_inner(Some(std::time::Instant::now() + timeout))
    }

    /// Make (once) the [`Handoff`] this host's binding hands emits to: a stop then
    /// first waits for the emits handed off before it, so that they reach the clients
    /// before their connections close.
    pub fn enable_handoff(&self) -> std::io::Result<&Handoff> {
        if let Some(handoff) = self.inner.handoff.get() {
            return Ok(handoff);
        }
        let made = Handoff::new()?;
        Ok(self.inner.handoff.get_or_init(|| made))
    }

    /// The [`Handoff`], if [`Host::enable_handoff`] made one.
    pub fn handoff(&self) -> Option<&Handoff> {
        self.inner.handoff.get()
    }

    /// Wait until the emits handed off so far are fanned out (with a handoff): what a
    /// binding calls before an operation that must not overtake them (a room change, a
    /// disconnect, an emit with an ack). One atomic read when none is pending.
    pub fn wait_for_handed_off(&self) {
        self.inner.wait_for_handed_off();
    }

    fn stop_inner(&self, deadline: Option<std::time::Instant>) -> Result<bool, HostError> {
        if let Some(handoff) = self.handoff().filter(|h| h.pending() > 0) {
            let fence = handoff.fence();
            match deadline {
                // Past the deadline the stop goes on: what is left reaches nobody.
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    let _ = fence.wait_timeout(left);
                }
                None => fence.wait(),
            }
        }
        let handle = {
            let mut phase = self.inner.phase.lock();
            match std::mem::replace(&mut *phase, Phase::Busy) {
                Phase::Running(handle) => handle,
                other => {
                    *phase = other;
                    return Err(HostError::NotRunning);
                }
            }
        };
        *self.inner.state.lock() = HostState::Stopped;
        // Handlers already queued (an event whose callback is about to answer its ack)
        // run while their connections are still open, so what they send is flushed with
        // the rest. Bounded: a handler that blocks does not hold the stop beyond it.
        let idle_by = deadline.unwrap_or_else(|| std::time::Instant::now() + IDLE_WAIT);
        if let Some(d) = self.inner.dispatcher.read_recursive().as_ref() {
            d.wait_idle_until(idle_by);
        }
        // Closes every connection (disconnect handlers are queued) and joins the
        // network threads; then the handler threads run what is queued and leave.
        let server = match deadline {
            Some(deadline) => {
                handle.stop_within(deadline.saturating_duration_since(std::time::Instant::now()))
            }
            None => handle.stop(),
        };
        let dispatcher = self.inner.dispatcher.write().take();
        let finished = match (dispatcher, deadline) {
            (Some(d), Some(deadline)) => d.shutdown_until(deadline),
            (d, _) => {
                drop(d);
                true
            }
        };
        *self.inner.phase.lock() = Phase::Idle(server);
        Ok(finished)
    }

    /// Whether the server is listening.
    pub fn is_running(&self) -> bool {
        self.state() == HostState::Running
    }

    /// Where the host is in its lifecycle.
    pub fn state(&self) -> HostState {
        *self.inner.state.lock()
    }

    /// The bound address while running.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        if self.is_running() {
            *self.inner.local_addr.lock()
        } else {
            None
        }
    }

    /// The address the server was last bound to, running or not.
    pub fn last_local_addr(&self) -> Option<SocketAddr> {
        *self.inner.local_addr.lock()
    }

    /// An emitter for the server: valid in every state (before the start and after
    /// the stop, emits reach nobody).
    pub fn emitter(&self) -> Emitter {
        self.inner.emitter.clone()
    }

    /// A declared namespace.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.inner.emitter.namespace(name)
    }

    /// Declare (or get) a namespace. A new one can be declared only while the server
    /// is not running ([`HostError::Undeclared`] otherwise).
    pub fn declare(&self, name: &str) -> Result<Arc<Namespace>, HostError> {
        if let Some(ns) = self.namespace(name) {
            return Ok(ns);
        }
        match &*self.inner.phase.lock() {
            Phase::Idle(server) => Ok(server.namespace(name)),
            _ => Err(HostError::Undeclared(name.to_string())),
        }
    }

    /// Serve `app` on the server's port for every path that is not Socket.IO's (see
    /// [`Server::mount_app`]). Only while the server is not running
    /// ([`HostError::AlreadyRunning`] otherwise); kept across restarts.
    pub fn mount_app(
        &self,
        app: Arc<dyn crate::HttpApp>,
        max_body: usize,
    ) -> Result<(), HostError> {
        match &mut *self.inner.phase.lock() {
            Phase::Idle(server) => {
                server.mount_app(app, max_body);
                Ok(())
            }
            Phase::Running(_) => Err(HostError::AlreadyRunning),
            Phase::Busy => Err(HostError::Busy),
        }
    }

    /// Queue `job` on the handler thread of `key` (a socket id): it runs after every job
    /// queued before it with the same key. False (and the job dropped) when the server
    /// is not running.
    pub fn run(&self, key: &str, job: impl FnOnce() + Send + 'static) -> bool {
        self.inner.run(key, job)
    }

    /// Whether the current thread is running one of this host's handlers.
    pub fn in_handler(&self) -> bool {
        IN_HANDLER.with(|c| std::ptr::eq(c.get(), Arc::as_ptr(&self.inner)))
    }

    /// A weak handle, for registries that must not keep the host alive.
    pub fn downgrade(&self) -> WeakHost {
        WeakHost(Arc::downgrade(&self.inner))
    }
}

/// A [`Host`] that does not keep it alive; [`WeakHost::upgrade`] gives it back.
#[derive(Clone, Debug)]
pub struct WeakHost(std::sync::Weak<Inner>);

impl WeakHost {
    /// The host, if a [`Host`] handle still holds it.
    pub fn upgrade(&self) -> Option<Host> {
        self.0.upgrade().map(|inner| Host { inner })
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

impl Inner {
    fn run(self: &Arc<Self>, key: &str, job: impl FnOnce() + Send + 'static) -> bool {
        let me = Arc::downgrade(self);
        let job = move || {
            // Mark the thread as running this host's handler for the job's duration.
            struct Reset(*const Inner);
            impl Drop for Reset {
                fn drop(&mut self) {
                    IN_HANDLER.with(|c| c.set(self.0));
                }
            }
            let _reset = Reset(IN_HANDLER.with(|c| c.replace(me.as_ptr())));
            job();
        };
        // Recursive read: a handler that queues a job (a disconnect it causes) must not
        // wait behind a stop that is taking the dispatcher.
        match &*self.dispatcher.read_recursive() {
            Some(d) => {
                d.run(key, job);
                true
            }
            None => false,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let phase = std::mem::replace(&mut *self.phase.lock(), Phase::Busy);
        if let Phase::Running(handle) = phase {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Cannot block inside a runtime: the handle's Drop stops in the background.
                drop(handle);
            } else {
                drop(handle.stop());
            }
        }
        // Runs what is queued, then joins the threads (but not the current one, should
        // the last handle be dropped by a handler).
        drop(self.dispatcher.write().take());
    }
}

#[cfg(test)]
mod tests;
