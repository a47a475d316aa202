//! Where endpoint requests run: a fixed set of worker threads per listener, fed by a bounded
//! queue, instead of tokio's blocking pool.
//!
//! [`Endpoint::handle`](crate::Endpoint::handle) is synchronous and may block (SQLite commits
//! that fsync, a PKG call). On the blocking pool every queued request parked one more thread on
//! the engine's lock (the service benchmark saw 208 threads with 200 clients, and a round trip
//! of 95 µs under load). Here the worker count is the endpoint's
//! [`Endpoint::workers`](crate::Endpoint::workers), requests run in arrival order, and a full
//! queue makes the connection task wait (backpressure) rather than growing threads.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Most requests waiting for a worker, per listener.
pub const QUEUE: usize = 4096;

/// A pool of named worker threads.
#[derive(Debug, Clone)]
pub(crate) struct Dispatcher {
    tx: mpsc::Sender<Job>,
}

impl Dispatcher {
    /// Starts `workers` threads (at least one) named `name-N`.
    pub(crate) fn new(name: &str, workers: usize) -> Dispatcher {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    let job = {
                        let mut guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                        guard.blocking_recv()
                    };
                    match job {
                        Some(job) => job(),
                        None => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an endpoint worker thread");
            }
        }
        Dispatcher { tx }
    }

    /// Runs `f` on a worker; None if the workers are gone or `f` panicked.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if let Ok(r) = r {
                let _ = done.send(r);
            }
        });
        self.tx.send(job).await.ok()?;
        result.await.ok()
    }
}
