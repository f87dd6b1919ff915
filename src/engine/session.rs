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
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::queue::{Frame, OutboundQueue, QueueLimits, WriteThrough};
use super::{CloseReason, ConnectionHandler, Engine, Incoming, Transport};
use crate::metrics::Stats;
use crate::protocol::engineio;

/// Where a polling session stands on its way to WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// Long-polling, no probe under way (or a probe that went away).
    None = 0,
    /// A WebSocket for this session is open and may probe; any other is refused.
    Probing = 1,
    /// The WebSocket answered the probe: pending and new GETs end with NOOP so that the
    /// client can send UPGRADE.
    Probed = 2,
    /// UPGRADE received: the WebSocket is the transport.
    Done = 3,
}

/// One client connection at the Engine.IO level.
pub(crate) struct Session {
    sid: Arc<str>,
    queue: OutboundQueue,
    transport: AtomicU8,
    upgrade: AtomicU8,
    /// A long-poll GET is pending: a second one is a protocol violation.
    get_active: AtomicBool,
    /// The client sent CLOSE: a pending long-poll ends with NOOP, not CLOSE.
    closed_by_client: AtomicBool,
    /// Past this instant without a PONG the session is dead, whether or not the
    /// heartbeat task has noticed yet: requests check it when they arrive.
    deadline: Mutex<Instant>,
    /// pingInterval + pingTimeout: how far each PONG pushes the deadline.
    grace: Duration,
    /// Serialises POST bodies so messages reach the handler in order, one at a time.
    post_lock: Mutex<()>,
    pong: Notify,
    closed: CancellationToken,
    /// Mirrors `closed` (set just before it is cancelled): the writer asks at every write,
    /// and the token's own question takes a lock.
    is_closed: AtomicBool,
    close_once: AtomicBool,
    /// Taken out on close: the handler holds this session (to send), so keeping it
    /// past the close would be a reference cycle.
    handler: Mutex<Option<Arc<dyn ConnectionHandler>>>,
    engine: Weak<Engine>,
}

/// A pending long-poll GET. Clears the "GET pending" flag however the request ends; a
/// GET that ends without an answer (hyper drops the future when the client goes away)
/// closes the session, as the reference server does.
pub(crate) struct PollGuard<'a> {
    session: &'a Session,
    answered: bool,
}

impl PollGuard<'_> {
    /// The GET is being answered: dropping the guard now only ends the poll.
    pub fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.session.get_active.store(false, Ordering::Release);
        if !self.answered {
            self.session.close(CloseReason::TransportError);
        }
    }
}

impl Session {
    /// A session whose first PONG is due `grace` (pingInterval + pingTimeout) from now.
    pub(super) fn new(
        sid: Arc<str>,
        limits: QueueLimits,
        transport: Transport,
        grace: Duration,
        engine: Weak<Engine>,
    ) -> Arc<Self> {
        Arc::new(Session {
            sid,
            queue: OutboundQueue::new(limits),
            transport: AtomicU8::new(transport as u8),
            upgrade: AtomicU8::new(Upgrade::None as u8),
            get_active: AtomicBool::new(false),
            closed_by_client: AtomicBool::new(false),
            deadline: Mutex::new(after(grace)),
            grace,
            post_lock: Mutex::new(()),
            pong: Notify::new(),
            closed: CancellationToken::new(),
            is_closed: AtomicBool::new(false),
            close_once: AtomicBool::new(false),
            handler: Mutex::new(None),
            engine,
        })
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The session id, shared.
    pub(crate) fn sid_arc(&self) -> &Arc<str> {
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
        self.is_closed.load(Ordering::Acquire)
    }

    /// Resolves when the session has ended.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    /// Whether the client ended the session with a CLOSE packet.
    pub fn closed_by_client(&self) -> bool {
        self.closed_by_client.load(Ordering::Acquire)
    }

    /// Close the session if its PONG deadline has passed; true when it is (now) closed.
    /// Called when a request arrives, so that the timeout holds to the millisecond
    /// whatever the timer's resolution.
    pub fn check_deadline(&self) -> bool {
        if !self.is_closed() && Instant::now() >= *self.deadline.lock() {
            self.close(CloseReason::PingTimeout);
        }
        self.is_closed()
    }

    // --- outbound queue, as the transports and the upper layer see it ---------------

    /// The queue itself, for the emit paths of [`super::EngineSocket`].
    pub(super) fn queue(&self) -> &OutboundQueue {
        &self.queue
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

    /// The transport's socket, which pushes may write to while the writer is armed.
    pub fn set_write_through(&self, through: Arc<dyn WriteThrough>) {
        self.queue.set_write_through(through);
    }

    /// The writer waits idle with nothing of its own unwritten; see
    /// [`OutboundQueue::arm`].
    pub fn arm_write_through(&self) -> bool {
        self.queue.arm()
    }

    /// The writer is about to use its socket.
    pub fn disarm_write_through(&self) {
        self.queue.disarm();
    }

    /// The transport's socket is going away: no push writes to it from now on.
    pub fn clear_write_through(&self) {
        self.queue.clear_write_through();
    }

    // --- long-polling -------------------------------------------------------------

    /// Begin a long-poll GET; None when one is already pending (a broken client).
    pub fn begin_poll(&self) -> Option<PollGuard<'_>> {
        if self.get_active.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(PollGuard {
            session: self,
            answered: false,
        })
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

    /// A WebSocket asks to upgrade this session. True when it may probe; false when
    /// another one is probing or the session upgraded already (that one is closed, as
    /// the spec says, and the session goes on).
    pub fn attach_probe(&self) -> bool {
        self.transport() == Transport::Polling
            && self
                .upgrade
                .compare_exchange(
                    Upgrade::None as u8,
                    Upgrade::Probing as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// The WebSocket answered `2probe` with `3probe`: end the pending long-poll so the
    /// client can send UPGRADE.
    pub fn probe_succeeded(&self) {
        self.upgrade.store(Upgrade::Probed as u8, Ordering::Release);
        self.queue.wake();
    }

    /// The probing WebSocket went away before UPGRADE: back to plain long-polling, so
    /// that GETs wait for packets again and another probe may come.
    pub fn probe_abandoned(&self) {
        let _ = self
            .upgrade
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state == Upgrade::Probing as u8 || state == Upgrade::Probed as u8)
                    .then_some(Upgrade::None as u8)
            });
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
            tracing::info!(target: "swarmcast::engine", sid = %self.sid, "transport upgraded to websocket");
        }
        switched
    }

    // --- packets from the client -------------------------------------------------

    /// Handle one decoded packet from the client (either transport). Returns an error
    /// reason when the packet breaks the protocol; the caller then closes the session.
    pub fn receive(&self, packet: engineio::Packet<'_>) -> Result<(), CloseReason> {
        match packet {
            engineio::Packet::Pong(_) => {
                *self.deadline.lock() = after(self.grace);
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
                self.closed_by_client.store(true, Ordering::Release);
                if self.transport() == Transport::Polling
                    && !self.get_active.load(Ordering::Acquire)
                {
                    // Its last GET may be on another connection the server has not read
                    // yet: that one is answered NOOP, as if it had come first.
                    if let Some(engine) = self.engine.upgrade() {
                        engine.remember_client_close(&self.sid);
                    }
                }
                self.close(CloseReason::TransportClose);
                Ok(())
            }
            engineio::Packet::Noop => Ok(()),
            // In v4 only the server pings (a probe is handled by the WebSocket transport
            // before it gets here): a client PING breaks the protocol, as for the
            // reference server. Answering it would also let a client queue frames at will.
            engineio::Packet::Ping(_) | engineio::Packet::Open(_) | engineio::Packet::Upgrade => {
                Err(CloseReason::ParseError)
            }
        }
    }

    /// A binary message that already is `Bytes` (a WebSocket frame): no copy.
    pub fn receive_binary(&self, bytes: &Bytes) {
        if let Some(h) = self.handler() {
            h.on_message(Incoming::Binary(bytes));
        }
    }

    /// End the session: refuse new frames, let the writer flush what is queued, drop it
    /// from the endpoint and tell the handler (once). Returns whether this call closed
    /// it (false when it was closed already).
    pub fn close(&self, reason: CloseReason) -> bool {
        if self.close_once.swap(true, Ordering::AcqRel) {
            return false;
        }
        tracing::debug!(sid = %self.sid, %reason, "engine.io session closed");
        self.queue.close();
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
        if let Some(engine) = self.engine.upgrade() {
            engine.remove(&self.sid);
        }
        let handler = self.handler.lock().take();
        if let Some(h) = handler {
            h.on_close(reason);
        }
        true
    }
}

/// `grace` from now, or far in the future when that is past what a clock can hold.
fn after(grace: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(grace)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// PING every `interval`; close when no PONG comes by the session's deadline (the
/// PING plus `timeout`, pushed on by every PONG).
pub(super) async fn heartbeat(session: Arc<Session>, interval: Duration, stats: Arc<Stats>) {
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
        let sent = Instant::now();
        let deadline = *session.deadline.lock();
        tokio::select! {
            _ = session.closed.cancelled() => return,
            _ = session.pong.notified() => stats.record_ping_rtt(sent.elapsed().as_secs_f64()),
            _ = tokio::time::sleep_until(deadline) => {
                session.close(CloseReason::PingTimeout);
                return;
            }
        }
    }
}
