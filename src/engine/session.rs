//! One Engine.IO session: its outbound queue, heartbeat, the polling -> WebSocket
//! upgrade state machine, and its close.
//!
//! The transports (long-polling requests, WebSocket tasks) drive a session only through
//! the methods here: every field is private, so the rules of the protocol (one GET at a
//! time, one POST at a time, probe before UPGRADE, close once) live in one place.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::queue::{Frame, KeyedPush, OutboundQueue, PushError, QueueLimits};
use super::{CloseReason, ConnectionHandler, Engine, Incoming, Transport};
use crate::metrics::Stats;
use crate::protocol::engineio;

/// Where a polling session stands on its way to WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// Long-polling, no probe under way (or a probe that went away).
    None = 0,
    /// A WebSocket answered the probe: pending and new GETs end with NOOP so that the
    /// client can send UPGRADE.
    Probed = 1,
    /// UPGRADE received: the WebSocket is the transport.
    Done = 2,
}

/// One client connection at the Engine.IO level.
pub(crate) struct Session {
    sid: Arc<str>,
    queue: OutboundQueue,
    transport: AtomicU8,
    upgrade: AtomicU8,
    /// A long-poll GET is pending: a second one is a protocol violation.
    get_active: AtomicBool,
    /// Serialises POST bodies so messages reach the handler in order, one at a time.
    post_lock: Mutex<()>,
    pong: Notify,
    closed: CancellationToken,
    close_once: AtomicBool,
    /// Taken out on close: the handler holds this session (to send), so keeping it
    /// past the close would be a reference cycle.
    handler: Mutex<Option<Arc<dyn ConnectionHandler>>>,
    engine: Weak<Engine>,
}

/// Clears the "GET pending" flag however the request ends (including when hyper drops
/// the future because the client went away).
pub(crate) struct PollGuard<'a>(&'a Session);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.0.get_active.store(false, Ordering::Release);
    }
}

impl Session {
    pub(super) fn new(
        sid: Arc<str>,
        limits: QueueLimits,
        transport: Transport,
        engine: Weak<Engine>,
    ) -> Arc<Self> {
        Arc::new(Session {
            sid,
            queue: OutboundQueue::new(limits),
            transport: AtomicU8::new(transport as u8),
            upgrade: AtomicU8::new(Upgrade::None as u8),
            get_active: AtomicBool::new(false),
            post_lock: Mutex::new(()),
            pong: Notify::new(),
            closed: CancellationToken::new(),
            close_once: AtomicBool::new(false),
            handler: Mutex::new(None),
            engine,
        })
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub(super) fn set_handler(&self, handler: Arc<dyn ConnectionHandler>) {
        *self.handler.lock() = Some(handler);
    }

    /// The handler, cloned out so that no lock is held while it runs.
    fn handler(&self) -> Option<Arc<dyn ConnectionHandler>> {
        self.handler.lock().clone()
    }

    pub fn transport(&self) -> Transport {
        if self.transport.load(Ordering::Acquire) == Transport::WebSocket as u8 {
            Transport::WebSocket
        } else {
            Transport::Polling
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the session has ended.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    // --- outbound queue, as the transports and the upper layer see it ---------------

    /// Queue a group of frames (all or none), within the queue's bounds.
    pub(super) fn push(&self, frames: &[Frame]) -> Result<(), PushError> {
        self.queue.push(frames)
    }

    /// Queue the latest value of a keyed entry (coalesced in place).
    pub(super) fn push_keyed(&self, key: &Arc<str>, frame: Frame) -> Result<KeyedPush, PushError> {
        self.queue.push_keyed(key, frame)
    }

    /// Queue a frame outside the packet bound (protocol control packets, replays whose
    /// source is bounded already).
    pub(super) fn push_control(&self, frame: Frame) -> Result<(), PushError> {
        self.queue.push_control(frame)
    }

    /// Move up to `max` queued frames into `out`; returns whether the queue is closed.
    pub fn take_frames(&self, out: &mut VecDeque<Frame>, max: usize) -> bool {
        self.queue.drain_into(out, max)
    }

    /// Frames waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Wait until frames are queued or the queue is closed.
    pub async fn frames_ready(&self) {
        self.queue.ready().await
    }

    /// Wake the writer without queuing anything.
    pub fn wake_writer(&self) {
        self.queue.wake();
    }

    // --- long-polling -------------------------------------------------------------

    /// Begin a long-poll GET; None when one is already pending (a broken client).
    pub fn begin_poll(&self) -> Option<PollGuard<'_>> {
        if self.get_active.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(PollGuard(self))
    }

    /// One POST at a time, so that packets reach the handler in order; None when
    /// another POST is being handled (a broken client).
    pub fn begin_post(&self) -> Option<MutexGuard<'_, ()>> {
        self.post_lock.try_lock()
    }

    /// Whether a pending long-poll must end now (with NOOP) for the upgrade to go on.
    pub fn poll_yields_to_upgrade(&self) -> bool {
        self.upgrade.load(Ordering::Acquire) == Upgrade::Probed as u8
    }

    // --- the upgrade ----------------------------------------------------------------

    /// A WebSocket answered `2probe` with `3probe`: end the pending long-poll so the
    /// client can send UPGRADE.
    pub fn probe_succeeded(&self) {
        self.upgrade.store(Upgrade::Probed as u8, Ordering::Release);
        self.queue.wake();
    }

    /// The probing WebSocket went away before UPGRADE: back to plain long-polling.
    pub fn probe_abandoned(&self) {
        let _ = self.upgrade.compare_exchange(
            Upgrade::Probed as u8,
            Upgrade::None as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// UPGRADE arrived on the probing WebSocket. True when the session switched to it
    /// (the probe had succeeded); the WebSocket then writes what polling left queued.
    pub fn complete_upgrade(&self) -> bool {
        let switched = self
            .upgrade
            .compare_exchange(
                Upgrade::Probed as u8,
                Upgrade::Done as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if switched {
            self.transport
                .store(Transport::WebSocket as u8, Ordering::Release);
            self.queue.wake();
        }
        switched
    }

    // --- packets from the client -------------------------------------------------

    /// Handle one decoded packet from the client (either transport). Returns an error
    /// reason when the packet breaks the protocol; the caller then closes the session.
    pub fn receive(&self, packet: engineio::Packet<'_>) -> Result<(), CloseReason> {
        match packet {
            engineio::Packet::Pong(_) => {
                self.pong.notify_one();
                Ok(())
            }
            engineio::Packet::Message(engineio::Message::Text(text)) => {
                if let Some(h) = self.handler() {
                    h.on_message(Incoming::Text(text));
                }
                Ok(())
            }
            engineio::Packet::Message(engineio::Message::Binary(data)) => {
                let bytes = Bytes::from(data.into_owned());
                self.receive_binary(&bytes);
                Ok(())
            }
            engineio::Packet::Close => {
                self.close(CloseReason::TransportClose);
                Ok(())
            }
            engineio::Packet::Noop => Ok(()),
            // v4 clients do not ping, but answering is harmless and helps old tools.
            engineio::Packet::Ping(payload) => {
                let _ = self.queue.push_control(Frame::text(engineio::encode_text(
                    &engineio::Packet::Pong(payload),
                )));
                Ok(())
            }
            engineio::Packet::Open(_) | engineio::Packet::Upgrade => Err(CloseReason::ParseError),
        }
    }

    /// A binary message that already is `Bytes` (a WebSocket frame): no copy.
    pub fn receive_binary(&self, bytes: &Bytes) {
        if let Some(h) = self.handler() {
            h.on_message(Incoming::Binary(bytes));
        }
    }

    /// End the session: refuse new frames, let the writer flush what is queued, drop it
    /// from the endpoint and tell the handler (once).
    pub fn close(&self, reason: CloseReason) {
        if self.close_once.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(sid = %self.sid, %reason, "engine.io session closed");
        self.queue.close();
        self.closed.cancel();
        if let Some(engine) = self.engine.upgrade() {
            engine.remove(&self.sid);
        }
        let handler = self.handler.lock().take();
        if let Some(h) = handler {
            h.on_close(reason);
        }
    }
}

/// PING every `interval`; close when no PONG comes within `timeout`.
pub(super) async fn heartbeat(
    session: Arc<Session>,
    interval: Duration,
    timeout: Duration,
    stats: Arc<Stats>,
) {
    let ping = engineio::encode_text(&engineio::Packet::Ping(""));
    loop {
        tokio::select! {
            _ = session.closed.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if session
            .queue
            .push_control(Frame::text(ping.clone()))
            .is_err()
        {
            return;
        }
        let sent = tokio::time::Instant::now();
        tokio::select! {
            _ = session.closed.cancelled() => return,
            _ = session.pong.notified() => stats.record_ping_rtt(sent.elapsed().as_secs_f64()),
            _ = tokio::time::sleep(timeout) => {
                session.close(CloseReason::PingTimeout);
                return;
            }
        }
    }
}
