//! `ApprovalStore` on SQLite: the `approval_requests` table. A partial unique index allows one
//! pending request per user and application, so of two logins racing to ask, the second insert
//! fails (`Conflict`) and that login joins the first request. Every state change is one write
//! through the writer, which applies writes one after another inside an `IMMEDIATE`
//! transaction: a decision reads the state and changes it with nothing in between, so exactly
//! one of concurrent deciders wins, in this process or another on the same file.

use async_trait::async_trait;
use countersign_core::approval::{ApprovalRequest, ApprovalState, DecidedBy, Decision};
use countersign_core::model::{Timestamp, UserKey};
use countersign_core::ports::{ApprovalQuery, ApprovalStore, DecideOutcome, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, unavailable};

/// The columns [`request_from_row`] reads, in its order.
const COLUMNS: &str = "id, token_hash, user_directory, user_dn_norm, user_dn, username, \
     display_name, application, profile, front, client, recipient, approver, created_at, \
     expires_at, state, decided_at, decided_channel, decided_address, decided_user_agent, \
     decided_operator, sent_at";

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<ApprovalRequest> {
    let state: String = r.get(15)?;
    let state = ApprovalState::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            15,
            rusqlite::types::Type::Text,
            format!("unknown approval state {state:?}").into(),
        )
    })?;
    let channel: Option<String> = r.get(17)?;
    Ok(ApprovalRequest {
        id: r.get(0)?,
        token_hash: r.get(1)?,
        user: UserKey {
            directory: r.get(2)?,
            dn: r.get(3)?,
        },
        user_dn: r.get(4)?,
        username: r.get(5)?,
        display_name: r.get(6)?,
        application: r.get(7)?,
        profile: r.get(8)?,
        front: r.get(9)?,
        client: r.get(10)?,
        recipient: r.get(11)?,
        approver: r.get(12)?,
        created_at: Timestamp(r.get(13)?),
        expires_at: Timestamp(r.get(14)?),
        state,
        decided_at: r.get::<_, Option<i64>>(16)?.map(Timestamp),
        decided_by: match channel {
            Some(channel) => Some(DecidedBy {
                channel,
                address: r.get(18)?,
                user_agent: r.get(19)?,
                operator: r.get(20)?,
            }),
            None => None,
        },
        sent_at: r.get::<_, Option<i64>>(21)?.map(Timestamp),
    })
}

fn insert(c: &Connection, q: &ApprovalRequest) -> Result<(), StoreError> {
    let by = q.decided_by.clone().unwrap_or_default();
    let channel = q.decided_by.as_ref().map(|b| b.channel.clone());
    c.execute(
        &format!(
            "INSERT INTO approval_requests ({COLUMNS}) VALUES
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
              ?19, ?20, ?21, ?22)"
        ),
        params![
            q.id,
            q.token_hash,
            q.user.directory,
            q.user.dn,
            q.user_dn,
            q.username,
            q.display_name,
            q.application,
            q.profile,
            q.front,
            q.client,
            q.recipient,
            q.approver,
            q.created_at.0,
            q.expires_at.0,
            q.state.as_str(),
            q.decided_at.map(|t| t.0),
            channel,
            by.address,
            by.user_agent,
            by.operator,
            q.sent_at.map(|t| t.0),
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(format!(
                "{} already has a pending approval request for {} (or the id or token is taken)",
                q.user_dn, q.application
            ))
        }
        other => unavailable(other),
    })?;
    Ok(())
}

fn by_id(c: &Connection, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM approval_requests WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id], request_from_row).optional())
    .map_err(unavailable)
}

/// The decision itself, inside one write: read, check, change.
fn decide(c: &Connection, id: &str, d: &Decision) -> Result<DecideOutcome, StoreError> {
    if !d.state.is_final() || d.state == ApprovalState::Expired {
        return Err(StoreError::Conflict(format!(
            "a decision approves, rejects or cancels, not {}",
            d.state.as_str()
        )));
    }
    let Some(request) = by_id(c, id)? else {
        return Ok(DecideOutcome::NotFound);
    };
    if request.state.is_final() {
        return Ok(DecideOutcome::AlreadyFinal(request));
    }
    // A link used at or after its expiry approves (or rejects) nothing: the request expired
    // then, whether or not the expiry job got to it. An operator may still cancel it.
    if d.state != ApprovalState::Cancelled && d.at >= request.expires_at {
        c.execute(
            "UPDATE approval_requests SET state = 'expired', decided_at = expires_at
             WHERE id = ?1 AND state = 'pending'",
            params![id],
        )
        .map_err(unavailable)?;
        let expired = by_id(c, id)?.ok_or(StoreError::NotFound)?;
        return Ok(DecideOutcome::AlreadyFinal(expired));
    }
    c.execute(
        "UPDATE approval_requests SET state = ?2, decided_at = ?3, decided_channel = ?4,
            decided_address = ?5, decided_user_agent = ?6, decided_operator = ?7
         WHERE id = ?1 AND state = 'pending'",
        params![
            id,
            d.state.as_str(),
            d.at.0,
            d.by.channel,
            d.by.address,
            d.by.user_agent,
            d.by.operator,
        ],
    )
    .map_err(unavailable)?;
    let decided = by_id(c, id)?.ok_or(StoreError::NotFound)?;
    Ok(DecideOutcome::Decided(decided))
}

/// The `user` filter: a substring of the username or the user DN, ignoring case (Unicode, not
/// only ASCII), matched here so `%` and `_` are plain characters, as in the audit listing.
fn matches_user(r: &ApprovalRequest, needle: &str) -> bool {
    r.username.to_lowercase().contains(needle) || r.user_dn.to_lowercase().contains(needle)
}

fn list(c: &Connection, q: &ApprovalQuery) -> Result<Vec<ApprovalRequest>, StoreError> {
    let limit = if q.limit == 0 { usize::MAX } else { q.limit };
    let needle = q.user.as_ref().map(|u| u.to_lowercase());
    let mut stmt = c
        .prepare(&format!(
            "SELECT {COLUMNS} FROM approval_requests
             WHERE (?1 IS NULL OR state = ?1)
               AND (?2 IS NULL OR application = ?2)
               AND (?3 IS NULL OR decided_at >= ?3)
             ORDER BY created_at DESC, rowid DESC LIMIT ?4"
        ))
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(
            params![
                q.state.map(ApprovalState::as_str),
                q.application,
                q.decided_since.map(|t| t.0),
                // With a user filter the rows are filtered here, so SQL cannot cut.
                if needle.is_some() {
                    -1
                } else {
                    i64::try_from(limit).unwrap_or(-1)
                },
            ],
            request_from_row,
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
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn insert_approval(&self, request: &ApprovalRequest) -> Result<(), StoreError> {
        let request = request.clone();
        self.write(move |c| insert(c, &request)).await
    }

    async fn approval(&self, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| by_id(c, &id)).await
    }

    async fn approval_by_token(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        let hash = token_hash.to_vec();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM approval_requests WHERE token_hash = ?1"
            ))
            .and_then(|mut s| s.query_row(params![hash], request_from_row).optional())
            .map_err(unavailable)
        })
        .await
    }

    async fn mark_approval_sent(&self, id: &str, at: Timestamp) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            c.execute(
                "UPDATE approval_requests SET sent_at = ?2 WHERE id = ?1",
                params![id, at.0],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    async fn latest_approval(
        &self,
        user: &UserKey,
        application: &str,
    ) -> Result<Option<ApprovalRequest>, StoreError> {
        let (user, app) = (user.clone(), application.to_owned());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM approval_requests
                 WHERE user_directory = ?1 AND user_dn_norm = ?2 AND application = ?3
                 ORDER BY state = 'pending' DESC, created_at DESC, rowid DESC LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(params![user.directory, user.dn, app], request_from_row)
                    .optional()
            })
            .map_err(unavailable)
        })
        .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        decision: &Decision,
    ) -> Result<DecideOutcome, StoreError> {
        let (id, decision) = (id.to_owned(), decision.clone());
        self.write(move |c| decide(c, &id, &decision)).await
    }

    async fn expire_approvals(&self, now: Timestamp) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.write(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "UPDATE approval_requests SET state = 'expired', decided_at = expires_at
                     WHERE state = 'pending' AND expires_at <= ?1
                     RETURNING {COLUMNS}"
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![now.0], request_from_row)
                .map_err(unavailable)?;
            let mut expired = rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
            // RETURNING promises no order: the earliest expiry first.
            expired.sort_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
            Ok(expired)
        })
        .await
    }

    async fn list_approvals(
        &self,
        query: &ApprovalQuery,
    ) -> Result<Vec<ApprovalRequest>, StoreError> {
        let query = query.clone();
        self.read(move |c| list(c, &query)).await
    }

    async fn decisions_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<String>, u64), StoreError> {
        self.read(move |c| {
            let end: i64 = c
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM approval_decisions",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            let Some(after) = after else {
                return Ok((Vec::new(), end.max(0) as u64));
            };
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, id FROM approval_decisions WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![after as i64, limit.min(i64::MAX as usize) as i64],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(unavailable)?;
            let rows = rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
            let next = rows.last().map_or(after, |(seq, _)| *seq as u64);
            Ok((rows.into_iter().map(|(_, id)| id).collect(), next))
        })
        .await
    }
}
