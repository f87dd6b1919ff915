//! A raw Engine.IO endpoint that sends every message straight back (text stays text,
//! binary stays binary), as the Engine.IO test suites expect. Shared by the example
//! servers through `#[path]`.

use std::sync::Arc;

use swarmcast::engine::{
    CloseReason, ConnectionHandler, EngineHandler, EngineSocket, Incoming, RequestInfo,
};

/// Serves the echo endpoint.
pub struct Echo;

struct EchoConnection(EngineSocket);

impl EngineHandler for Echo {
    fn on_open(&self, socket: EngineSocket, _req: &RequestInfo) -> Arc<dyn ConnectionHandler> {
        Arc::new(EchoConnection(socket))
    }
}

impl ConnectionHandler for EchoConnection {
    fn on_message(&self, message: Incoming<'_>) {
        let _ = match message {
            Incoming::Text(text) => self.0.send_text(text),
            Incoming::Binary(bytes) => self.0.send_binary(bytes),
        };
    }

    fn on_close(&self, _reason: CloseReason) {}
}
