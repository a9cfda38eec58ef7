//! The server's periodic jobs, started and stopped in one place: audit pruning, the outbox
//! worker, the OpenID Connect upkeep (signing key at start, pruning), and the approvals job
//! (requests past their expiry marked expired even when nobody waits; decisions recorded by
//! another process, such as `countersign approvals approve`, passed on to the logins waiting
//! here). Each job runs until the shutdown receiver says stop,
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
    if let Some(oidc) = &app.oidc {
        let o = &app.config.oidc;
        tasks.spawn(oidc_job(
            oidc.keys.clone(),
            app.store.clone(),
            app.clock.clone(),
            o.access_token_lifetime.max(o.id_token_lifetime),
            stop.clone(),
        ));
    }
    if let Some(retention) = app.config.audit_retention {
        tasks.spawn(prune_audit_periodically(
            app.store.clone(),
            app.clock.clone(),
            retention,
            stop.clone(),
        ));
    }
}

/// How often spent codes, expired tokens and long-retired keys are removed.
const OIDC_PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The OpenID Connect provider's upkeep: a signing key made (or opened) at start, so the first
/// sign-in does not wait for RSA key generation and a server key that cannot open the stored
/// keys shows in the log at once; then codes, tokens and keys past use pruned every 10
/// minutes. A code is kept until the tokens it gave have expired, so a late replay is still
/// recognised and revokes them.
async fn oidc_job(
    keys: Arc<crate::oidc::SigningKeys>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keep: Duration,
    mut stop: watch::Receiver<bool>,
) {
    match keys.ensure().await {
        Ok(kid) => tracing::info!(kid = %kid, "OpenID Connect signing key ready"),
        Err(e) => tracing::error!(error = %e, "no OpenID Connect signing key"),
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(OIDC_PRUNE_EVERY) => {}
            () = stopped(&mut stop) => return,
        }
        if let Err(e) = store.prune_oidc(clock.now().minus(keep)).await {
            tracing::warn!(error = %e, "old authorization codes and tokens could not be pruned");
        }
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
