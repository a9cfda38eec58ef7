//! Schema migrations: numbered SQL files under `store/migrations/sqlite/`, embedded at build
//! time, applied in order at open, each in its own transaction together with its row in
//! `schema_version`, so a database is always at exactly one released version.

use rusqlite::{Connection, TransactionBehavior, params};

use countersign_core::ports::StoreError;

use super::unavailable;

/// One schema version: the SQL that takes a database from `version - 1` to `version`.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every released schema version, in order. Never edit a released file; add the next one.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial.sql",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_approvals.sql",
        sql: include_str!("../migrations/sqlite/0002_approvals.sql"),
    },
    Migration {
        version: 3,
        name: "0003_oidc.sql",
        sql: include_str!("../migrations/sqlite/0003_oidc.sql"),
    },
];

/// The bookkeeping table; created outside the numbered migrations (as version 1 shipped).
const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";

pub(super) fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(unavailable)
}

/// Brings the schema up to the last of `migrations`; returns the version now in force.
pub(super) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<i64, StoreError> {
    conn.execute_batch(SCHEMA_VERSION_TABLE)
        .map_err(unavailable)?;
    let known = migrations.last().map_or(0, |m| m.version);
    for m in migrations {
        // IMMEDIATE takes the write lock first, so two processes opening one old file do not
        // both apply the same step: the second sees the version the first recorded.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let have = current_version(&tx)?;
        if have > known {
            return Err(unavailable(format!(
                "database schema version {have} is newer than this countersign knows ({known})"
            )));
        }
        if have >= m.version {
            continue;
        }
        if have != m.version - 1 {
            return Err(unavailable(format!(
                "migration {} expects schema version {}, the database has {have}",
                m.name,
                m.version - 1
            )));
        }
        tx.execute_batch(m.sql)
            .map_err(|e| unavailable(format!("migration {}: {e}", m.name)))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![m.version, now_millis()],
        )
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
    let have = current_version(conn)?;
    if have > known {
        return Err(unavailable(format!(
            "database schema version {have} is newer than this countersign knows ({known})"
        )));
    }
    Ok(have)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tables(c: &Connection) -> Vec<String> {
        let mut s = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn released_migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
        }
    }

    #[test]
    fn pending_migrations_apply_in_order_and_a_failing_one_leaves_the_previous_version() {
        let mut c = Connection::open_in_memory().unwrap();
        let steps = [
            Migration {
                version: 1,
                name: "0001_a.sql",
                sql: "CREATE TABLE a (x INTEGER);",
            },
            Migration {
                version: 2,
                name: "0002_b.sql",
                sql: "ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z INTEGER);",
            },
            Migration {
                version: 3,
                name: "0003_broken.sql",
                sql: "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (1);",
            },
        ];
        assert_eq!(migrate(&mut c, &steps[..1]).unwrap(), 1);
        c.execute("INSERT INTO a (x) VALUES (7)", []).unwrap();
        assert_eq!(migrate(&mut c, &steps[..2]).unwrap(), 2);
        let err = migrate(&mut c, &steps).unwrap_err();
        assert!(err.to_string().contains("0003_broken.sql"), "{err}");
        // The broken step is rolled back whole: no table `c`, version still 2, data intact.
        assert_eq!(current_version(&c).unwrap(), 2);
        assert_eq!(tables(&c), ["a", "b", "schema_version"]);
        let x: i64 = c.query_row("SELECT x FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
        // An older countersign refuses a newer database rather than misreading it.
        let err = migrate(&mut c, &steps[..1]).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
