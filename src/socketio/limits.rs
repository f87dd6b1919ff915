//! What one client may make the server hold or do per second: the bytes of binary
//! attachments waiting for the rest of their packet (per connection and in total), and
//! the rate of incoming events and bytes.
//!
//! The checks run on the connection's reader, under the connection's lock: a token
//! bucket per connection (no timer, no task), and one atomic counter for the total of
//! pending attachments.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What happens to a client that goes over its [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitPolicy {
    /// Drop the events over the limit (counted in `swarmcast_rate_limited`); the
    /// connection stays. Acks and the namespace handshake are never dropped: only
    /// events.
    #[default]
    Drop,
    /// Close the connection (reason [`crate::CloseReason::RateLimited`]).
    Disconnect,
}

impl RateLimitPolicy {
    /// The policy named `drop` or `disconnect`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "drop" => Some(Self::Drop),
            "disconnect" => Some(Self::Disconnect),
            _ => None,
        }
    }

    /// `drop` or `disconnect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Disconnect => "disconnect",
        }
    }
}

/// Incoming traffic allowed per connection. Zero turns a limit off; both are off by
/// default. Each limit is a token bucket holding one second's worth, so a burst of up
/// to one second's allowance passes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    /// Events (Socket.IO EVENT packets, binary or not) per second.
    pub events_per_second: u32,
    /// Bytes per second of every message the client sends (attachments included).
    /// Keep it at least `max_payload`: one message larger than a second's allowance is
    /// always over the limit.
    pub bytes_per_second: u64,
    /// What happens to a connection over either limit.
    pub policy: RateLimitPolicy,
}

impl RateLimit {
    /// Whether any limit is set.
    pub fn enabled(&self) -> bool {
        self.events_per_second > 0 || self.bytes_per_second > 0
    }
}

/// A token bucket refilled continuously at `rate` per second, holding at most `rate`.
/// Taking more than it holds leaves it in debt, paid back by the refill.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    level: f64,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Self { rate, level: rate }
    }

    fn refill(&mut self, elapsed: f64) {
        self.level = (self.level + elapsed * self.rate).min(self.rate);
    }

    /// Take `n`; false when the bucket was already empty (in debt) or is now.
    fn take(&mut self, n: f64) -> bool {
        self.level -= n;
        self.level >= 0.0
    }

    fn in_debt(&self) -> bool {
        self.level < 0.0
    }
}

/// One connection's rate limiter.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    events: Option<Bucket>,
    bytes: Option<Bucket>,
    last: Instant,
    pub policy: RateLimitPolicy,
}

impl RateLimiter {
    pub fn new(limit: &RateLimit) -> Option<Self> {
        limit.enabled().then(|| Self {
            events: (limit.events_per_second > 0)
                .then(|| Bucket::new(limit.events_per_second.into())),
            bytes: (limit.bytes_per_second > 0).then(|| Bucket::new(limit.bytes_per_second as f64)),
            last: Instant::now(),
            policy: limit.policy,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        for bucket in [&mut self.events, &mut self.bytes].into_iter().flatten() {
            bucket.refill(elapsed);
        }
    }

    /// A message of `len` bytes arrived. Bytes are counted for every message; the
    /// decision is taken per packet (see [`RateLimiter::allow_event`]), since dropping one
    /// attachment would break its packet.
    pub fn on_bytes(&mut self, len: usize, now: Instant) {
        self.refill(now);
        if let Some(bytes) = &mut self.bytes {
            bytes.take(len as f64);
        }
    }

    /// An event is complete: true when it is within the limits.
    pub fn allow_event(&mut self, now: Instant) -> bool {
        self.refill(now);
        let events_ok = self.events.as_mut().is_none_or(|b| b.take(1.0));
        let bytes_ok = self.bytes.as_ref().is_none_or(|b| !b.in_debt());
        if !events_ok {
            // A refused event does not use the allowance up.
            if let Some(events) = &mut self.events {
                events.level += 1.0;
            }
        }
        events_ok && bytes_ok
    }

    /// Whether the byte budget is in debt (checked for packets that are not events,
    /// under the disconnect policy).
    pub fn bytes_exceeded(&self) -> bool {
        self.bytes.as_ref().is_some_and(Bucket::in_debt)
    }
}

/// The bytes of binary attachments all connections hold while they wait for the rest
/// of their packet, against a total bound.
#[derive(Debug)]
pub(crate) struct AttachmentBudget {
    /// Most bytes of pending attachments per connection.
    pub per_connection: usize,
    total_max: usize,
    total: AtomicUsize,
}

impl AttachmentBudget {
    pub fn new(per_connection: usize, total_max: usize) -> Arc<Self> {
        Arc::new(Self {
            per_connection,
            total_max,
            total: AtomicUsize::new(0),
        })
    }

    /// Reserve `n` bytes of the total; false (nothing reserved) when that would go past
    /// the bound.
    pub fn reserve(&self, n: usize) -> bool {
        self.total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                t.checked_add(n).filter(|&sum| sum <= self.total_max)
            })
            .is_ok()
    }

    pub fn release(&self, n: usize) {
        self.total.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes held now, by all connections.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_over_the_rate_are_refused_then_allowed_again() {
        let mut limiter = RateLimiter::new(&RateLimit {
            events_per_second: 10,
            ..RateLimit::default()
        })
        .expect("enabled");
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| limiter.allow_event(t0)).count();
        assert_eq!(allowed, 10, "a burst of one second's worth");
        let t1 = t0 + Duration::from_millis(500);
        let allowed = (0..100).filter(|_| limiter.allow_event(t1)).count();
        assert_eq!(allowed, 5, "half a second refills half");
    }

    #[test]
    fn bytes_in_debt_refuse_events_until_paid_back() {
        let mut limiter = RateLimiter::new(&RateLimit {
            bytes_per_second: 1000,
            ..RateLimit::default()
        })
        .expect("enabled");
        let t0 = Instant::now();
        limiter.on_bytes(600, t0);
        assert!(limiter.allow_event(t0));
        limiter.on_bytes(600, t0);
        assert!(!limiter.allow_event(t0));
        assert!(limiter.bytes_exceeded());
        let t1 = t0 + Duration::from_millis(300);
        limiter.on_bytes(10, t1);
        assert!(limiter.allow_event(t1));
    }

    #[test]
    fn off_by_default() {
        assert!(RateLimiter::new(&RateLimit::default()).is_none());
        assert_eq!(
            RateLimitPolicy::from_name("drop"),
            Some(RateLimitPolicy::Drop)
        );
        assert_eq!(RateLimitPolicy::from_name("x"), None);
    }

    #[test]
    fn the_attachment_total_is_bounded() {
        let budget = AttachmentBudget::new(10, 100);
        assert!(budget.reserve(60));
        assert!(!budget.reserve(60));
        assert!(budget.reserve(40));
        budget.release(100);
        assert_eq!(budget.held(), 0);
    }
}
