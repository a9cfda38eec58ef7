//! What only the SQLite store has: its files (private to their owner), databases written by
//! earlier versions (opened with their data and schema intact), and commits seen by another
//! connection on the same file. The ports' behaviour itself is in `store_contract`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use countersign::store::SqliteStore;
use countersign_core::approval::{ApprovalRequest, ApprovalState, DecidedBy, Decision};
use countersign_core::audit::{AuditAction, AuditOutcome, AuditQuery, AuditRecord, LoginFacts};
use countersign_core::model::{Dn, Timestamp, UserKey};
use countersign_core::outbox::{OutboxMessage, OutboxState};
use countersign_core::ports::{
    ApprovalStore, AuditStore, DecideOutcome, LocalUserStore, OtpStore, OutboxStore,
};
use rusqlite::Connection;

use crate::store_contract::local_user;

/// Schema version 1 exactly as countersign 0.1 shipped it (the inline migration of
/// `store/sqlite.rs` at commit 2fee0a3), to build databases as that version left them.
const SHIPPED_V1: &str = "CREATE TABLE otp (
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
    CREATE INDEX local_user_value_lookup ON local_user_value (directory, attribute, value);";

/// A database as countersign 0.1 left it: its pragmas, its migration, one user (with the
/// matchable values that version indexed), an outstanding OTP and an audit record; 0644 as
/// the umask made it.
fn shipped_v1_database(path: &Path) {
    let mut c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.pragma_update(None, "foreign_keys", "ON").unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    let tx = c.transaction().unwrap();
    tx.execute_batch(SHIPPED_V1).unwrap();
    tx.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (1, 1700000000000)",
        [],
    )
    .unwrap();
    tx.commit().unwrap();
    c.execute_batch(
        r#"INSERT INTO local_user (directory, username, dn, dn_norm, password_hash, display_name,
               mail, mobile, attributes, sponsor_name, sponsor_email, sponsor_phone,
               preferred_mechanisms, disabled, locked_until, password_expires_at)
           VALUES ('local', 'legacy', 'uid=legacy,ou=people,dc=example,dc=org',
               'uid=legacy,ou=people,dc=example,dc=org', '$argon2id$v=19$m=19456,t=2,p=1$b2xk$b2xk',
               'Legacy User', '["Legacy@Example.org"]', '["+41 79 555 00 00"]',
               '{"department":["Sales"]}', 'Sam', 'sam@example.org', NULL, '["Email"]', 0, NULL,
               1900000000000);
           INSERT INTO local_user_value (directory, username, attribute, value) VALUES
               ('local', 'legacy', 'uid', 'legacy'),
               ('local', 'legacy', 'mail', 'legacy@example.org'),
               ('local', 'legacy', 'mobile', '+41 79 555 00 00'),
               ('local', 'legacy', 'cn', 'legacy user'),
               ('local', 'legacy', 'department', 'sales');
           INSERT INTO otp (directory, dn, id, hash, issued_at, failed_attempts)
           VALUES ('local', 'uid=legacy,ou=people,dc=example,dc=org', 'old-id', x'0102', 1000, 1);
           INSERT INTO audit (at, action, front, identity, user_dn, client, outcome, reason,
               mechanism, recipient)
           VALUES (1000, 'deliver', 'http', 'u:legacy', 'uid=legacy,ou=people,dc=example,dc=org',
               '192.0.2.1', 'success', 'delivered', 'Email', 'l***@example.org');"#,
    )
    .unwrap();
    drop(c);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Every schema object, with its SQL's white space collapsed.
fn schema(path: &Path) -> Vec<(String, String, String)> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare(
            "SELECT type, name, COALESCE(sql, '') FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap();
    s.query_map([], |r| {
        let sql: String = r.get(2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            sql.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn versions(path: &Path) -> Vec<(i64, i64)> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT version, applied_at FROM schema_version ORDER BY version")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

#[tokio::test]
async fn a_version_1_database_is_brought_to_the_latest_version_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    shipped_v1_database(&path);
    let (schema_before, versions_before) = (schema(&path), versions(&path));

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    let after = schema(&path);
    // Version 2 added columns to `audit`, version 3 to `local_user`; everything else of
    // version 1 is as it was.
    for object in &schema_before {
        if object.1 != "audit" && object.1 != "local_user" {
            assert!(after.contains(object), "{} kept as it was", object.1);
        }
    }
    let names: Vec<&str> = after.iter().map(|o| o.1.as_str()).collect();
    for new in [
        "approval_requests",
        "approval_requests_one_pending",
        "outbox",
        "audit_login",
        "oidc_codes",
        "oidc_tokens",
        "oidc_keys",
        "local_user_entry_id",
    ] {
        assert!(names.contains(&new), "{new} in {names:?}");
    }
    let versions_after = versions(&path);
    assert_eq!(
        versions_after[0], versions_before[0],
        "version 1 not re-applied"
    );
    assert_eq!(
        versions_after.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let legacy = store.local_user("local", "LEGACY").await.unwrap().unwrap();
    assert_eq!(legacy.user.display_name.as_deref(), Some("Legacy User"));
    assert_eq!(legacy.user.mail, ["Legacy@Example.org"]);
    assert_eq!(legacy.user.attributes["department"], ["Sales"]);
    // An id made for the user that was there (its OpenID Connect `sub` comes from it).
    let id = legacy.user.id.clone().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(
        legacy.user.sponsor.unwrap().email.as_deref(),
        Some("sam@example.org")
    );
    assert_eq!(
        legacy.user.account.password_expires_at,
        Some(Timestamp(1_900_000_000_000))
    );
    let found = store
        .local_users_matching("local", "mail", "LEGACY@example.org")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let key = UserKey {
        directory: "local".into(),
        dn: Dn::new("uid=legacy,ou=people,dc=example,dc=org").normalized(),
    };
    let otp = store.get_otp(&key).await.unwrap().unwrap();
    assert_eq!((otp.id.as_str(), otp.failed_attempts), ("old-id", 1));
    let audit = store.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].action,
            audit[0].outcome,
            audit[0].identity.as_str()
        ),
        (AuditAction::Deliver, AuditOutcome::Success, "u:legacy")
    );
    assert_eq!(
        audit[0].login,
        LoginFacts::default(),
        "an old record has no login facts"
    );
    assert_eq!(audit[0].mechanism.as_deref(), Some("Email"));

    // And it goes on working: new writes land beside the old data.
    store
        .insert_local_user(&local_user("local", "newer", "newer@example.org"))
        .await
        .unwrap();
    assert_eq!(store.list_local_users("local").await.unwrap().len(), 2);
    store.insert_approval(&pending_approval()).await.unwrap();
    assert_eq!(
        store.approval(&pending_approval().id).await.unwrap(),
        Some(pending_approval())
    );
    drop(store);
    assert_eq!(
        mode(&path),
        0o600,
        "a file 0.1 left world-readable is made private"
    );
}

#[tokio::test]
async fn a_new_database_has_the_schema_an_upgraded_version_1_database_has() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.db"), dir.path().join("new.db"));
    shipped_v1_database(&old);
    drop(SqliteStore::open(&old).unwrap());
    drop(SqliteStore::open(&new).unwrap());
    assert_eq!(schema(&new), schema(&old));
    assert_eq!(versions(&new).len(), 3);
}

fn pending_approval() -> ApprovalRequest {
    ApprovalRequest {
        id: "0123456789abcdef0123456789abcdef".into(),
        token_hash: vec![7; 32],
        user: UserKey {
            directory: "local".into(),
            dn: "uid=legacy,ou=people,dc=example,dc=org".into(),
        },
        user_dn: "uid=legacy,ou=people,dc=example,dc=org".into(),
        username: "legacy".into(),
        display_name: Some("Legacy User".into()),
        application: "vpn".into(),
        profile: "managers".into(),
        front: "ldap".into(),
        client: Some("192.0.2.1".into()),
        recipient: "sam@example.org".into(),
        approver: "Sam".into(),
        created_at: Timestamp(1_000),
        expires_at: Timestamp(3_601_000),
        state: ApprovalState::Pending,
        decided_at: None,
        decided_by: None,
        sent_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pending_approval_and_a_queued_message_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    let message = OutboxMessage {
        id: "m1".into(),
        profile: "inform".into(),
        recipient: "sam@example.org".into(),
        subject: "Sign-in".into(),
        body: "Legacy signed in to the VPN.".into(),
        about_user: "uid=legacy,ou=people,dc=example,dc=org".into(),
        application: "vpn".into(),
        client: None,
        created_at: Timestamp(1_000),
        attempts: 1,
        next_attempt_at: Timestamp(6_000),
        state: OutboxState::Queued,
        last_error: Some("connection refused".into()),
        sent_at: None,
    };
    let store = SqliteStore::open(&path).unwrap();
    store.insert_approval(&pending_approval()).await.unwrap();
    store.enqueue_message(&message).await.unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.approval(&pending_approval().id).await.unwrap(),
        Some(pending_approval())
    );
    assert_eq!(store.list_messages(None, 0).await.unwrap(), [message]);
    // And both carry on where they were: the request can be decided, the message is claimed
    // when due.
    let approve = Decision {
        state: ApprovalState::Approved,
        at: Timestamp(2_000),
        by: DecidedBy {
            channel: "link".into(),
            ..Default::default()
        },
    };
    assert!(matches!(
        store
            .decide_approval(&pending_approval().id, &approve)
            .await
            .unwrap(),
        DecideOutcome::Decided(_)
    ));
    let claimed = store
        .claim_due_messages(Timestamp(6_000), Timestamp(7_000), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
}

#[tokio::test]
async fn a_database_newer_than_this_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    shipped_v1_database(&path);
    let c = Connection::open(&path).unwrap();
    c.execute("INSERT INTO schema_version VALUES (99, 1)", [])
        .unwrap();
    drop(c);
    let before = schema(&path);
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(err.to_string().contains("newer"), "{err}");
    assert_eq!(schema(&path), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_and_its_wal_and_shm_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/countersign.db");
    let store = SqliteStore::open(&path).unwrap();
    store
        .insert_local_user(&local_user("local", "alice", "alice@example.org"))
        .await
        .unwrap();
    for i in 0..50 {
        store
            .append_audit(&audit_record(&format!("u:{i}")))
            .await
            .unwrap();
    }
    // While the store is open (WAL and SHM exist) and after it is closed.
    for f in [
        &path,
        &with_suffix(&path, "-wal"),
        &with_suffix(&path, "-shm"),
    ] {
        assert!(f.exists(), "{}", f.display());
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    store.close().await;
    drop(store);
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        let f = entry.unwrap().path();
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

fn audit_record(identity: &str) -> AuditRecord {
    AuditRecord {
        at: Timestamp(1),
        action: AuditAction::Bind,
        front: "ldap".into(),
        identity: identity.into(),
        user_dn: None,
        client: None,
        outcome: AuditOutcome::Failure,
        reason: "wrong password".into(),
        mechanism: None,
        recipient: None,
        login: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_is_on_disk_for_any_reader_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    let store = SqliteStore::open(&path).unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (store, path) = (store.clone(), path.clone());
            tokio::spawn(async move {
                let who = format!("u:reader-{i}");
                store.append_audit(&audit_record(&who)).await.unwrap();
                // A plain connection of our own, not the store's: the commit is done.
                let c = Connection::open(&path).unwrap();
                let n: i64 = c
                    .query_row(
                        "SELECT COUNT(*) FROM audit WHERE identity = ?1",
                        [&who],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(n, 1, "{who}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_commits_the_appends_already_taken_and_refuses_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    let store = SqliteStore::open(&path).unwrap();
    let appends: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let who = format!("u:shutdown-{i}");
                store
                    .append_audit(&audit_record(&who))
                    .await
                    .ok()
                    .map(|_| who)
            })
        })
        .collect();
    // Close while appends are still arriving: some done, others queued or not yet sent.
    while !appends.iter().any(|a| a.is_finished()) {
        tokio::task::yield_now().await;
    }
    store.close().await;
    let mut accepted = Vec::new();
    for a in appends {
        accepted.extend(a.await.unwrap());
    }
    assert!(
        store.append_audit(&audit_record("u:late")).await.is_err(),
        "a closed store takes no writes"
    );
    drop(store);
    let c = Connection::open(&path).unwrap();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert!(!accepted.is_empty());
    assert_eq!(
        n as usize,
        accepted.len(),
        "every Ok is on disk, nothing else"
    );
}

#[tokio::test]
async fn pruning_more_records_than_one_slice_removes_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countersign.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut c = Connection::open(&path).unwrap();
    let tx = c.transaction().unwrap();
    for at in 0..12_001_i64 {
        tx.execute(
            "INSERT INTO audit (at, action, front, identity, outcome, reason)
             VALUES (?1, 'bind', 'ldap', 'u:x', 'failure', 'wrong password')",
            [at],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(store.prune_audit(Timestamp(12_000)).await.unwrap(), 12_000);
    let left = store.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, Timestamp(12_000));
}

#[tokio::test]
async fn a_key_file_left_readable_by_others_is_made_private_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("countersign.toml");
    let setup = crate::fixtures::Setup {
        extra: "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\n"
            .into(),
        default_mechanisms: vec!["File"],
        ..Default::default()
    };
    std::fs::write(&config, setup.config()).unwrap();
    // The first start makes the key (0600); someone copies it in with a loose mode.
    let app =
        countersign::app::App::build(countersign::config::Config::load(&config).unwrap()).unwrap();
    let key = app.config.secret_key_file.clone();
    drop(app);
    assert_eq!(mode(&key), 0o600);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let app =
        countersign::app::App::build(countersign::config::Config::load(&config).unwrap()).unwrap();
    assert_eq!(mode(&key), 0o600);
    drop(app);
}
