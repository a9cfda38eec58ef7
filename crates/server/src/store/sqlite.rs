//! The SQLite store: one file, WAL journal, one connection serialising all writes (SQLite has one
//! writer anyway), schema migrations embedded and applied at open, each recorded in
//! `schema_version`. Calls run on tokio's blocking pool so the async fronts never stall.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use countersign_core::audit::{AuditAction, AuditOutcome, AuditQuery, AuditRecord};
use countersign_core::model::{AccountState, Dn, Sponsor, Timestamp, User, UserKey};
use countersign_core::ports::{IssuedOtp, LocalUser, Store, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// Each entry is one schema version; never edit a released one, append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: OTPs, audit, local users.
    "CREATE TABLE otp (
        directory TEXT NOT NULL,
        dn TEXT NOT NULL,
        id TEXT NOT NULL,
        hash BLOB NOT NULL,
        issued_at INTEGER NOT NULL,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (directory, dn)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        front TEXT NOT NULL,
        identity TEXT NOT NULL,
        user_dn TEXT,
        client TEXT,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL,
        mechanism TEXT,
        recipient TEXT
    );
    CREATE INDEX audit_at ON audit (at);
    CREATE TABLE local_user (
        directory TEXT NOT NULL,
        username TEXT NOT NULL COLLATE NOCASE,
        dn TEXT NOT NULL,
        dn_norm TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        display_name TEXT,
        mail TEXT NOT NULL,
        mobile TEXT NOT NULL,
        attributes TEXT NOT NULL,
        sponsor_name TEXT,
        sponsor_email TEXT,
        sponsor_phone TEXT,
        preferred_mechanisms TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER,
        password_expires_at INTEGER,
        PRIMARY KEY (directory, username)
    );
    CREATE UNIQUE INDEX local_user_dn ON local_user (directory, dn_norm);
    CREATE TABLE local_user_value (
        directory TEXT NOT NULL,
        username TEXT NOT NULL COLLATE NOCASE,
        attribute TEXT NOT NULL,
        value TEXT NOT NULL,
        FOREIGN KEY (directory, username) REFERENCES local_user (directory, username)
            ON DELETE CASCADE ON UPDATE CASCADE
    );
    CREATE INDEX local_user_value_lookup ON local_user_value (directory, attribute, value);",
];

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
        }
        let conn =
            Connection::open(path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(unavailable)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The schema version now in force.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn.lock().map_err(unavailable)?;
        current_version(&conn)
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| unavailable("store lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(unavailable)?
    }
}

fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(unavailable)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .map_err(unavailable)?;
    let have = current_version(conn)?;
    let known = MIGRATIONS.len() as i64;
    if have > known {
        return Err(unavailable(format!(
            "database schema version {have} is newer than this countersign knows ({known})"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        let tx = conn.transaction().map_err(unavailable)?;
        tx.execute_batch(sql)
            .map_err(|e| unavailable(format!("migration {}: {e}", i + 1)))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![i as i64 + 1, now_millis()],
        )
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
    Ok(())
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn otp_from_row(r: &Row<'_>) -> rusqlite::Result<IssuedOtp> {
    Ok(IssuedOtp {
        user: UserKey {
            directory: r.get(0)?,
            dn: r.get(1)?,
        },
        id: r.get(2)?,
        hash: r.get(3)?,
        issued_at: Timestamp(r.get(4)?),
        failed_attempts: r.get(5)?,
    })
}

const USER_COLUMNS: &str = "u.directory, u.username, u.dn, u.password_hash, u.display_name, u.mail, \
     u.mobile, u.attributes, u.sponsor_name, u.sponsor_email, u.sponsor_phone, \
     u.preferred_mechanisms, u.disabled, u.locked_until, u.password_expires_at";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<LocalUser> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let s: String = r.get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    let attributes: String = r.get(7)?;
    let sponsor = Sponsor {
        name: r.get(8)?,
        email: r.get(9)?,
        phone: r.get(10)?,
    };
    Ok(LocalUser {
        user: User {
            directory: r.get(0)?,
            username: r.get(1)?,
            dn: Dn::new(r.get::<_, String>(2)?),
            display_name: r.get(4)?,
            mail: list(5)?,
            mobile: list(6)?,
            attributes: serde_json::from_str(&attributes).unwrap_or_default(),
            sponsor: (sponsor != Sponsor::default()).then_some(sponsor),
            preferred_mechanisms: list(11)?,
            account: AccountState {
                disabled: r.get::<_, i64>(12)? != 0,
                locked_until: r.get::<_, Option<i64>>(13)?.map(Timestamp),
                password_expires_at: r.get::<_, Option<i64>>(14)?.map(Timestamp),
                // Local passwords are set by the user's own `countersign user` command.
                must_change_password: false,
            },
        },
        password_hash: r.get(3)?,
    })
}

/// Rows of `local_user_value`: every matchable attribute value, lower-cased.
fn index_values(u: &User) -> Vec<(String, String)> {
    let mut out = vec![("uid".to_owned(), u.username.to_lowercase())];
    out.extend(u.mail.iter().map(|m| ("mail".to_owned(), m.to_lowercase())));
    out.extend(
        u.mobile
            .iter()
            .map(|m| ("mobile".to_owned(), m.to_lowercase())),
    );
    if let Some(n) = &u.display_name {
        out.push(("cn".to_owned(), n.to_lowercase()));
    }
    for (k, vs) in &u.attributes {
        out.extend(vs.iter().map(|v| (k.to_lowercase(), v.to_lowercase())));
    }
    out
}

fn write_user(
    tx: &rusqlite::Transaction<'_>,
    lu: &LocalUser,
    insert: bool,
) -> Result<(), StoreError> {
    let u = &lu.user;
    let sponsor = u.sponsor.clone().unwrap_or_default();
    let attributes = serde_json::to_string(&u.attributes).unwrap_or_else(|_| "{}".to_owned());
    let sql = if insert {
        "INSERT INTO local_user (directory, username, dn, dn_norm, password_hash, display_name, mail,
            mobile, attributes, sponsor_name, sponsor_email, sponsor_phone, preferred_mechanisms,
            disabled, locked_until, password_expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    } else {
        "UPDATE local_user SET dn = ?3, dn_norm = ?4, password_hash = ?5, display_name = ?6,
            mail = ?7, mobile = ?8, attributes = ?9, sponsor_name = ?10, sponsor_email = ?11,
            sponsor_phone = ?12, preferred_mechanisms = ?13, disabled = ?14, locked_until = ?15,
            password_expires_at = ?16
         WHERE directory = ?1 AND username = ?2"
    };
    let n = tx
        .execute(
            sql,
            params![
                u.directory,
                u.username,
                u.dn.as_str(),
                u.dn.normalized(),
                lu.password_hash,
                u.display_name,
                json_list(&u.mail),
                json_list(&u.mobile),
                attributes,
                sponsor.name,
                sponsor.email,
                sponsor.phone,
                json_list(&u.preferred_mechanisms),
                i64::from(u.account.disabled),
                u.account.locked_until.map(|t| t.0),
                u.account.password_expires_at.map(|t| t.0),
            ],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(format!(
                    "a user named {:?} (or with DN {}) exists already",
                    u.username, u.dn
                ))
            }
            other => unavailable(other),
        })?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    tx.execute(
        "DELETE FROM local_user_value WHERE directory = ?1 AND username = ?2",
        params![u.directory, u.username],
    )
    .map_err(unavailable)?;
    let mut stmt = tx
        .prepare_cached("INSERT INTO local_user_value (directory, username, attribute, value) VALUES (?1, ?2, ?3, ?4)")
        .map_err(unavailable)?;
    for (attribute, value) in index_values(u) {
        stmt.execute(params![u.directory, u.username, attribute, value])
            .map_err(unavailable)?;
    }
    Ok(())
}

fn action_from(s: &str) -> AuditAction {
    AuditAction::parse(s).unwrap_or(AuditAction::Verify)
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_otp(&self, otp: &IssuedOtp) -> Result<(), StoreError> {
        let otp = otp.clone();
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO otp (directory, dn, id, hash, issued_at, failed_attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    otp.user.directory,
                    otp.user.dn,
                    otp.id,
                    otp.hash,
                    otp.issued_at.0,
                    otp.failed_attempts
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn get_otp(&self, user: &UserKey) -> Result<Option<IssuedOtp>, StoreError> {
        let user = user.clone();
        self.with(move |c| {
            c.query_row(
                "SELECT directory, dn, id, hash, issued_at, failed_attempts FROM otp WHERE directory = ?1 AND dn = ?2",
                params![user.directory, user.dn],
                otp_from_row,
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn consume_otp(
        &self,
        user: &UserKey,
        id: &str,
        max_failed: u32,
    ) -> Result<bool, StoreError> {
        let (user, id) = (user.clone(), id.to_owned());
        self.with(move |c| {
            let n = c
                .execute(
                    "DELETE FROM otp WHERE directory = ?1 AND dn = ?2 AND id = ?3 AND failed_attempts < ?4",
                    params![user.directory, user.dn, id, max_failed],
                )
                .map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }

    async fn fail_otp(&self, user: &UserKey, id: &str, max_failed: u32) -> Result<u32, StoreError> {
        let (user, id) = (user.clone(), id.to_owned());
        self.with(move |c| {
            let tx = c.transaction().map_err(unavailable)?;
            let failures: Option<u32> = tx
                .query_row(
                    "UPDATE otp SET failed_attempts = failed_attempts + 1
                     WHERE directory = ?1 AND dn = ?2 AND id = ?3 RETURNING failed_attempts",
                    params![user.directory, user.dn, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            // Gone already (used, voided, replaced): as good as voided for this caller.
            let failures = failures.unwrap_or(max_failed);
            if failures >= max_failed {
                tx.execute(
                    "DELETE FROM otp WHERE directory = ?1 AND dn = ?2 AND id = ?3",
                    params![user.directory, user.dn, id],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(failures)
        })
        .await
    }

    async fn delete_otp(&self, user: &UserKey, id: &str) -> Result<(), StoreError> {
        let (user, id) = (user.clone(), id.to_owned());
        self.with(move |c| {
            c.execute(
                "DELETE FROM otp WHERE directory = ?1 AND dn = ?2 AND id = ?3",
                params![user.directory, user.dn, id],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, r: &AuditRecord) -> Result<(), StoreError> {
        let r = r.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO audit (at, action, front, identity, user_dn, client, outcome, reason, mechanism, recipient)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    r.at.0,
                    r.action.as_str(),
                    r.front,
                    r.identity,
                    r.user_dn,
                    r.client,
                    r.outcome.as_str(),
                    r.reason,
                    r.mechanism,
                    r.recipient
                ],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.with(move |c| {
            let n = c
                .execute("DELETE FROM audit WHERE at < ?1", params![before.0])
                .map_err(unavailable)?;
            Ok(n as u64)
        })
        .await
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let q = q.clone();
        self.with(move |c| {
            let user_like = q.user.as_ref().map(|u| format!("%{}%", u.to_lowercase()));
            let mut stmt = c
                .prepare(
                    "SELECT at, action, front, identity, user_dn, client, outcome, reason, mechanism, recipient
                     FROM audit
                     WHERE (?1 IS NULL OR action = ?1)
                       AND (?2 IS NULL OR outcome = ?2)
                       AND (?3 IS NULL OR lower(identity) LIKE ?3 OR lower(COALESCE(user_dn, '')) LIKE ?3)
                       AND (?4 IS NULL OR client = ?4)
                       AND (?5 IS NULL OR at >= ?5)
                     ORDER BY seq DESC LIMIT ?6",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![
                        q.action.map(AuditAction::as_str),
                        q.outcome.map(AuditOutcome::as_str),
                        user_like,
                        q.client,
                        q.since.map(|t| t.0),
                        if q.limit == 0 { i64::MAX } else { q.limit as i64 },
                    ],
                    |r| {
                        Ok(AuditRecord {
                            at: Timestamp(r.get(0)?),
                            action: action_from(&r.get::<_, String>(1)?),
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
                        })
                    },
                )
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn insert_local_user(&self, user: &LocalUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(unavailable)?;
            write_user(&tx, &user, true)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn update_local_user(&self, user: &LocalUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.with(move |c| {
            let tx = c.transaction().map_err(unavailable)?;
            write_user(&tx, &user, false)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn delete_local_user(&self, directory: &str, username: &str) -> Result<bool, StoreError> {
        let (d, u) = (directory.to_owned(), username.to_owned());
        self.with(move |c| {
            let tx = c.transaction().map_err(unavailable)?;
            // An outstanding OTP goes with its user: a new user with the same DN must not
            // inherit it.
            tx.execute(
                "DELETE FROM otp WHERE directory = ?1 AND dn IN
                    (SELECT dn_norm FROM local_user WHERE directory = ?1 AND username = ?2)",
                params![d, u],
            )
            .map_err(unavailable)?;
            tx.execute(
                "DELETE FROM local_user_value WHERE directory = ?1 AND username = ?2",
                params![d, u],
            )
            .map_err(unavailable)?;
            let n = tx
                .execute(
                    "DELETE FROM local_user WHERE directory = ?1 AND username = ?2",
                    params![d, u],
                )
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(n == 1)
        })
        .await
    }

    async fn local_user(
        &self,
        directory: &str,
        username: &str,
    ) -> Result<Option<LocalUser>, StoreError> {
        let (d, u) = (directory.to_owned(), username.to_owned());
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM local_user u WHERE u.directory = ?1 AND u.username = ?2"),
                params![d, u],
                user_from_row,
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn local_user_by_dn(
        &self,
        directory: &str,
        dn_normalized: &str,
    ) -> Result<Option<LocalUser>, StoreError> {
        let (d, dn) = (directory.to_owned(), dn_normalized.to_owned());
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM local_user u WHERE u.directory = ?1 AND u.dn_norm = ?2"),
                params![d, dn],
                user_from_row,
            )
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn local_users_matching(
        &self,
        directory: &str,
        attribute: &str,
        value: &str,
    ) -> Result<Vec<LocalUser>, StoreError> {
        let (d, a, v) = (
            directory.to_owned(),
            attribute.to_lowercase(),
            value.to_lowercase(),
        );
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT DISTINCT {USER_COLUMNS} FROM local_user u
                     JOIN local_user_value v ON v.directory = u.directory AND v.username = u.username
                     WHERE v.directory = ?1 AND v.attribute = ?2 AND v.value = ?3"
                ))
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![d, a, v], user_from_row).map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }

    async fn list_local_users(&self, directory: &str) -> Result<Vec<LocalUser>, StoreError> {
        let d = directory.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare(&format!("SELECT {USER_COLUMNS} FROM local_user u WHERE u.directory = ?1 ORDER BY u.username"))
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![d], user_from_row).map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}
