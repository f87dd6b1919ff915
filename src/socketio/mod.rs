//! The Socket.IO v5 layer over Engine.IO sessions: namespaces, sockets, rooms,
//! emitters and broadcasts, keyed live state, client subscriptions, connection state
//! recovery, and the adapter seam through which every broadcast leaves a namespace.
//!
//! It knows nothing of HTTP or WebSocket: the `server` layer hands it Engine.IO
//! sessions through [`crate::engine::EngineHandler`] ([`connection::SocketIoHandler`]).

pub(crate) mod adapter;
pub(crate) mod connection;
pub(crate) mod context;
pub(crate) mod emitter;
pub(crate) mod handoff;
pub(crate) mod limits;
pub(crate) mod namespace;
pub(crate) mod packet;
pub(crate) mod recovery;
pub(crate) mod rooms;
pub(crate) mod serial;
pub(crate) mod socket;
pub(crate) mod state;
pub(crate) mod subscriptions;
