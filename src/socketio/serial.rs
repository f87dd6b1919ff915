//! Async event handlers, run in order per socket: the first async event of a socket
//! starts a task of its own that awaits each handler's future before the next one
//! starts, so events of one socket are handled (and their acks sent) in the order they
//! arrived while the sockets run concurrently. A handler that wants concurrency spawns.
//!
//! The queue is bounded: a client whose events pile up behind slow handlers past
//! [`MAX_PENDING`] is disconnected (logged at WARN) instead of holding memory without
//! limit; nothing it sent before is dropped.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::mpsc;

/// Events of one socket that may wait for its async handlers.
pub const MAX_PENDING: usize = 1024;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a future was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SerialError {
    /// [`MAX_PENDING`] events wait already.
    #[error("{MAX_PENDING} events wait for this socket's async handlers")]
    Full,
    /// No runtime to run it on (the server is not running).
    #[error("the server is not running")]
    NotRunning,
}

/// One socket's queue of handler futures and the task that runs them.
pub(crate) struct Serial {
    jobs: mpsc::UnboundedSender<Job>,
    pending: Arc<AtomicUsize>,
}

impl Serial {
    /// Start the task on `runtime`. It ends when the socket (holding the sender) is
    /// gone and the queue is empty.
    pub fn start(runtime: &tokio::runtime::Handle, socket_id: Arc<str>) -> Self {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let left = pending.clone();
        runtime.spawn(async move {
            while let Some(job) = queue.recv().await {
                // A panicking handler is reported and the next event still runs.
                if AssertUnwindSafe(job).catch_unwind().await.is_err() {
                    tracing::error!(sid = %socket_id, "an async event handler panicked");
                }
                left.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Self { jobs, pending }
    }

    /// Queue `job` after the socket's earlier ones.
    pub fn push(&self, job: Job) -> Result<(), SerialError> {
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PENDING).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            return Err(SerialError::Full);
        }
        self.jobs.send(job).map_err(|_| {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            SerialError::NotRunning
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_one_after_the_other_in_order_and_a_panic_does_not_stop_them() {
        let serial = Serial::start(&tokio::runtime::Handle::current(), "s".into());
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..50u64 {
            let tx = tx.clone();
            serial
                .push(Box::pin(async move {
                    // Later jobs sleep less: only running them in turn keeps the order.
                    tokio::time::sleep(std::time::Duration::from_micros(50 - i)).await;
                    if i == 10 {
                        panic!("handler bug");
                    }
                    let _ = tx.send(i);
                }))
                .expect("queued");
        }
        let mut got = Vec::new();
        while got.len() < 49 {
            got.push(rx.recv().await.expect("job ran"));
        }
        let expected: Vec<u64> = (0..50).filter(|i| *i != 10).collect();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let serial = Serial::start(&tokio::runtime::Handle::current(), "s".into());
        let gate = Arc::new(tokio::sync::Notify::new());
        for _ in 0..MAX_PENDING {
            let gate = gate.clone();
            serial
                .push(Box::pin(async move { gate.notified().await }))
                .expect("under the bound");
        }
        assert_eq!(serial.push(Box::pin(async {})), Err(SerialError::Full));
        // As the handlers finish, room comes back.
        for _ in 0..MAX_PENDING {
            gate.notify_one();
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while serial.push(Box::pin(async {})).is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("room again");
    }
}
