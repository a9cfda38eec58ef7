//! `AuditStore` on SQLite: the `audit` table, newest first by insertion order. Appends are
//! group-committed by the writer: many attempts share one fsync, and each append still returns
//! only once its record is on disk. Records of logins under Approved OTP also keep their
//! application, policy, profile and login id (schema version 2).

use async_trait::async_trait;
use countersign_core::audit::{AuditAction, AuditOutcome, AuditQuery, AuditRecord, LoginFacts};
use countersign_core::model::Timestamp;
use countersign_core::ports::{AuditStore, StoreError};
use rusqlite::{Row, params};

use super::{SqliteStore, unavailable};

/// Records deleted per write when pruning.
const PRUNE_SLICE: usize = 5_000;

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        at: Timestamp(r.get(0)?),
        action: AuditAction::parse(&r.get::<_, String>(1)?).unwrap_or(AuditAction::Verify),
        front: r.get(2)?,
        identity: r.get(3)?,
        user_dn: r.get(4)?,
        client: r.get(5)?,
        outcome: if r.get::<_, String>(6)? == "success" {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        },
        reason: r.get(7)?,
        mechanism: r.get(8)?,
        recipient: r.get(9)?,
        login: LoginFacts {
            application: r.get(10)?,
            policy: r.get(11)?,
            profile: r.get(12)?,
            login: r.get(13)?,
        },
    })
}

/// The `user` filter: a substring of the identity or the user DN, ignoring case. Matched here
/// rather than with SQL `LIKE`, which would treat `%` and `_` in the filter as wildcards and
/// folds only ASCII letters.
fn matches_user(r: &AuditRecord, needle: &str) -> bool {
    r.identity.to_lowercase().contains(needle)
        || r.user_dn
            .as_ref()
            .is_some_and(|dn| dn.to_lowercase().contains(needle))
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, r: &AuditRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO audit (at, action, front, identity, user_dn, client, outcome, reason,
                    mechanism, recipient, application, policy, profile, login)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.at.0,
                    r.action.as_str(),
                    r.front,
                    r.identity,
                    r.user_dn,
                    r.client,
                    r.outcome.as_str(),
                    r.reason,
                    r.mechanism,
                    r.recipient,
                    r.login.application,
                    r.login.policy,
                    r.login.profile,
                    r.login.login
                ])
            })
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        // In slices, each its own write: a year of records going at once must not hold up
        // the attempts waiting behind it in the writer's queue.
        let mut total = 0;
        loop {
            let n = self
                .write(move |c| {
                    c.execute(
                        "DELETE FROM audit WHERE seq IN
                            (SELECT seq FROM audit WHERE at < ?1 LIMIT ?2)",
                        params![before.0, PRUNE_SLICE],
                    )
                    .map_err(unavailable)
                })
                .await?;
            total += n as u64;
            if n < PRUNE_SLICE {
                return Ok(total);
            }
        }
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let q = q.clone();
        self.read(move |c| {
            let limit = if q.limit == 0 { usize::MAX } else { q.limit };
            let needle = q.user.as_ref().map(|u| u.to_lowercase());
            let mut stmt = c
                .prepare(
                    "SELECT at, action, front, identity, user_dn, client, outcome, reason, mechanism,
                        recipient, application, policy, profile, login
                     FROM audit
                     WHERE (?1 IS NULL OR action = ?1)
                       AND (?2 IS NULL OR outcome = ?2)
                       AND (?3 IS NULL OR client = ?3)
                       AND (?4 IS NULL OR at >= ?4)
                       AND (?6 IS NULL OR application = ?6)
                       AND (?7 IS NULL OR profile = ?7)
                       AND (?8 IS NULL OR policy = ?8)
                       AND (?9 IS NULL OR login = ?9)
                     ORDER BY seq DESC LIMIT ?5",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![
                        q.action.map(AuditAction::as_str),
                        q.outcome.map(AuditOutcome::as_str),
                        q.client,
                        q.since.map(|t| t.0),
                        // With a user filter the rows are filtered here, so SQL cannot cut.
                        if needle.is_some() { -1 } else { i64::try_from(limit).unwrap_or(-1) },
                        q.application,
                        q.profile,
                        q.policy,
                        q.login,
                    ],
                    record_from_row,
                )
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let r = row.map_err(unavailable)?;
                if needle.as_ref().is_none_or(|n| matches_user(&r, n)) {
                    out.push(r);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}
