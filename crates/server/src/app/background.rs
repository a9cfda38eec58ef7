//! The server's periodic jobs, started and stopped in one place: audit pruning, the outbox
//! worker, and the approvals job (requests past their expiry marked expired even when nobody
//! waits; decisions recorded by another process, such as `countersign approvals approve`,
//! passed on to the logins waiting here). Each job runs until the shutdown receiver says stop,
//! and finishes the pass it is in first.

use std::sync::Arc;
use std::time::Duration;

use countersign_core::login::LoginService;
use countersign_core::ports::{Clock, DecisionSignal, Store};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::App;
use super::shutdown::stopped;

/// How often old audit records are looked for.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the approvals job looks at the store.
const APPROVALS_EVERY: Duration = Duration::from_secs(1);

/// Starts every background job the configuration asks for on `tasks`.
pub fn spawn_all(app: &App, tasks: &mut JoinSet<()>, stop: &watch::Receiver<bool>) {
    tasks.spawn(app.outbox_worker().run(stop.clone()));
    tasks.spawn(approvals_job(
        app.login.clone(),
        app.waiting.clone(),
        stop.clone(),
    ));
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

/// Every second: expire what is due, and wake the waiters of logins decided since the last
/// look (by this process or another), read from the store's decision log.
async fn approvals_job(
    login: Arc<LoginService>,
    signal: Arc<dyn DecisionSignal>,
    mut stop: watch::Receiver<bool>,
) {
    let mut read_from: Option<u64> = None;
    loop {
        if let Err(e) = login.expire_due().await {
            tracing::warn!(error = %e, "expired approval requests could not be marked");
        }
        match login.decided_after(read_from).await {
            Ok((decided, next)) => {
                for id in decided {
                    signal.notify(&id);
                }
                read_from = Some(next);
            }
            Err(e) => tracing::warn!(error = %e, "recent decisions could not be read"),
        }
        tokio::select! {
            () = tokio::time::sleep(APPROVALS_EVERY) => {}
            () = stopped(&mut stop) => return,
        }
    }
}
