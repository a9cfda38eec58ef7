//! The life of an OTP against the real SQLite store: uniform refusals, expiry with an injected
//! clock, voiding after wrong tries, one winner among concurrent verifications, and survival
//! across a restart.

use std::sync::Arc;
use std::time::Duration;

use countersign_core::model::{AccountState, Timestamp};

use crate::fixtures::*;

async fn with_smtp() -> (SmtpServer, Countersign) {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        default_mechanisms: vec!["Email"],
        ..Setup::default()
    })
    .await;
    (smtp, cs)
}

async fn deliver_and_read(cs: &Countersign, smtp: &SmtpServer, n: usize) -> String {
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    smtp.wait_for(n)[n - 1].otp(6)
}

#[tokio::test]
async fn unknown_user_wrong_password_and_unusable_accounts_get_the_same_refusal() {
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    cs.add_user(TestUser {
        username: "dora",
        password: "dora-password",
        account: AccountState {
            disabled: true,
            ..Default::default()
        },
        ..alice()
    })
    .await;
    cs.add_user(TestUser {
        username: "liam",
        password: "liam-password",
        account: AccountState {
            locked_until: Some(Timestamp(T0 + 3_600_000)),
            ..Default::default()
        },
        ..alice()
    })
    .await;
    cs.add_user(TestUser {
        username: "pete",
        password: "pete-password",
        account: AccountState {
            password_expires_at: Some(Timestamp(T0 - 1)),
            ..Default::default()
        },
        ..alice()
    })
    .await;

    let cases = [
        ("u:alice", "wrong-password", "wrong static password"),
        ("u:nobody", "whatever-password", "unknown user"),
        (
            "dn:uid=ghost,ou=people,dc=example,dc=com",
            "x",
            "unknown user",
        ),
        ("u:dora", "dora-password", "account disabled"),
        ("u:liam", "liam-password", "account locked"),
        ("u:pete", "pete-password", "password expired"),
    ];
    let mut bodies = Vec::new();
    for (id, pw, _) in cases {
        let a = cs
            .deliver(serde_json::json!({"authentication_id": id, "static_password": pw}))
            .await;
        assert_eq!(a.status, 401, "{id}: {}", a.json);
        bodies.push(a.json.to_string());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "refusals differ: {bodies:?}"
    );
    assert!(smtp.messages().is_empty());

    // The audit log keeps the real reasons, newest first.
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    let reasons: Vec<&str> = audit.iter().rev().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, cases.map(|c| c.2));

    // A malformed identity is a plain 400, not a credential refusal.
    let a = cs
        .deliver(serde_json::json!({"authentication_id": "alice", "static_password": "x"}))
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn expired_otp_fails() {
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    let otp = deliver_and_read(&cs, &smtp, 1).await;
    cs.clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(cs.verify("u:alice", &otp).await.status, 401);
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert_eq!(audit[0].reason, "OTP expired");

    // Just inside the validity it works.
    let otp = deliver_and_read(&cs, &smtp, 2).await;
    cs.clock.advance(Duration::from_secs(5 * 60 - 1));
    assert_eq!(cs.verify("u:alice", &otp).await.status, 200);
}

#[tokio::test]
async fn too_many_wrong_tries_void_the_otp() {
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    let otp = deliver_and_read(&cs, &smtp, 1).await;
    let wrong = if otp == "000000" { "999999" } else { "000000" };
    for _ in 0..3 {
        assert_eq!(cs.verify("u:alice", wrong).await.status, 401);
    }
    assert_eq!(
        cs.verify("u:alice", &otp).await.status,
        401,
        "voided after max_failed_attempts = 3"
    );
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert_eq!(audit[0].reason, "no outstanding OTP");
    assert_eq!(
        audit[1].reason,
        "wrong OTP; OTP voided after too many failed attempts"
    );

    // A fresh OTP works again, and a wrong try below the limit does not spoil it.
    let otp = deliver_and_read(&cs, &smtp, 2).await;
    assert_eq!(cs.verify("u:alice", wrong).await.status, 401);
    assert_eq!(cs.verify("u:alice", &otp).await.status, 200);
}

#[tokio::test]
async fn a_new_otp_replaces_the_outstanding_one() {
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    let first = deliver_and_read(&cs, &smtp, 1).await;
    let second = deliver_and_read(&cs, &smtp, 2).await;
    if first != second {
        assert_eq!(cs.verify("u:alice", &first).await.status, 401);
    }
    assert_eq!(cs.verify("u:alice", &second).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_of_one_otp_have_exactly_one_winner() {
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    let cs = Arc::new(cs);
    for round in 1..=3 {
        let otp = deliver_and_read(&cs, &smtp, round).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cs, otp, barrier) = (cs.clone(), otp.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    cs.verify("u:alice", &otp).await.status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            7,
            "round {round}: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn an_otp_issued_before_a_restart_still_verifies_after_it() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let setup = Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        default_mechanisms: vec!["Email"],
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    cs.add_user(alice()).await;
    let otp = deliver_and_read(&cs, &smtp, 1).await;
    let (dir, clock) = (cs.dir.clone(), cs.clock.clone());
    drop(cs);
    let db = dir.path().join("state/countersign.db");
    let store = countersign::store::SqliteStore::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    drop(store);

    let cs = Countersign::start_in(dir, clock).await;
    assert_eq!(cs.verify("u:alice", &otp).await.status, 200);
    assert_eq!(cs.verify("u:alice", &otp).await.status, 401);
    // Nothing in the database file holds the OTP itself.
    let db = std::fs::read(cs.dir.path().join("state/countersign.db")).unwrap();
    let wal = std::fs::read(cs.dir.path().join("state/countersign.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(6).any(|w| w == otp.as_bytes()),
            "OTP found in clear in the store"
        );
    }
}

#[tokio::test]
async fn a_deleted_user_takes_the_outstanding_otp_along() {
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    let otp = deliver_and_read(&cs, &smtp, 1).await;
    assert!(
        cs.app
            .store
            .delete_local_user("local", "alice")
            .await
            .unwrap()
    );
    cs.add_user(alice()).await;
    assert_eq!(
        cs.verify("u:alice", &otp).await.status,
        401,
        "the new alice must not inherit the old OTP"
    );
}

#[tokio::test]
async fn audit_records_older_than_the_retention_are_pruned() {
    let extra = "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n\n[audit]\nretention = \"1d\"\n";
    let cs = Countersign::start(&Setup {
        extra: extra.into(),
        default_mechanisms: vec!["File"],
        ..Setup::default()
    })
    .await;
    assert_eq!(
        cs.app.config.audit_retention,
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(cs.verify("u:old", "123456").await.status, 401);
    cs.clock.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(cs.verify("u:new", "123456").await.status, 401);
    countersign::app::prune_audit(
        cs.app.store.as_ref(),
        cs.clock.as_ref(),
        Duration::from_secs(86_400),
    )
    .await;
    let left = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.identity.as_str()).collect::<Vec<_>>(),
        ["u:new"]
    );
}

#[tokio::test]
async fn a_deliver_that_delivers_nothing_keeps_the_outstanding_otp() {
    // Issue 7, item 8: an unknown mechanism or a foreign recipient ID used to delete the code
    // an earlier request had delivered.
    let (smtp, cs) = with_smtp().await;
    cs.add_user(alice()).await;
    let otp = deliver_and_read(&cs, &smtp, 1).await;
    for mechanisms in [
        serde_json::json!(["Pigeon"]),
        serde_json::json!([{"name": "Email", "recipient_id": "mallory@evil.example"}]),
    ] {
        let a = cs
            .deliver(serde_json::json!({
                "authentication_id": "u:alice",
                "static_password": "alice-password",
                "mechanisms": mechanisms,
            }))
            .await;
        assert_eq!(a.status, 422, "{}", a.json);
    }
    assert_eq!(smtp.wait_for(1).len(), 1, "nothing more was sent");
    // The SMTP server goes away: a deliver whose transport fails keeps the code too.
    drop(smtp);
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 502, "{}", a.json);
    assert_eq!(cs.verify("u:alice", &otp).await.status, 200);
}
