//! [`EngineSocket`]: the handle the upper layer (Socket.IO, or an application serving
//! raw Engine.IO) holds on one session.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::WaitForCancellationFuture;

use super::queue::{always, Frame};
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

    /// Writes pushes to `through` while its writer waits idle, as a WebSocket's does;
    /// true when armed. For tests of the fan-out above the engine.
    #[cfg(test)]
    pub(crate) fn write_through_to(&self, through: Arc<dyn super::WriteThrough>) -> bool {
        self.0.set_write_through(through);
        self.0.arm_write_through()
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

    /// Queue already encoded frames as one group (all or none). Never waits: a full
    /// queue is [`SendError::QueueFull`].
    pub fn send_frames(&self, frames: &[Frame]) -> Result<(), SendError> {
        Ok(self.0.queue().push(frames).map(|_| ())?)
    }

    /// Bring what a push reads first into the cache (no locking): see
    /// `Socket::warm`.
    pub(crate) fn warm(&self) {
        self.0.queue().warm();
    }

    /// [`EngineSocket::send_frames`] while `admit` holds under the queue's lock (see
    /// `OutboundQueue::push_if`), telling whether the queue is now above its
    /// backpressure watermark (an emitter that may wait should). With `through`, the
    /// frames are written to the socket at once when its writer waits idle
    /// (write-through: what a low-rate broadcast does).
    pub(crate) fn push(
        &self,
        frames: &[Frame],
        through: bool,
        admit: impl Fn() -> bool,
    ) -> Result<bool, SendError> {
        Ok(self.0.queue().push_if(frames, through, admit)?)
    }

    /// Like [`EngineSocket::send_frames`], but when the queue is full, block the
    /// calling thread until the writer makes room or `deadline` passes. Do not call it
    /// on a runtime thread. A queue whose last wait timed out is not waited on again
    /// until the writer has emptied it. `Ok(true)`: queued, and the queue is above its
    /// backpressure watermark.
    pub fn send_frames_blocking(
        &self,
        frames: &[Frame],
        deadline: std::time::Instant,
    ) -> Result<bool, SendError> {
        self.push_blocking(frames, deadline, always)
    }

    /// [`EngineSocket::send_frames_blocking`] while `admit` holds under the queue's
    /// lock (asked again after every wait).
    pub(crate) fn push_blocking(
        &self,
        frames: &[Frame],
        deadline: std::time::Instant,
        admit: impl Fn() -> bool,
    ) -> Result<bool, SendError> {
        Ok(self.0.queue().push_blocking(frames, deadline, admit)?)
    }

    /// Block the calling thread until the writer has brought the queue back under its
    /// backpressure watermark; false when `deadline` passed first (the client does not
    /// keep up). Do not call it on a runtime thread.
    pub fn wait_below_watermark(&self, deadline: std::time::Instant) -> bool {
        self.0.queue().wait_below_watermark(deadline)
    }

    /// Whether the client's queue is above its backpressure watermark now (an emit
    /// that may wait would wait for it). Does not wait.
    pub fn is_behind(&self) -> bool {
        self.0.queue().is_behind()
    }

    /// Wait (as a task) until a group of `frames` frames carrying `bytes` bytes would
    /// be queued without exceeding the watermark; false when `deadline` passed first.
    pub async fn room_for(
        &self,
        frames: usize,
        bytes: usize,
        deadline: tokio::time::Instant,
    ) -> bool {
        self.0.queue().room_for(frames, bytes, deadline).await
    }

    /// Whether a group of `frames` frames carrying `bytes` payload bytes could ever be
    /// queued (an empty queue takes it).
    pub fn can_ever_take(&self, frames: usize, bytes: usize) -> bool {
        self.0.queue().can_ever_take(frames, bytes)
    }

    /// What waits to be written: (frames, bytes charged against the byte bound).
    pub fn backlog(&self) -> (usize, usize) {
        self.0.queue().depth()
    }

    /// Queue the latest value of `key`: an unwritten frame of the same key is replaced
    /// where it stands (keyed live state); `admit` as for [`EngineSocket::push`].
    pub(crate) fn send_keyed(
        &self,
        key: &Arc<str>,
        frame: &Frame,
        admit: impl Fn() -> bool,
    ) -> Result<(), SendError> {
        self.0
            .queue()
            .push_keyed(key, frame.clone(), admit)
            .map(|_| ())
            .map_err(SendError::from)
    }

    /// Keyed frames queued from now on go after everything queued now (see
    /// `OutboundQueue::keyed_barrier`).
    pub(crate) fn keyed_barrier(&self) {
        self.0.queue().keyed_barrier();
    }

    /// Queue frames whose source is bounded already (a recovery replay), outside the
    /// packet bound.
    pub(crate) fn send_replay(&self, frames: &[Frame]) {
        let _ = self.0.queue().push_replay(frames);
    }

    /// Take and count what waits in the queue (detached sessions of benchmarks).
    pub(crate) fn drain(&self) -> usize {
        self.take_all().len()
    }

    /// Take what waits in the queue (detached sessions of benchmarks and tests).
    pub(crate) fn take_all(&self) -> VecDeque<Frame> {
        let mut frames = VecDeque::new();
        self.0.take_frames(&mut frames, usize::MAX);
        frames
    }

    /// Frames waiting to be written.
    pub fn queued(&self) -> usize {
        self.0.queued()
    }

    /// Close the session after what is queued has been written.
    pub fn close(&self) {
        self.0.close(CloseReason::ServerClose);
    }

    /// Close with a given reason. Returns whether this call closed it (false when it
    /// was closed already).
    pub fn close_with(&self, reason: CloseReason) -> bool {
        self.0.close(reason)
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
