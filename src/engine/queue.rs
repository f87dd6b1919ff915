//! The bounded outbound queue of one Engine.IO session.
//!
//! Every packet for a client goes through here, whatever its transport: emitters push
//! encoded frames (cheap `Bytes` clones of a shared buffer), and the transport's writer
//! takes everything queued in one go. That is the write coalescing: under load a writer
//! wakes once for many frames and flushes once.
//!
//! The queue is bounded by bytes first: each frame counts its payload plus
//! [`FRAME_OVERHEAD`] for its bookkeeping, so a burst of many small packets costs what
//! it weighs. A packet bound remains as a backstop, far above what the byte bound lets
//! through for ordinary packets. Nothing can be queued past the bounds but what the
//! server itself bounds elsewhere (a recovery replay) and a small reserve for the
//! protocol's own control packets. An emitter that finds the queue full may wait for
//! room ([`OutboundQueue::push_blocking`], [`OutboundQueue::room_for`]), and one whose
//! push left the queue above its backpressure watermark may wait for the writer to
//! catch up ([`OutboundQueue::wait_below_watermark`]): the writer wakes them as it takes
//! frames.
//!
//! Write-through: a writer that waits idle may arm its queue with a [`WriteThrough`]
//! (the WebSocket transport's socket). A push that may write through and finds the
//! queue armed and empty then writes the frames to the socket itself, under the queue's
//! lock, instead of queuing them and waking the writer: at low load that wake-up, not
//! the socket, is what a delivery costs above the kernel. Anything the socket does not
//! take at once goes back to the writer (in order), and the queue disarms until the
//! writer is idle again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One encoded Engine.IO packet, ready for the wire.
///
/// A text frame holds the whole Engine.IO packet (`"4..."` for a message, `"2"` for a
/// ping); a binary frame holds a binary message's raw bytes (WebSocket sends them as
/// they are, long-polling as `b` + base64). Cloning shares the bytes.
///
/// One pointer wide: a broadcast queues a clone in every recipient's queue, and at
/// 1,000 recipients the cache line a slot lands in is most of a push's cost (as a
/// 40-byte handle, each push filled 0.6 of a line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(pub(crate) Arc<FrameData>);

/// What a [`Frame`] holds. Crate-internal: the text is kept in the WebSocket crate's
/// UTF-8 buffer type so that writing it needs neither a copy nor a second validation,
/// and that type stays out of the public API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameData {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Frame {
    /// A text frame from an already encoded Engine.IO packet (type digit included).
    pub fn text(packet: impl Into<String>) -> Self {
        Frame(Arc::new(FrameData::Text(packet.into().into())))
    }

    /// A binary frame (a binary message's bytes).
    pub fn binary(data: Bytes) -> Self {
        Frame(Arc::new(FrameData::Binary(data)))
    }

    /// The encoded packet of a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match &*self.0 {
            FrameData::Text(t) => Some(t.as_str()),
            FrameData::Binary(_) => None,
        }
    }

    /// The bytes of a binary frame.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match &*self.0 {
            FrameData::Text(_) => None,
            FrameData::Binary(b) => Some(b),
        }
    }

    /// Payload size in bytes, as counted against queue limits.
    pub fn len(&self) -> usize {
        match &*self.0 {
            FrameData::Text(t) => t.len(),
            FrameData::Binary(b) => b.len(),
        }
    }

    /// Whether the frame carries no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes a queued frame is charged beyond its payload: its slot in the queue, its
/// reference count and its share of the writer's bookkeeping.
pub(crate) const FRAME_OVERHEAD: usize = 64;

/// Control packets (pings) may exceed the bounds by this many frames, so that the
/// heartbeat of a busy connection still goes out; never more.
const CONTROL_RESERVE: usize = 4;

/// What `frames` cost against the byte bound.
fn charge(frames: &[Frame]) -> usize {
    frames.iter().map(|f| f.len() + FRAME_OVERHEAD).sum()
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue is at its packet or byte bound.
    Full,
    /// The session is closed (or closing).
    Closed,
}

/// Limits of one session's queue: the hard bounds, and the backpressure watermark
/// above which emitters that may wait do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub max_packets: usize,
    pub max_bytes: usize,
    pub soft_packets: usize,
    pub soft_bytes: usize,
}

/// What a [`WriteThrough`] did with the frames it was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Every byte went out.
    All,
    /// Some bytes went out; the sink kept the rest for the writer to send first.
    Partly,
    /// Nothing went out (the socket is full or failing, or the frames are too large
    /// to offer): queue them.
    Nothing,
}

/// A socket a push may write to directly while its writer waits idle. Only called
/// under the queue's lock, so never concurrently with the writer (which writes only
/// while the queue is disarmed) nor with another push.
pub(crate) trait WriteThrough: Send + Sync {
    /// Write `frames` without blocking.
    fn write(&self, frames: &[Frame]) -> Written;
}

/// An `admit` (see [`OutboundQueue::push_if`]) that always lets the push in.
pub(crate) fn always() -> bool {
    true
}

/// What a keyed push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyedPush {
    /// Appended to the queue.
    Queued,
    /// Replaced the unwritten frame of the same key, in its place.
    Coalesced,
}

#[derive(Debug, Default)]
struct QueueState {
    frames: VecDeque<Frame>,
    /// Charged bytes of `frames` (payload plus `FRAME_OVERHEAD` each).
    bytes: usize,
    closed: bool,
    /// An emitter waited for room and gave up: later emitters do not wait again until
    /// the writer has emptied the queue.
    stalled: bool,
    /// Sequence number of `frames[0]`; grows as frames are taken.
    head: u64,
    /// Unwritten keyed frames: key -> sequence number. Created on first use, so idle
    /// connections pay nothing for it.
    keyed: Option<HashMap<Arc<str>, u64>>,
    /// The writer's socket, once it has one that a push may write to.
    through: Option<Arc<dyn WriteThrough>>,
    /// The writer waits idle: a push may write through.
    armed: bool,
}

impl std::fmt::Debug for dyn WriteThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteThrough")
    }
}

impl QueueState {
    fn advance(&mut self, taken: usize) {
        self.head += taken as u64;
        if self.frames.is_empty() {
            if let Some(keyed) = &mut self.keyed {
                keyed.clear();
            }
        }
    }
}

/// A bounded multi-producer, single-consumer frame queue with an async wake-up for
/// the writer and a wake-up for emitters waiting for room.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    state: Mutex<QueueState>,
    ready: Notify,
    limits: QueueLimits,
    /// Emitters waiting for room: threads on `room`, tasks on `room_async`. The writer
    /// signals only when someone waits.
    waiters: AtomicUsize,
    room: Condvar,
    room_async: Notify,
}

impl OutboundQueue {
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            limits,
            waiters: AtomicUsize::new(0),
            room: Condvar::new(),
            room_async: Notify::new(),
        }
    }

    /// Whether `frames` (costing `size`) fit now.
    fn fits(&self, state: &QueueState, frames: usize, size: usize) -> bool {
        state.frames.len() + frames <= self.limits.max_packets
            && state.bytes + size <= self.limits.max_bytes
    }

    /// Append under the lock; returns whether the writer must be woken.
    fn append(state: &mut QueueState, frames: &[Frame], size: usize) -> bool {
        let was_empty = state.frames.is_empty();
        state.frames.extend(frames.iter().cloned());
        state.bytes += size;
        was_empty
    }

    /// The consumer drains everything it finds, so only the empty -> non-empty edge
    /// needs a wake-up; `Notify` keeps the permit if the consumer is not waiting yet.
    fn wake_if(&self, was_empty: bool) {
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// Queue a group of frames that belong together (a packet and its binary attachments):
    /// all of them or none. Never waits. `Ok(true)` when the queue is now above its
    /// backpressure watermark: an emitter that may wait should
    /// ([`OutboundQueue::wait_below_watermark`]).
    pub fn push(&self, frames: &[Frame]) -> Result<bool, PushError> {
        self.push_if(frames, false, always)
    }

    /// [`OutboundQueue::push`], writing the frames through to the writer's socket when
    /// the queue is armed and empty (see the module's doc). `Ok(false)` when written.
    /// (Pushers outside the tests say whether they still admit: `push_if`.)
    #[cfg(test)]
    pub fn push_through(&self, frames: &[Frame]) -> Result<bool, PushError> {
        self.push_if(frames, true, always)
    }

    /// [`OutboundQueue::push`], writing the frames through to the writer's socket when
    /// `through` and the queue is armed and empty (see the module's doc; `Ok(false)`
    /// when written), if `admit` still holds once the queue's lock is taken; `Closed`
    /// when it does not.
    /// The pusher's own state is asked in the same critical section as its frames go
    /// in, so what it queues after changing that state (a Socket.IO socket's DISCONNECT,
    /// after the socket is marked gone) comes after every frame this lets in.
    pub fn push_if(
        &self,
        frames: &[Frame],
        through: bool,
        admit: impl Fn() -> bool,
    ) -> Result<bool, PushError> {
        let size = charge(frames);
        let (was_empty, above) = {
            let mut state = self.state.lock();
            if state.closed || !admit() {
                return Err(PushError::Closed);
            }
            if through && state.armed && state.frames.is_empty() {
                if let Some(socket) = &state.through {
                    match socket.write(frames) {
                        Written::All => return Ok(false),
                        Written::Partly => {
                            // The writer sends the rest; until then nothing writes through.
                            state.armed = false;
                            drop(state);
                            self.ready.notify_one();
                            return Ok(false);
                        }
                        Written::Nothing => state.armed = false,
                    }
                }
            }
            if !self.fits(&state, frames.len(), size) {
                return Err(PushError::Full);
            }
            let was_empty = Self::append(&mut state, frames, size);
            (was_empty, self.above_watermark(&state))
        };
        self.wake_if(was_empty);
        Ok(above)
    }

    /// Bring the queue's lock into the cache (a load, no locking), ahead of a push.
    pub fn warm(&self) {
        std::hint::black_box(self.state.is_locked());
    }

    /// Give the queue the writer's socket, for [`OutboundQueue::arm`].
    pub fn set_write_through(&self, through: Arc<dyn WriteThrough>) {
        self.state.lock().through = Some(through);
    }

    /// Take the writer's socket back (it is going away): nothing writes through after.
    pub fn clear_write_through(&self) {
        let mut state = self.state.lock();
        state.armed = false;
        state.through = None;
    }

    /// The writer waits idle, with nothing of its own unwritten: pushes may write
    /// through. False (not armed) when frames are queued or the queue is closed.
    pub fn arm(&self) -> bool {
        let mut state = self.state.lock();
        state.armed = state.through.is_some() && !state.closed && state.frames.is_empty();
        state.armed
    }

    /// The writer is about to write or read: no push writes through from now on (one
    /// that is writing finishes first: it holds the lock).
    pub fn disarm(&self) {
        self.state.lock().armed = false;
    }

    /// Whether the queue is above its backpressure watermark now, and not closed (an
    /// emitter that may wait would wait for it). Never blocks beyond the queue's lock.
    pub fn is_behind(&self) -> bool {
        let state = self.state.lock();
        !state.closed && self.above_watermark(&state)
    }

    fn above_watermark(&self, state: &QueueState) -> bool {
        state.frames.len() > self.limits.soft_packets || state.bytes > self.limits.soft_bytes
    }

    /// Whether a group costing this much could ever fit (an empty queue takes it).
    pub fn can_ever_take(&self, frames: usize, bytes: usize) -> bool {
        frames <= self.limits.max_packets
            && bytes + frames * FRAME_OVERHEAD <= self.limits.max_bytes
    }

    /// Block the calling thread until `frames` fit under the bounds, then queue them;
    /// `Full` once `deadline` passes (the queue is then stalled: not waited on again
    /// until the writer empties it). `Ok(true)` as for [`OutboundQueue::push`]; `admit`
    /// as for [`OutboundQueue::push_if`], asked again after every wait.
    pub fn push_blocking(
        &self,
        frames: &[Frame],
        deadline: Instant,
        admit: impl Fn() -> bool,
    ) -> Result<bool, PushError> {
        let size = charge(frames);
        let (was_empty, above) = {
            let mut state = self.state.lock();
            loop {
                if state.closed || !admit() {
                    return Err(PushError::Closed);
                }
                if self.fits(&state, frames.len(), size) {
                    let was_empty = Self::append(&mut state, frames, size);
                    break (was_empty, self.above_watermark(&state));
                }
                if state.stalled || Instant::now() >= deadline {
                    state.stalled = true;
                    return Err(PushError::Full);
                }
                self.waiters.fetch_add(1, Ordering::AcqRel);
                let _ = self.room.wait_until(&mut state, deadline);
                self.waiters.fetch_sub(1, Ordering::AcqRel);
            }
        };
        self.wake_if(was_empty);
        Ok(above)
    }

    /// Block the calling thread until the queue is back under its backpressure
    /// watermark. False when `deadline` passed first (the queue is then stalled) or the
    /// queue was stalled already; true when under it (or closed).
    pub fn wait_below_watermark(&self, deadline: Instant) -> bool {
        let mut state = self.state.lock();
        loop {
            if state.closed || !self.above_watermark(&state) {
                return true;
            }
            if state.stalled || Instant::now() >= deadline {
                state.stalled = true;
                return false;
            }
            self.waiters.fetch_add(1, Ordering::AcqRel);
            let _ = self.room.wait_until(&mut state, deadline);
            self.waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Wait (as a task) until `frames` frames carrying `bytes` payload bytes would fit
    /// and the queue is under its watermark. False when `deadline` passed first (the
    /// queue is then stalled) or it was stalled already; true when there is room (or
    /// the queue is closed).
    pub async fn room_for(
        &self,
        frames: usize,
        bytes: usize,
        deadline: tokio::time::Instant,
    ) -> bool {
        let size = bytes + frames * FRAME_OVERHEAD;
        loop {
            let room = self.room_async.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.state.lock();
                if state.closed
                    || (self.fits(&state, frames, size) && !self.above_watermark(&state))
                {
                    return true;
                }
                if state.stalled || tokio::time::Instant::now() >= deadline {
                    state.stalled = true;
                    return false;
                }
            }
            self.waiters.fetch_add(1, Ordering::AcqRel);
            tokio::select! {
                _ = room => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
            self.waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether an emitter gave up waiting on this queue and the writer has not emptied
    /// it since.
    #[cfg(test)]
    pub fn is_stalled(&self) -> bool {
        self.state.lock().stalled
    }

    /// What is queued: (frames, charged bytes).
    pub fn depth(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.frames.len(), state.bytes)
    }

    /// Queue a frame that carries the latest value of `key` (keyed live state). If a
    /// frame of the same key is still unwritten it is replaced where it stands, so a
    /// client that falls behind gets the latest value once instead of every value, and
    /// per-key order never reverses. A new key is exempt from the packet bound (keys are
    /// bounded by the state map itself) but not from twice the byte bound. `admit` as
    /// for [`OutboundQueue::push_if`].
    pub fn push_keyed(
        &self,
        key: &Arc<str>,
        frame: Frame,
        admit: impl Fn() -> bool,
    ) -> Result<KeyedPush, PushError> {
        let size = frame.len() + FRAME_OVERHEAD;
        let was_empty = {
            let mut state = self.state.lock();
            if state.closed || !admit() {
                return Err(PushError::Closed);
            }
            let head = state.head;
            let existing = state
                .keyed
                .as_ref()
                .and_then(|k| k.get(key))
                .and_then(|&seq| seq.checked_sub(head))
                .map(|i| i as usize)
                .filter(|&i| i < state.frames.len());
            if let Some(index) = existing {
                let old = std::mem::replace(&mut state.frames[index], frame);
                state.bytes = state.bytes + size - (old.len() + FRAME_OVERHEAD);
                return Ok(KeyedPush::Coalesced);
            }
            if state.bytes + size > self.limits.max_bytes.saturating_mul(2) {
                return Err(PushError::Full);
            }
            let seq = head + state.frames.len() as u64;
            state
                .keyed
                .get_or_insert_with(HashMap::new)
                .insert(key.clone(), seq);
            let was_empty = state.frames.is_empty();
            state.frames.push_back(frame);
            state.bytes += size;
            was_empty
        };
        if was_empty {
            self.ready.notify_one();
        }
        Ok(KeyedPush::Queued)
    }

    /// From now on, keyed frames queue after everything already queued instead of
    /// replacing an older frame of their key in front of it. A state snapshot goes out
    /// after one: a delta newer than the snapshot must not overtake it.
    pub fn keyed_barrier(&self) {
        if let Some(keyed) = &mut self.state.lock().keyed {
            keyed.clear();
        }
    }

    /// Queue a control packet (a ping): it counts against the bounds like any frame,
    /// but may exceed them by a few frames (`CONTROL_RESERVE`), so that the heartbeat
    /// of a busy connection still goes out. Only the server queues control packets.
    pub fn push_control(&self, frame: Frame) -> Result<(), PushError> {
        let size = frame.len() + FRAME_OVERHEAD;
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            let reserve = CONTROL_RESERVE * (FRAME_OVERHEAD + 64);
            if state.frames.len() + 1 > self.limits.max_packets + CONTROL_RESERVE
                || state.bytes + size > self.limits.max_bytes.saturating_add(reserve)
            {
                return Err(PushError::Full);
            }
            state.bytes += size;
            state.frames.push_back(frame);
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Queue a recovery replay: outside the packet bound, since the replay buffer it
    /// comes from is bounded already, and charged to the byte count (so that live
    /// packets wait behind it).
    pub fn push_replay(&self, frames: &[Frame]) -> Result<(), PushError> {
        let size = charge(frames);
        let was_empty = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            Self::append(&mut state, frames, size)
        };
        self.wake_if(was_empty);
        Ok(())
    }

    /// Move up to `max` queued frames into `out`. Returns whether the queue is closed
    /// (the frames moved are still to be written before the transport closes).
    pub fn drain_into(&self, out: &mut VecDeque<Frame>, max: usize) -> bool {
        let mut state = self.state.lock();
        let taken = max.min(state.frames.len());
        if taken == state.frames.len() {
            if out.is_empty() {
                // Swap buffers: no copy, and both keep their capacity.
                std::mem::swap(&mut state.frames, out);
            } else {
                out.append(&mut state.frames);
            }
            state.bytes = 0;
        } else {
            for _ in 0..taken {
                if let Some(frame) = state.frames.pop_front() {
                    state.bytes -= frame.len() + FRAME_OVERHEAD;
                    out.push_back(frame);
                }
            }
        }
        state.advance(taken);
        if state.frames.is_empty() {
            state.stalled = false;
        }
        let closed = state.closed;
        drop(state);
        if taken > 0 && self.waiters.load(Ordering::Acquire) > 0 {
            self.room.notify_all();
            self.room_async.notify_waiters();
        }
        closed
    }

    /// Number of frames waiting.
    pub fn len(&self) -> usize {
        self.state.lock().frames.len()
    }

    /// Refuse further pushes, wake the consumer so it can flush what is left and close,
    /// and wake every emitter waiting for room (they fail with `Closed`).
    pub fn close(&self) {
        {
            let mut state = self.state.lock();
            state.closed = true;
            state.armed = false;
        }
        self.ready.notify_one();
        self.room.notify_all();
        self.room_async.notify_waiters();
    }

    /// Wait until frames are queued or the queue is closed.
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Wake the consumer without queuing anything (used to end a pending long-poll).
    pub fn wake(&self) {
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_packets: usize, max_bytes: usize) -> OutboundQueue {
        OutboundQueue::new(QueueLimits {
            max_packets,
            max_bytes,
            soft_packets: max_packets,
            soft_bytes: max_bytes,
        })
    }

    /// Room for `payload` bytes in `frames` frames.
    fn room(frames: usize, payload: usize) -> usize {
        frames * FRAME_OVERHEAD + payload
    }

    /// A socket that takes what it is told to: everything, a few bytes, or nothing;
    /// it records what it took.
    struct TestSocket {
        takes: Written,
        taken: Mutex<Vec<Frame>>,
    }

    impl WriteThrough for TestSocket {
        fn write(&self, frames: &[Frame]) -> Written {
            if self.takes != Written::Nothing {
                self.taken.lock().extend_from_slice(frames);
            }
            self.takes
        }
    }

    fn through(takes: Written) -> (OutboundQueue, Arc<TestSocket>) {
        let q = queue(100, room(100, 1000));
        let socket = Arc::new(TestSocket {
            takes,
            taken: Mutex::new(Vec::new()),
        });
        q.set_write_through(socket.clone());
        (q, socket)
    }

    /// Whether the writer has a wake-up pending.
    fn woken(q: &OutboundQueue) -> bool {
        let ready = q.ready();
        tokio::pin!(ready);
        std::future::Future::poll(
            ready.as_mut(),
            &mut std::task::Context::from_waker(std::task::Waker::noop()),
        )
        .is_ready()
    }

    #[test]
    fn a_frame_is_one_pointer_wide() {
        // What a broadcast writes into each recipient's queue (see `Frame`).
        assert_eq!(std::mem::size_of::<Frame>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn an_armed_empty_queue_writes_through_without_waking_the_writer() {
        let (q, socket) = through(Written::All);
        assert_eq!(
            q.push_through(&[Frame::text("4a")]),
            Ok(false),
            "not queued before arming"
        );
        assert_eq!(q.len(), 1);
        assert!(woken(&q));
        assert!(!q.arm(), "nothing is armed while frames are queued");
        q.drain_into(&mut VecDeque::new(), 10);
        assert!(q.arm());
        assert_eq!(
            q.push_through(&[Frame::text("4b"), Frame::binary(Bytes::from_static(b"x"))]),
            Ok(false)
        );
        assert_eq!(q.push_through(&[Frame::text("4c")]), Ok(false));
        assert_eq!(q.len(), 0, "written, not queued");
        assert!(!woken(&q), "the writer sleeps on");
        assert_eq!(socket.taken.lock().len(), 3);
        // A plain push never writes through, and a queued frame keeps later ones behind it.
        assert_eq!(q.push(&[Frame::text("4d")]), Ok(false));
        assert_eq!(q.push_through(&[Frame::text("4e")]), Ok(false));
        assert_eq!(q.len(), 2);
        assert_eq!(socket.taken.lock().len(), 3);
    }

    #[test]
    fn a_push_the_pusher_no_longer_admits_goes_nowhere() {
        let gone = || false;
        let (q, socket) = through(Written::All);
        assert!(q.arm());
        assert_eq!(
            q.push_if(&[Frame::text("4a")], true, gone),
            Err(PushError::Closed)
        );
        assert_eq!(
            q.push_if(&[Frame::text("4b")], false, gone),
            Err(PushError::Closed)
        );
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        assert_eq!(
            q.push_blocking(&[Frame::text("4c")], deadline, gone),
            Err(PushError::Closed)
        );
        let key: Arc<str> = Arc::from("k");
        assert_eq!(
            q.push_keyed(&key, Frame::text("4d"), gone),
            Err(PushError::Closed)
        );
        assert!(socket.taken.lock().is_empty(), "nothing written through");
        assert_eq!(q.len(), 0, "nothing queued");
        assert!(!woken(&q));
        // What the pusher sends itself after it stopped admitting still goes in.
        assert_eq!(q.push_through(&[Frame::text("41")]), Ok(false));
        assert_eq!(socket.taken.lock().len(), 1);
    }

    #[test]
    fn a_partial_write_through_disarms_and_wakes_the_writer() {
        let (q, socket) = through(Written::Partly);
        assert!(q.arm());
        assert_eq!(q.push_through(&[Frame::text("4a")]), Ok(false));
        assert_eq!(q.len(), 0, "the socket keeps the rest for the writer");
        assert!(woken(&q), "the writer must send the rest");
        assert_eq!(q.push_through(&[Frame::text("4b")]), Ok(false));
        assert_eq!(q.len(), 1, "queued behind the rest, not written through");
        assert_eq!(socket.taken.lock().len(), 1);
    }

    #[test]
    fn a_socket_that_takes_nothing_gets_the_frames_queued() {
        let (q, _socket) = through(Written::Nothing);
        assert!(q.arm());
        assert_eq!(q.push_through(&[Frame::text("4a")]), Ok(false));
        assert_eq!(q.len(), 1);
        assert!(woken(&q));
        let mut out = VecDeque::new();
        q.drain_into(&mut out, 10);
        assert_eq!(out[0].as_text(), Some("4a"));
    }

    #[test]
    fn close_and_clear_end_write_through() {
        let (q, socket) = through(Written::All);
        assert!(q.arm());
        q.disarm();
        assert_eq!(q.push_through(&[Frame::text("4a")]), Ok(false));
        assert_eq!(q.len(), 1, "disarmed: queued");
        q.drain_into(&mut VecDeque::new(), 10);
        assert!(q.arm());
        q.clear_write_through();
        assert!(!q.arm(), "no socket to arm");
        assert_eq!(q.push_through(&[Frame::text("4b")]), Ok(false));
        assert_eq!(q.len(), 1);
        q.drain_into(&mut VecDeque::new(), 10);
        q.set_write_through(socket.clone());
        assert!(q.arm());
        q.close();
        assert_eq!(q.push_through(&[Frame::text("4c")]), Err(PushError::Closed));
        assert!(!q.arm());
        assert!(socket.taken.lock().is_empty());
    }

    #[test]
    fn bounded_in_packets_and_bytes() {
        let q = queue(2, room(1, 10));
        assert_eq!(q.push(&[Frame::text("4a")]), Ok(false));
        assert_eq!(
            q.push(&[Frame::text("4b"), Frame::text("4c")]),
            Err(PushError::Full)
        );
        assert_eq!(q.len(), 1, "a refused group leaves nothing behind");
        let q = queue(100, room(2, 12));
        assert_eq!(q.push(&[Frame::text("4a")]), Ok(false));
        assert_eq!(q.push(&[Frame::text("4bbbbbbbbbbb")]), Err(PushError::Full));
        assert_eq!(q.push(&[Frame::text("4b")]), Ok(false));
        assert_eq!(q.depth(), (2, room(2, 4)));
    }

    #[test]
    fn small_packets_are_charged_what_they_weigh() {
        // 16,000 events of ~30 bytes: ~1.5 MB charged, far under a 16 MiB bound.
        let q = queue(65_536, 16 * 1024 * 1024);
        for i in 0..16_000 {
            q.push(&[Frame::text(format!("42[\"tick\",{{\"seq\":{i}}}]"))])
                .expect("fits the byte bound");
        }
        assert!(q.depth().1 < 2 * 1024 * 1024);
    }

    #[test]
    fn control_frames_have_a_small_reserve_and_no_more() {
        let q = queue(1, room(1, 2));
        q.push(&[Frame::text("4a")]).unwrap();
        let mut queued = 0;
        while q.push_control(Frame::text("2")).is_ok() {
            queued += 1;
            assert!(queued <= CONTROL_RESERVE, "control frames are bounded too");
        }
        assert_eq!(queued, CONTROL_RESERVE);
    }

    #[test]
    fn a_blocked_push_gets_in_when_the_writer_makes_room() {
        let q = Arc::new(queue(1, room(1, 10)));
        q.push(&[Frame::text("4a")]).unwrap();
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let mut out = VecDeque::new();
                q.drain_into(&mut out, 16);
            })
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        assert_eq!(
            q.push_blocking(&[Frame::text("4b")], deadline, always),
            Ok(false)
        );
        writer.join().unwrap();
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn a_push_that_times_out_stalls_the_queue_until_it_empties() {
        let q = queue(1, room(1, 10));
        q.push(&[Frame::text("4a")]).unwrap();
        let now = Instant::now();
        assert_eq!(
            q.push_blocking(&[Frame::text("4b")], now, always),
            Err(PushError::Full)
        );
        assert!(q.is_stalled());
        // A stalled queue is not waited on again.
        let later = Instant::now() + std::time::Duration::from_secs(3600);
        assert_eq!(
            q.push_blocking(&[Frame::text("4b")], later, always),
            Err(PushError::Full)
        );
        let mut out = VecDeque::new();
        q.drain_into(&mut out, 16);
        assert!(!q.is_stalled(), "emptied: waitable again");
    }

    #[test]
    fn closing_wakes_blocked_pushes() {
        let q = Arc::new(queue(1, room(1, 10)));
        q.push(&[Frame::text("4a")]).unwrap();
        let closer = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                q.close();
            })
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        assert_eq!(
            q.push_blocking(&[Frame::text("4b")], deadline, always),
            Err(PushError::Closed)
        );
        closer.join().unwrap();
    }

    #[test]
    fn is_behind_reports_the_watermark_without_waiting_or_stalling() {
        let q = OutboundQueue::new(QueueLimits {
            max_packets: 100,
            max_bytes: room(100, 1000),
            soft_packets: 1,
            soft_bytes: room(100, 1000),
        });
        assert!(!q.is_behind());
        q.push(&[Frame::text("4a")]).unwrap();
        assert!(!q.is_behind(), "at the watermark is not above it");
        q.push(&[Frame::text("4b")]).unwrap();
        assert!(q.is_behind());
        assert!(!q.is_stalled(), "asking never stalls the queue");
        let mut out = VecDeque::new();
        q.drain_into(&mut out, 1);
        assert!(!q.is_behind());
        q.push(&[Frame::text("4c")]).unwrap();
        q.close();
        assert!(!q.is_behind(), "a closed queue holds nobody up");
    }

    #[test]
    fn an_emitter_waits_for_the_writer_to_get_under_the_watermark() {
        let q = Arc::new(OutboundQueue::new(QueueLimits {
            max_packets: 100,
            max_bytes: room(100, 1000),
            soft_packets: 2,
            soft_bytes: room(100, 1000),
        }));
        assert_eq!(q.push(&[Frame::text("4a")]), Ok(false));
        assert_eq!(q.push(&[Frame::text("4b")]), Ok(false));
        assert_eq!(
            q.push(&[Frame::text("4c")]),
            Ok(true),
            "above the watermark"
        );
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let mut out = VecDeque::new();
                q.drain_into(&mut out, 2);
            })
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        assert!(q.wait_below_watermark(deadline));
        writer.join().unwrap();
        assert!(!q.wait_below_watermark(Instant::now()) || q.len() <= 2);
        // A writer that never comes: the wait ends at the deadline and stalls the queue.
        q.push(&[Frame::text("4d")]).unwrap();
        q.push(&[Frame::text("4e")]).unwrap();
        assert!(!q.wait_below_watermark(Instant::now()));
        assert!(q.is_stalled());
    }

    #[tokio::test]
    async fn an_async_push_waits_for_room_without_blocking_the_runtime() {
        let q = Arc::new(queue(1, room(1, 10)));
        q.push(&[Frame::text("4a")]).unwrap();
        let writer = {
            let q = q.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let mut out = VecDeque::new();
                q.drain_into(&mut out, 16);
            })
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        assert!(q.room_for(1, 2, deadline).await);
        assert_eq!(q.push(&[Frame::text("4b")]), Ok(false));
        writer.await.unwrap();
    }

    #[test]
    fn drain_takes_at_most_max_in_order() {
        let q = queue(100, room(1, 1000));
        for i in 0..5 {
            q.push(&[Frame::text(format!("4{i}"))]).unwrap();
        }
        let mut out = VecDeque::new();
        assert!(!q.drain_into(&mut out, 3));
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], Frame::text("40"));
        out.clear();
        q.drain_into(&mut out, 16);
        assert_eq!(out, VecDeque::from([Frame::text("43"), Frame::text("44")]));
        assert_eq!(q.len(), 0);
        // Bytes were released: a full-size push fits again.
        assert_eq!(q.push(&[Frame::text("4".repeat(1000))]), Ok(false));
    }

    #[test]
    fn closed_queue_refuses_but_drains() {
        let q = queue(10, room(10, 100));
        q.push(&[Frame::text("4x")]).unwrap();
        q.close();
        assert_eq!(q.push(&[Frame::text("4y")]), Err(PushError::Closed));
        assert_eq!(q.push_control(Frame::text("2")), Err(PushError::Closed));
        let mut out = VecDeque::new();
        assert!(q.drain_into(&mut out, 10));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_keyed_barrier_keeps_later_frames_behind_what_is_queued() {
        let q = queue(100, room(100, 1 << 20));
        let a: Arc<str> = "a".into();
        assert_eq!(
            q.push_keyed(&a, Frame::text("a1"), always),
            Ok(KeyedPush::Queued)
        );
        q.keyed_barrier();
        q.push(&[Frame::text("snapshot")]).expect("room");
        // Not in front of the snapshot: after it.
        assert_eq!(
            q.push_keyed(&a, Frame::text("a2"), always),
            Ok(KeyedPush::Queued)
        );
        assert_eq!(
            q.push_keyed(&a, Frame::text("a3"), always),
            Ok(KeyedPush::Coalesced)
        );
        let mut out = VecDeque::new();
        q.drain_into(&mut out, 10);
        assert_eq!(
            out,
            VecDeque::from([
                Frame::text("a1"),
                Frame::text("snapshot"),
                Frame::text("a3")
            ])
        );
    }

    #[test]
    fn keyed_frames_coalesce_in_place_until_written() {
        let q = queue(2, room(2, 1000));
        let a: Arc<str> = "m\0a".into();
        let b: Arc<str> = "m\0b".into();
        assert_eq!(
            q.push_keyed(&a, Frame::text("a1"), always),
            Ok(KeyedPush::Queued)
        );
        assert_eq!(
            q.push_keyed(&b, Frame::text("b1"), always),
            Ok(KeyedPush::Queued)
        );
        // Past the packet bound, keyed frames still coalesce or queue.
        assert_eq!(
            q.push_keyed(&a, Frame::text("a2"), always),
            Ok(KeyedPush::Coalesced)
        );
        assert_eq!(q.push(&[Frame::text("4x")]), Err(PushError::Full));
        let mut out = VecDeque::new();
        q.drain_into(&mut out, 1);
        assert_eq!(
            out.pop_front(),
            Some(Frame::text("a2")),
            "a2 took a1's place"
        );
        // a is written: a new value queues behind b instead of jumping ahead.
        assert_eq!(
            q.push_keyed(&a, Frame::text("a3"), always),
            Ok(KeyedPush::Queued)
        );
        assert_eq!(
            q.push_keyed(&b, Frame::text("b2"), always),
            Ok(KeyedPush::Coalesced)
        );
        q.drain_into(&mut out, 10);
        assert_eq!(out, VecDeque::from([Frame::text("b2"), Frame::text("a3")]));
    }

    #[tokio::test]
    async fn wakes_consumer_on_first_push() {
        let q = std::sync::Arc::new(queue(10, room(10, 100)));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.ready().await })
        };
        q.push(&[Frame::text("4x")]).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
