//! Outgoing packets of a namespace: what an emit carries ([`Outgoing`]), its single
//! encoding, and the fan-out of the encoded bytes to the local sockets it targets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::members::Members;
use crate::engine::{CloseReason, SendError};
use crate::metrics::Stats;
use crate::socketio::emitter::{EmitReport, SlowConsumerPolicy};
use crate::socketio::packet::{self, EncodeError, Encoded, WriteArgs};
use crate::socketio::rooms::Target;
use crate::socketio::socket::Socket;

/// One outgoing event, before encoding.
pub(crate) struct Outgoing<'a> {
    pub event: &'a str,
    /// Writes the arguments (each preceded by a comma).
    pub args: WriteArgs<'a>,
    pub attachments: &'a [Bytes],
    pub target: &'a Target,
    pub volatile: bool,
    /// Keyed-state coalescing key: a queued packet with the same key is replaced.
    pub keyed: Option<&'a Arc<str>>,
    /// Matched against subscription filters (the event name, or the state key).
    pub filter_key: &'a str,
    /// Whether the emitter may wait for slow clients (backpressure); false for the
    /// `try_` variants and for server-internal deliveries.
    pub wait: bool,
}

impl<'a> Outgoing<'a> {
    /// A named event to `target` (not keyed; subscription filters match its name).
    pub fn event(
        event: &'a str,
        args: WriteArgs<'a>,
        attachments: &'a [Bytes],
        target: &'a Target,
        volatile: bool,
        wait: bool,
    ) -> Self {
        Self {
            event,
            args,
            attachments,
            target,
            volatile,
            keyed: None,
            filter_key: event,
            wait,
        }
    }

    /// The packet as namespace `namespace` sends it, with a recovery offset when given.
    pub fn encode(&self, namespace: &str, offset: Option<&str>) -> Result<Encoded, EncodeError> {
        packet::encode_event(
            namespace,
            self.event,
            None,
            self.attachments,
            self.args,
            offset,
        )
    }
}

/// How long an emit on this thread may wait for slow clients: None when it must not
/// wait (the caller asked not to, the dial is zero, or the thread is inside a tokio
/// runtime, where blocking could stall the very writers it waits for). Plain threads
/// wait: the caller's own, and the handler threads of the Python and C bindings.
pub(crate) fn wait_budget(out_waits: bool, max_wait: Duration) -> Option<Instant> {
    if !out_waits || max_wait.is_zero() || tokio::runtime::Handle::try_current().is_ok() {
        return None;
    }
    Instant::now().checked_add(max_wait)
}

/// How long the fan-outs of a namespace must have been quiet for the next one to write
/// through to idle WebSockets (see [`WriteThroughGate`]).
const QUIET_BEFORE_WRITE_THROUGH: Duration = Duration::from_millis(1);

/// Decides, once per emit, whether its fan-out writes to the sockets of idle
/// WebSockets itself (write-through) instead of waking their writers. An emit after a
/// quiet millisecond does: it is the low-rate case, where a wake-up per recipient is
/// most of a delivery's cost, and writing one frame per `write()` loses nothing. Emits
/// that follow each other closely do not: their writers take many frames per write
/// (and a producer thread writing to a thousand sockets itself would never batch).
#[derive(Debug)]
pub(crate) struct WriteThroughGate {
    epoch: Instant,
    /// Microseconds since `epoch` at which the last fan-out ended.
    last_end_us: AtomicU64,
}

impl WriteThroughGate {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_end_us: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    /// Whether a fan-out starting now may write through.
    fn open(&self) -> bool {
        let last = self.last_end_us.load(Ordering::Relaxed);
        last == 0 || self.now_us() - last >= QUIET_BEFORE_WRITE_THROUGH.as_micros() as u64
    }

    fn fan_out_ended(&self) {
        self.last_end_us.store(self.now_us(), Ordering::Relaxed);
    }
}

/// Recipients of a write-through fan-out warmed at once (`Socket::warm`). Between
/// broadcasts at a low rate nothing of a recipient stays cached, and each push met its
/// misses alone, after the previous write's system call; warmed 16 at a time they
/// overlap, and a chunk's lines are still cached when its writes reach them (20
/// broadcasts/s to 1,000 clients: 3% less server CPU per delivery, p99 6% lower,
/// medians of five interleaved rounds).
const WARM_AHEAD: usize = 16;

/// Push one encoded packet to every local socket the target reaches (under the
/// registry's read lock, or outside it when writing through), then wait as the
/// backpressure policy says: for
/// room where a queue was full, and for the writer to catch up where a queue went over
/// its watermark. The bytes are shared, never copied per recipient. Returns the report
/// and the sockets to which the slow-consumer policy applies: those that could not take
/// the packet, and those that stayed over the watermark past `deadline`. When `gate`
/// says so, idle WebSockets are written to at once ([`WriteThroughGate`]).
pub(crate) fn fan_out(
    members: &Members,
    encoded: &Encoded,
    out: &Outgoing<'_>,
    stats: &Stats,
    deadline: Option<Instant>,
    gate: &WriteThroughGate,
) -> (EmitReport, Vec<Socket>) {
    let mut report = EmitReport::default();
    let mut slow = Vec::new();
    let mut blocked = Vec::new();
    let mut lagging = Vec::new();
    let through = gate.open();
    let mut push = |socket: &Socket| {
        let pushed = match (out.keyed, encoded.frames.first()) {
            (Some(key), Some(frame)) if encoded.frames.len() == 1 => {
                socket.send_keyed(key, frame).map(|()| false)
            }
            _ if through => socket.push_frames_through(&encoded.frames),
            _ => socket.push_frames(&encoded.frames),
        };
        match pushed {
            Ok(above) => {
                report.delivered += 1;
                if above && deadline.is_some() {
                    lagging.push(socket.clone());
                }
            }
            Err(SendError::QueueFull) if out.volatile => report.volatile_dropped += 1,
            Err(SendError::QueueFull) if deadline.is_some() && out.keyed.is_none() => {
                blocked.push(socket.clone())
            }
            Err(SendError::QueueFull) => {
                report.full.push(socket.id_arc());
                slow.push(socket.clone());
            }
            // Disconnecting right now: its disconnect is being handled.
            Err(SendError::Closed) => {}
        }
    };
    if through {
        // A write-through is a write() per idle recipient: a thousand take milliseconds,
        // too long to hold the registry's read lock (a connect, join or disconnect on
        // the runtime would wait for all of it). The recipients are taken first.
        let mut targets = Vec::new();
        members.for_each_target(out.target, Some(out.filter_key), |socket| {
            targets.push(socket.clone())
        });
        for chunk in targets.chunks(WARM_AHEAD) {
            chunk.iter().for_each(Socket::warm);
            chunk.iter().for_each(&mut push);
        }
    } else {
        members.for_each_target(out.target, Some(out.filter_key), push);
    }
    if let Some(deadline) = deadline {
        // The last first, as below.
        for socket in blocked.into_iter().rev() {
            match socket.push_frames_blocking(&encoded.frames, deadline) {
                Ok(_) => report.delivered += 1,
                Err(SendError::QueueFull) => {
                    report.full.push(socket.id_arc());
                    slow.push(socket);
                }
                Err(SendError::Closed) => {}
            }
        }
        // These got the packet; the ones still behind at the deadline do not keep up.
        // The last one first: the writers run roughly in the order they were woken, so
        // once the last has caught up the others mostly have too, and this thread sleeps
        // about once per emit. In push order it slept on one socket, was woken as soon
        // as that writer drained, found the next still behind and slept again: a
        // context switch pair per lagging socket on a shared core.
        slow.extend(
            lagging
                .into_iter()
                .rev()
                .filter(|socket| !socket.wait_below_watermark(deadline)),
        );
    }
    gate.fan_out_ended();
    stats.record_emit(
        report.delivered,
        report.full.len(),
        report.volatile_dropped,
        encoded.size(),
    );
    (report, slow)
}

/// Apply the slow-consumer policy. Call outside every lock: closing a socket runs its
/// disconnect path, which may run application code that emits. Each client is counted
/// and logged once, however many emits find it slow.
pub(crate) fn drop_slow(policy: SlowConsumerPolicy, stats: &Stats, slow: Vec<Socket>) {
    if policy != SlowConsumerPolicy::Disconnect {
        return;
    }
    for socket in slow {
        let (packets, bytes) = socket.backlog();
        if socket.close_connection_with(CloseReason::SlowConsumer) {
            stats.slow_consumer();
            tracing::warn!(
                sid = socket.engine_sid(),
                socket = socket.id(),
                transport = socket.transport().as_str(),
                queued_packets = packets,
                queued_bytes = bytes,
                "slow consumer disconnected: its outbound queue stayed full"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use crate::engine::{Frame, WriteThrough, Written};
    use crate::socketio::namespace::Namespace;
    use crate::{Server, ServerConfig};

    /// Joins a room from inside the write, as a connect or a join on the runtime does
    /// while a fan-out writes: it needs the registry's write lock.
    struct JoinsWhileWriting {
        ns: Weak<Namespace>,
        sid: String,
        joined: AtomicUsize,
    }

    impl WriteThrough for JoinsWhileWriting {
        fn write(&self, _frames: &[Frame]) -> Written {
            if let Some(ns) = self.ns.upgrade() {
                if ns.join_room(&self.sid, "joined-meanwhile") {
                    self.joined.fetch_add(1, Ordering::SeqCst);
                }
            }
            Written::All
        }
    }

    #[test]
    fn writes_through_without_holding_the_registry_lock() {
        let server = Server::new(ServerConfig::default());
        let ns = server.emitter().namespace("/").expect("the main namespace");
        let socket = ns.attach_detached_socket(64);
        let probe = Arc::new(JoinsWhileWriting {
            ns: Arc::downgrade(&ns),
            sid: socket.id().to_string(),
            joined: AtomicUsize::new(0),
        });
        socket.drain_detached(); // the CONNECT reply: an idle writer has nothing queued
        assert!(socket.0.engine.write_through_to(probe.clone()));

        // Under the lock the join deadlocks: the emit's thread never reports back.
        let (tx, rx) = std::sync::mpsc::channel();
        let emitter = server.emitter();
        std::thread::spawn(move || {
            let _ = tx.send(emitter.emit("tick", &1));
        });
        let report = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the write-through waited for the registry's lock it held")
            .expect("the emit");
        assert_eq!(report.delivered, 1);
        assert_eq!(probe.joined.load(Ordering::SeqCst), 1);
        assert_eq!(socket.0.engine.queued(), 0, "written through, not queued");
        assert_eq!(ns.rooms(socket.id()).len(), 2);
    }
}
