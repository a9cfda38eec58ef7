//! `OtpStore` on SQLite: one row per user in `otp`. Every change goes through the writer, so
//! concurrent consumers and failures are applied one after another and exactly one consumer
//! of an OTP wins.

use async_trait::async_trait;
use countersign_core::model::{Timestamp, UserKey};
use countersign_core::ports::{IssuedOtp, OtpStore, StoreError};
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, unavailable};

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

#[async_trait]
impl OtpStore for SqliteStore {
    async fn put_otp(&self, otp: &IssuedOtp) -> Result<(), StoreError> {
        let otp = otp.clone();
        self.write(move |c| {
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
        self.read(move |c| {
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
        self.write(move |c| {
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
        // One write, so the count and the removal at the limit happen together.
        self.write(move |c| {
            let failures: Option<u32> = c
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
                c.execute(
                    "DELETE FROM otp WHERE directory = ?1 AND dn = ?2 AND id = ?3",
                    params![user.directory, user.dn, id],
                )
                .map_err(unavailable)?;
            }
            Ok(failures)
        })
        .await
    }

    async fn delete_otp(&self, user: &UserKey, id: &str) -> Result<(), StoreError> {
        let (user, id) = (user.clone(), id.to_owned());
        self.write(move |c| {
            c.execute(
                "DELETE FROM otp WHERE directory = ?1 AND dn = ?2 AND id = ?3",
                params![user.directory, user.dn, id],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
