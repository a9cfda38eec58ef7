//! The store contract, continued: approval requests and the outbox, driven through the ports
//! alone on the same [`Backend`] as `store_contract`, so PostgreSQL runs these unchanged too.
//! What matters to people: one pending request per user and application, the first decision
//! wins and a late link approves nothing, and no outbox message is lost or sent twice.

use std::collections::BTreeSet;
use std::sync::Arc;

use countersign_core::approval::{ApprovalRequest, ApprovalState, DecidedBy, Decision};
use countersign_core::model::{Timestamp, UserKey};
use countersign_core::outbox::{OutboxMessage, OutboxState};
use countersign_core::ports::{ApprovalQuery, DecideOutcome, Store, StoreError};

use crate::store_contract::{Backend, fresh};

// ---- Approval requests ----

fn user(name: &str) -> UserKey {
    UserKey {
        directory: "corp".into(),
        dn: format!("uid={},ou=people,dc=example,dc=org", name.to_lowercase()),
    }
}

/// A pending request of `name` for `app`, created at `created` (ms), expiring 1000 ms later;
/// its id and token hash follow from the arguments, so they differ between requests.
fn request(name: &str, app: &str, created: i64) -> ApprovalRequest {
    let id = format!("{name}-{app}-{created}");
    ApprovalRequest {
        token_hash: format!("hash of {id}").into_bytes(),
        id,
        user: user(name),
        user_dn: format!("uid={name},ou=People,dc=example,dc=org"),
        username: name.into(),
        display_name: Some(format!("{name} Example")),
        application: app.into(),
        profile: "managers".into(),
        front: "http".into(),
        client: Some("192.0.2.10".into()),
        recipient: "boss@example.org".into(),
        approver: "Boss".into(),
        created_at: Timestamp(created),
        expires_at: Timestamp(created + 1000),
        state: ApprovalState::Pending,
        decided_at: None,
        decided_by: None,
        sent_at: None,
    }
}

fn by_link(address: &str) -> DecidedBy {
    DecidedBy {
        channel: "link".into(),
        address: Some(address.into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
        operator: None,
    }
}

fn decision(state: ApprovalState, at: i64) -> Decision {
    Decision {
        state,
        at: Timestamp(at),
        by: by_link("198.51.100.4"),
    }
}

fn ids(requests: &[ApprovalRequest]) -> Vec<&str> {
    requests.iter().map(|r| r.id.as_str()).collect()
}

async fn approval_is_read_back_by_id_and_by_token_hash<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let r = request("alice", "vpn", 1_000);
    let mut bare = request("bob", "vpn", 1_000);
    bare.display_name = None;
    bare.client = None;
    s.insert_approval(&r).await.unwrap();
    s.insert_approval(&bare).await.unwrap();
    assert_eq!(s.approval(&r.id).await.unwrap(), Some(r.clone()));
    assert_eq!(s.approval(&bare.id).await.unwrap(), Some(bare.clone()));
    assert_eq!(
        s.approval_by_token(&r.token_hash).await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(s.approval("no-such-login").await.unwrap(), None);
    assert_eq!(s.approval_by_token(b"no such hash").await.unwrap(), None);
    assert_eq!(
        s.approval_by_token(&r.token_hash[..5]).await.unwrap(),
        None,
        "the whole hash, not a prefix"
    );
}

async fn approval_one_pending_request_per_user_and_application<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let first = request("alice", "vpn", 1_000);
    s.insert_approval(&first).await.unwrap();
    let again = request("alice", "vpn", 1_001);
    assert!(matches!(
        s.insert_approval(&again).await,
        Err(StoreError::Conflict(_))
    ));
    // Written with other spelling of the DN, the key is the same user.
    let mut respelt = request("alice", "vpn", 1_002);
    respelt.user_dn = "UID=Alice,OU=People,DC=Example,DC=Org".into();
    assert!(matches!(
        s.insert_approval(&respelt).await,
        Err(StoreError::Conflict(_))
    ));
    // Another application, another user, another directory: each fine.
    s.insert_approval(&request("alice", "wiki", 1_003))
        .await
        .unwrap();
    s.insert_approval(&request("bob", "vpn", 1_004))
        .await
        .unwrap();
    let mut elsewhere = request("alice", "vpn", 1_005);
    elsewhere.user.directory = "partners".into();
    s.insert_approval(&elsewhere).await.unwrap();
    assert_eq!(s.approval(&again.id).await.unwrap(), None, "nothing kept");
    // Once the first is decided, the user may ask again.
    s.decide_approval(&first.id, &decision(ApprovalState::Rejected, 1_500))
        .await
        .unwrap();
    s.insert_approval(&request("alice", "vpn", 1_600))
        .await
        .unwrap();
}

async fn approval_concurrent_inserts_leave_one_pending_request<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.insert_approval(&request("carol", "vpn", 100 + i)).await })
        })
        .collect();
    let mut created = 0;
    for t in tries {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
    let pending = s
        .list_approvals(&ApprovalQuery {
            state: Some(ApprovalState::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
}

async fn approval_latest_is_the_newest_in_any_state<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    assert_eq!(
        s.latest_approval(&user("alice"), "vpn").await.unwrap(),
        None
    );
    let old = request("alice", "vpn", 1_000);
    s.insert_approval(&old).await.unwrap();
    s.decide_approval(&old.id, &decision(ApprovalState::Approved, 1_100))
        .await
        .unwrap();
    let newer = request("alice", "vpn", 2_000);
    s.insert_approval(&newer).await.unwrap();
    s.insert_approval(&request("alice", "wiki", 3_000))
        .await
        .unwrap();
    s.insert_approval(&request("bob", "vpn", 4_000))
        .await
        .unwrap();
    let latest = s.latest_approval(&user("alice"), "vpn").await.unwrap();
    assert_eq!(latest, Some(newer.clone()));
    s.decide_approval(&newer.id, &decision(ApprovalState::Rejected, 2_100))
        .await
        .unwrap();
    let latest = s
        .latest_approval(&user("alice"), "vpn")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.id.as_str(), latest.state),
        (newer.id.as_str(), ApprovalState::Rejected)
    );
    assert_eq!(s.latest_approval(&user("dave"), "vpn").await.unwrap(), None);
}

async fn approval_the_first_decision_wins<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let r = request("alice", "vpn", 1_000);
    s.insert_approval(&r).await.unwrap();
    let approve = decision(ApprovalState::Approved, 1_200);
    let DecideOutcome::Decided(decided) = s.decide_approval(&r.id, &approve).await.unwrap() else {
        panic!("the first decision is recorded");
    };
    let expected = ApprovalRequest {
        state: ApprovalState::Approved,
        decided_at: Some(Timestamp(1_200)),
        decided_by: Some(approve.by.clone()),
        ..r.clone()
    };
    assert_eq!(decided, expected);
    assert_eq!(s.approval(&r.id).await.unwrap(), Some(expected.clone()));
    // A later reject, or an operator's cancel, changes nothing.
    for late in [ApprovalState::Rejected, ApprovalState::Cancelled] {
        assert_eq!(
            s.decide_approval(&r.id, &decision(late, 1_300))
                .await
                .unwrap(),
            DecideOutcome::AlreadyFinal(expected.clone())
        );
    }
    assert_eq!(
        s.decide_approval("no-such-login", &approve).await.unwrap(),
        DecideOutcome::NotFound
    );
}

async fn approval_concurrent_deciders_have_exactly_one_winner<B: Backend>(b: &B) {
    let (db, s) = fresh(b).await;
    // Half the deciders go through another process's view of the same database.
    let other = b.open(&db).await;
    for round in 0..5 {
        let r = request("alice", "vpn", 10_000 * (round + 1));
        s.insert_approval(&r).await.unwrap();
        let deciders: Vec<_> = (0..8)
            .map(|i| {
                let s = if i % 4 < 2 { s.clone() } else { other.clone() };
                let id = r.id.clone();
                let state = [ApprovalState::Approved, ApprovalState::Rejected][i % 2];
                let d = Decision {
                    state,
                    at: Timestamp(r.created_at.0 + 10),
                    by: by_link(&format!("198.51.100.{i}")),
                };
                tokio::spawn(async move { s.decide_approval(&id, &d).await.unwrap() })
            })
            .collect();
        let mut winners = Vec::new();
        let mut finals = Vec::new();
        for d in deciders {
            match d.await.unwrap() {
                DecideOutcome::Decided(r) => winners.push(r),
                DecideOutcome::AlreadyFinal(r) => finals.push(r),
                DecideOutcome::NotFound => panic!("round {round}: not found"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let winner = &winners[0];
        // Everyone else sees the winner's decision, and so does a reader.
        assert!(finals.iter().all(|f| f == winner), "round {round}");
        assert_eq!(s.approval(&r.id).await.unwrap().as_ref(), Some(winner));
    }
}

async fn approval_a_late_link_finds_it_expired_but_cancel_works_until_final<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let r = request("alice", "vpn", 1_000); // expires at 2000
    s.insert_approval(&r).await.unwrap();
    // At the expiry exactly it is too late: the request is marked expired, as of its expiry.
    let outcome = s
        .decide_approval(&r.id, &decision(ApprovalState::Approved, 2_000))
        .await
        .unwrap();
    let expired = ApprovalRequest {
        state: ApprovalState::Expired,
        decided_at: Some(Timestamp(2_000)),
        decided_by: None,
        sent_at: None,
        ..r.clone()
    };
    assert_eq!(outcome, DecideOutcome::AlreadyFinal(expired.clone()));
    assert_eq!(s.approval(&r.id).await.unwrap(), Some(expired.clone()));
    assert_eq!(
        s.decide_approval(&r.id, &decision(ApprovalState::Cancelled, 2_100))
            .await
            .unwrap(),
        DecideOutcome::AlreadyFinal(expired),
        "expired is final"
    );

    // A rejection just in time counts.
    let just = request("bob", "vpn", 1_000);
    s.insert_approval(&just).await.unwrap();
    let outcome = s
        .decide_approval(&just.id, &decision(ApprovalState::Rejected, 1_999))
        .await
        .unwrap();
    assert!(
        matches!(outcome, DecideOutcome::Decided(ref d) if d.state == ApprovalState::Rejected),
        "{outcome:?}"
    );

    // An operator may cancel a request still pending, even past its link's expiry.
    let stale = request("carol", "vpn", 1_000);
    s.insert_approval(&stale).await.unwrap();
    let cancel = Decision {
        state: ApprovalState::Cancelled,
        at: Timestamp(5_000),
        by: DecidedBy {
            channel: "cli".into(),
            address: None,
            user_agent: None,
            operator: Some("root".into()),
        },
    };
    let DecideOutcome::Decided(cancelled) = s.decide_approval(&stale.id, &cancel).await.unwrap()
    else {
        panic!("cancel works on a pending request");
    };
    assert_eq!(cancelled.state, ApprovalState::Cancelled);
    assert_eq!(cancelled.decided_at, Some(Timestamp(5_000)));
    assert_eq!(cancelled.decided_by, Some(cancel.by));
}

async fn approval_expiry_marks_only_due_pending_requests<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let a = request("alice", "vpn", 100); // expires 1100
    let b2 = request("bob", "vpn", 200); // 1200
    let c = request("carol", "vpn", 300); // 1300
    let decided = request("dave", "vpn", 0); // 1000, but approved
    for r in [&c, &a, &decided, &b2] {
        s.insert_approval(r).await.unwrap();
    }
    s.decide_approval(&decided.id, &decision(ApprovalState::Approved, 50))
        .await
        .unwrap();
    assert!(
        s.expire_approvals(Timestamp(1_099))
            .await
            .unwrap()
            .is_empty()
    );
    let expired = s.expire_approvals(Timestamp(1_200)).await.unwrap();
    assert_eq!(ids(&expired), [a.id.as_str(), b2.id.as_str()]);
    for (e, r) in expired.iter().zip([&a, &b2]) {
        assert_eq!(e.state, ApprovalState::Expired);
        assert_eq!(e.decided_at, Some(r.expires_at));
        assert_eq!(s.approval(&r.id).await.unwrap().as_ref(), Some(e));
    }
    assert_eq!(
        s.approval(&c.id).await.unwrap().unwrap().state,
        ApprovalState::Pending
    );
    assert_eq!(
        s.approval(&decided.id).await.unwrap().unwrap().state,
        ApprovalState::Approved
    );
    assert!(
        s.expire_approvals(Timestamp(1_200))
            .await
            .unwrap()
            .is_empty(),
        "each is returned once"
    );
    // An expired request no longer blocks a new one.
    s.insert_approval(&request("alice", "vpn", 1_300))
        .await
        .unwrap();
}

async fn approval_list_filters_combine<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let rows = [
        request("alice", "vpn", 100),
        request("Åsa", "vpn", 200),
        request("carol_x", "wiki", 300),
        request("carolax", "vpn", 400),
        request("bob", "wiki", 500),
    ];
    for r in &rows {
        s.insert_approval(r).await.unwrap();
    }
    s.decide_approval(&rows[0].id, &decision(ApprovalState::Approved, 150))
        .await
        .unwrap();
    s.decide_approval(&rows[2].id, &decision(ApprovalState::Rejected, 350))
        .await
        .unwrap();
    s.expire_approvals(Timestamp(1_250)).await.unwrap(); // Åsa's (1200)
    let list = |f: fn(&mut ApprovalQuery)| {
        let mut q = ApprovalQuery::default();
        f(&mut q);
        let s = s.clone();
        async move {
            let found = s.list_approvals(&q).await.unwrap();
            found.into_iter().map(|r| r.username).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(|_| {}).await,
        ["bob", "carolax", "carol_x", "Åsa", "alice"],
        "newest first"
    );
    assert_eq!(
        list(|q| q.state = Some(ApprovalState::Pending)).await,
        ["bob", "carolax"]
    );
    assert_eq!(
        list(|q| q.state = Some(ApprovalState::Expired)).await,
        ["Åsa"]
    );
    assert_eq!(
        list(|q| q.application = Some("wiki".into())).await,
        ["bob", "carol_x"]
    );
    assert!(
        list(|q| q.application = Some("WIKI".into()))
            .await
            .is_empty()
    );
    // User: a substring of the username or the user DN, ignoring case beyond ASCII.
    assert_eq!(list(|q| q.user = Some("ALICE".into())).await, ["alice"]);
    assert_eq!(list(|q| q.user = Some("åSA".into())).await, ["Åsa"]);
    assert_eq!(
        list(|q| q.user = Some("uid=bob,ou=people".into())).await,
        ["bob"],
        "matched on the DN"
    );
    assert_eq!(
        list(|q| q.user = Some("carol_".into())).await,
        ["carol_x"],
        "`_` is a character, not a wildcard"
    );
    assert!(list(|q| q.user = Some("%".into())).await.is_empty());
    // Decided since: decisions and expiries at or after the time; pending ones never.
    assert_eq!(
        list(|q| q.decided_since = Some(Timestamp(350))).await,
        ["carol_x", "Åsa"]
    );
    assert_eq!(
        list(|q| q.decided_since = Some(Timestamp(351))).await,
        ["Åsa"]
    );
    // Combined with AND; the limit counts matches only.
    assert_eq!(
        list(|q| {
            q.user = Some("carol".into());
            q.application = Some("vpn".into());
        })
        .await,
        ["carolax"]
    );
    assert_eq!(
        list(|q| {
            q.user = Some("CAROL".into());
            q.limit = 1;
        })
        .await,
        ["carolax"]
    );
    assert_eq!(
        list(|q| {
            q.state = Some(ApprovalState::Pending);
            q.limit = 1;
        })
        .await,
        ["bob"]
    );
}

/// The pending request comes first whatever the creation times say (a login that read the
/// clock earlier may insert later), and the time its message went out is kept.
async fn approval_latest_prefers_the_pending_request_and_keeps_sent_at<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let mut newer = request("ann", "vpn", 20);
    newer.state = ApprovalState::Cancelled;
    newer.decided_at = Some(Timestamp(21));
    s.insert_approval(&newer).await.unwrap();
    s.insert_approval(&request("ann", "vpn", 10)).await.unwrap();
    let latest = s
        .latest_approval(&user("ann"), "vpn")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (latest.id.as_str(), latest.state),
        ("ann-vpn-10", ApprovalState::Pending)
    );
    assert_eq!(latest.sent_at, None);
    s.mark_approval_sent("ann-vpn-10", Timestamp(12))
        .await
        .unwrap();
    let read = s.approval("ann-vpn-10").await.unwrap().unwrap();
    assert_eq!(read.sent_at, Some(Timestamp(12)));
}

/// The decision log: every request that leaves pending, in order, read from a position, so
/// another process learns of decisions without comparing clocks.
async fn approval_decisions_are_logged_in_order<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let (_, start) = s.decisions_after(None, 100).await.unwrap();
    for (name, t) in [("ann", 0), ("ben", 10), ("cid", 20)] {
        s.insert_approval(&request(name, "vpn", t)).await.unwrap();
    }
    assert_eq!(
        s.decisions_after(Some(start), 100).await.unwrap(),
        (vec![], start)
    );
    s.decide_approval("ben-vpn-10", &decision(ApprovalState::Rejected, 11))
        .await
        .unwrap();
    // Expiry counts too (ann expires at 1000); a refused second decision does not.
    s.expire_approvals(Timestamp(1000)).await.unwrap();
    s.decide_approval("ben-vpn-10", &decision(ApprovalState::Approved, 12))
        .await
        .unwrap();
    let (seen, next) = s.decisions_after(Some(start), 100).await.unwrap();
    assert_eq!(seen, vec!["ben-vpn-10", "ann-vpn-0"]);
    s.decide_approval("cid-vpn-20", &decision(ApprovalState::Approved, 21))
        .await
        .unwrap();
    let (later, after) = s.decisions_after(Some(next), 1).await.unwrap();
    assert_eq!(later, vec!["cid-vpn-20"]);
    assert_eq!(
        s.decisions_after(Some(after), 100).await.unwrap(),
        (vec![], after)
    );
    // A new reader starts at the end.
    assert_eq!(s.decisions_after(None, 100).await.unwrap(), (vec![], after));
}

// ---- Outbox ----

fn message(id: &str, created: i64) -> OutboxMessage {
    OutboxMessage {
        id: id.into(),
        profile: "inform-managers".into(),
        recipient: "boss@example.org".into(),
        subject: "Sign-in by Alice".into(),
        body: format!("Alice signed in to the VPN ({id})."),
        about_user: "uid=alice,ou=people,dc=example,dc=org".into(),
        application: "vpn".into(),
        client: None,
        created_at: Timestamp(created),
        attempts: 0,
        next_attempt_at: Timestamp(created),
        state: OutboxState::Queued,
        last_error: None,
        sent_at: None,
    }
}

fn msg_ids(messages: &[OutboxMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

async fn claim(s: &Arc<dyn Store>, now: i64, lease: i64, limit: usize) -> Vec<OutboxMessage> {
    s.claim_due_messages(Timestamp(now), Timestamp(lease), limit)
        .await
        .unwrap()
}

async fn outbox_messages_are_kept_and_listed_by_state<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let first = message("m1", 100);
    let mut retried = message("m2", 200);
    retried.attempts = 2;
    retried.last_error = Some("421 try later".into());
    retried.next_attempt_at = Timestamp(900);
    let third = message("m3", 300);
    for m in [&first, &retried, &third] {
        s.enqueue_message(m).await.unwrap();
    }
    assert!(matches!(
        s.enqueue_message(&first).await,
        Err(StoreError::Conflict(_))
    ));
    let all = s.list_messages(None, 0).await.unwrap();
    assert_eq!(all, [third.clone(), retried.clone(), first.clone()]);
    assert_eq!(
        msg_ids(&s.list_messages(None, 2).await.unwrap()),
        ["m3", "m2"]
    );
    s.mark_message_sent("m1", Timestamp(150)).await.unwrap();
    s.mark_message_failed("m3", 7, "gave up").await.unwrap();
    assert_eq!(
        msg_ids(&s.list_messages(Some(OutboxState::Queued), 0).await.unwrap()),
        ["m2"]
    );
    assert_eq!(
        msg_ids(&s.list_messages(Some(OutboxState::Sent), 0).await.unwrap()),
        ["m1"]
    );
    assert_eq!(
        msg_ids(&s.list_messages(Some(OutboxState::Failed), 0).await.unwrap()),
        ["m3"]
    );
}

async fn outbox_claims_respect_due_times_and_leases<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    let mut later = message("later", 50);
    later.next_attempt_at = Timestamp(500);
    s.enqueue_message(&message("now", 100)).await.unwrap();
    s.enqueue_message(&later).await.unwrap();
    assert!(claim(&s, 99, 1_000, 10).await.is_empty(), "nothing due yet");
    let claimed = claim(&s, 100, 1_100, 10).await;
    assert_eq!(msg_ids(&claimed), ["now"]);
    assert_eq!(
        claimed[0].next_attempt_at,
        Timestamp(1_100),
        "moved to the lease"
    );
    assert_eq!(claimed[0].body, message("now", 100).body);
    // While leased it is not handed out again, even when another message is due.
    assert_eq!(msg_ids(&claim(&s, 600, 1_600, 10).await), ["later"]);
    assert!(claim(&s, 1_099, 2_000, 10).await.is_empty());
    // The worker died: after the lease both are due again, oldest first, within the limit.
    assert_eq!(msg_ids(&claim(&s, 1_600, 2_600, 1).await), ["later"]);
    assert_eq!(msg_ids(&claim(&s, 1_600, 2_600, 1).await), ["now"]);
    assert!(claim(&s, 1_600, 2_600, 1).await.is_empty());
    // Sent and failed messages are never claimed.
    s.mark_message_sent("now", Timestamp(2_000)).await.unwrap();
    s.mark_message_failed("later", 3, "gave up").await.unwrap();
    assert!(claim(&s, 1_000_000, 1_000_100, 10).await.is_empty());
}

async fn outbox_concurrent_claims_never_hand_out_a_message_twice<B: Backend>(b: &B) {
    let (db, s) = fresh(b).await;
    // Workers in two processes: half of them on another view of the same database.
    let other = b.open(&db).await;
    for i in 0..60 {
        s.enqueue_message(&message(&format!("m{i:02}"), i))
            .await
            .unwrap();
    }
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let s = if i % 2 == 0 { s.clone() } else { other.clone() };
            tokio::spawn(async move {
                let mut mine = Vec::new();
                // Bounded, so a store that hands messages out again fails rather than hangs.
                for _ in 0..60 {
                    let got = claim(&s, 1_000, 100_000, 4).await;
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|m| m.id));
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 60, "each message claimed once");
    assert_eq!(distinct.len(), 60);
}

async fn outbox_a_failed_try_waits_and_a_success_ends_it<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    s.enqueue_message(&message("m", 100)).await.unwrap();
    assert_eq!(claim(&s, 100, 1_100, 10).await.len(), 1);
    s.mark_message_retry("m", 1, Timestamp(5_000), "connection refused")
        .await
        .unwrap();
    let queued = s.list_messages(None, 0).await.unwrap().remove(0);
    assert_eq!(
        (
            queued.state,
            queued.attempts,
            queued.next_attempt_at,
            queued.last_error.as_deref()
        ),
        (
            OutboxState::Queued,
            1,
            Timestamp(5_000),
            Some("connection refused")
        )
    );
    assert!(
        claim(&s, 4_999, 6_000, 10).await.is_empty(),
        "not before its retry"
    );
    assert_eq!(claim(&s, 5_000, 6_000, 10).await.len(), 1);
    s.mark_message_sent("m", Timestamp(5_100)).await.unwrap();
    let sent = s.list_messages(None, 0).await.unwrap().remove(0);
    assert_eq!(
        (sent.state, sent.attempts, sent.sent_at),
        (OutboxState::Sent, 2, Some(Timestamp(5_100))),
        "the successful try counts too"
    );
    // A slower worker's failure, arriving after the message was sent, changes nothing.
    s.mark_message_retry("m", 3, Timestamp(9_000), "timed out")
        .await
        .unwrap();
    s.mark_message_failed("m", 3, "timed out").await.unwrap();
    let still = s.list_messages(None, 0).await.unwrap().remove(0);
    assert_eq!((still.state, still.attempts), (OutboxState::Sent, 2));
}

async fn outbox_failed_messages_can_be_queued_again<B: Backend>(b: &B) {
    let (_db, s) = fresh(b).await;
    for (id, at) in [("f1", 100), ("f2", 200), ("sent", 300), ("queued", 400)] {
        s.enqueue_message(&message(id, at)).await.unwrap();
    }
    s.mark_message_failed("f1", 9, "too old").await.unwrap();
    s.mark_message_failed("f2", 9, "too old").await.unwrap();
    s.mark_message_sent("sent", Timestamp(350)).await.unwrap();
    let now = Timestamp(90_000);
    assert_eq!(s.retry_messages(Some("sent"), now).await.unwrap(), 0);
    assert_eq!(s.retry_messages(Some("queued"), now).await.unwrap(), 0);
    assert_eq!(s.retry_messages(Some("nope"), now).await.unwrap(), 0);
    assert_eq!(s.retry_messages(Some("f1"), now).await.unwrap(), 1);
    let f1 = s
        .list_messages(Some(OutboxState::Queued), 0)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id == "f1")
        .unwrap();
    assert_eq!(
        (f1.next_attempt_at, f1.created_at),
        (now, now),
        "due now, its age counted from now"
    );
    assert_eq!(s.retry_messages(None, now).await.unwrap(), 1, "f2 only");
    assert_eq!(s.retry_messages(None, now).await.unwrap(), 0);
    assert!(
        s.list_messages(Some(OutboxState::Failed), 0)
            .await
            .unwrap()
            .is_empty()
    );
    let mut due = msg_ids(&claim(&s, now.0, now.0 + 1_000, 10).await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    due.sort();
    assert_eq!(due, ["f1", "f2", "queued"]);
}

/// One `#[tokio::test]` per check for a backend, as `contract!` in `store_contract`.
macro_rules! approval_contract {
    ($backend:expr) => {
        approval_contract!($backend;
            approval_is_read_back_by_id_and_by_token_hash,
            approval_one_pending_request_per_user_and_application,
            approval_concurrent_inserts_leave_one_pending_request,
            approval_latest_is_the_newest_in_any_state,
            approval_the_first_decision_wins,
            approval_concurrent_deciders_have_exactly_one_winner,
            approval_a_late_link_finds_it_expired_but_cancel_works_until_final,
            approval_expiry_marks_only_due_pending_requests,
            approval_list_filters_combine,
            approval_decisions_are_logged_in_order,
            approval_latest_prefers_the_pending_request_and_keeps_sent_at,
            outbox_messages_are_kept_and_listed_by_state,
            outbox_claims_respect_due_times_and_leases,
            outbox_concurrent_claims_never_hand_out_a_message_twice,
            outbox_a_failed_try_waits_and_a_success_ends_it,
            outbox_failed_messages_can_be_queued_again,
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

mod sqlite {
    use crate::store_contract::sqlite::Sqlite;

    approval_contract!(Sqlite);
}
