//! [`EngineSocket`]: the handle the upper layer (Socket.IO, or an application serving
//! raw Engine.IO) holds on one session.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::WaitForCancellationFuture;

use super::queue::Frame;
use super::session::Session;
use super::{CloseReason, SendError, Transport};

/// A handle on one Engine.IO session: send messages, close it. Cheap to clone, usable
/// from any thread.
#[derive(Clone)]
pub struct EngineSocket(Arc<Session>);

impl std::fmt::Debug for EngineSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSocket")
            .field("sid", &self.0.sid())
            .finish()
    }
}

impl EngineSocket {
    pub(crate) fn new(session: Arc<Session>) -> Self {
        Self(session)
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        self.0.sid()
    }

    /// The transport currently in use.
    pub fn transport(&self) -> Transport {
        self.0.transport()
    }

    /// Queue a text message.
    pub fn send_text(&self, text: &str) -> Result<(), SendError> {
        let mut packet = String::with_capacity(text.len() + 1);
        packet.push('4');
        packet.push_str(text);
        self.send_frames(&[Frame::text(packet)])
    }

    /// Queue a binary message.
    pub fn send_binary(&self, data: &Bytes) -> Result<(), SendError> {
        self.send_frames(&[Frame::binary(data.clone())])
    }

    /// Queue already encoded frames as one group (all or none).
    pub fn send_frames(&self, frames: &[Frame]) -> Result<(), SendError> {
        Ok(self.0.push(frames)?)
    }

    /// Queue the latest value of `key`: an unwritten frame of the same key is replaced
    /// where it stands (keyed live state).
    pub(crate) fn send_keyed(&self, key: &Arc<str>, frame: &Frame) -> Result<(), SendError> {
        self.0
            .push_keyed(key, frame.clone())
            .map(|_| ())
            .map_err(SendError::from)
    }

    /// Queue frames whose source is bounded already (a recovery replay), outside the
    /// packet bound.
    pub(crate) fn send_replay(&self, frames: &[Frame]) {
        for frame in frames {
            let _ = self.0.push_control(frame.clone());
        }
    }

    /// Take and count what waits in the queue (detached sessions of benchmarks).
    pub(crate) fn drain(&self) -> usize {
        let mut frames = VecDeque::new();
        self.0.take_frames(&mut frames, usize::MAX);
        frames.len()
    }

    /// Frames waiting to be written.
    pub fn queued(&self) -> usize {
        self.0.queued()
    }

    /// Close the session after what is queued has been written.
    pub fn close(&self) {
        self.0.close(CloseReason::ServerClose);
    }

    /// Close with a given reason.
    pub fn close_with(&self, reason: CloseReason) {
        self.0.close(reason);
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Resolves when the session has ended.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.0.closed()
    }
}
