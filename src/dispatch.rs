//! Running host-language handlers on threads of their own.
//!
//! Rust handlers run inline on the connection's reader. Handlers written in Python or C
//! must not: they take locks (the GIL) and may block. A [`Dispatcher`] runs jobs on a
//! small pool of OS threads; jobs with the same key (a socket id) always run on the
//! same thread, so one socket's events are handled in wire order while different
//! sockets proceed in parallel. The Python and C bindings both use it.

use std::hash::{BuildHasher, Hash};
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs waiting per thread before `run` pushes back on the caller.
const QUEUE_PER_THREAD: usize = 16_384;

/// A pool of handler threads with per-key ordering.
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
    senders: Vec<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Dispatcher {
    /// Start `threads` (at least one) threads named `name-N`.
    pub fn new(threads: usize, name: &str) -> Self {
        let threads = threads.max(1);
        let mut senders = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE_PER_THREAD);
            senders.push(tx);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    for job in rx {
                        // A panicking job must not take the thread, and with it every
                        // socket that hashes here, down.
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            tracing::error!("a handler panicked; the dispatcher thread goes on");
                        }
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::error!(error = %e, "cannot spawn a dispatcher thread"),
            }
        }
        Self {
            senders,
            threads: handles,
            hasher: Default::default(),
        }
    }

    /// Run `job` on the thread that owns `key`. Never drops a job: when that thread is
    /// far behind, the caller waits (backpressure reaches the client's reader instead of
    /// memory growing without bound).
    pub fn run(&self, key: &str, job: impl FnOnce() + Send + 'static) {
        let index = self.index(key);
        let Some(tx) = self.senders.get(index) else {
            return;
        };
        match tx.try_send(Box::new(job)) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let send = || {
                    let _ = tx.send(job);
                };
                // Blocking a runtime worker is allowed only through block_in_place.
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(send)
                    }
                    _ => send(),
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn index(&self, key: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        key.hash(&mut h);
        (std::hash::Hasher::finish(&h) % self.senders.len().max(1) as u64) as usize
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        // Closing the channels ends each thread after the jobs already queued.
        self.senders.clear();
        let current = std::thread::current().id();
        for handle in self.threads.drain(..) {
            // A handler that drops the last reference from its own thread cannot join itself.
            if handle.thread().id() != current {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

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
