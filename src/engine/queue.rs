//! The bounded outbound queue of one Engine.IO session.
//!
//! Every packet for a client goes through here, whatever its transport: emitters push
//! encoded frames (cheap `Bytes` clones of a shared buffer), and the transport's writer
//! takes everything queued in one go. That is the write coalescing: under load a writer
//! wakes once for many frames and flushes once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One encoded Engine.IO packet, ready for the wire.
///
/// A text frame holds the whole Engine.IO packet (`"4..."` for a message, `"2"` for a
/// ping); a binary frame holds a binary message's raw bytes (WebSocket sends them as
/// they are, long-polling as `b` + base64). Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(pub(crate) FrameData);

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
        Frame(FrameData::Text(packet.into().into()))
    }

    /// A binary frame (a binary message's bytes).
    pub fn binary(data: Bytes) -> Self {
        Frame(FrameData::Binary(data))
    }

    /// The encoded packet of a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match &self.0 {
            FrameData::Text(t) => Some(t.as_str()),
            FrameData::Binary(_) => None,
        }
    }

    /// The bytes of a binary frame.
    pub fn as_binary(&self) -> Option<&Bytes> {
        match &self.0 {
            FrameData::Text(_) => None,
            FrameData::Binary(b) => Some(b),
        }
    }

    /// Payload size in bytes, as counted against queue limits.
    pub fn len(&self) -> usize {
        match &self.0 {
            FrameData::Text(t) => t.len(),
            FrameData::Binary(b) => b.len(),
        }
    }

    /// Whether the frame carries no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue is at its packet or byte bound.
    Full,
    /// The session is closed (or closing).
    Closed,
}

/// Limits of one session's queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub max_packets: usize,
    pub max_bytes: usize,
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
    bytes: usize,
    closed: bool,
    /// Sequence number of `frames[0]`; grows as frames are taken.
    head: u64,
    /// Unwritten keyed frames: key -> sequence number. Created on first use, so idle
    /// connections pay nothing for it.
    keyed: Option<HashMap<Arc<str>, u64>>,
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

/// A bounded multi-producer, single-consumer frame queue with an async wake-up.
#[derive(Debug)]
pub(crate) struct OutboundQueue {
    state: Mutex<QueueState>,
    ready: Notify,
    limits: QueueLimits,
}

impl OutboundQueue {
    pub fn new(limits: QueueLimits) -> Self {
        Self {
            state: Mutex::new(QueueState::default()),
            ready: Notify::new(),
            limits,
        }
    }

    /// Queue a group of frames that belong together (a packet and its binary attachments):
    /// all of them or none.
    pub fn push(&self, frames: &[Frame]) -> Result<(), PushError> {
        let size: usize = frames.iter().map(Frame::len).sum();
        let was_empty = {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.frames.len() + frames.len() > self.limits.max_packets
                || state.bytes + size > self.limits.max_bytes
            {
                return Err(PushError::Full);
            }
            let was_empty = state.frames.is_empty();
            state.frames.extend(frames.iter().cloned());
            state.bytes += size;
            was_empty
        };
        // The consumer drains everything it finds, so only the empty -> non-empty edge
        // needs a wake-up; `Notify` keeps the permit if the consumer is not waiting yet.
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Queue a frame that carries the latest value of `key` (keyed live state). If a
    /// frame of the same key is still unwritten it is replaced where it stands, so a
    /// client that falls behind gets the latest value once instead of every value, and
    /// per-key order never reverses. A new key is exempt from the packet bound (keys are
    /// bounded by the state map itself) but not from twice the byte bound.
    pub fn push_keyed(&self, key: &Arc<str>, frame: Frame) -> Result<KeyedPush, PushError> {
        let size = frame.len();
        let was_empty = {
            let mut state = self.state.lock();
            if state.closed {
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
                state.bytes = state.bytes + size - old.len();
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

    /// Queue a control packet (ping, noop): exempt from the bounds, which exist to
    /// protect memory from application traffic, not from the protocol's own few bytes.
    pub fn push_control(&self, frame: Frame) -> Result<(), PushError> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            state.bytes += frame.len();
            state.frames.push_back(frame);
        }
        self.ready.notify_one();
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
                    state.bytes -= frame.len();
                    out.push_back(frame);
                }
            }
        }
        state.advance(taken);
        state.closed
    }

    /// Number of frames waiting.
    pub fn len(&self) -> usize {
        self.state.lock().frames.len()
    }

    /// Refuse further pushes and wake the consumer so it can flush what is left and close.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_one();
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
        })
    }

    #[test]
    fn bounded_in_packets_and_bytes() {
        let q = queue(2, 10);
        assert_eq!(q.push(&[Frame::text("4a")]), Ok(()));
        assert_eq!(
            q.push(&[Frame::text("4b"), Frame::text("4c")]),
            Err(PushError::Full)
        );
        assert_eq!(q.len(), 1, "a refused group leaves nothing behind");
        assert_eq!(q.push(&[Frame::text("4bbbbbbbbbbb")]), Err(PushError::Full));
        assert_eq!(q.push(&[Frame::text("4b")]), Ok(()));
        // Control frames pass the bounds.
        assert_eq!(q.push_control(Frame::text("2")), Ok(()));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn drain_takes_at_most_max_in_order() {
        let q = queue(100, 1000);
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
        assert_eq!(q.push(&[Frame::text("4".repeat(1000))]), Ok(()));
    }

    #[test]
    fn closed_queue_refuses_but_drains() {
        let q = queue(10, 100);
        q.push(&[Frame::text("4x")]).unwrap();
        q.close();
        assert_eq!(q.push(&[Frame::text("4y")]), Err(PushError::Closed));
        assert_eq!(q.push_control(Frame::text("2")), Err(PushError::Closed));
        let mut out = VecDeque::new();
        assert!(q.drain_into(&mut out, 10));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn keyed_frames_coalesce_in_place_until_written() {
        let q = queue(2, 1000);
        let a: Arc<str> = "m\0a".into();
        let b: Arc<str> = "m\0b".into();
        assert_eq!(q.push_keyed(&a, Frame::text("a1")), Ok(KeyedPush::Queued));
        assert_eq!(q.push_keyed(&b, Frame::text("b1")), Ok(KeyedPush::Queued));
        // Past the packet bound, keyed frames still coalesce or queue.
        assert_eq!(
            q.push_keyed(&a, Frame::text("a2")),
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
        assert_eq!(q.push_keyed(&a, Frame::text("a3")), Ok(KeyedPush::Queued));
        assert_eq!(
            q.push_keyed(&b, Frame::text("b2")),
            Ok(KeyedPush::Coalesced)
        );
        q.drain_into(&mut out, 10);
        assert_eq!(out, VecDeque::from([Frame::text("b2"), Frame::text("a3")]));
    }

    #[tokio::test]
    async fn wakes_consumer_on_first_push() {
        let q = std::sync::Arc::new(queue(10, 100));
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
