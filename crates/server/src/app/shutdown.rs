//! The one shutdown path: a [`Shutdown`] is a watch channel that every listener and background
//! task holds a receiver of. Triggering it (or dropping it) tells all of them to stop; the server
//! returns only once they have finished.

use tokio::sync::watch;

/// Tells every listener and background task to stop.
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// A receiver that turns `true` (or sees the sender gone) when it is time to stop.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

/// Completes when `rx` says stop: `true` sent, or the [`Shutdown`] dropped.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
