//! Waiting for a network call from synchronous code: the CSE's TLS handshake callback fetching a
//! key from the MEF, the MEF's request handler calling a remote PKG. The call runs on a thread of
//! its own with a current-thread runtime, bounded by a deadline; on a multi-thread runtime the
//! caller's worker hands its other tasks over meanwhile (`block_in_place`).

use std::future::Future;
use std::time::Duration;

/// Why a blocking call did not produce its future's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stalled {
    /// The deadline passed.
    TimedOut,
    /// No runtime could be built, or the thread failed.
    Failed(String),
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stalled::TimedOut => f.write_str("timed out"),
            Stalled::Failed(e) => f.write_str(e),
        }
    }
}

/// Runs `fut` to completion within `timeout`, blocking the calling thread.
pub(crate) fn run<T: Send + 'static>(
    timeout: Duration,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, Stalled> {
    let go = move || {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Stalled::Failed(e.to_string()))?;
            rt.block_on(async {
                tokio::time::timeout(timeout, fut)
                    .await
                    .map_err(|_| Stalled::TimedOut)
            })
        })
        .join()
        .unwrap_or_else(|_| Err(Stalled::Failed("the call's thread failed".into())))
    };
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(go),
        _ => go(),
    }
}
