//! `LocalUserStore` on SQLite: `local_user` rows plus `local_user_value`, every matchable
//! attribute value lower-cased (Unicode-aware, in Rust) so lookups ignore case on any backend.

use async_trait::async_trait;
use countersign_core::model::{AccountState, Dn, Sponsor, Timestamp, User};
use countersign_core::ports::{LocalUser, LocalUserStore, StoreError};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, unavailable};

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

const USER_COLUMNS: &str = "u.directory, u.username, u.dn, u.password_hash, u.display_name, u.mail, \
     u.mobile, u.attributes, u.sponsor_name, u.sponsor_email, u.sponsor_phone, \
     u.preferred_mechanisms, u.disabled, u.locked_until, u.password_expires_at, u.entry_id";

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
            id: r.get(15)?,
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

fn write_user(tx: &Connection, lu: &LocalUser, insert: bool) -> Result<(), StoreError> {
    let u = &lu.user;
    let sponsor = u.sponsor.clone().unwrap_or_default();
    let attributes = serde_json::to_string(&u.attributes).unwrap_or_else(|_| "{}".to_owned());
    let sql = if insert {
        "INSERT INTO local_user (directory, username, dn, dn_norm, password_hash, display_name, mail,
            mobile, attributes, sponsor_name, sponsor_email, sponsor_phone, preferred_mechanisms,
            disabled, locked_until, password_expires_at, entry_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
            COALESCE(?17, lower(hex(randomblob(16)))))"
    } else {
        "UPDATE local_user SET dn = ?3, dn_norm = ?4, password_hash = ?5, display_name = ?6,
            mail = ?7, mobile = ?8, attributes = ?9, sponsor_name = ?10, sponsor_email = ?11,
            sponsor_phone = ?12, preferred_mechanisms = ?13, disabled = ?14, locked_until = ?15,
            password_expires_at = ?16, entry_id = COALESCE(entry_id, ?17)
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
                // A local user's id is made when it is added (random, 128 bits) and never
                // changed: an update keeps the one it has.
                u.id,
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

#[async_trait]
impl LocalUserStore for SqliteStore {
    async fn insert_local_user(&self, user: &LocalUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |c| write_user(c, &user, true)).await
    }

    async fn update_local_user(&self, user: &LocalUser) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |c| write_user(c, &user, false)).await
    }

    async fn delete_local_user(&self, directory: &str, username: &str) -> Result<bool, StoreError> {
        let (d, u) = (directory.to_owned(), username.to_owned());
        self.write(move |c| {
            // One write: the user, its values and its OTP go together or not at all.
            // An outstanding OTP goes with its user: a new user with the same DN must not
            // inherit it.
            c.execute(
                "DELETE FROM otp WHERE directory = ?1 AND dn IN
                    (SELECT dn_norm FROM local_user WHERE directory = ?1 AND username = ?2)",
                params![d, u],
            )
            .map_err(unavailable)?;
            c.execute(
                "DELETE FROM local_user_value WHERE directory = ?1 AND username = ?2",
                params![d, u],
            )
            .map_err(unavailable)?;
            let n = c
                .execute(
                    "DELETE FROM local_user WHERE directory = ?1 AND username = ?2",
                    params![d, u],
                )
                .map_err(unavailable)?;
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
        self.read(move |c| {
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
        self.read(move |c| {
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
        self.read(move |c| {
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
        self.read(move |c| {
            let mut stmt = c
                .prepare(&format!("SELECT {USER_COLUMNS} FROM local_user u WHERE u.directory = ?1 ORDER BY u.username"))
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![d], user_from_row).map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
        .await
    }
}
