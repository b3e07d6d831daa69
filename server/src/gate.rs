//! The gate every statement passes: it lets shutdown wait for the
//! statements that are running, and refuse the ones that come after.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Statements hold one permit each while they run (a query until its last
/// row is sent: the permit travels with its row stream). Shutdown asks for all
/// permits at once: the semaphore is fair, so it waits for the running
/// statements and every statement arriving later queues behind it, to be
/// refused when the gate closes.
pub struct Gate {
    permits: Arc<Semaphore>,
}

const ALL: u32 = 1 << 30;

impl Gate {
    pub fn new() -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(ALL as usize)),
        }
    }

    /// Lets a statement in; `None` once the server is shutting down.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// Closes the gate: waits up to `grace` for running statements to
    /// finish, then refuses every statement waiting or to come. Returns
    /// whether all finished in time.
    pub async fn close(&self, grace: Duration) -> bool {
        let drained = tokio::time::timeout(grace, self.permits.acquire_many(ALL)).await;
        self.permits.close();
        matches!(drained, Ok(Ok(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_waits_for_running_statements_and_refuses_later_ones() {
        let gate = Arc::new(Gate::new());
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let running = {
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.enter().await.expect("open");
                let _ = started_tx.send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            })
        };
        started.await.unwrap();
        let closing = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.close(Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        // A statement arriving during shutdown is refused, not run.
        assert!(gate.enter().await.is_none());
        assert!(
            closing.await.unwrap(),
            "the running statement finished in time"
        );
        running.await.unwrap();

        // A statement that outlives the grace period: close gives up.
        let gate = Gate::new();
        let _held = gate.enter().await.unwrap();
        assert!(!gate.close(Duration::from_millis(20)).await);
    }
}
