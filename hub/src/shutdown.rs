//! Shutdown notification for long-lived tasks (event subscriptions, payment streams): `run`
//! flips it when its shutdown future completes, before tonic drains connections, so streams
//! end and draining can finish.

use tokio::sync::watch;

/// Sender side, owned by `run`.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Receiver side, cloned into every stream task.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A linked trigger/receiver pair.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown was triggered (or the trigger was dropped).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means "stop".
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
