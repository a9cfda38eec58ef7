//! `OidcStore` on SQLite: `oidc_codes`, `oidc_tokens`, `oidc_keys`. A code is redeemed by one
//! write that reads and marks it (the writer applies writes one after another), so of two
//! clients presenting the same code exactly one gets `Fresh`. `flow` is unique: a sign-in ends
//! in at most one redeemed code.

use async_trait::async_trait;
use countersign_core::model::Timestamp;
use countersign_core::oidc::{AccessGrant, Authentication, CodeGrant, Subject};
use countersign_core::ports::StoreError;
use countersign_core::ports::oidc::{OidcStore, Redeemed, SigningKeyRecord};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, unavailable};

const CODE_COLUMNS: &str = "client, redirect_uri, code_challenge, nonce, scope, sub, username, \
     name, email, auth_time, amr, acr, expires_at, flow, used_at, flow_expires_at";

/// Lists (scopes, `amr`) are kept space-separated: their values never contain a space.
fn list(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn code_from_row(r: &Row<'_>) -> rusqlite::Result<(CodeGrant, bool)> {
    let grant = CodeGrant {
        client: r.get(0)?,
        redirect_uri: r.get(1)?,
        code_challenge: r.get(2)?,
        nonce: r.get(3)?,
        scope: list(&r.get::<_, String>(4)?),
        authentication: Authentication {
            subject: Subject {
                sub: r.get(5)?,
                username: r.get(6)?,
                name: r.get(7)?,
                email: r.get(8)?,
            },
            auth_time: Timestamp(r.get(9)?),
            amr: list(&r.get::<_, String>(10)?),
            acr: r.get(11)?,
        },
        expires_at: Timestamp(r.get(12)?),
        flow: r.get(13)?,
        flow_expires_at: Timestamp(r.get(15)?),
    };
    let used: Option<i64> = r.get(14)?;
    Ok((grant, used.is_some()))
}

fn redeem(c: &Connection, hash: &[u8], client: &str) -> Result<Redeemed, StoreError> {
    let found = c
        .query_row(
            &format!("SELECT {CODE_COLUMNS} FROM oidc_codes WHERE code_hash = ?1"),
            params![hash],
            code_from_row,
        )
        .optional()
        .map_err(unavailable)?;
    let Some((grant, used)) = found else {
        return Ok(Redeemed::Unknown);
    };
    if grant.client != client {
        return Ok(Redeemed::OtherClient);
    }
    if used {
        c.execute(
            "UPDATE oidc_codes SET replayed = 1 WHERE code_hash = ?1",
            params![hash],
        )
        .map_err(unavailable)?;
        return Ok(Redeemed::Replayed(grant));
    }
    // The time it was used matters only as "used"; the grant's own clock is the caller's.
    c.execute(
        "UPDATE oidc_codes SET used_at = expires_at WHERE code_hash = ?1",
        params![hash],
    )
    .map_err(unavailable)?;
    Ok(Redeemed::Fresh(grant))
}

#[async_trait]
impl OidcStore for SqliteStore {
    async fn put_code(&self, code_hash: &[u8], grant: &CodeGrant) -> Result<(), StoreError> {
        let (hash, g) = (code_hash.to_vec(), grant.clone());
        self.write(move |c| {
            let a = &g.authentication;
            // A flow's unredeemed code is replaced (the WHERE of the upsert); a redeemed one
            // stays, and nothing changes.
            let changed = c
                .execute(
                    "INSERT INTO oidc_codes (code_hash, client, redirect_uri, code_challenge, nonce,
                        scope, sub, username, name, email, auth_time, amr, acr, expires_at, flow,
                        flow_expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                     ON CONFLICT (flow) DO UPDATE SET code_hash = excluded.code_hash,
                        client = excluded.client, redirect_uri = excluded.redirect_uri,
                        code_challenge = excluded.code_challenge, nonce = excluded.nonce,
                        scope = excluded.scope, sub = excluded.sub, username = excluded.username,
                        name = excluded.name, email = excluded.email,
                        auth_time = excluded.auth_time, amr = excluded.amr, acr = excluded.acr,
                        expires_at = excluded.expires_at, flow_expires_at = excluded.flow_expires_at
                     WHERE oidc_codes.used_at IS NULL",
                    params![
                        hash,
                        g.client,
                        g.redirect_uri,
                        g.code_challenge,
                        g.nonce,
                        g.scope.join(" "),
                        a.subject.sub,
                        a.subject.username,
                        a.subject.name,
                        a.subject.email,
                        a.auth_time.0,
                        a.amr.join(" "),
                        a.acr,
                        g.expires_at.0,
                        g.flow,
                        g.flow_expires_at.0
                    ],
                )
                .map_err(unavailable)?;
            if changed == 0 {
                return Err(StoreError::Conflict(
                    "the sign-in's code was redeemed".into(),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn redeem_code(&self, code_hash: &[u8], client: &str) -> Result<Redeemed, StoreError> {
        let (hash, client) = (code_hash.to_vec(), client.to_owned());
        // Looked up on a read connection first: guessed codes (anyone can send them) never
        // take a turn on the one writer.
        let probe = hash.clone();
        let exists = self
            .read(move |c| {
                c.query_row(
                    "SELECT 1 FROM oidc_codes WHERE code_hash = ?1",
                    params![probe],
                    |_| Ok(()),
                )
                .optional()
                .map_err(unavailable)
            })
            .await?;
        if exists.is_none() {
            return Ok(Redeemed::Unknown);
        }
        self.write(move |c| redeem(c, &hash, &client)).await
    }

    async fn put_access_token(
        &self,
        token_hash: &[u8],
        grant: &AccessGrant,
    ) -> Result<(), StoreError> {
        let (hash, g) = (token_hash.to_vec(), grant.clone());
        self.write(move |c| {
            c.execute(
                "INSERT INTO oidc_tokens (token_hash, code_hash, client, sub, username, name,
                    email, scope, expires_at, revoked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                    COALESCE((SELECT replayed FROM oidc_codes WHERE code_hash = ?2), 0))",
                params![
                    hash,
                    g.code_hash,
                    g.client,
                    g.subject.sub,
                    g.subject.username,
                    g.subject.name,
                    g.subject.email,
                    g.scope.join(" "),
                    g.expires_at.0
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn access_token(&self, token_hash: &[u8]) -> Result<Option<AccessGrant>, StoreError> {
        let hash = token_hash.to_vec();
        self.read(move |c| {
            c.query_row(
                "SELECT client, code_hash, sub, username, name, email, scope, expires_at
                 FROM oidc_tokens WHERE token_hash = ?1 AND revoked = 0",
                params![hash],
                |r| {
                    Ok(AccessGrant {
                        client: r.get(0)?,
                        code_hash: r.get(1)?,
                        subject: Subject {
                            sub: r.get(2)?,
                            username: r.get(3)?,
                            name: r.get(4)?,
                            email: r.get(5)?,
                        },
                        scope: list(&r.get::<_, String>(6)?),
                        expires_at: Timestamp(r.get(7)?),
                    })
                },
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn revoke_code_tokens(&self, code_hash: &[u8]) -> Result<usize, StoreError> {
        let hash = code_hash.to_vec();
        self.write(move |c| {
            c.execute(
                "UPDATE oidc_tokens SET revoked = 1 WHERE code_hash = ?1 AND revoked = 0",
                params![hash],
            )
            .map_err(unavailable)
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT kid, created_at, retired_at, sealed FROM oidc_keys
                     ORDER BY created_at, kid",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(SigningKeyRecord {
                        kid: r.get(0)?,
                        created_at: Timestamp(r.get(1)?),
                        retired_at: r.get::<_, Option<i64>>(2)?.map(Timestamp),
                        sealed: r.get(3)?,
                    })
                })
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| {
            c.execute(
                "UPDATE oidc_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                params![key.created_at.0],
            )
            .map_err(unavailable)?;
            c.execute(
                "INSERT INTO oidc_keys (kid, created_at, sealed) VALUES (?1, ?2, ?3)",
                params![key.kid, key.created_at.0, key.sealed],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn prune_oidc(&self, before: Timestamp) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM oidc_codes WHERE MAX(expires_at, flow_expires_at) < ?1",
                params![before.0],
            )
            .map_err(unavailable)?;
            c.execute(
                "DELETE FROM oidc_tokens WHERE expires_at < ?1",
                params![before.0],
            )
            .map_err(unavailable)?;
            c.execute(
                "DELETE FROM oidc_keys WHERE retired_at IS NOT NULL AND retired_at < ?1",
                params![before.0],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
