//! A pool of threads for blocking work that needs a lock of its own to run (a Python
//! application, which needs the GIL), run on as few threads as the work allows.
//!
//! Threads contending for one lock cost more than they give when the work is CPU-bound:
//! each hand-over is a futex wake and a context switch. So a job goes to a running
//! worker's queue rather than waking another thread, and a worker that finishes a job
//! takes the next one without leaving the section it entered (for Python: without
//! giving the GIL up and taking it back). A job that still waits after a short while —
//! the running worker is blocked in I/O, having released the lock — brings another
//! worker in ([`Ticket::wake_another`]). CPU-bound requests then run one after the
//! other on one thread; I/O-bound ones spread over up to `threads` threads. "Still
//! waits" means no job of the pool finished meanwhile ([`Ticket::wake_if_stalled`]):
//! a queue that moves, however long, needs no other thread.
//!
//! A job hands its result to async code through a [`Reply`]. Waking the waiting task at
//! once would, on a loaded single core, switch to the runtime's thread after every job
//! and back: two context switches per job. So while the worker has more jobs queued
//! the wake is held back, and the held wakes go out together when the queue runs dry
//! or when any waiting task's [`Ticket::tick`] comes round (every millisecond or so):
//! one switch for a batch of jobs, at most about a tick of delay, none when idle.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;
/// Runs a worker's consecutive jobs inside a section (the closure it is given runs the
/// jobs).
type Enter = dyn Fn(&mut dyn FnMut()) + Send + Sync;

struct State {
    queue: VecDeque<Job>,
    /// Workers running jobs (inside the section).
    active: usize,
    /// Workers waiting for work.
    idle: usize,
    /// Of those, how many were woken and have not yet left the wait.
    waking: usize,
    closed: bool,
}

impl State {
    /// Claim an idle worker that nobody has woken yet; false when there is none.
    fn wake_one(&mut self) -> bool {
        let free = self.idle > self.waking;
        if free {
            self.waking += 1;
        }
        free
    }
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    enter: Box<Enter>,
    /// Jobs finished so far: whether the pool makes progress.
    finished: AtomicU64,
    /// Wakes of [`Reply`]s held back while a worker had more jobs queued.
    held: Mutex<Vec<Waker>>,
}

impl Shared {
    /// Send the held wakes.
    fn release_held(&self) {
        let held = std::mem::take(&mut *self.held.lock());
        for waker in held {
            waker.wake();
        }
    }
}

/// Threads that run submitted jobs, as few at once as keeps them moving.
pub struct WorkerPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// A submitted job: whether it has started, and a way to bring another worker in while
/// it waits.
pub struct Ticket {
    started: Arc<AtomicBool>,
    shared: Arc<Shared>,
    /// Jobs the pool had finished when this ticket last looked.
    seen: u64,
}

impl Ticket {
    /// Whether a worker has started the job.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Call now and then while the job waits: when no job of the pool has finished
    /// since the last call (the running workers are blocked, in I/O say), wake an idle
    /// worker. A queue that moves wakes nobody: CPU-bound jobs stay on one thread.
    pub fn wake_if_stalled(&mut self) {
        let finished = self.shared.finished.load(Ordering::Acquire);
        if finished == self.seen {
            self.wake_another();
        }
        self.seen = finished;
    }

    /// Call about every millisecond while the job's [`Reply`] is awaited: sends the
    /// replies held back (of any job of the pool) and, while the job has not started,
    /// does [`Ticket::wake_if_stalled`].
    pub fn tick(&mut self) {
        self.shared.release_held();
        if !self.started() {
            self.wake_if_stalled();
        }
    }

    /// Wake an idle worker (if there is one) to take queued jobs: the job still waits
    /// behind workers that are busy, or blocked.
    pub fn wake_another(&self) {
        if self.started() {
            return;
        }
        let mut state = self.shared.state.lock();
        if !state.queue.is_empty() && state.wake_one() {
            drop(state);
            self.shared.work.notify_one();
        }
    }
}

impl WorkerPool {
    /// Start `threads` (at least one) threads named `name-N`. Each worker runs the jobs
    /// it takes in a row inside `enter`, which must call the closure it is given once.
    pub fn new(
        threads: usize,
        name: &str,
        enter: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let mut pool = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    active: 0,
                    idle: 0,
                    waking: 0,
                    closed: false,
                }),
                work: Condvar::new(),
                enter: Box::new(enter),
                finished: AtomicU64::new(0),
                held: Mutex::new(Vec::new()),
            }),
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let shared = pool.shared.clone();
            // On error, dropping `pool` closes it and joins what was started.
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(&shared))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }

    /// Queue `job`. It wakes a worker only when none is running: a running one takes it
    /// when done with what it has (call [`Ticket::wake_another`] if it waits too long).
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Ticket {
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let job: Job = Box::new(move || {
            flag.store(true, Ordering::Release);
            job();
        });
        let mut state = self.shared.state.lock();
        state.queue.push_back(job);
        let wake = state.active + state.waking == 0 && state.wake_one();
        drop(state);
        if wake {
            self.shared.work.notify_one();
        }
        let seen = self.shared.finished.load(Ordering::Acquire);
        Ticket {
            started,
            shared: self.shared.clone(),
            seen,
        }
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// A way for a job to hand a value to async code: send with [`ReplySender::send`]
    /// on the worker, await the [`Reply`] (with [`Ticket::tick`] about every
    /// millisecond meanwhile, or the value may wait for the worker's queue to run dry).
    pub fn reply<T>(&self) -> (ReplySender<T>, Reply<T>) {
        let slot = Arc::new(Mutex::new(Slot {
            value: None,
            closed: false,
            waker: None,
        }));
        (
            ReplySender {
                slot: Some(slot.clone()),
                shared: self.shared.clone(),
            },
            Reply { slot },
        )
    }
}

struct Slot<T> {
    value: Option<T>,
    /// The sender is gone.
    closed: bool,
    waker: Option<Waker>,
}

/// The sending half of a [`WorkerPool::reply`]. Dropped without sending, the [`Reply`]
/// resolves to `Err(ReplyDropped)`.
pub struct ReplySender<T> {
    slot: Option<Arc<Mutex<Slot<T>>>>,
    shared: Arc<Shared>,
}

impl<T> ReplySender<T> {
    /// Hand `value` over. The waiting task is woken now when no job is queued,
    /// otherwise with the pool's next batch of wakes (see the module's documentation).
    pub fn send(mut self, value: T) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut slot = slot.lock();
                slot.value = Some(value);
                slot.closed = true;
                slot.waker.take()
            };
            self.wake(waker);
        }
    }

    fn wake(&self, waker: Option<Waker>) {
        let Some(waker) = waker else { return };
        if self.shared.state.lock().queue.is_empty() {
            waker.wake();
        } else {
            self.shared.held.lock().push(waker);
        }
    }
}

impl<T> Drop for ReplySender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut slot = slot.lock();
                slot.closed = true;
                slot.waker.take()
            };
            // Not a result that other jobs' results should wait behind: at once.
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The sender of a [`Reply`] was dropped without sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyDropped;

/// The receiving half of a [`WorkerPool::reply`]: a future of the value.
pub struct Reply<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for Reply<T> {
    type Output = Result<T, ReplyDropped>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.lock();
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Ok(value));
        }
        if slot.closed {
            return Poll::Ready(Err(ReplyDropped));
        }
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

fn worker(shared: &Shared) {
    loop {
        let first = {
            let mut state = shared.state.lock();
            // Woken for work (or no one runs or is about to run any): take a job.
            // Otherwise (a thread starting, or back from a run) leave the queue to the
            // workers running or woken.
            let mut claimed = false;
            loop {
                if claimed || state.active + state.waking == 0 || state.closed {
                    if let Some(job) = state.queue.pop_front() {
                        state.active += 1;
                        break job;
                    }
                }
                if state.closed {
                    return;
                }
                state.idle += 1;
                shared.work.wait(&mut state);
                state.idle -= 1;
                if state.waking > 0 {
                    state.waking -= 1;
                    claimed = true;
                }
            }
        };
        let mut next = Some(first);
        (shared.enter)(&mut || {
            while let Some(job) = next.take() {
                // A panicking job must not take the thread down with it.
                if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                    tracing::error!("a job of a worker pool panicked; the pool goes on");
                }
                shared.finished.fetch_add(1, Ordering::AcqRel);
                let mut state = shared.state.lock();
                next = state.queue.pop_front();
                if next.is_none() {
                    state.active -= 1;
                    drop(state);
                    // Nothing more to run now: what was held back goes out.
                    shared.release_held();
                }
            }
        });
        if next.is_some() {
            // `enter` did not run the closure: the jobs it was to run are not lost.
            let mut state = shared.state.lock();
            if let Some(job) = next.take() {
                state.queue.push_front(job);
            }
            state.active -= 1;
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // The threads finish the jobs already queued, then leave.
        self.shared.state.lock().closed = true;
        self.shared.work.notify_all();
        join_all_but_current(self.threads.drain(..));
    }
}

/// Join `threads`, except the current one: a job that drops its pool from its own
/// thread cannot join itself (it leaves once the job returns).
pub(super) fn join_all_but_current(threads: impl IntoIterator<Item = JoinHandle<()>>) {
    let current = std::thread::current().id();
    for handle in threads {
        if handle.thread().id() != current {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn plain() -> impl Fn(&mut dyn FnMut()) + Send + Sync + 'static {
        |run: &mut dyn FnMut()| run()
    }

    #[test]
    fn queued_jobs_run_in_order_on_the_running_worker() {
        let pool = WorkerPool::new(4, "t", plain()).expect("threads");
        let (release, gate) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        pool.submit(move || {
            let _ = gate.recv();
            let _ = first.send((0, std::thread::current().id()));
        });
        for i in 1..=100 {
            let tx = tx.clone();
            pool.submit(move || {
                let _ = tx.send((i, std::thread::current().id()));
            });
        }
        release.send(()).expect("release");
        let got: Vec<_> = (0..=100)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).expect("ran"))
            .collect();
        let order: Vec<i32> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..=100).collect::<Vec<_>>());
        assert!(
            got.iter().all(|(_, t)| *t == got[0].1),
            "one thread ran them all"
        );
    }

    #[test]
    fn a_waiting_job_brings_another_worker_in() {
        let pool = WorkerPool::new(2, "t", plain()).expect("threads");
        let (release, gate) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        pool.submit(move || {
            let _ = gate.recv();
        });
        let ticket = pool.submit(move || {
            let _ = tx.send("second");
        });
        // Queued behind the blocked worker...
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert!(!ticket.started());
        // ...until it asks for another.
        ticket.wake_another();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("second"));
        assert!(ticket.started());
        release.send(()).expect("release");
    }

    #[test]
    fn a_moving_queue_wakes_nobody_a_stalled_one_does() {
        let pool = WorkerPool::new(2, "t", plain()).expect("threads");
        let (release, gate) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        pool.submit(move || {
            let _ = gate.recv();
        });
        let first = tx.clone();
        let mut behind = pool.submit(move || {
            let _ = first.send("behind");
        });
        let mut waiting = pool.submit(move || {
            let _ = tx.send("waiting");
        });
        // Nothing finishes while the first worker is blocked: the pool is stalled and
        // another worker is woken (once one is idle: the threads may still be starting).
        let mut got = Err(mpsc::RecvTimeoutError::Timeout);
        for _ in 0..500 {
            behind.wake_if_stalled();
            got = rx.recv_timeout(Duration::from_millis(10));
            if got.is_ok() {
                break;
            }
        }
        assert_eq!(got, Ok("behind"));
        // ...which finishes `behind` and then takes `waiting` in the same run.
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("waiting"));
        // A ticket that saw jobs finish since it last looked wakes nobody (the job it
        // waits for is done here, so make it look as if it were not).
        waiting.started.store(false, Ordering::Release);
        waiting.seen = 0;
        pool.shared.state.lock().queue.push_back(Box::new(|| {}));
        waiting.wake_if_stalled();
        assert_eq!(pool.shared.state.lock().waking, 0, "nobody woken");
        pool.shared.state.lock().queue.clear();
        release.send(()).expect("release");
    }

    #[test]
    fn jobs_run_inside_the_section_and_a_panic_does_not_stop_the_pool() {
        let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = entered.clone();
        let pool = WorkerPool::new(1, "t", move |run: &mut dyn FnMut()| {
            count.fetch_add(1, Ordering::SeqCst);
            run();
        })
        .expect("threads");
        let (tx, rx) = mpsc::channel();
        pool.submit(|| panic!("job bug"));
        pool.submit(move || {
            let _ = tx.send(());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(()));
        assert!(entered.load(Ordering::SeqCst) >= 1);
    }

    /// A waker that counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn poll_reply<T>(reply: &mut Reply<T>, waker: &Waker) -> Poll<Result<T, ReplyDropped>> {
        Pin::new(reply).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_reply_wakes_at_once_when_nothing_is_queued_and_a_dropped_sender_is_an_error() {
        let pool = WorkerPool::new(1, "t", plain()).expect("threads");
        let (count, waker) = counting_waker();
        let (tx, mut reply) = pool.reply::<u32>();
        assert!(poll_reply(&mut reply, &waker).is_pending());
        let (done, finished) = mpsc::channel();
        pool.submit(move || {
            tx.send(7);
            let _ = done.send(());
        });
        finished.recv_timeout(Duration::from_secs(5)).expect("ran");
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken by the send");
        assert_eq!(poll_reply(&mut reply, &waker), Poll::Ready(Ok(7)));

        let (tx, mut reply) = pool.reply::<u32>();
        assert!(poll_reply(&mut reply, &waker).is_pending());
        pool.submit(move || drop(tx));
        for _ in 0..500 {
            if count.0.load(Ordering::SeqCst) == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            poll_reply(&mut reply, &waker),
            Poll::Ready(Err(ReplyDropped))
        );
    }

    #[test]
    fn replies_are_held_while_jobs_are_queued_until_a_tick_or_the_queue_runs_dry() {
        let pool = WorkerPool::new(1, "t", plain()).expect("threads");
        let (release, gate) = mpsc::channel::<()>();
        let (release_last, last_gate) = mpsc::channel::<()>();
        let (sent, was_sent) = mpsc::channel();
        pool.submit(move || {
            let _ = gate.recv();
        });
        let (count, waker) = counting_waker();
        let (tx, mut reply) = pool.reply::<&str>();
        assert!(poll_reply(&mut reply, &waker).is_pending());
        let mut ticket = pool.submit(move || {
            tx.send("first");
            let _ = sent.send(());
        });
        pool.submit(move || {
            let _ = last_gate.recv();
        });
        release.send(()).expect("release");
        was_sent.recv_timeout(Duration::from_secs(5)).expect("sent");
        // Another job was queued when it was sent: the wake is held back...
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // ...the value is there for a poll all the same, and a tick sends the wake.
        ticket.tick();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll_reply(&mut reply, &waker), Poll::Ready(Ok("first")));

        // Held again, and sent when the worker runs out of jobs.
        let (count, waker) = counting_waker();
        let (tx, mut reply) = pool.reply::<&str>();
        assert!(poll_reply(&mut reply, &waker).is_pending());
        let (release2, gate2) = mpsc::channel::<()>();
        let (sent, was_sent) = mpsc::channel();
        pool.submit(move || {
            tx.send("second");
            let _ = sent.send(());
            let _ = gate2.recv();
        });
        pool.submit(|| {});
        release_last.send(()).expect("release");
        was_sent.recv_timeout(Duration::from_secs(5)).expect("sent");
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "held: a job is queued");
        release2.send(()).expect("release");
        for _ in 0..500 {
            if count.0.load(Ordering::SeqCst) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "sent when the queue ran dry"
        );
        assert_eq!(poll_reply(&mut reply, &waker), Poll::Ready(Ok("second")));
    }

    #[test]
    fn drop_runs_what_is_queued() {
        let (tx, rx) = mpsc::channel();
        {
            let pool = WorkerPool::new(2, "t", plain()).expect("threads");
            for i in 0..20 {
                let tx = tx.clone();
                pool.submit(move || {
                    let _ = tx.send(i);
                });
            }
        }
        drop(tx);
        assert_eq!(rx.iter().count(), 20);
    }
}
