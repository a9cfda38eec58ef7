//! The store contract: what every implementation of the store ports must do, driven through the
//! ports alone (`Arc<dyn Store>`), so the same checks run unchanged against each backend. A
//! backend joins by implementing [`Backend`] and listing the checks in [`contract!`], as
//! `sqlite` does at the bottom; PostgreSQL will add one more such module. Approval requests
//! and the outbox have their checks in `store_contract_approvals`, on the same [`Backend`].

use std::collections::BTreeSet;
use std::sync::Arc;

use countersign_core::audit::{AuditAction, AuditOutcome, AuditQuery, AuditRecord, LoginFacts};
use countersign_core::model::{AccountState, Dn, Sponsor, Timestamp, User, UserKey};
use countersign_core::ports::{IssuedOtp, LocalUser, Store, StoreError};

/// A kind of store under test.
pub(crate) trait Backend: Sync {
    /// Keeps one database alive (a temporary folder, a PostgreSQL schema) until dropped.
    type Db: Send + Sync;
    /// A new, empty database.
    async fn create(&self) -> Self::Db;
    /// A store on `db`. Called again, it is another process's view or a restart.
    async fn open(&self, db: &Self::Db) -> Arc<dyn Store>;
}

pub(crate) async fn fresh<B: Backend>(b: &B) -> (B::Db, Arc<dyn Store>) {
    let db = b.create().await;
    let store = b.open(&db).await;
    (db, store)
}

// ---- OTPs ----

fn key(n: &str) -> UserKey {
    UserKey {
        directory: "local".into(),
        dn: format!("uid={n},ou=people,dc=example,dc=org"),
    }
}

fn otp(user: &UserKey, id: &str) -> IssuedOtp {
    IssuedOtp {
        id: id.into(),
        user: user.clone(),
        hash: id.as_bytes().to_vec(),
        issued_at: Timestamp(1_000),
        failed_attempts: 0,
    }
}

async fn otp_put_replaces_the_outstanding_one<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let (alice, bob) = (key("alice"), key("bob"));
    assert_eq!(s.get_otp(&alice).await.unwrap(), None);
    s.put_otp(&otp(&alice, "a1")).await.unwrap();
    s.put_otp(&otp(&bob, "b1")).await.unwrap();
    assert_eq!(s.get_otp(&alice).await.unwrap(), Some(otp(&alice, "a1")));
    s.put_otp(&otp(&alice, "a2")).await.unwrap();
    assert_eq!(s.get_otp(&alice).await.unwrap(), Some(otp(&alice, "a2")));
    // The replaced one is gone for good; the other user's is untouched.
    assert!(!s.consume_otp(&alice, "a1", 3).await.unwrap());
    assert_eq!(s.get_otp(&bob).await.unwrap(), Some(otp(&bob, "b1")));
    assert!(s.consume_otp(&alice, "a2", 3).await.unwrap());
    assert_eq!(s.get_otp(&alice).await.unwrap(), None);
    assert!(
        !s.consume_otp(&alice, "a2", 3).await.unwrap(),
        "used once only"
    );
}

async fn otp_concurrent_consumers_have_exactly_one_winner<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = key("alice");
    for round in 0..5 {
        let id = format!("r{round}");
        s.put_otp(&otp(&alice, &id)).await.unwrap();
        let tries: Vec<_> = (0..32)
            .map(|_| {
                let (s, alice, id) = (s.clone(), alice.clone(), id.clone());
                tokio::spawn(async move { s.consume_otp(&alice, &id, 3).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in tries {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1, "round {round}");
        assert_eq!(s.get_otp(&alice).await.unwrap(), None);
    }
}

async fn otp_failures_count_up_to_the_limit_then_void_it<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = key("alice");
    s.put_otp(&otp(&alice, "a")).await.unwrap();
    assert_eq!(s.fail_otp(&alice, "a", 3).await.unwrap(), 1);
    assert_eq!(s.fail_otp(&alice, "a", 3).await.unwrap(), 2);
    assert_eq!(
        s.get_otp(&alice).await.unwrap().unwrap().failed_attempts,
        2,
        "failures are kept with the OTP"
    );
    assert_eq!(s.fail_otp(&alice, "a", 3).await.unwrap(), 3);
    assert_eq!(
        s.get_otp(&alice).await.unwrap(),
        None,
        "voided at the limit"
    );
    assert!(!s.consume_otp(&alice, "a", 3).await.unwrap());
    // A failure against a voided OTP reports the limit: nothing left to try.
    assert_eq!(s.fail_otp(&alice, "a", 3).await.unwrap(), 3);
}

async fn otp_consume_refuses_an_otp_with_max_failures<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = key("alice");
    s.put_otp(&otp(&alice, "a")).await.unwrap();
    assert_eq!(s.fail_otp(&alice, "a", 5).await.unwrap(), 1);
    assert_eq!(s.fail_otp(&alice, "a", 5).await.unwrap(), 2);
    // Counted against a lower limit (the setting was lowered meanwhile): no longer usable.
    assert!(!s.consume_otp(&alice, "a", 2).await.unwrap());
    assert!(s.consume_otp(&alice, "a", 3).await.unwrap());
}

async fn otp_concurrent_failures_are_each_counted_once<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = key("alice");
    s.put_otp(&otp(&alice, "a")).await.unwrap();
    let fails: Vec<_> = (0..20)
        .map(|_| {
            let (s, alice) = (s.clone(), alice.clone());
            tokio::spawn(async move { s.fail_otp(&alice, "a", 5).await.unwrap() })
        })
        .collect();
    let mut counts = Vec::new();
    for f in fails {
        counts.push(f.await.unwrap());
    }
    counts.sort_unstable();
    // 1..=5 once each as the count climbs, then "voided" (the limit) for everyone after.
    let mut expected: Vec<u32> = (1..=5).collect();
    expected.extend([5; 15]);
    assert_eq!(counts, expected);
    assert_eq!(s.get_otp(&alice).await.unwrap(), None);
}

async fn otp_consume_racing_the_last_failure_leaves_nothing<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = key("alice");
    for round in 0..10 {
        let id = format!("r{round}");
        s.put_otp(&otp(&alice, &id)).await.unwrap();
        let (s1, a1, i1) = (s.clone(), alice.clone(), id.clone());
        let consume = tokio::spawn(async move { s1.consume_otp(&a1, &i1, 1).await.unwrap() });
        let (s2, a2, i2) = (s.clone(), alice.clone(), id.clone());
        let fail = tokio::spawn(async move { s2.fail_otp(&a2, &i2, 1).await.unwrap() });
        consume.await.unwrap();
        // With a limit of one failure, either the code was used first (and the failure finds
        // it gone, as good as voided) or the failure voided it first (and the use fails):
        // the failure reports the limit either way, and nothing is left to try.
        assert_eq!(fail.await.unwrap(), 1, "round {round}");
        assert_eq!(s.get_otp(&alice).await.unwrap(), None, "round {round}");
    }
}

async fn otp_a_stale_id_never_touches_the_newer_otp<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = key("alice");
    s.put_otp(&otp(&alice, "old")).await.unwrap();
    s.put_otp(&otp(&alice, "new")).await.unwrap();
    assert_eq!(s.fail_otp(&alice, "old", 3).await.unwrap(), 3);
    s.delete_otp(&alice, "old").await.unwrap();
    assert!(!s.consume_otp(&alice, "old", 3).await.unwrap());
    assert_eq!(s.get_otp(&alice).await.unwrap(), Some(otp(&alice, "new")));
    s.delete_otp(&alice, "new").await.unwrap();
    assert_eq!(s.get_otp(&alice).await.unwrap(), None);
}

// ---- Audit ----

fn record(at: i64, identity: &str) -> AuditRecord {
    AuditRecord {
        at: Timestamp(at),
        action: AuditAction::Verify,
        front: "http".into(),
        identity: identity.into(),
        user_dn: None,
        client: Some("192.0.2.1".into()),
        outcome: AuditOutcome::Failure,
        reason: "wrong OTP".into(),
        mechanism: None,
        recipient: None,
        login: Default::default(),
    }
}

fn identities(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.identity.as_str()).collect()
}

async fn audit_lists_newest_first_within_the_limit<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    assert!(
        s.list_audit(&AuditQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    let mut full = record(10, "u:first");
    full.action = AuditAction::Deliver;
    full.outcome = AuditOutcome::Success;
    full.front = "ldap".into();
    full.user_dn = Some("uid=first,dc=example,dc=org".into());
    full.client = None;
    full.reason = "delivered".into();
    full.mechanism = Some("Email".into());
    full.recipient = Some("f***@example.org".into());
    s.append_audit(&full).await.unwrap();
    for (at, who) in [(20, "u:second"), (30, "u:third"), (40, "u:fourth")] {
        s.append_audit(&record(at, who)).await.unwrap();
    }
    let all = s.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(
        identities(&all),
        ["u:fourth", "u:third", "u:second", "u:first"]
    );
    assert_eq!(all[3], full, "every field comes back as written");
    let two = AuditQuery {
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        identities(&s.list_audit(&two).await.unwrap()),
        ["u:fourth", "u:third"]
    );
    // Same time stamp: the one appended later is newer.
    s.append_audit(&record(40, "u:fifth")).await.unwrap();
    let one = AuditQuery {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(identities(&s.list_audit(&one).await.unwrap()), ["u:fifth"]);
}

async fn audit_filters_combine_and_match_as_documented<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let mut rows = vec![
        record(100, "u:Alice"),
        record(200, "uid=bob,dc=example,dc=org"),
        record(300, "u:carol_x"),
        record(400, "u:carolax"),
        record(500, "u:Åsa"),
    ];
    rows[0].action = AuditAction::Deliver;
    rows[0].outcome = AuditOutcome::Success;
    rows[1].action = AuditAction::Bind;
    rows[1].client = Some("198.51.100.7".into());
    rows[2].user_dn = Some("uid=carol,ou=People,dc=example,dc=org".into());
    rows[3].client = None;
    for r in &rows {
        s.append_audit(r).await.unwrap();
    }
    let list = |q: AuditQuery| {
        let s = s.clone();
        async move { s.list_audit(&q).await.unwrap() }
    };
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    let ids = |r: Vec<AuditRecord>| r.into_iter().map(|r| r.identity).collect::<Vec<_>>();

    assert_eq!(
        ids(list(q(|q| q.action = Some(AuditAction::Deliver))).await),
        ["u:Alice"]
    );
    assert_eq!(
        ids(list(q(|q| q.action = Some(AuditAction::Bind))).await),
        ["uid=bob,dc=example,dc=org"]
    );
    assert_eq!(
        ids(list(q(|q| q.outcome = Some(AuditOutcome::Success))).await),
        ["u:Alice"]
    );
    assert_eq!(
        list(q(|q| q.outcome = Some(AuditOutcome::Failure)))
            .await
            .len(),
        4
    );
    // User: a substring of the identity or of the user DN, ignoring case.
    assert_eq!(
        ids(list(q(|q| q.user = Some("ALICE".into()))).await),
        ["u:Alice"]
    );
    assert_eq!(
        ids(list(q(|q| q.user = Some("uid=BOB".into()))).await),
        ["uid=bob,dc=example,dc=org"]
    );
    assert_eq!(
        ids(list(q(|q| q.user = Some("ou=people".into()))).await),
        ["u:carol_x"],
        "matched on the user DN"
    );
    assert_eq!(
        ids(list(q(|q| q.user = Some("carol_".into()))).await),
        ["u:carol_x"],
        "`_` is a character, not a wildcard"
    );
    assert!(list(q(|q| q.user = Some("%".into()))).await.is_empty());
    assert_eq!(
        ids(list(q(|q| q.user = Some("åSA".into()))).await),
        ["u:Åsa"],
        "case is ignored beyond ASCII"
    );
    // Client: exactly.
    assert_eq!(
        ids(list(q(|q| q.client = Some("198.51.100.7".into()))).await),
        ["uid=bob,dc=example,dc=org"]
    );
    assert!(
        list(q(|q| q.client = Some("198.51.100".into())))
            .await
            .is_empty()
    );
    // Since: at or after.
    assert_eq!(
        ids(list(q(|q| q.since = Some(Timestamp(400)))).await),
        ["u:Åsa", "u:carolax"]
    );
    // Combined with AND, newest first, and the limit counts matches only.
    assert_eq!(
        ids(list(q(|q| {
            q.user = Some("carol".into());
            q.client = Some("192.0.2.1".into());
        }))
        .await),
        ["u:carol_x"]
    );
    assert_eq!(
        ids(list(q(|q| {
            q.outcome = Some(AuditOutcome::Failure);
            q.user = Some("u:".into());
            q.limit = 2;
        }))
        .await),
        ["u:Åsa", "u:carolax"]
    );
    assert_eq!(
        ids(list(q(|q| {
            q.user = Some("a".into());
            q.since = Some(Timestamp(150));
            q.limit = 1;
        }))
        .await),
        ["u:Åsa"]
    );
}

async fn audit_prune_removes_only_older_records<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    for (at, who) in [(100, "a"), (200, "b"), (300, "c"), (400, "d")] {
        s.append_audit(&record(at, who)).await.unwrap();
    }
    assert_eq!(s.prune_audit(Timestamp(100)).await.unwrap(), 0);
    assert_eq!(s.prune_audit(Timestamp(300)).await.unwrap(), 2);
    let left = s.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(
        identities(&left),
        ["d", "c"],
        "a record exactly at the cut stays"
    );
    assert_eq!(s.prune_audit(Timestamp(300)).await.unwrap(), 0);
}

async fn audit_append_returns_once_the_record_is_committed<B: Backend>(b: &B) {
    let (db, s) = fresh(b).await;
    // Another process's view of the same database.
    let other = b.open(&db).await;
    let appends: Vec<_> = (0..200)
        .map(|i| {
            let (s, other) = (s.clone(), other.clone());
            tokio::spawn(async move {
                let who = format!("u:concurrent-{i:03}");
                s.append_audit(&record(i, &who)).await.unwrap();
                let seen = other
                    .list_audit(&AuditQuery {
                        user: Some(who.clone()),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                assert_eq!(identities(&seen), [who.as_str()], "visible once appended");
            })
        })
        .collect();
    for a in appends {
        a.await.unwrap();
    }
    let all = other.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 200);
    let distinct: BTreeSet<_> = all.iter().map(|r| r.identity.clone()).collect();
    assert_eq!(distinct.len(), 200);
}

async fn audit_login_facts_are_kept_and_filter_exactly<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let facts = |app: &str, policy: Option<&str>, profile: &str, login: Option<&str>| LoginFacts {
        application: Some(app.into()),
        policy: policy.map(Into::into),
        profile: Some(profile.into()),
        login: login.map(Into::into),
    };
    let mut rows = vec![
        record(100, "u:plain"),
        record(200, "u:vpn-informed"),
        record(300, "u:vpn-pending"),
        record(400, "u:vpn-decision"),
        record(500, "u:wiki-default"),
    ];
    rows[1].action = AuditAction::Login;
    rows[1].login = facts("vpn", Some("staff"), "inform", None);
    rows[2].action = AuditAction::Login;
    rows[2].login = facts("vpn", Some("contractors"), "approve", Some("aaaa"));
    rows[3].action = AuditAction::Decision;
    rows[3].login = facts("vpn", Some("contractors"), "approve", Some("aaaa"));
    rows[4].action = AuditAction::Login;
    // No policies configured: the default profile, no policy.
    rows[4].login = facts("wiki", None, "approve", Some("bbbb"));
    for r in &rows {
        s.append_audit(r).await.unwrap();
    }
    let all = s.list_audit(&AuditQuery::default()).await.unwrap();
    let mut newest_first = rows.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first, "the login facts come back as written");

    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        let s = s.clone();
        async move {
            identities(&s.list_audit(&q).await.unwrap())
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        q(|q| q.application = Some("vpn".into())).await,
        ["u:vpn-decision", "u:vpn-pending", "u:vpn-informed"]
    );
    assert!(
        q(|q| q.application = Some("VPN".into())).await.is_empty(),
        "exact, not ignoring case"
    );
    assert!(
        q(|q| q.application = Some("vp".into())).await.is_empty(),
        "not a substring"
    );
    assert_eq!(
        q(|q| q.policy = Some("contractors".into())).await,
        ["u:vpn-decision", "u:vpn-pending"]
    );
    assert_eq!(
        q(|q| q.profile = Some("approve".into())).await,
        ["u:wiki-default", "u:vpn-decision", "u:vpn-pending"]
    );
    // Everything about one login: its request and its decision.
    assert_eq!(
        q(|q| q.login = Some("aaaa".into())).await,
        ["u:vpn-decision", "u:vpn-pending"]
    );
    assert!(q(|q| q.login = Some("aaa".into())).await.is_empty());
    // Combined with each other and with the older filters.
    assert_eq!(
        q(|q| {
            q.login = Some("aaaa".into());
            q.action = Some(AuditAction::Decision);
        })
        .await,
        ["u:vpn-decision"]
    );
    assert_eq!(
        q(|q| {
            q.profile = Some("approve".into());
            q.application = Some("wiki".into());
            q.user = Some("WIKI".into());
        })
        .await,
        ["u:wiki-default"]
    );
    assert_eq!(
        q(|q| {
            q.application = Some("vpn".into());
            q.limit = 1;
        })
        .await,
        ["u:vpn-decision"]
    );
}

async fn everything_written_is_there_after_reopening<B: Backend>(b: &B) {
    let (db, s) = fresh(b).await;
    let alice = key("alice");
    s.put_otp(&otp(&alice, "a")).await.unwrap();
    s.fail_otp(&alice, "a", 3).await.unwrap();
    s.append_audit(&record(1, "u:durable")).await.unwrap();
    s.insert_local_user(&local_user("local", "dora", "dora@example.org"))
        .await
        .unwrap();
    drop(s);
    let s = b.open(&db).await;
    assert_eq!(s.get_otp(&alice).await.unwrap().unwrap().failed_attempts, 1);
    assert_eq!(
        identities(&s.list_audit(&AuditQuery::default()).await.unwrap()),
        ["u:durable"]
    );
    assert!(s.local_user("local", "dora").await.unwrap().is_some());
}

// ---- Local users ----

pub(crate) fn local_user(directory: &str, username: &str, mail: &str) -> LocalUser {
    LocalUser {
        user: User {
            directory: directory.into(),
            dn: Dn::new(format!("uid={username},ou=people,dc=example,dc=org")),
            id: Some(format!("id-of-{username}")),
            username: username.into(),
            display_name: Some(format!("{username} Example")),
            mail: vec![mail.into()],
            mobile: vec!["+41 79 555 01 01".into()],
            attributes: [
                ("department".to_owned(), vec!["Finance".to_owned()]),
                ("employeenumber".to_owned(), vec![format!("E-{username}")]),
            ]
            .into(),
            sponsor: Some(Sponsor {
                name: Some("Sam Sponsor".into()),
                email: Some("sam@example.org".into()),
                phone: None,
            }),
            preferred_mechanisms: vec!["SMS".into(), "Email".into()],
            account: AccountState {
                locked_until: Some(Timestamp(5_000)),
                ..Default::default()
            },
        },
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
    }
}

fn usernames(users: &[LocalUser]) -> Vec<&str> {
    users.iter().map(|u| u.user.username.as_str()).collect()
}

async fn local_users_get_an_id_when_added_and_keep_it<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let mut bob = local_user("local", "bob", "bob@example.org");
    bob.user.id = None;
    s.insert_local_user(&bob).await.unwrap();
    let stored = s.local_user("local", "bob").await.unwrap().unwrap();
    let id = stored.user.id.clone().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    // An update that knows no id (as the command line's) keeps the one it has.
    let mut changed = bob.clone();
    changed.user.mail = vec!["b@example.org".into()];
    s.update_local_user(&changed).await.unwrap();
    let after = s.local_user("local", "bob").await.unwrap().unwrap();
    assert_eq!(after.user.id.as_deref(), Some(id.as_str()));
    // Another user, added the same way, gets another.
    let mut carol = local_user("local", "carol", "carol@example.org");
    carol.user.id = None;
    s.insert_local_user(&carol).await.unwrap();
    let carol = s.local_user("local", "carol").await.unwrap().unwrap();
    assert_ne!(carol.user.id, Some(id));
}

async fn local_users_can_be_added_read_changed_and_removed<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = local_user("local", "alice", "alice@example.org");
    s.insert_local_user(&alice).await.unwrap();
    assert_eq!(
        s.local_user("local", "alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        s.local_user("local", "ALICE").await.unwrap(),
        Some(alice.clone()),
        "usernames ignore case"
    );
    assert_eq!(s.local_user("other", "alice").await.unwrap(), None);
    assert_eq!(
        s.local_user_by_dn("local", &alice.user.dn.normalized())
            .await
            .unwrap(),
        Some(alice.clone())
    );

    let mut changed = alice.clone();
    changed.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".into();
    changed.user.mail = vec!["a.new@example.org".into()];
    changed.user.display_name = None;
    changed.user.sponsor = None;
    changed.user.account = AccountState {
        disabled: true,
        ..Default::default()
    };
    s.update_local_user(&changed).await.unwrap();
    assert_eq!(
        s.local_user("local", "alice").await.unwrap(),
        Some(changed.clone())
    );

    let ghost = local_user("local", "ghost", "ghost@example.org");
    assert_eq!(
        s.update_local_user(&ghost).await.unwrap_err(),
        StoreError::NotFound
    );
    assert_eq!(s.local_user("local", "ghost").await.unwrap(), None);

    // Removing a user takes the outstanding OTP along.
    s.put_otp(&otp(&changed.user.key(), "a")).await.unwrap();
    assert!(s.delete_local_user("local", "alice").await.unwrap());
    assert!(!s.delete_local_user("local", "alice").await.unwrap());
    assert_eq!(s.local_user("local", "alice").await.unwrap(), None);
    assert_eq!(s.get_otp(&changed.user.key()).await.unwrap(), None);
    assert!(
        s.local_users_matching("local", "mail", "a.new@example.org")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn local_users_are_listed_by_directory_and_name<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    for (d, u) in [("local", "carol"), ("local", "alice"), ("staff", "bob")] {
        s.insert_local_user(&local_user(d, u, &format!("{u}@example.org")))
            .await
            .unwrap();
    }
    assert_eq!(
        usernames(&s.list_local_users("local").await.unwrap()),
        ["alice", "carol"]
    );
    assert_eq!(
        usernames(&s.list_local_users("staff").await.unwrap()),
        ["bob"]
    );
    assert!(s.list_local_users("none").await.unwrap().is_empty());
}

async fn local_user_duplicates_are_refused<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let alice = local_user("local", "alice", "alice@example.org");
    s.insert_local_user(&alice).await.unwrap();

    let same_name = local_user("local", "Alice", "other@example.org");
    let mut same_name = same_name;
    same_name.user.dn = Dn::new("uid=alice2,ou=people,dc=example,dc=org");
    assert!(matches!(
        s.insert_local_user(&same_name).await,
        Err(StoreError::Conflict(_))
    ));
    let mut same_dn = local_user("local", "alicia", "alicia@example.org");
    same_dn.user.dn = Dn::new("UID=Alice, OU=People, DC=example, DC=org");
    assert!(matches!(
        s.insert_local_user(&same_dn).await,
        Err(StoreError::Conflict(_))
    ));
    // A refused insert leaves nothing behind, and the first user is unchanged.
    assert_eq!(s.local_user("local", "alicia").await.unwrap(), None);
    assert!(
        s.local_users_matching("local", "mail", "alicia@example.org")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.local_user("local", "alice").await.unwrap(), Some(alice));
    // Another directory is another namespace.
    s.insert_local_user(&local_user("staff", "alice", "alice@example.org"))
        .await
        .unwrap();
}

async fn local_users_match_on_attributes_ignoring_case<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let mut alice = local_user("local", "alice", "Alice.Smith@Example.org");
    alice.user.mail.push("a.smith@example.org".into());
    let asa = local_user("local", "asa", "ÅSA@example.org");
    s.insert_local_user(&alice).await.unwrap();
    s.insert_local_user(&asa).await.unwrap();
    s.insert_local_user(&local_user("staff", "alice", "alice.smith@example.org"))
        .await
        .unwrap();

    let m = |a: &'static str, v: &'static str| {
        let s = s.clone();
        async move {
            let mut names: Vec<String> = s
                .local_users_matching("local", a, v)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.user.username)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(m("uid", "ALICE").await, ["alice"]);
    assert_eq!(m("mail", "alice.smith@example.ORG").await, ["alice"]);
    assert_eq!(
        m("mail", "a.smith@example.org").await,
        ["alice"],
        "any value"
    );
    assert_eq!(m("mail", "åsa@example.org").await, ["asa"], "beyond ASCII");
    assert_eq!(m("mobile", "+41 79 555 01 01").await, ["alice", "asa"]);
    assert_eq!(m("cn", "ALICE example").await, ["alice"]);
    assert_eq!(m("department", "FINANCE").await, ["alice", "asa"]);
    assert_eq!(m("employeenumber", "e-alice").await, ["alice"]);
    assert_eq!(
        m("EmployeeNumber", "E-asa").await,
        ["asa"],
        "attribute names too"
    );
    assert!(m("mail", "alice").await.is_empty(), "whole values only");
    assert!(m("uid", "alice@example.org").await.is_empty());
    assert!(m("title", "finance").await.is_empty());

    // A change re-indexes: the old address no longer finds the user.
    let mut moved = alice.clone();
    moved.user.mail = vec!["alice@new.example".into()];
    s.update_local_user(&moved).await.unwrap();
    assert!(m("mail", "a.smith@example.org").await.is_empty());
    assert_eq!(m("mail", "ALICE@new.example").await, ["alice"]);
}

/// One `#[tokio::test]` per check for a backend: `contract!(backend_expression)`.
macro_rules! contract {
    ($backend:expr) => {
        contract!($backend;
            otp_put_replaces_the_outstanding_one,
            otp_concurrent_consumers_have_exactly_one_winner,
            otp_failures_count_up_to_the_limit_then_void_it,
            otp_consume_refuses_an_otp_with_max_failures,
            otp_concurrent_failures_are_each_counted_once,
            otp_consume_racing_the_last_failure_leaves_nothing,
            otp_a_stale_id_never_touches_the_newer_otp,
            audit_lists_newest_first_within_the_limit,
            audit_filters_combine_and_match_as_documented,
            audit_prune_removes_only_older_records,
            audit_append_returns_once_the_record_is_committed,
            audit_login_facts_are_kept_and_filter_exactly,
            everything_written_is_there_after_reopening,
            local_users_can_be_added_read_changed_and_removed,
            local_users_get_an_id_when_added_and_keep_it,
            local_users_are_listed_by_directory_and_name,
            local_user_duplicates_are_refused,
            local_users_match_on_attributes_ignoring_case,
        );
    };
    ($backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                super::$check(&$backend).await;
            }
        )*
    };
}

/// The embedded SQLite store, one file in a temporary folder per check.
pub(crate) mod sqlite {
    use std::sync::Arc;

    use countersign::store::SqliteStore;
    use countersign_core::ports::Store;

    pub struct Sqlite;

    impl super::Backend for Sqlite {
        type Db = tempfile::TempDir;

        async fn create(&self) -> tempfile::TempDir {
            tempfile::tempdir().unwrap()
        }

        async fn open(&self, db: &tempfile::TempDir) -> Arc<dyn Store> {
            Arc::new(SqliteStore::open(&db.path().join("state/countersign.db")).unwrap())
        }
    }

    contract!(Sqlite);
}
