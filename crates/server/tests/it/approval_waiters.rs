//! A thousand logins pending at once on the real server's parts (the SQLite store, the
//! `WaitingRoom`, the login use case), decided in a scrambled order: every waiter wakes with
//! its own answer, and none waits for a poll.

use std::time::{Duration, Instant};

use countersign_core::approval::{ApprovalRequest, ApprovalState, DecidedBy};
use countersign_core::login::LoginStatus;
use countersign_core::model::{Dn, User};
use countersign_core::model::{Timestamp, UserKey};
use countersign_core::ports::LocalUser;
use countersign_core::{Denial, Secret};

use crate::approval_ldap::start;
use crate::fixtures::harness::T0;
use crate::fixtures::smtp::closed_port;

fn request(i: usize) -> ApprovalRequest {
    let dn = format!("uid=user{i},ou=people,dc=example,dc=com");
    ApprovalRequest {
        id: format!("{i:032x}"),
        token_hash: format!("token of {i}").into_bytes(),
        user: UserKey {
            directory: "local".into(),
            dn: dn.clone(),
        },
        user_dn: dn,
        username: format!("user{i}"),
        display_name: None,
        application: "vpn".into(),
        profile: "critical".into(),
        front: "http".into(),
        client: Some("192.0.2.1".into()),
        recipient: "bob@example.com".into(),
        approver: "Bob".into(),
        created_at: Timestamp(T0),
        expires_at: Timestamp(T0 + 600_000),
        state: ApprovalState::Pending,
        decided_at: None,
        decided_by: None,
        sent_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_pending_logins_decided_in_random_order_each_wake_with_their_own_answer() {
    const N: usize = 1000;
    let (cs, _keys) = start(closed_port(), "30s").await;
    // The users exist (an approved login is let in only if its account still may); one
    // password hash serves them all.
    let password_hash = countersign::passwords::hash(&Secret::new("pw")).unwrap();
    for i in 0..N {
        let user = User::new(
            "local",
            Dn::new(format!("uid=user{i},ou=people,dc=example,dc=com")),
            format!("user{i}"),
        );
        let local = LocalUser {
            user,
            password_hash: password_hash.clone(),
        };
        cs.app.store.insert_local_user(&local).await.unwrap();
        cs.app.store.insert_approval(&request(i)).await.unwrap();
    }
    let far = Timestamp(T0 + 60_000);
    let waiters: Vec<_> = (0..N)
        .map(|i| {
            let login = cs.app.login.clone();
            tokio::spawn(async move {
                let status = login.wait("vpn", &format!("{i:032x}"), far).await.unwrap();
                (status, Instant::now())
            })
        })
        .collect();
    // Every waiter is subscribed before the first decision.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cs.app.waiting.waited_on() < N {
        assert!(
            Instant::now() < deadline,
            "{} waiting",
            cs.app.waiting.waited_on()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut order: Vec<usize> = (0..N).collect();
    order.sort_by_key(|i| (i * 7919 + 13) % N);
    let mut decided_at = vec![Instant::now(); N];
    for i in order {
        let state = if i % 3 == 0 {
            ApprovalState::Rejected
        } else {
            ApprovalState::Approved
        };
        decided_at[i] = Instant::now();
        cs.app
            .login
            .decide(
                &format!("{i:032x}"),
                state,
                DecidedBy {
                    channel: "cli".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let mut slowest = Duration::ZERO;
    for (i, waiter) in waiters.into_iter().enumerate() {
        let (status, woke) = waiter.await.unwrap();
        if i % 3 == 0 {
            assert_eq!(status, LoginStatus::Denied(Denial::Rejected), "login {i}");
        } else {
            assert!(
                matches!(&status, LoginStatus::Granted { username, .. } if *username == format!("user{i}")),
                "login {i}: {status:?}"
            );
        }
        slowest = slowest.max(woke.saturating_duration_since(decided_at[i]));
    }
    // Woken by the decision, not by the approvals job's one-second look or the wait's end.
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
    assert_eq!(cs.app.waiting.waited_on(), 0, "no waiter left behind");
}
