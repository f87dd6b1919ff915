//! What an application attaches to a namespace: its connect, event and disconnect
//! handlers, and the types they receive.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use crate::socketio::packet::Payload;
use crate::socketio::socket::{AckSender, DisconnectReason, Socket};

/// An event received from a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name (first element of the packet's array).
    pub name: String,
    /// The remaining arguments and binary attachments.
    pub payload: Payload,
    /// The arguments as the client sent them, a JSON array (each argument's bytes
    /// kept: key order, number spelling, escapes), when the server keeps them
    /// (`ServerConfig::keep_raw_args`; the C binding does). Binary arguments appear as
    /// their `{"_placeholder":true,"num":N}` objects.
    pub raw_args: Option<Arc<str>>,
}

/// A connect handler's refusal: the client gets CONNECT_ERROR with this message and data.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// Shown to the client as `err.message`.
    pub message: String,
    /// Shown to the client as `err.data`.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message and no data.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: None,
        }
    }

    /// Attach data for the client.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// A boxed future of a connect decision.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>;

type SyncConnect = dyn Fn(&Socket) -> Result<(), ConnectError> + Send + Sync;
type AsyncConnect = dyn Fn(Socket) -> ConnectFuture + Send + Sync;
/// An event handler: the socket, the event, and an ack sender when the client asked for one.
pub type EventHandler = Arc<dyn Fn(&Socket, Event, Option<AckSender>) + Send + Sync>;
pub(crate) type DisconnectHandler = Arc<dyn Fn(&Socket, DisconnectReason) + Send + Sync>;

/// How a namespace decides on a CONNECT.
#[derive(Clone)]
pub(crate) enum ConnectHook {
    Sync(Arc<SyncConnect>),
    Async(Arc<AsyncConnect>),
}

#[derive(Default)]
struct Registered {
    connect: Option<ConnectHook>,
    events: HashMap<String, EventHandler>,
    any: Option<EventHandler>,
    disconnect: Option<DisconnectHandler>,
}

/// The handlers of one namespace. They may be replaced at any time; a handler is
/// cloned out before it runs, so no lock is held while application code runs.
#[derive(Default)]
pub(crate) struct Handlers(RwLock<Registered>);

impl Handlers {
    pub fn set_connect(&self, hook: ConnectHook) {
        self.0.write().connect = Some(hook);
    }

    pub fn set_event(&self, event: &str, handler: EventHandler) {
        self.0.write().events.insert(event.to_string(), handler);
    }

    pub fn set_any(&self, handler: EventHandler) {
        self.0.write().any = Some(handler);
    }

    pub fn set_disconnect(&self, handler: DisconnectHandler) {
        self.0.write().disconnect = Some(handler);
    }

    pub fn connect(&self) -> Option<ConnectHook> {
        self.0.read().connect.clone()
    }

    /// The handler of `event`, or the catch-all one.
    pub fn event(&self, event: &str) -> Option<EventHandler> {
        let registered = self.0.read();
        registered
            .events
            .get(event)
            .or(registered.any.as_ref())
            .cloned()
    }

    pub fn disconnect(&self) -> Option<DisconnectHandler> {
        self.0.read().disconnect.clone()
    }
}
