//! Handlers a binding registers on a [`Host`]: they run on the host's dispatcher, keyed
//! by socket id, and are gated so that a socket's disconnect handler runs only if its
//! connect handler accepted it.
//!
//! Lock order: a handler is never called while a lock of this module is held, and no
//! lock of this module is held while the dispatcher's is taken.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::{Host, HostError, Inner};
use crate::socketio::socket::EarlierEmits;
use crate::{
    AckError, AckSender, ConnectError, ConnectFuture, DisconnectReason, Event, Namespace, Payload,
    Socket,
};

type DisconnectFn = Arc<dyn Fn(&Socket, DisconnectReason) + Send + Sync>;
type EventFn = Arc<dyn Fn(&Socket, Event, Option<AckSender>) + Send + Sync>;

/// What the gating of one host knows. Shared with the closures installed on the core's
/// namespaces (which hold it, and only a weak reference to the host: the namespaces
/// belong to the server the host owns).
#[derive(Default)]
pub(crate) struct Gates {
    namespaces: Mutex<HashMap<String, NsGate>>,
    /// `(namespace, socket id)` the connect handler accepted, until their disconnect.
    accepted: Mutex<HashSet<(String, String)>>,
}

#[derive(Default)]
struct NsGate {
    /// A connect handler decides who connects: the others hear only of its accepted
    /// sockets.
    gated: bool,
    disconnect: Option<DisconnectFn>,
}

/// A host's handed-off emits, as what its handlers' answers must not overtake. Weak: a
/// pending answer does not keep a dropped host alive.
struct HandedOff(Weak<Inner>);

impl EarlierEmits for HandedOff {
    fn pending(&self) -> bool {
        self.0
            .upgrade()
            .and_then(|inner| inner.handoff.get().map(|h| h.pending() > 0))
            .unwrap_or(false)
    }

    fn wait(&self) {
        if let Some(inner) = self.0.upgrade() {
            inner.wait_for_handed_off();
        }
    }
}

/// The gate of `socket`'s namespace, or that of the catch-all namespace `*`, whose
/// handlers serve the namespaces without their own (the core falls back the same way).
fn gate_of<'a>(namespaces: &'a HashMap<String, NsGate>, socket: &Socket) -> Option<&'a NsGate> {
    namespaces
        .get(socket.namespace())
        .or_else(|| namespaces.get("*"))
}

fn key(socket: &Socket) -> (String, String) {
    (socket.namespace().to_string(), socket.id().to_string())
}

impl Gates {
    /// Forget the sockets of a previous run.
    pub(crate) fn reset(&self) {
        self.accepted.lock().clear();
    }

    /// Whether the handlers of `socket` may hear of it: its namespace has no connect
    /// handler, or the handler accepted it, or it is a recovered session (recovery
    /// skips the connect handler: the socket was accepted in its earlier life).
    fn admits(&self, socket: &Socket) -> bool {
        let gated = gate_of(&self.namespaces.lock(), socket).is_some_and(|g| g.gated);
        !gated || socket.pid().is_some() || self.accepted.lock().contains(&key(socket))
    }

    /// `socket` left: the disconnect handler to call, if it may hear of it.
    fn leave(&self, socket: &Socket) -> Option<DisconnectFn> {
        let was_accepted = self.accepted.lock().remove(&key(socket));
        let namespaces = self.namespaces.lock();
        let gate = gate_of(&namespaces, socket)?;
        let admitted = !gate.gated || was_accepted || socket.pid().is_some();
        let handler = gate
            .disconnect
            .clone()
            .or_else(|| namespaces.get("*")?.disconnect.clone());
        admitted.then_some(handler).flatten()
    }

    /// The gate of `ns`; the first time, the core's disconnect hook that feeds it.
    fn with_gate<R>(
        self: &Arc<Self>,
        ns: &Namespace,
        host: &Weak<Inner>,
        f: impl FnOnce(&mut NsGate) -> R,
    ) -> R {
        let mut namespaces = self.namespaces.lock();
        let new = !namespaces.contains_key(ns.name());
        let result = f(namespaces.entry(ns.name().to_string()).or_default());
        drop(namespaces);
        if new {
            let gates = self.clone();
            let host = host.clone();
            ns.on_disconnect(move |socket, reason| {
                let Some(inner) = host.upgrade() else { return };
                let owned = socket.clone();
                let gates = gates.clone();
                // After every job already queued for the socket: its other handlers.
                inner.run(socket.id(), move || {
                    if let Some(handler) = gates.leave(&owned) {
                        handler(&owned, reason);
                    }
                });
            });
        }
        result
    }
}

impl Host {
    /// Register the connect handler of namespace `nsp` (declaring it), replacing any
    /// previous one. It runs on the socket's handler thread before any other handler
    /// of that socket; `Err` refuses the client (it gets a `connect_error` with the
    /// message and data). Once a namespace has one, its other handlers hear only of the
    /// sockets it accepted. Without one, every client is accepted.
    ///
    /// While it runs the connection waits, without blocking any network thread. When
    /// the server stops before it can run, the client is refused.
    pub fn on_connect<F>(&self, nsp: &str, handler: F) -> Result<(), HostError>
    where
        F: Fn(&Socket) -> Result<(), ConnectError> + Send + Sync + 'static,
    {
        let ns = self.declare(nsp)?;
        let gates = &self.inner.gates;
        let host = Arc::downgrade(&self.inner);
        gates.with_gate(&ns, &host, |g| g.gated = true);
        let handler = Arc::new(handler);
        let gates = gates.clone();
        ns.on_connect_async(move |socket| -> ConnectFuture {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let handler = handler.clone();
            let gates = gates.clone();
            let key = socket.id().to_string();
            let queued = host.upgrade().is_some_and(|inner| {
                inner.run(&key, move || {
                    let decision = handler(&socket);
                    // Not for a connection already gone: its disconnect never comes.
                    if decision.is_ok() && socket.connected() {
                        gates.accepted.lock().insert(self::key(&socket));
                    }
                    let _ = tx.send(decision);
                })
            });
            Box::pin(async move {
                if !queued {
                    return Err(ConnectError::new("server shutting down"));
                }
                // A job dropped unrun (the server stopping) drops the sender: refuse.
                rx.await
                    .unwrap_or_else(|_| Err(ConnectError::new("server shutting down")))
            })
        });
        Ok(())
    }

    /// Register the disconnect handler of namespace `nsp` (declaring it), replacing any
    /// previous one. It runs once per socket that connected (and that the connect
    /// handler accepted, if the namespace has one), on the socket's handler thread,
    /// after every other handler of that socket. The server stopping disconnects every
    /// socket: their handlers run before [`Host::stop`] returns.
    pub fn on_disconnect<F>(&self, nsp: &str, handler: F) -> Result<(), HostError>
    where
        F: Fn(&Socket, DisconnectReason) + Send + Sync + 'static,
    {
        let ns = self.declare(nsp)?;
        let host = Arc::downgrade(&self.inner);
        let handler: DisconnectFn = Arc::new(handler);
        self.inner
            .gates
            .with_gate(&ns, &host, |g| g.disconnect = Some(handler));
        Ok(())
    }

    /// Register the handler of event `event` on namespace `nsp` (declaring it),
    /// replacing any previous one. It runs on the socket's handler thread: one
    /// socket's events in the order the client sent them. `ack` is `Some` when the
    /// client asked for an acknowledgement.
    pub fn on<F>(&self, nsp: &str, event: &str, handler: F) -> Result<(), HostError>
    where
        F: Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    {
        let ns = self.declare(nsp)?;
        ns.on(event, self.gated(&ns, Arc::new(handler)));
        Ok(())
    }

    /// Register the catch-all handler of namespace `nsp` (declaring it): it gets every
    /// event without a handler of its own, as [`Host::on`] handlers do.
    pub fn on_any<F>(&self, nsp: &str, handler: F) -> Result<(), HostError>
    where
        F: Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static,
    {
        let ns = self.declare(nsp)?;
        ns.on_any(self.gated(&ns, Arc::new(handler)));
        Ok(())
    }

    /// An event handler for the core: hands the call to the socket's handler thread.
    fn gated(
        &self,
        ns: &Namespace,
        handler: EventFn,
    ) -> impl Fn(&Socket, Event, Option<AckSender>) + Send + Sync + 'static {
        let host = Arc::downgrade(&self.inner);
        let gates = self.inner.gates.clone();
        gates.with_gate(ns, &host, |_| ());
        let handed_off: Arc<dyn EarlierEmits> = Arc::new(HandedOff(host.clone()));
        move |socket, event, ack| {
            let Some(inner) = host.upgrade() else { return };
            // With a handoff, the answer waits for the emits handed off before it.
            let ack = match ack {
                Some(ack) if inner.handoff.get().is_some() => Some(ack.after(handed_off.clone())),
                ack => ack,
            };
            let (owned, handler, gates) = (socket.clone(), handler.clone(), gates.clone());
            inner.run(socket.id(), move || {
                if gates.admits(&owned) {
                    handler(&owned, event, ack);
                }
            });
        }
    }

    /// Emit `event` to `socket` asking for an acknowledgement; `callback` gets the answer
    /// (or [`AckError`] after `timeout`, or when the socket leaves) on the socket's
    /// handler thread. Dropped unrun if the server has stopped by then.
    pub fn emit_with_ack<F>(
        &self,
        socket: &Socket,
        event: &str,
        payload: &Payload,
        timeout: Duration,
        callback: F,
    ) where
        F: FnOnce(Result<Payload, AckError>) + Send + 'static,
    {
        let host = Arc::downgrade(&self.inner);
        let key = socket.id().to_string();
        socket.emit_with_ack_callback(event, payload, timeout, move |result| {
            if let Some(inner) = host.upgrade() {
                inner.run(&key, move || callback(result));
            }
        });
    }
}
