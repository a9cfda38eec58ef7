//! The server's periodic jobs, started and stopped in one place: audit pruning now; the
//! outbox worker and approval expiry join here. Each job runs until the shutdown receiver says
//! stop, and finishes the pass it is in first.

use std::sync::Arc;
use std::time::Duration;

use countersign_core::ports::{Clock, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::App;
use super::shutdown::stopped;

/// How often old audit records are looked for.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts every background job the configuration asks for on `tasks`.
pub fn spawn_all(app: &App, tasks: &mut JoinSet<()>, stop: &watch::Receiver<bool>) {
    if let Some(retention) = app.config.audit_retention {
        tasks.spawn(prune_audit_periodically(
            app.store.clone(),
            app.clock.clone(),
            retention,
            stop.clone(),
        ));
    }
}

/// `[audit] retention`: prunes at start, then hourly.
async fn prune_audit_periodically(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        prune_audit(store.as_ref(), clock.as_ref(), retention).await;
        tokio::select! {
            () = tokio::time::sleep(AUDIT_PRUNE_EVERY) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Deletes audit records older than `retention`.
pub async fn prune_audit(store: &dyn Store, clock: &dyn Clock, retention: Duration) {
    match store.prune_audit(clock.now().minus(retention)).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "old audit records removed"),
        Err(e) => tracing::warn!(error = %e, "audit records could not be pruned"),
    }
}
