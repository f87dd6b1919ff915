//! Running host-language handlers on threads of their own.
//!
//! Rust handlers run inline on the connection's reader. Handlers written in Python or C
//! must not: they take locks (the GIL) and may block. A [`Dispatcher`] runs jobs on a
//! small pool of OS threads; jobs with the same key (a socket id) always run on the
//! same thread, so one socket's events are handled in wire order while different
//! sockets proceed in parallel. The Python and C bindings both use it.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs waiting in all, before `run` pushes back on callers outside the pool.
const MAX_PENDING: usize = 65_536;

thread_local! {
    /// Set on dispatcher threads: a handler that queues more work must never wait for
    /// room, since the room can only be made by threads like itself.
    static ON_DISPATCHER: Cell<bool> = const { Cell::new(false) };
}

/// Handler threads told to leave that have not left yet, and teardowns announced
/// ([`TeardownGuard`]) that have not reached their dispatcher yet: what
/// [`wait_for_teardown`] waits for, process-wide.
struct Teardown {
    pending: Mutex<usize>,
    done: Condvar,
}

static TEARDOWN: Teardown = Teardown {
    pending: Mutex::new(0),
    done: Condvar::new(),
};

fn teardown_begin(n: usize) {
    *TEARDOWN.pending.lock() += n;
}

fn teardown_end() {
    let mut pending = TEARDOWN.pending.lock();
    *pending = pending.saturating_sub(1);
    if *pending == 0 {
        TEARDOWN.done.notify_all();
    }
}

/// A teardown in progress that [`wait_for_teardown`] must wait for until the guard is
/// dropped: taken by whoever hands a stop to another thread (a binding's `free` called
/// from a handler), so that no wait can slip in before that thread starts.
#[derive(Debug)]
pub struct TeardownGuard(());

impl TeardownGuard {
    /// Announce a teardown.
    pub fn new() -> Self {
        teardown_begin(1);
        Self(())
    }
}

impl Default for TeardownGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        teardown_end();
    }
}

/// Wait, at most `timeout`, until every handler thread of every stopped or dropped
/// dispatcher has left (so every handler queued before the stop has run) and every
/// [`TeardownGuard`] is gone. True when that happened, false on timeout. Process-wide.
/// A handler calling it would wait for itself: it returns false at once on a handler
/// thread of a dispatcher.
pub fn wait_for_teardown(timeout: std::time::Duration) -> bool {
    if on_dispatcher_thread() {
        return false;
    }
    let deadline = std::time::Instant::now() + timeout;
    let mut pending = TEARDOWN.pending.lock();
    while *pending > 0 {
        if TEARDOWN.done.wait_until(&mut pending, deadline).timed_out() {
            return *pending == 0;
        }
    }
    true
}

/// Whether the current thread is a handler thread of some [`Dispatcher`].
pub fn on_dispatcher_thread() -> bool {
    ON_DISPATCHER.with(Cell::get)
}

#[derive(Default)]
struct State {
    /// Jobs per key. A key is here while it has jobs queued or one running.
    keys: HashMap<String, VecDeque<Job>>,
    /// Keys with jobs and no job running, in the order they became ready.
    runnable: VecDeque<String>,
    pending: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    room: Condvar,
}

/// A pool of handler threads with per-key ordering.
///
/// Jobs with the same key (a socket id) run one at a time, in the order they were
/// queued; jobs of different keys run on any free thread. A slow handler holds up only
/// its own socket, never the others that happen to share a thread.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let pool = swarmcast::Dispatcher::new(2, "handlers");
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// for i in 0..10 {
///     let seen = seen.clone();
///     pool.run("socket-a", move || seen.lock().unwrap().push(i));
/// }
/// drop(pool); // joins the threads after the queued jobs ran
/// assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
/// ```
pub struct Dispatcher {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Dispatcher {
    /// Start `threads` (at least one) threads named `name-N`. Threads the system
    /// refuses are logged and done without (see [`Dispatcher::try_new`]).
    pub fn new(threads: usize, name: &str) -> Self {
        let mut pool = Self::empty();
        for i in 0..threads.max(1) {
            if let Err(e) = pool.spawn(name, i) {
                tracing::error!(error = %e, "cannot spawn a dispatcher thread");
            }
        }
        pool
    }

    /// Start `threads` (at least one) threads named `name-N`, or none: when the system
    /// refuses one, those already started are joined and the error returned.
    pub fn try_new(threads: usize, name: &str) -> std::io::Result<Self> {
        let mut pool = Self::empty();
        for i in 0..threads.max(1) {
            // On error, dropping `pool` closes it and joins what was started.
            pool.spawn(name, i)?;
        }
        Ok(pool)
    }

    fn empty() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                room: Condvar::new(),
            }),
            threads: Vec::new(),
        }
    }

    fn spawn(&mut self, name: &str, i: usize) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || worker(&shared))?;
        self.threads.push(handle);
        Ok(())
    }

    /// Run `job` after every job queued before it with the same `key`. Never drops a
    /// job. When very many are waiting, a caller outside the pool waits for room
    /// (backpressure reaches the client's reader instead of memory growing without
    /// bound); a handler queuing more work never waits.
    pub fn run(&self, key: &str, job: impl FnOnce() + Send + 'static) {
        let mut state = self.shared.state.lock();
        if state.pending >= MAX_PENDING && !ON_DISPATCHER.with(Cell::get) {
            let shared = &self.shared;
            let wait = |state: &mut parking_lot::MutexGuard<'_, State>| {
                while state.pending >= MAX_PENDING && !state.closed {
                    shared.room.wait(state);
                }
            };
            // Blocking a runtime worker is allowed only through block_in_place.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| wait(&mut state))
                }
                _ => wait(&mut state),
            }
        }
        if state.closed {
            return;
        }
        state.pending += 1;
        match state.keys.get_mut(key) {
            // Queued or running: it is picked up after what is ahead of it.
            Some(queue) => queue.push_back(Box::new(job)),
            None => {
                state
                    .keys
                    .insert(key.to_string(), VecDeque::from([Box::new(job) as Job]));
                state.runnable.push_back(key.to_string());
                self.shared.work.notify_one();
            }
        }
    }

    /// Wait until no job is queued or running, or until `deadline`; true when idle.
    /// Not from a handler (it would wait for itself): false at once there.
    pub fn wait_idle_until(&self, deadline: std::time::Instant) -> bool {
        if on_dispatcher_thread() {
            return false;
        }
        let mut state = self.shared.state.lock();
        while state.pending > 0 {
            // `room` is notified after every job.
            if self
                .shared
                .room
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.pending == 0;
            }
        }
        true
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

fn worker(shared: &Shared) {
    ON_DISPATCHER.with(|d| d.set(true));
    let mut state = shared.state.lock();
    loop {
        let Some(key) = state.runnable.pop_front() else {
            if state.closed {
                // Counted by the close (see `Dispatcher::close`).
                drop(state);
                teardown_end();
                return;
            }
            shared.work.wait(&mut state);
            continue;
        };
        let Some(job) = state.keys.get_mut(&key).and_then(VecDeque::pop_front) else {
            state.keys.remove(&key);
            continue;
        };
        drop(state);
        // A panicking job must not take the thread down with it.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a handler panicked; the dispatcher goes on");
        }
        state = shared.state.lock();
        state.pending -= 1;
        // Callers waiting for room, and those waiting for the pool to be idle.
        shared.room.notify_all();
        if state.keys.get(&key).is_some_and(|q| !q.is_empty()) {
            // Behind the other ready keys: one busy socket cannot starve the rest.
            state.runnable.push_back(key);
            shared.work.notify_one();
        } else {
            state.keys.remove(&key);
        }
    }
}

impl Dispatcher {
    /// Tell the threads to finish the jobs already queued, then leave.
    fn close(&self) {
        let mut state = self.shared.state.lock();
        if !state.closed {
            state.closed = true;
            // Each thread counts itself out as it leaves.
            teardown_begin(self.threads.len());
        }
        drop(state);
        self.shared.work.notify_all();
        self.shared.room.notify_all();
    }

    /// Close, and wait until `deadline` for the threads to run what is queued and
    /// leave. True when they all left; false when some still run a job at the
    /// deadline: they are left to finish on their own ([`wait_for_teardown`] waits for
    /// them). The current thread, should it be one of them, is never waited for.
    pub fn shutdown_until(mut self, deadline: std::time::Instant) -> bool {
        self.close();
        let current = std::thread::current().id();
        let mut all = true;
        for handle in std::mem::take(&mut self.threads) {
            if handle.thread().id() == current {
                continue;
            }
            while !handle.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                // Detached: it leaves once its job returns.
                all = false;
            }
        }
        all
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // The threads finish the jobs already queued, then leave.
        self.close();
        // A handler that drops the last reference from its own thread is not joined.
        super::pool::join_all_but_current(self.threads.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_slow_key_does_not_hold_up_the_others() {
        let pool = Dispatcher::new(2, "t");
        let (tx, rx) = std::sync::mpsc::channel();
        let gate = Arc::new(std::sync::Barrier::new(2));
        let held = gate.clone();
        // "slow" blocks one thread until the end of the test.
        pool.run("slow", move || {
            held.wait();
        });
        for i in 0..100 {
            let tx = tx.clone();
            pool.run(&format!("k{i}"), move || {
                let _ = tx.send(i);
            });
        }
        for _ in 0..100 {
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("other keys run on the free thread");
        }
        gate.wait();
    }

    #[test]
    fn a_handler_may_queue_more_work_for_its_own_key() {
        let pool = Arc::new(Dispatcher::new(1, "t"));
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = pool.clone();
        pool.run("a", move || {
            for i in 0..10 {
                let tx = tx.clone();
                inner.run("a", move || {
                    let _ = tx.send(i);
                });
            }
        });
        let got: Vec<i32> = (0..10)
            .map(|_| {
                rx.recv_timeout(std::time::Duration::from_secs(10))
                    .expect("ran")
            })
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn shutdown_until_gives_up_on_a_blocked_handler_and_teardown_waits_for_it() {
        let pool = Dispatcher::new(1, "t");
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel();
        pool.run("a", move || {
            let _ = started_tx.send(());
            let _ = blocked.recv_timeout(std::time::Duration::from_secs(10));
        });
        started
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the job started");
        let t0 = std::time::Instant::now();
        let done = pool.shutdown_until(t0 + std::time::Duration::from_millis(100));
        assert!(
            !done,
            "a blocked handler is not waited for past the deadline"
        );
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
        assert!(!wait_for_teardown(std::time::Duration::from_millis(10)));
        drop(release);
        assert!(wait_for_teardown(std::time::Duration::from_secs(10)));
    }

    #[test]
    fn same_key_keeps_order_and_panics_do_not_kill_threads() {
        let pool = Dispatcher::new(3, "t");
        let log = Arc::new(Mutex::new(Vec::new()));
        pool.run("a", || panic!("handler bug"));
        for i in 0..1000 {
            let log = log.clone();
            pool.run("a", move || log.lock().unwrap().push(i));
        }
        drop(pool);
        assert_eq!(*log.lock().unwrap(), (0..1000).collect::<Vec<_>>());
    }
}
