//! Emits handed to a thread of the library: [`Handoff`] (its docs say why and how).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::socketio::emitter::{Broadcast, EmitError};
use crate::socketio::packet::{self, Payload};
use crate::socketio::state::StateMap;

/// Most emits waiting in one handoff. Each slot is a few hundred bytes, allocated
/// once; 1,024 emits are ~1 ms of fan-out to 100 clients at saturation.
pub const HANDOFF_CAPACITY: usize = 1024;

/// Most bytes of arguments waiting in one handoff (the bound that matters for large
/// emits: 1,024 slots of a few MB each would be gigabytes).
pub const HANDOFF_BYTES: usize = 64 << 20;

/// The arguments of a handed-off emit.
enum Args {
    /// One argument, already JSON.
    Json(Box<RawValue>),
    /// Any arguments and binary attachments.
    Payload(Payload),
}

impl Args {
    /// The bytes it adds to the packet (a lower bound of its encoded size).
    fn bytes(&self) -> usize {
        match self {
            Args::Json(raw) => raw.get().len(),
            Args::Payload(p) => {
                let mut json = ByteCount(0);
                for arg in &p.args {
                    // Counting cannot fail; a value that cannot be written fails the
                    // encoding on the thread, where it is logged.
                    let _ = serde_json::to_writer(&mut json, arg);
                }
                json.0 + p.attachments.iter().map(|a| a.len()).sum::<usize>()
            }
        }
    }
}

/// Counts what is written to it (the JSON size of payload arguments, unallocated).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a handed-off job does on the thread.
enum Work {
    Emit {
        broadcast: Broadcast<'static>,
        event: Box<str>,
        args: Args,
    },
    /// A state map's key set, streamed to its subscribers as a delta: in the same FIFO
    /// as the emits, so that a thread's emits and state changes reach each client in
    /// the order it made them.
    SetState {
        map: StateMap,
        key: Box<str>,
        value: Value,
    },
}

/// A job's work and the bytes of arguments it holds (counted against the handoff's
/// byte bound until it is done).
struct Task {
    work: Work,
    bytes: usize,
}

// An emit travels inline (a few hundred bytes per slot, allocated once with the
// channel): boxing it cost the caller a malloc and the thread a cross-thread free.
#[allow(clippy::large_enum_variant)]
enum Job {
    Task(Task),
    /// Answered once every job before it is done ([`Handoff::fence`]).
    Fence(Sender<()>),
}

#[derive(Default)]
struct Shared {
    /// Emits accepted and not yet fanned out (raised before the send, lowered after
    /// the fan-out: zero means every emit accepted so far has been fanned out).
    pending: AtomicUsize,
    pending_bytes: AtomicUsize,
    failed: AtomicU64,
}

/// Emits handed to a thread of the library: the caller pays for its
/// data's JSON and one queue push, whatever the number of recipients; the handoff's
/// thread encodes each packet and fans it out, waiting for slow clients as any emit
/// from a plain thread does.
///
/// Why: an emit fans out on its caller's thread, ~120-250 ns per recipient (a queue
/// push, or a `write()` when the client was idle). A producer that must not stall (a
/// Python agent holding the GIL, a control loop) hands the fan-out to this thread.
///
/// Order: one FIFO and one consumer, so emits (and state changes,
/// [`PreparedEmit::set_state`]) handed off from one thread reach each client in that
/// order. An operation that must come after them (a room change, a
/// disconnect, a direct emit to a socket) waits for them first with
/// [`Handoff::flush`], which costs one atomic load when nothing is pending. Under a
/// [`crate::Host`] with a handoff, the answers of its handlers' acks
/// ([`crate::AckSender`]) wait so on their own.
///
/// Bounds: at most [`HANDOFF_CAPACITY`] emits and [`HANDOFF_BYTES`] bytes of
/// arguments wait; past them [`Handoff::emit`] waits (backpressure: the thread is
/// itself slowed by slow clients, at most the server's `emit_max_wait` each) and
/// [`Handoff::try_send`] gives the emit back. Errors the caller can be told about now
/// (an unknown namespace, a reserved event name, arguments larger than a client's
/// queue) are returned now; a later failure is logged at WARN and counted
/// ([`Handoff::failed`]). A binding's [`crate::Host`] owns one
/// ([`crate::Host::enable_handoff`]) and delivers what it holds before a stop.
///
/// ```
/// let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
/// let emitter = server.emitter();
/// let handoff = swarmcast::Handoff::new().unwrap();
/// handoff.emit(emitter.of("/"), "tick", &serde_json::json!({"seq": 1})).unwrap();
/// handoff.flush(); // fanned out (to nobody: no client is connected)
/// assert_eq!(handoff.pending(), 0);
/// ```
pub struct Handoff {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("pending", &self.pending())
            .field("failed", &self.failed())
            .finish()
    }
}

impl Handoff {
    /// Start the handoff's thread (`swarmcast-handoff`). It ends once the handoff is
    /// dropped and what was handed to it is fanned out.
    pub fn new() -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::bounded(HANDOFF_CAPACITY);
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("swarmcast-handoff".into())
            .spawn(move || fan_out_jobs(&queue, &worker))?;
        Ok(Self { jobs, shared })
    }

    /// Hand `event` with one argument to the thread (`data` becomes JSON here). Waits
    /// while the handoff is full.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        broadcast: Broadcast<'static>,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        let raw =
            serde_json::value::to_raw_value(data).map_err(|e| EmitError::Encode(e.to_string()))?;
        self.emit_json(broadcast, event, raw)
    }

    /// [`Handoff::emit`] with the argument already JSON.
    pub fn emit_json(
        &self,
        broadcast: Broadcast<'static>,
        event: &str,
        data: Box<RawValue>,
    ) -> Result<(), EmitError> {
        self.send(PreparedEmit::json(broadcast, event, data)?)
    }

    /// Hand `event` with any arguments and attachments to the thread. Waits while the
    /// handoff is full.
    pub fn emit_payload(
        &self,
        broadcast: Broadcast<'static>,
        event: &str,
        payload: Payload,
    ) -> Result<(), EmitError> {
        self.send(PreparedEmit::payload(broadcast, event, payload)?)
    }

    /// Hand a prepared emit to the thread, waiting while the handoff is full.
    pub fn send(&self, emit: PreparedEmit) -> Result<(), EmitError> {
        let bytes = emit.0.bytes;
        let over = self.shared.pending_bytes.load(Ordering::Relaxed) + bytes > HANDOFF_BYTES;
        if over && self.pending() > 0 {
            // Large emits wait for the ones before them rather than pile up.
            self.flush();
        }
        self.count_in(bytes);
        let sent = self.jobs.send(Job::Task(emit.0));
        sent.map_err(|_| {
            self.count_out(bytes);
            // The thread is gone: only a process tearing down gets here.
            EmitError::NotRunning
        })
    }

    /// Hand a prepared emit to the thread if there is room now; when the handoff is
    /// full (or would go over its byte bound), gives it back untouched, for
    /// [`Handoff::send`] on a thread that may wait.
    // Given back by value: boxing it would cost the common case (room now) a malloc.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, emit: PreparedEmit) -> Result<(), PreparedEmit> {
        let bytes = emit.0.bytes;
        let over = self.shared.pending_bytes.load(Ordering::Relaxed) + bytes > HANDOFF_BYTES;
        if over && self.pending() > 0 {
            return Err(emit);
        }
        self.count_in(bytes);
        match self.jobs.try_send(Job::Task(emit.0)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Job::Task(e)) | TrySendError::Disconnected(Job::Task(e))) => {
                self.count_out(bytes);
                Err(PreparedEmit(e))
            }
            Err(TrySendError::Full(Job::Fence(_)) | TrySendError::Disconnected(Job::Fence(_))) => {
                unreachable!("an emit was sent")
            }
        }
    }

    /// Counted before the send: a flush that follows it (on any thread it
    /// happens-before) sees it pending until it has been fanned out.
    fn count_in(&self, bytes: usize) {
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        self.shared
            .pending_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    fn count_out(&self, bytes: usize) {
        self.shared
            .pending_bytes
            .fetch_sub(bytes, Ordering::Relaxed);
        self.shared.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// Wait until every emit handed off before this call (by any thread it
    /// happens-before) has been fanned out. Returns at once when none is pending.
    pub fn flush(&self) {
        self.fence().wait();
    }

    /// A [`Fence`] behind every emit handed off so far, to wait on in slices (as a
    /// binding does to stay interruptible).
    pub fn fence(&self) -> Fence {
        if self.pending() == 0 {
            return Fence(None);
        }
        let (done, waiting) = crossbeam_channel::bounded(1);
        match self.jobs.send(Job::Fence(done)) {
            Ok(()) => Fence(Some(waiting)),
            Err(_) => Fence(None),
        }
    }

    /// Emits handed off and not yet fanned out.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Handed-off emits that failed on the thread (each logged at WARN): a packet
    /// larger than a client's queue that the caller's check could not see, or
    /// recipients whose queue stayed full under the `Report` slow-consumer policy.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }
}

/// What [`Handoff::fence`] returns: done once the emits before it are fanned out.
#[derive(Debug)]
pub struct Fence(Option<Receiver<()>>);

impl Fence {
    /// Wait until done.
    pub fn wait(self) {
        if let Some(done) = self.0 {
            let _ = done.recv();
        }
    }

    /// Wait at most `timeout`; whether it is done.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match &self.0 {
            None => true,
            Some(done) => !matches!(
                done.recv_timeout(timeout),
                Err(crossbeam_channel::RecvTimeoutError::Timeout)
            ),
        }
    }
}

/// An emit (or a state change) checked on the caller's thread and ready to hand off
/// ([`Handoff::send`], [`Handoff::try_send`]).
pub struct PreparedEmit(Task);

impl std::fmt::Debug for PreparedEmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = match &self.0.work {
            Work::Emit { event, .. } => ("event", &**event),
            Work::SetState { map, .. } => ("state", map.name()),
        };
        f.debug_struct("PreparedEmit")
            .field(kind, &name)
            .field("bytes", &self.0.bytes)
            .finish_non_exhaustive()
    }
}

impl PreparedEmit {
    /// `event` with one argument, already JSON, to `broadcast`. Fails now as the emit
    /// would later: an undeclared namespace, a reserved event name, or arguments
    /// larger than a client's queue can ever hold.
    pub fn json(
        broadcast: Broadcast<'static>,
        event: &str,
        data: Box<RawValue>,
    ) -> Result<Self, EmitError> {
        prepare(broadcast, event, Args::Json(data)).map(Self)
    }

    /// `event` with any arguments and attachments; fails as [`PreparedEmit::json`].
    pub fn payload(
        broadcast: Broadcast<'static>,
        event: &str,
        payload: Payload,
    ) -> Result<Self, EmitError> {
        prepare(broadcast, event, Args::Payload(payload)).map(Self)
    }

    /// `map[key] = value`, applied and streamed to the map's subscribers on the
    /// thread, in order with the emits handed off before it. Until then the map does
    /// not hold it: a reader that must see it waits first ([`Handoff::flush`]). Fails
    /// now on a delta larger than a subscriber's queue can ever hold.
    ///
    /// ```
    /// let server = swarmcast::Server::new(swarmcast::ServerConfig::default());
    /// let agents = server.state("agents");
    /// let handoff = swarmcast::Handoff::new().unwrap();
    /// let change = swarmcast::PreparedEmit::set_state(&agents, "a1", serde_json::json!("idle"));
    /// handoff.send(change.unwrap()).unwrap();
    /// handoff.flush();
    /// assert_eq!(agents.get("a1").unwrap(), "idle");
    /// ```
    pub fn set_state(map: &StateMap, key: &str, value: Value) -> Result<Self, EmitError> {
        let limit = map.packet_limit();
        let mut json = ByteCount(0);
        // Counting cannot fail (a `Value` always serializes).
        let _ = serde_json::to_writer(&mut json, &value);
        let bytes = json.0 + key.len() + map.name().len() + DELTA_OVERHEAD;
        if bytes + crate::engine::FRAME_OVERHEAD > limit {
            tracing::warn!(
                map = map.name(),
                key,
                bytes,
                limit,
                "state change refused: its delta is larger than a client's outbound queue can ever hold"
            );
            return Err(EmitError::TooLarge { bytes, limit });
        }
        Ok(Self(Task {
            work: Work::SetState {
                map: map.clone(),
                key: key.into(),
                value,
            },
            bytes,
        }))
    }
}

/// What a delta packet adds to its key, value and map name: the event name and the
/// field names (`["swarmcast:delta",{"map":"","version":N,"key":"","value":}]`).
const DELTA_OVERHEAD: usize = 64;

/// The checks an emit would fail now, done on the caller's thread so that it hears of
/// them: the namespace, the event name, arguments no client's queue could hold.
fn prepare(broadcast: Broadcast<'static>, event: &str, args: Args) -> Result<Task, EmitError> {
    let limit = broadcast.packet_limit()?;
    packet::check_event_name(event)?;
    let bytes = args.bytes() + event.len();
    if bytes + crate::engine::FRAME_OVERHEAD > limit {
        tracing::warn!(
            event,
            bytes,
            limit,
            "emit refused: larger than a client's outbound queue can ever hold"
        );
        return Err(EmitError::TooLarge { bytes, limit });
    }
    Ok(Task {
        work: Work::Emit {
            broadcast,
            event: event.into(),
            args,
        },
        bytes,
    })
}

/// The handoff's thread: fan out each emit in order, answer fences, end when the
/// handoff is gone and its queue empty.
fn fan_out_jobs(queue: &Receiver<Job>, shared: &Shared) {
    for job in queue {
        match job {
            Job::Task(Task { work, bytes }) => {
                // A panic would be a bug in the fan-out; it must not leave every later
                // emit (and every flush) waiting on a dead thread. The work is consumed
                // (dropped) before it stops counting as pending.
                let done = catch_unwind(AssertUnwindSafe(|| run(work)));
                if !matches!(done, Ok(true)) {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    if done.is_err() {
                        tracing::error!("handed-off emit panicked");
                    }
                }
                shared.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
                shared.pending.fetch_sub(1, Ordering::AcqRel);
            }
            Job::Fence(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Do one job's work; false when it failed (logged here at WARN).
fn run(work: Work) -> bool {
    match work {
        Work::Emit {
            broadcast,
            event,
            args,
        } => {
            let sent = match args {
                Args::Json(raw) => broadcast.emit(&event, &raw),
                Args::Payload(payload) => broadcast.emit_payload(&event, &payload),
            };
            match sent {
                Ok(report) if report.full.is_empty() => true,
                Ok(report) => {
                    tracing::warn!(
                        event = &*event,
                        delivered = report.delivered,
                        full = report.full.len(),
                        "handed-off emit not delivered to sockets whose queue stayed full"
                    );
                    false
                }
                Err(e) => {
                    tracing::warn!(event = &*event, error = %e, "handed-off emit failed");
                    false
                }
            }
        }
        Work::SetState { map, key, value } => match map.set_value(&key, value) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(map = map.name(), key = &*key, error = %e, "handed-off state change failed");
                false
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Server, ServerConfig};

    fn server(max_wait: Duration) -> Server {
        Server::new(ServerConfig {
            emit_max_wait: max_wait,
            ..ServerConfig::default()
        })
    }

    #[test]
    fn emits_from_many_threads_are_all_fanned_out_before_flush_returns() {
        let server = server(Duration::from_secs(2));
        let ns = server.emitter().namespace("/").expect("the main namespace");
        let sockets: Vec<_> = (0..3).map(|_| ns.attach_detached_socket(1 << 16)).collect();
        for s in &sockets {
            s.drain_detached(); // the CONNECT reply
        }
        let handoff = Arc::new(Handoff::new().expect("a thread"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (handoff, emitter) = (handoff.clone(), server.emitter());
                std::thread::spawn(move || {
                    for i in 0..500 {
                        handoff
                            .emit(emitter.of("/"), "tick", &(t, i))
                            .expect("handed off");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("an emitting thread");
        }
        handoff.flush();
        assert_eq!(handoff.pending(), 0);
        assert_eq!(handoff.failed(), 0);
        for s in &sockets {
            assert_eq!(s.drain_detached(), 2000, "every emit reached every socket");
        }
    }

    #[test]
    fn what_would_fail_fails_on_the_callers_thread() {
        let server = server(Duration::from_secs(2));
        let emitter = server.emitter();
        let handoff = Handoff::new().expect("a thread");
        assert_eq!(
            handoff.emit(emitter.of("/nowhere"), "tick", &1),
            Err(EmitError::UnknownNamespace("/nowhere".into()))
        );
        assert!(matches!(
            handoff.emit(emitter.of("/"), "connect", &1),
            Err(EmitError::Encode(_))
        ));
        let limit = emitter.namespace("/").expect("/").packet_limit();
        let huge = "x".repeat(limit);
        assert!(matches!(
            handoff.emit(emitter.of("/"), "tick", &huge),
            Err(EmitError::TooLarge { .. })
        ));
        let payload = Payload::new(vec![serde_json::json!(huge)]);
        assert!(matches!(
            handoff.emit_payload(emitter.of("/"), "tick", payload),
            Err(EmitError::TooLarge { .. })
        ));
        assert_eq!(handoff.pending(), 0, "nothing refused was handed off");
        handoff.flush();
        assert_eq!(handoff.failed(), 0);
    }

    #[test]
    fn a_thread_waiting_for_a_slow_client_fills_the_handoff_then_catches_up() {
        let max_wait = Duration::from_millis(300);
        let server = server(max_wait);
        let ns = server.emitter().namespace("/").expect("the main namespace");
        // A client that reads nothing: its queue takes 4 packets, then the handoff's
        // thread waits for it (max_wait), then the slow-consumer policy drops it.
        let stuck = ns.attach_detached_socket(4);
        let handoff = Handoff::new().expect("a thread");
        let emitter = server.emitter();
        let started = Instant::now();
        let mut handed = 0;
        loop {
            let raw = serde_json::value::to_raw_value(&handed).expect("json");
            let emit = PreparedEmit::json(emitter.of("/"), "tick", raw).expect("checked");
            if handoff.try_send(emit).is_err() {
                break;
            }
            handed += 1;
            assert!(handed <= 2 * HANDOFF_CAPACITY, "the handoff never filled");
        }
        assert!(handed >= HANDOFF_CAPACITY, "full after {handed}");
        // The blocking emit waits for room instead of failing.
        handoff
            .emit(emitter.of("/"), "tick", &"after")
            .expect("handed off once there was room");
        handoff.flush();
        assert!(
            started.elapsed() >= max_wait,
            "the thread waited for the client"
        );
        assert_eq!(handoff.pending(), 0);
        assert!(stuck.0.engine.is_closed(), "dropped as a slow consumer");
        assert_eq!(server.emitter().metrics().slow_consumers, 1);
    }

    #[test]
    fn a_state_change_comes_after_the_emits_handed_off_before_it() {
        let server = server(Duration::from_secs(2));
        let ns = server.emitter().namespace("/").expect("the main namespace");
        let socket = ns.attach_detached_socket(1 << 16);
        socket.drain_detached(); // the CONNECT reply
        let agents = server.state("agents");
        agents.subscribe(&socket, None).expect("subscribed");
        let handoff = Handoff::new().expect("a thread");
        let emitter = server.emitter();
        for i in 0..3 {
            handoff
                .emit(emitter.of("/"), "tick", &i)
                .expect("handed off");
            // A key each: a delta of a key with an unwritten delta would replace it where
            // it stands (the latest value wins), in front of the ticks between them.
            let change = PreparedEmit::set_state(&agents, &format!("a{i}"), serde_json::json!(i));
            handoff.send(change.expect("checked")).expect("handed off");
        }
        handoff.flush();
        assert_eq!(agents.get("a2"), Some(serde_json::json!(2)));
        assert_eq!(agents.version(), 3);
        let frames = socket.0.engine.take_all();
        let events: Vec<&str> = frames
            .iter()
            .filter_map(|f| f.as_text())
            .filter_map(|t| t.split('"').nth(1))
            .collect();
        // The snapshot, then each tick before the change made after it.
        assert_eq!(
            events,
            [
                "swarmcast:snapshot",
                "tick",
                "swarmcast:delta",
                "tick",
                "swarmcast:delta",
                "tick",
                "swarmcast:delta"
            ]
        );
    }

    #[test]
    fn a_state_change_too_large_for_any_queue_fails_on_the_callers_thread() {
        let server = server(Duration::from_secs(2));
        let agents = server.state("agents");
        let limit = server.emitter().namespace("/").expect("/").packet_limit();
        let huge = serde_json::json!("x".repeat(limit));
        assert!(matches!(
            PreparedEmit::set_state(&agents, "a1", huge),
            Err(EmitError::TooLarge { .. })
        ));
        assert_eq!(agents.get("a1"), None, "nothing was applied");
    }
}
