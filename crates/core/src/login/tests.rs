//! The login use case against the in-memory fakes: every branch of the seed's flows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::application::{Application, AuthMethod};
use crate::approval::profile::{DEFAULT_APPROVAL_MESSAGE, DEFAULT_INFORMATION_MESSAGE};
use crate::approval::{
    ApprovalDelivery, ApprovalProfile, ApprovalState, DecidedBy, MessageTemplate, Policies, Policy,
    ProfileKind, ValuePattern,
};
use crate::audit::AuditAction;
use crate::error::{AuthError, Denial, Refusal};
use crate::model::{Sponsor, User};
use crate::testkit::*;

use super::*;

struct LoginWorld {
    w: World,
    login: Arc<LoginService>,
    manager_mail: Arc<RecordingCourier>,
    wakes: Arc<AtomicUsize>,
}

fn boss() -> Sponsor {
    Sponsor {
        name: Some("Boss".into()),
        email: Some("boss@example.com".into()),
        phone: Some("+15550100999".into()),
    }
}

fn profile(name: &str, kind: ProfileKind, courier: &Arc<RecordingCourier>) -> ApprovalProfile {
    let message = match kind {
        ProfileKind::Information => DEFAULT_INFORMATION_MESSAGE,
        ProfileKind::Approval => DEFAULT_APPROVAL_MESSAGE,
    };
    ApprovalProfile {
        name: name.into(),
        kind,
        server: "https://mfa.example.com/".into(),
        message: MessageTemplate::parse(message).unwrap(),
        link_expiration: Duration::from_secs(3600),
        delivery: ApprovalDelivery::Email,
        courier: courier.clone(),
        courier_name: "corp-smtp".into(),
        email_subject: "Sign-in".into(),
        default_recipient: None,
        directories: vec!["local".into()],
        methods: AuthMethod::ALL.to_vec(),
        inform_interval: Duration::ZERO,
    }
}

fn app() -> Application {
    Application::new("vpn", Some("key"), AuthMethod::ALL.to_vec(), true)
}

fn build(
    users: Vec<User>,
    rules: impl FnOnce(&Arc<RecordingCourier>) -> ApprovalRules,
) -> LoginWorld {
    build_failing(users, false, rules)
}

fn build_failing(
    users: Vec<User>,
    courier_fails: bool,
    rules: impl FnOnce(&Arc<RecordingCourier>) -> ApprovalRules,
) -> LoginWorld {
    let w = world_with(users, false, false);
    let manager_mail = Arc::new(RecordingCourier {
        fail: courier_fails,
        ..Default::default()
    });
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = wakes.clone();
    let login = Arc::new(w.login_service(
        rules(&manager_mail),
        Arc::new(MemSignal::default()),
        Arc::new(InlineDetach),
        Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }),
    ));
    LoginWorld {
        w,
        login,
        manager_mail,
        wakes,
    }
}

fn managed(mut u: User) -> User {
    u.sponsor = Some(boss());
    u
}

fn only(profile: ApprovalProfile) -> ApprovalRules {
    ApprovalRules {
        default_profile: Some(profile.name.clone()),
        profiles: vec![profile],
        policies: Policies::default(),
        grace_period: Duration::from_secs(120),
        rejection_cooldown: Duration::ZERO,
    }
}

async fn login(lw: &LoginWorld, password: &str) -> Result<LoginOutcome, AuthError> {
    lw.login
        .login_password(&app(), "u:alice", &password.into(), &caller())
        .await
}

fn pending_id(outcome: &LoginOutcome) -> String {
    match outcome {
        LoginOutcome::Pending { login, .. } => login.clone(),
        other => panic!("not pending: {other:?}"),
    }
}

/// The link token in the last message to the manager.
fn link_token(c: &RecordingCourier) -> String {
    let sent = c.sent.lock().unwrap();
    let body = sent.last().unwrap().body.expose().to_owned();
    let start = body.find("/approve/").unwrap() + "/approve/".len();
    body[start..start + 64].to_owned()
}

fn link_decider() -> DecidedBy {
    DecidedBy {
        channel: "link".into(),
        address: Some("198.51.100.9".into()),
        user_agent: Some("Phone".into()),
        operator: None,
    }
}

fn last_login_record(lw: &LoginWorld) -> crate::audit::AuditRecord {
    lw.w.store
        .audit
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r.action == AuditAction::Login)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn without_profiles_the_first_factor_is_the_whole_login() {
    let lw = build(vec![alice()], |_| ApprovalRules::default());
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(
        out,
        LoginOutcome::Granted {
            admitted: Admitted::Directly,
            ..
        }
    ));
    let err = login(&lw, "wrong").await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::WrongPassword));
}

#[tokio::test]
async fn information_profile_lets_the_login_through_and_queues_the_message() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("inform", ProfileKind::Information, c))
    });
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(
        out,
        LoginOutcome::Granted {
            admitted: Admitted::Informed,
            ..
        }
    ));
    // Nothing was sent during the login: the message waits in the outbox for the worker.
    assert!(lw.manager_mail.sent.lock().unwrap().is_empty());
    let queued = lw.w.store.messages.lock().unwrap().clone();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].recipient, "boss@example.com");
    assert_eq!(queued[0].profile, "inform");
    assert!(
        queued[0]
            .body
            .starts_with("Alice (alice) signed in to vpn from 192.0.2.1 at "),
        "{}",
        queued[0].body
    );
    assert_eq!(lw.wakes.load(Ordering::SeqCst), 1);
    let record = last_login_record(&lw);
    assert_eq!(record.login.profile.as_deref(), Some("inform"));
    assert_eq!(record.login.application.as_deref(), Some("vpn"));
    assert!(
        record.reason.contains("Boss informed through the outbox"),
        "{}",
        record.reason
    );
}

#[tokio::test]
async fn information_profile_with_nobody_to_inform_still_lets_the_user_in() {
    let lw = build(vec![alice()], |c| {
        only(profile("inform", ProfileKind::Information, c))
    });
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(
        out,
        LoginOutcome::Granted {
            admitted: Admitted::Informed,
            ..
        }
    ));
    assert!(lw.w.store.messages.lock().unwrap().is_empty());
    let reason = last_login_record(&lw).reason;
    assert!(reason.contains("nobody could be informed"), "{reason}");
}

#[tokio::test]
async fn approval_holds_the_login_until_the_manager_approves_through_the_link() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let out = login(&lw, "secret").await.unwrap();
    let id = pending_id(&out);
    {
        let sent = lw.manager_mail.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, "boss@example.com");
        assert!(
            sent[0]
                .body
                .expose()
                .contains("https://mfa.example.com/approve/")
        );
    }
    let token = link_token(&lw.manager_mail);
    // Only the token's hash is kept.
    let stored = lw.w.store.requests.lock().unwrap()[0].clone();
    assert_ne!(stored.token_hash, token.as_bytes());
    assert_eq!(
        lw.login.status("vpn", &id).await.unwrap(),
        LoginStatus::Pending {
            expires_at: stored.expires_at
        }
    );
    // Another application cannot read it.
    assert_eq!(
        lw.login.status("wiki", &id).await.unwrap_err(),
        AuthError::UnknownLogin
    );

    let view = lw.login.approval_view(&token).await.unwrap();
    assert_eq!(view.state, ApprovalState::Pending);
    assert_eq!(view.request.username, "alice");

    let waiter = {
        let login = lw.login.clone();
        let id = id.clone();
        tokio::spawn(async move {
            login
                .wait("vpn", &id, crate::model::Timestamp(i64::MAX))
                .await
        })
    };
    tokio::task::yield_now().await;
    let decided = lw
        .login
        .decide_by_link(&token, true, link_decider())
        .await
        .unwrap();
    assert!(matches!(decided, DecisionResult::Decided(_)));
    let status = waiter.await.unwrap().unwrap();
    assert!(matches!(status, LoginStatus::Granted { ref username, .. } if username == "alice"));
    // The first decision wins.
    let again = lw
        .login
        .decide_by_link(&token, false, link_decider())
        .await
        .unwrap();
    assert!(matches!(again, DecisionResult::AlreadyFinal(r) if r.state == ApprovalState::Approved));
    let audit = lw.w.store.audit.lock().unwrap().clone();
    let decision = audit
        .iter()
        .find(|r| r.action == AuditAction::Decision)
        .unwrap();
    assert!(
        decision
            .reason
            .contains("approved via link from 198.51.100.9"),
        "{}",
        decision.reason
    );
    assert_eq!(decision.client.as_deref(), Some("198.51.100.9"));
    assert_eq!(decision.login.login.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn a_retry_joins_the_pending_request_and_an_approval_admits_for_the_grace_period() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let first = pending_id(&login(&lw, "secret").await.unwrap());
    let second = pending_id(&login(&lw, "secret").await.unwrap());
    assert_eq!(first, second);
    assert_eq!(
        lw.manager_mail.sent.lock().unwrap().len(),
        1,
        "no second message"
    );
    assert!(
        last_login_record(&lw)
            .reason
            .contains("joined the pending approval request")
    );
    // The first factor is still checked on a join.
    assert!(matches!(
        login(&lw, "wrong").await,
        Err(AuthError::InvalidCredentials(_))
    ));

    let token = link_token(&lw.manager_mail);
    lw.login
        .decide_by_link(&token, true, link_decider())
        .await
        .unwrap();
    lw.w.clock.advance(Duration::from_secs(60));
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(
        out,
        LoginOutcome::Granted {
            admitted: Admitted::WithinGrace,
            ..
        }
    ));
    assert!(matches!(
        login(&lw, "wrong").await,
        Err(AuthError::InvalidCredentials(_))
    ));
    // Past the grace period a new approval is needed.
    lw.w.clock.advance(Duration::from_secs(61));
    let third = pending_id(&login(&lw, "secret").await.unwrap());
    assert_ne!(third, first);
    assert_eq!(lw.manager_mail.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn rejection_and_expiry_deny_with_their_own_reasons() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let id = pending_id(&login(&lw, "secret").await.unwrap());
    let token = link_token(&lw.manager_mail);
    lw.login
        .decide_by_link(&token, false, link_decider())
        .await
        .unwrap();
    assert_eq!(
        lw.login.status("vpn", &id).await.unwrap(),
        LoginStatus::Denied(Denial::Rejected)
    );
    // A rejection admits nobody: the next login asks again.
    let again = pending_id(&login(&lw, "secret").await.unwrap());
    assert_ne!(again, id);

    lw.w.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        lw.login.status("vpn", &again).await.unwrap(),
        LoginStatus::Denied(Denial::Expired)
    );
    let token = link_token(&lw.manager_mail);
    let late = lw
        .login
        .decide_by_link(&token, true, link_decider())
        .await
        .unwrap();
    assert!(matches!(late, DecisionResult::AlreadyFinal(r) if r.state == ApprovalState::Expired));
    assert_eq!(
        lw.login.expire_due().await.unwrap(),
        0,
        "already marked by the late decision"
    );
    let expiries =
        lw.w.store
            .audit
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.action == AuditAction::Expiry)
            .count();
    assert_eq!(
        expiries, 1,
        "the expiry the late decision found is audited once"
    );
}

#[tokio::test]
async fn the_server_marks_expired_requests_even_when_nobody_waits() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let id = pending_id(&login(&lw, "secret").await.unwrap());
    assert_eq!(lw.login.expire_due().await.unwrap(), 0);
    lw.w.clock.advance(Duration::from_secs(3600));
    assert_eq!(lw.login.expire_due().await.unwrap(), 1);
    let stored = lw.w.store.requests.lock().unwrap()[0].clone();
    assert_eq!((stored.id, stored.state), (id, ApprovalState::Expired));
    let audit = lw.w.store.audit.lock().unwrap().clone();
    assert!(audit.iter().any(|r| r.action == AuditAction::Expiry));
}

#[tokio::test]
async fn an_approval_message_that_cannot_be_sent_denies_the_login_at_once() {
    let lw = build_failing(vec![managed(alice())], true, |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let err = login(&lw, "secret").await.unwrap_err();
    assert_eq!(err, AuthError::Denied(Denial::ApprovalNotSent));
    let stored = lw.w.store.requests.lock().unwrap()[0].clone();
    assert_eq!(stored.state, ApprovalState::Cancelled);
    let reason = last_login_record(&lw).reason;
    assert!(
        reason.contains("approval message to boss@example.com failed"),
        "{reason}"
    );
}

#[tokio::test]
async fn manager_resolution_manager_default_recipient_self_and_nobody() {
    let mut selfish = alice();
    selfish.sponsor = Some(Sponsor {
        name: Some("Alice herself".into()),
        email: Some("ALICE@example.com".into()),
        phone: None,
    });
    let cases: Vec<(User, Option<&str>, Option<&str>)> = vec![
        (
            managed(alice()),
            Some("secops@example.com"),
            Some("boss@example.com"),
        ),
        (
            alice(),
            Some("secops@example.com"),
            Some("secops@example.com"),
        ),
        (
            selfish.clone(),
            Some("secops@example.com"),
            Some("secops@example.com"),
        ),
        (selfish, None, None),
        (alice(), None, None),
        // The default recipient is never the user's own address either.
        (alice(), Some("alice@home.example"), None),
    ];
    for (user, default, want) in cases {
        let lw = build(vec![user.clone()], |c| {
            let mut p = profile("critical", ProfileKind::Approval, c);
            p.default_recipient = default.map(str::to_owned);
            only(p)
        });
        let p = lw.login.rules.profile("critical").unwrap().clone();
        let found = lw.login.approver(&p, &user).await.unwrap();
        assert_eq!(
            found.approver.as_ref().map(|a| a.address.as_str()),
            want,
            "{user:?} {default:?}"
        );
        match want {
            Some(_) => assert!(matches!(
                login(&lw, "secret").await,
                Ok(LoginOutcome::Pending { .. })
            )),
            None => assert_eq!(
                login(&lw, "secret").await.unwrap_err(),
                AuthError::Denied(Denial::ApproverUnreachable)
            ),
        }
    }
}

#[tokio::test]
async fn policies_choose_the_profile_and_unmatched_users_are_denied_only_after_the_password() {
    let mut contractor = managed(alice());
    contractor
        .attributes
        .insert("employeetype".into(), vec!["Contractor".into()]);
    let mut staff = managed(alice());
    staff.username = "bob".into();
    staff.dn = crate::model::Dn::new("uid=bob,ou=people,dc=example,dc=com");
    let lw = build(vec![contractor, staff], |c| ApprovalRules {
        profiles: vec![
            profile("critical", ProfileKind::Approval, c),
            profile("inform", ProfileKind::Information, c),
        ],
        default_profile: Some("inform".into()),
        policies: Policies::new(vec![Policy {
            name: "contractors".into(),
            profile: "critical".into(),
            directory: "local".into(),
            attribute: "employeetype".into(),
            values: vec![ValuePattern::parse("contractor").unwrap()],
        }]),
        grace_period: Duration::from_secs(120),
        rejection_cooldown: Duration::ZERO,
    });
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(out, LoginOutcome::Pending { .. }));
    assert_eq!(
        last_login_record(&lw).login.policy.as_deref(),
        Some("contractors")
    );
    // Bob matches no policy: with policies configured, the default profile is not used.
    let err = lw
        .login
        .login_password(&app(), "u:bob", &"secret".into(), &caller())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Denied(Denial::NoMatchingPolicy));
    let err = lw
        .login
        .login_password(&app(), "u:bob", &"wrong".into(), &caller())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::WrongPassword));
}

#[tokio::test]
async fn exempt_applications_methods_not_governed_and_methods_not_allowed() {
    let lw = build(vec![managed(alice())], |c| {
        let mut p = profile("critical", ProfileKind::Approval, c);
        p.methods = vec![AuthMethod::DeliveredOtp];
        only(p)
    });
    // The profile allows only the OTP: a password login is refused, not let through.
    assert_eq!(
        login(&lw, "secret").await.unwrap_err(),
        AuthError::Denied(Denial::MethodNotAllowed)
    );
    let exempt = Application::new("kiosk", None, vec![AuthMethod::DeliveredOtp], false);
    let err = lw
        .login
        .login_password(&exempt, "u:alice", &"secret".into(), &caller())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Denied(Denial::MethodNotAllowed));
    // The OTP is governed: pending.
    lw.w.svc
        .deliver(deliver_req(None), &caller())
        .await
        .unwrap();
    let otp = last_otp(&lw.w.email);
    let out = lw
        .login
        .login_otp(&app(), verify_req(&otp), &caller())
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::Pending { .. }));
    // An exempt application gets in with the OTP at once.
    lw.w.clock.advance(Duration::from_secs(1));
    lw.w.svc
        .deliver(deliver_req(None), &caller())
        .await
        .unwrap();
    let otp = last_otp(&lw.w.email);
    let out = lw
        .login
        .login_otp(&exempt, verify_req(&otp), &caller())
        .await
        .unwrap();
    assert!(matches!(
        out,
        LoginOutcome::Granted {
            admitted: Admitted::Directly,
            ..
        }
    ));
}

#[tokio::test]
async fn a_thousand_waiters_each_wake_with_their_own_answer() {
    let mut users = Vec::new();
    for i in 0..1000 {
        let mut u = managed(alice());
        u.username = format!("user{i}");
        u.dn = crate::model::Dn::new(format!("uid=user{i},dc=example,dc=com"));
        users.push(u);
    }
    let lw = build(users, |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let mut ids = Vec::new();
    for i in 0..1000 {
        let out = lw
            .login
            .login_password(
                &app(),
                &format!("u:user{i}"),
                &"secret".into(),
                &caller_at(&format!("10.0.{}.{}", i / 250, i % 250)),
            )
            .await
            .unwrap();
        ids.push(pending_id(&out));
    }
    let tokens: Vec<String> = lw
        .manager_mail
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let b = m.body.expose();
            let s = b.find("/approve/").unwrap() + 9;
            b[s..s + 64].to_owned()
        })
        .collect();
    let waiters: Vec<_> = ids
        .iter()
        .map(|id| {
            let login = lw.login.clone();
            let id = id.clone();
            tokio::spawn(async move {
                login
                    .wait("vpn", &id, crate::model::Timestamp(i64::MAX))
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    // Decide in a scrambled order: approve the even ones, reject the odd ones.
    let mut order: Vec<usize> = (0..1000).collect();
    order.sort_by_key(|i| (i * 7919) % 1000);
    for i in order {
        lw.login
            .decide_by_link(&tokens[i], i % 2 == 0, link_decider())
            .await
            .unwrap();
    }
    for (i, waiter) in waiters.into_iter().enumerate() {
        let status = waiter.await.unwrap().unwrap();
        if i % 2 == 0 {
            assert!(
                matches!(status, LoginStatus::Granted { ref username, .. } if *username == format!("user{i}"))
            );
        } else {
            assert_eq!(status, LoginStatus::Denied(Denial::Rejected));
        }
    }
}

#[tokio::test]
async fn a_request_past_its_expiry_not_yet_marked_does_not_block_the_next_login() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let first = pending_id(&login(&lw, "secret").await.unwrap());
    lw.w.clock.advance(Duration::from_secs(3600));
    // The expiry job has not run: the store still holds the request as pending.
    let second = pending_id(&login(&lw, "secret").await.unwrap());
    assert_ne!(first, second);
    let states: Vec<ApprovalState> =
        lw.w.store
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.state)
            .collect();
    assert_eq!(states, vec![ApprovalState::Expired, ApprovalState::Pending]);
}

#[tokio::test]
async fn a_burst_of_logins_informs_the_manager_once_per_interval() {
    let lw = build(vec![managed(alice())], |c| {
        let mut p = profile("inform", ProfileKind::Information, c);
        p.inform_interval = Duration::from_secs(60);
        only(p)
    });
    for _ in 0..5 {
        let out = login(&lw, "secret").await.unwrap();
        assert!(matches!(
            out,
            LoginOutcome::Granted {
                admitted: Admitted::Informed,
                ..
            }
        ));
    }
    assert_eq!(lw.w.store.messages.lock().unwrap().len(), 1);
    let reason = last_login_record(&lw).reason;
    assert!(
        reason.contains("not repeated within the inform interval"),
        "{reason}"
    );
    // A login from another address within the interval is reported all the same.
    lw.login
        .login_password(
            &app(),
            "u:alice",
            &"secret".into(),
            &caller_at("203.0.113.66"),
        )
        .await
        .unwrap();
    assert_eq!(lw.w.store.messages.lock().unwrap().len(), 2);
    // Another application is another message; so is the same one a minute later.
    let other = Application::new("wiki", Some("k2"), AuthMethod::ALL.to_vec(), true);
    lw.login
        .login_password(&other, "u:alice", &"secret".into(), &caller())
        .await
        .unwrap();
    assert_eq!(lw.w.store.messages.lock().unwrap().len(), 3);
    lw.w.clock.advance(Duration::from_secs(60));
    login(&lw, "secret").await.unwrap();
    assert_eq!(lw.w.store.messages.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_pending_request_whose_message_never_went_out_is_replaced_not_joined() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let first = pending_id(&login(&lw, "secret").await.unwrap());
    // As if the server had died between recording the request and sending its message.
    lw.w.store.requests.lock().unwrap()[0].sent_at = None;
    // Soon after, a retry still joins it (its message may be on its way).
    lw.w.clock.advance(Duration::from_secs(30));
    assert_eq!(pending_id(&login(&lw, "secret").await.unwrap()), first);
    // Past UNSENT_AFTER it is cancelled and the approver is asked anew.
    lw.w.clock.advance(UNSENT_AFTER);
    let second = pending_id(&login(&lw, "secret").await.unwrap());
    assert_ne!(second, first);
    let requests = lw.w.store.requests.lock().unwrap().clone();
    assert_eq!(requests[0].state, ApprovalState::Cancelled);
    assert_eq!(requests[1].state, ApprovalState::Pending);
    assert!(requests[1].sent_at.is_some());
    assert_eq!(lw.manager_mail.sent.lock().unwrap().len(), 2);
    assert!(
        last_login_record(&lw)
            .reason
            .contains("whose message was never sent")
    );
}

#[tokio::test]
async fn a_login_waiting_for_approval_earns_its_client_no_trust() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let key = alice().key();
    let limits = lw.login.passwords.limits.clone();
    login(&lw, "secret").await.unwrap();
    assert!(!limits.trusts(&key, &caller(), lw.w.clock.now()));
    lw.login
        .decide_by_link(&link_token(&lw.manager_mail), true, link_decider())
        .await
        .unwrap();
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(out, LoginOutcome::Granted { .. }));
    assert!(limits.trusts(&key, &caller(), lw.w.clock.now()));
}

#[tokio::test]
async fn the_grace_period_admits_only_the_client_that_waited() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    login(&lw, "secret").await.unwrap();
    lw.login
        .decide_by_link(&link_token(&lw.manager_mail), true, link_decider())
        .await
        .unwrap();
    // Someone else with the password, right after: asked anew, not let in.
    let elsewhere = lw
        .login
        .login_password(
            &app(),
            "u:alice",
            &"secret".into(),
            &caller_at("203.0.113.66"),
        )
        .await
        .unwrap();
    assert!(matches!(elsewhere, LoginOutcome::Pending { .. }));
    assert_eq!(lw.manager_mail.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_sign_in_from_elsewhere_cannot_join_the_one_the_manager_is_asked_about() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    login(&lw, "secret").await.unwrap();
    let elsewhere = lw
        .login
        .login_password(
            &app(),
            "u:alice",
            &"secret".into(),
            &caller_at("203.0.113.66"),
        )
        .await
        .unwrap_err();
    assert_eq!(elsewhere, AuthError::Denied(Denial::PendingElsewhere));
    assert_eq!(lw.manager_mail.sent.lock().unwrap().len(), 1);
    let reason = last_login_record(&lw).reason;
    assert!(
        reason.contains("a sign-in from 192.0.2.1 is already waiting"),
        "{reason}"
    );
    // The wrong password from there is still the uniform refusal.
    let wrong = lw
        .login
        .login_password(
            &app(),
            "u:alice",
            &"nope".into(),
            &caller_at("203.0.113.66"),
        )
        .await
        .unwrap_err();
    assert_eq!(wrong, AuthError::InvalidCredentials(Refusal::WrongPassword));
}

#[tokio::test]
async fn after_a_rejection_the_manager_is_not_asked_again_within_the_cooldown() {
    let lw = build(vec![managed(alice())], |c| ApprovalRules {
        rejection_cooldown: Duration::from_secs(300),
        ..only(profile("critical", ProfileKind::Approval, c))
    });
    login(&lw, "secret").await.unwrap();
    lw.login
        .decide_by_link(&link_token(&lw.manager_mail), false, link_decider())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            login(&lw, "secret").await.unwrap_err(),
            AuthError::Denied(Denial::Rejected)
        );
    }
    assert_eq!(lw.manager_mail.sent.lock().unwrap().len(), 1);
    lw.w.clock.advance(Duration::from_secs(300));
    assert!(matches!(
        login(&lw, "secret").await.unwrap(),
        LoginOutcome::Pending { .. }
    ));
    assert_eq!(lw.manager_mail.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_account_locked_while_its_login_waited_is_not_let_in_by_the_approval() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    let id = pending_id(&login(&lw, "secret").await.unwrap());
    // The directory locks the account while the manager is still deciding.
    lw.w.dir
        .lock_all(crate::model::Timestamp(crate::testkit::T0 + 3_600_000));
    lw.login
        .decide_by_link(&link_token(&lw.manager_mail), true, link_decider())
        .await
        .unwrap();
    assert_eq!(
        lw.login.status("vpn", &id).await.unwrap_err(),
        AuthError::InvalidCredentials(Refusal::AccountLocked)
    );
}

#[tokio::test]
async fn an_approved_client_stays_in_for_its_grace_and_is_trusted_whatever_waits_elsewhere() {
    let lw = build(vec![managed(alice())], |c| {
        only(profile("critical", ProfileKind::Approval, c))
    });
    login(&lw, "secret").await.unwrap();
    lw.login
        .decide_by_link(&link_token(&lw.manager_mail), true, link_decider())
        .await
        .unwrap();
    // The approval vouches for the client that waited.
    let limits = lw.login.passwords.limits.clone();
    assert!(limits.trusts(&alice().key(), &caller(), lw.w.clock.now()));
    // Someone else with the password starts a request of their own ...
    let elsewhere = lw
        .login
        .login_password(
            &app(),
            "u:alice",
            &"secret".into(),
            &caller_at("203.0.113.66"),
        )
        .await
        .unwrap();
    assert!(matches!(elsewhere, LoginOutcome::Pending { .. }));
    // ... which does not shut out the approved client within its grace period.
    let out = login(&lw, "secret").await.unwrap();
    assert!(matches!(
        out,
        LoginOutcome::Granted {
            admitted: Admitted::WithinGrace,
            ..
        }
    ));
}
