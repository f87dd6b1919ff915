//! When a connection's writer writes: write coalescing and the batch window, as a small
//! state machine with no IO, so the policy is tested without sockets.
//!
//! Coalescing comes first and costs nothing: a writer that wakes takes everything queued
//! (up to `max_batch` frames) and flushes once, so under load many frames share one
//! write. The optional window adds a pause after each write during which frames gather.
//! It never delays the first packet after a quiet period: the pause only applies when
//! the previous write was less than one window ago.

use std::time::Duration;

use tokio::time::Instant;

/// What the writer should do now that frames are waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write what is queued now.
    WriteNow,
    /// Wait until then, letting more frames gather, then write.
    WaitUntil(Instant),
}

/// The batching policy of one writer.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    window: Duration,
    max_batch: usize,
    last_write: Option<Instant>,
}

impl Batcher {
    pub fn new(window: Duration, max_batch: usize) -> Self {
        Self {
            window,
            max_batch: max_batch.max(1),
            last_write: None,
        }
    }

    /// Most frames per write.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Frames are waiting at `now`.
    pub fn on_ready(&self, now: Instant) -> Decision {
        match self.last_write {
            Some(last) if !self.window.is_zero() && now < last + self.window => {
                Decision::WaitUntil(last + self.window)
            }
            _ => Decision::WriteNow,
        }
    }

    /// A write finished at `now`.
    pub fn on_write(&mut self, now: Instant) {
        self.last_write = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_window_every_wake_writes() {
        let mut b = Batcher::new(Duration::ZERO, 0);
        let t = Instant::now();
        assert_eq!(b.on_ready(t), Decision::WriteNow);
        b.on_write(t);
        assert_eq!(b.on_ready(t), Decision::WriteNow);
        assert_eq!(b.max_batch(), 1, "at least one frame per write");
    }

    #[test]
    fn the_first_packet_after_quiet_is_never_delayed() {
        let mut b = Batcher::new(Duration::from_millis(10), 64);
        let t0 = Instant::now();
        assert_eq!(b.on_ready(t0), Decision::WriteNow, "nothing written yet");
        b.on_write(t0);
        let soon = t0 + Duration::from_millis(3);
        assert_eq!(
            b.on_ready(soon),
            Decision::WaitUntil(t0 + Duration::from_millis(10))
        );
        let later = t0 + Duration::from_millis(25);
        assert_eq!(b.on_ready(later), Decision::WriteNow, "quiet for a window");
    }
}
