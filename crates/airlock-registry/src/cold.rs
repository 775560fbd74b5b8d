//! The heavy, rare work of reads on a thread of its own: loading a package's whole state from
//! the store and rendering its packuments.
//!
//! Loading and rendering a package of 1,500 versions takes a few hundred milliseconds of CPU
//! and about 50 MB of short-lived memory. On the async workers it would stall every connection
//! sharing that worker for as long. And glibc's malloc gives each thread an arena of its own
//! that keeps what it once held: each worker that did such a render kept that much more resident
//! (measured: the two packuments of a 1,500-version package, rendered on the two workers, raised
//! the resident size by 116 MB; on one thread, by 66 MB). One thread doing this work for the
//! whole process keeps that peak once.

use std::future::Future;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

pub(crate) struct ColdPath {
    /// `None` when the thread could not be started: the work then runs on the caller's task.
    handle: Option<Handle>,
    /// Dropped with the registry, which ends the thread.
    _stop: Option<oneshot::Sender<()>>,
}

impl Default for ColdPath {
    fn default() -> Self {
        match Self::start() {
            Ok((handle, stop)) => Self {
                handle: Some(handle),
                _stop: Some(stop),
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not start the thread for package loads; they run on the request's task");
                Self {
                    handle: None,
                    _stop: None,
                }
            }
        }
    }
}

impl ColdPath {
    fn start() -> std::io::Result<(Handle, oneshot::Sender<()>)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("airlock-loads".to_owned())
            .spawn(move || {
                runtime.block_on(async {
                    // Ends when the sender is dropped.
                    let _ = stopped.await;
                });
            })?;
        Ok((handle, stop))
    }

    /// Runs `work` on the cold path's thread and waits for its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let Some(handle) = &self.handle else {
            return work.await;
        };
        match handle.spawn(work).await {
            Ok(value) => value,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime lives as long as `self`: a task on it is never cancelled.
            Err(e) => panic!("a package load was cancelled: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_its_own_thread() {
        let cold = ColdPath::default();
        let name = cold
            .run(async { std::thread::current().name().map(str::to_owned) })
            .await;
        assert_eq!(name.as_deref(), Some("airlock-loads"));
    }

    #[tokio::test]
    async fn a_panic_reaches_the_caller() {
        let cold = ColdPath::default();
        let caught = tokio::spawn(async move {
            cold.run(async {
                if true {
                    panic!("boom");
                }
                1
            })
            .await
        })
        .await
        .unwrap_err();
        assert!(caught.is_panic());
    }
}
