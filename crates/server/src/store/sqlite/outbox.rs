//! `OutboxStore` on SQLite: the `outbox` table. A message is durable once `enqueue_message`
//! returns (group-committed like the audit). A claim reads the due messages and moves their
//! next attempt to the lease in one write, and writes run one after another in an `IMMEDIATE`
//! transaction, so two workers (threads or processes on the same file) never claim one
//! message at the same time; a worker that dies leaves its claims to be taken after the lease.

use async_trait::async_trait;
use countersign_core::model::Timestamp;
use countersign_core::outbox::{OutboxMessage, OutboxState};
use countersign_core::ports::{OutboxStore, StoreError};
use rusqlite::OptionalExtension;
use rusqlite::{Connection, Row, params};

use super::{SqliteStore, unavailable};

/// The columns [`message_from_row`] reads, in its order.
const COLUMNS: &str = "id, profile, recipient, subject, body, about_user, application, \
     created_at, attempts, next_attempt_at, state, last_error, sent_at, client";

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<OutboxMessage> {
    let state: String = r.get(10)?;
    let state = OutboxState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            10,
            rusqlite::types::Type::Text,
            format!("unknown outbox state {state:?}").into(),
        )
    })?;
    Ok(OutboxMessage {
        id: r.get(0)?,
        profile: r.get(1)?,
        recipient: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        about_user: r.get(5)?,
        application: r.get(6)?,
        created_at: Timestamp(r.get(7)?),
        attempts: r.get(8)?,
        next_attempt_at: Timestamp(r.get(9)?),
        state,
        last_error: r.get(11)?,
        sent_at: r.get::<_, Option<i64>>(12)?.map(Timestamp),
        client: r.get(13)?,
    })
}

fn sql_limit(limit: usize) -> i64 {
    if limit == 0 {
        -1
    } else {
        i64::try_from(limit).unwrap_or(-1)
    }
}

/// The claim, inside one write: the due messages, oldest first, each moved to the lease.
fn claim(
    c: &Connection,
    now: Timestamp,
    lease: Timestamp,
    limit: usize,
) -> Result<Vec<OutboxMessage>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut due = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox
             WHERE state = 'queued' AND next_attempt_at <= ?1
             ORDER BY created_at, rowid LIMIT ?2"
        ))
        .and_then(|mut s| {
            s.query_map(params![now.0, sql_limit(limit)], message_from_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(unavailable)?;
    let mut update = c
        .prepare_cached("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1")
        .map_err(unavailable)?;
    for m in &mut due {
        update
            .execute(params![m.id, lease.0])
            .map_err(unavailable)?;
        m.next_attempt_at = lease;
    }
    Ok(due)
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_message(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let m = message.clone();
        self.write(move |c| {
            c.execute(
                &format!(
                    "INSERT INTO outbox ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    m.id,
                    m.profile,
                    m.recipient,
                    m.subject,
                    m.body,
                    m.about_user,
                    m.application,
                    m.created_at.0,
                    m.attempts,
                    m.next_attempt_at.0,
                    m.state.as_str(),
                    m.last_error,
                    m.sent_at.map(|t| t.0),
                    m.client,
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict(format!("outbox message {} exists already", m.id))
                }
                other => unavailable(other),
            })?;
            Ok(())
        })
        .await
    }

    async fn claim_due_messages(
        &self,
        now: Timestamp,
        lease: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.write(move |c| claim(c, now, lease, limit)).await
    }

    async fn mark_message_sent(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            c.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?2, attempts = attempts + 1
                 WHERE id = ?1",
                params![id, at.0],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn mark_message_retry(
        &self,
        id: &str,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.write(move |c| {
            c.execute(
                // A try that ended after another worker's (a lease run out) sent it changes
                // nothing: a message once sent stays sent.
                "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4
                 WHERE id = ?1 AND state = 'queued'",
                params![id, attempts, next_attempt_at.0, error],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn mark_message_failed(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE outbox SET state = 'failed', attempts = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'queued'",
                params![id, attempts, error],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn list_messages(
        &self,
        state: Option<OutboxState>,
        limit: usize,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2"
            ))
            .and_then(|mut s| {
                s.query_map(
                    params![state.map(OutboxState::as_str), sql_limit(limit)],
                    message_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn latest_message_about(
        &self,
        about_user: &str,
        application: &str,
        client: Option<&str>,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let (about_user, application) = (about_user.to_owned(), application.to_owned());
        let client = client.map(str::to_owned);
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox
                 WHERE about_user = ?1 AND application = ?2 AND client IS ?3
                 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(params![about_user, application, client], message_from_row)
            })
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn retry_messages(&self, id: Option<&str>, now: Timestamp) -> Result<u64, StoreError> {
        let id = id.map(str::to_owned);
        self.write(move |c| {
            // Its age counts from now, or the worker would give it up again at once.
            let n = c
                .execute(
                    "UPDATE outbox SET state = 'queued', next_attempt_at = ?2, created_at = ?2
                     WHERE state = 'failed' AND (?1 IS NULL OR id = ?1)",
                    params![id, now.0],
                )
                .map_err(unavailable)?;
            Ok(n as u64)
        })
        .await
    }
}
