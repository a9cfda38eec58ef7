//! The OTP use cases against the in-memory fakes. (Over 700 lines on purpose: every scenario
//! of the use cases, sharing helpers; split it by use case when it grows further.)

use std::time::Duration;

use super::*;
use crate::attempt::Caller;
use crate::model::Timestamp;
use crate::ratelimit::{Rate, RateLimiter};
use crate::testkit::*;

fn per_minute(burst: u32) -> RateLimiter {
    RateLimiter::new(Rate {
        burst,
        period: Duration::from_secs(60),
    })
}

/// `deliver_per_user` as the configuration maps it: deliveries per user, and failed delivers
/// per user and client.
fn deliver_per_user(burst: u32) -> RateLimits {
    let mut limits = RateLimits::default();
    limits.deliveries_per_user = Some(per_minute(burst));
    limits.deliver_failures_per_user_and_client = Some(per_minute(burst));
    limits
}

#[tokio::test]
async fn delivered_otp_verifies_once() {
    let w = world();
    let d = w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    assert_eq!(d.mechanism, "Email");
    assert_eq!(d.recipient, "alice@example.com");
    assert_eq!(d.user_dn, alice().dn);
    let otp = last_otp(&w.email);
    let user = w.svc.verify(verify_req(&otp), &caller()).await.unwrap();
    assert_eq!(user.dn, alice().dn);
    let again = w.svc.verify(verify_req(&otp), &caller()).await;
    assert_eq!(
        again.unwrap_err(),
        AuthError::InvalidCredentials(Refusal::NoOtp)
    );
}

#[tokio::test]
async fn request_texts_win_field_by_field() {
    let w = world();
    let mut req = deliver_req(None);
    req.texts.full_before = Some("Code: ".into());
    req.texts.compact_before = Some("ignored for email".into());
    w.svc.deliver(req, &caller()).await.unwrap();
    let sent = w.email.sent.lock().unwrap();
    assert_eq!(sent[0].subject, "Configured subject");
    let body = sent[0].body.expose();
    assert!(
        body.starts_with("Code: ") && body.ends_with(" (configured after)"),
        "{body}"
    );
}

#[tokio::test]
async fn request_list_is_the_only_list() {
    let w = world_with(vec![alice()], true, false);
    let req = deliver_req(Some(vec![MechanismChoice::named("Email")]));
    let err = w.svc.deliver(req, &caller()).await.unwrap_err();
    assert_eq!(
        err,
        AuthError::NotDelivered {
            tried: vec![("Email".into(), Undelivered::TransportFailed)]
        }
    );
    assert!(
        w.sms.sent.lock().unwrap().is_empty(),
        "no fallback beyond the request's list"
    );
    assert!(
        w.store.otps.lock().unwrap().is_empty(),
        "undelivered OTP removed"
    );
    let audit = w.store.audit.lock().unwrap();
    assert!(
        audit[0].reason.contains("alice@example.com"),
        "{}",
        audit[0].reason
    );
}

#[tokio::test]
async fn failed_mechanism_falls_to_the_next_default() {
    let w = world_with(vec![alice()], true, false);
    let d = w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    assert_eq!(
        (d.mechanism.as_str(), d.recipient.as_str()),
        ("SMS", "+15550100001")
    );
    let reason = w.store.audit.lock().unwrap()[0].reason.clone();
    assert_eq!(
        reason,
        "ok after failures: Email: delivery to alice@example.com failed: connection refused"
    );
    let otp = last_otp(&w.sms);
    assert!(w.svc.verify(verify_req(&otp), &caller()).await.is_ok());
}

#[tokio::test]
async fn preferred_mechanisms_come_first() {
    let mut a = alice();
    a.preferred_mechanisms = vec!["SMS".into()];
    let w = world_with(vec![a], false, false);
    let d = w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    assert_eq!(d.mechanism, "SMS");
    assert!(w.email.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn recipient_must_be_the_users_own() {
    let w = world();
    let req = deliver_req(Some(vec![
        MechanismChoice {
            name: "Email".into(),
            recipient: Some("mallory@evil.example".into()),
        },
        MechanismChoice {
            name: "Email".into(),
            recipient: Some("ALICE@home.example".into()),
        },
    ]));
    let d = w.svc.deliver(req, &caller()).await.unwrap();
    assert_eq!(d.recipient, "alice@home.example");
    let sent = w.email.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "alice@home.example");
}

#[tokio::test]
async fn unknown_mechanism_and_no_address_are_reported_without_addresses() {
    let mut a = alice();
    a.mobile.clear();
    let w = world_with(vec![a], false, false);
    let req = deliver_req(Some(vec![
        MechanismChoice::named("Pigeon"),
        MechanismChoice::named("SMS"),
    ]));
    let err = w.svc.deliver(req, &caller()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Pigeon: no such delivery mechanism"),
        "{text}"
    );
    assert!(text.contains("SMS: the user has no address"), "{text}");
}

#[tokio::test]
async fn credential_problems_are_one_uniform_refusal() {
    let mut disabled = alice();
    disabled.account.disabled = true;
    let mut locked = alice();
    locked.account.locked_until = Some(Timestamp(T0 + 60_000));
    let mut expired = alice();
    expired.account.password_expires_at = Some(Timestamp(T0 - 1));
    let mut reset = alice();
    reset.account.must_change_password = true;
    let cases = [
        (vec![alice()], "u:alice", "wrong", Refusal::WrongPassword),
        (vec![alice()], "u:bob", "secret", Refusal::UnknownUser),
        (
            vec![disabled],
            "u:alice",
            "secret",
            Refusal::AccountDisabled,
        ),
        (vec![locked], "u:alice", "secret", Refusal::AccountLocked),
        (vec![expired], "u:alice", "secret", Refusal::PasswordExpired),
        (
            vec![reset],
            "u:alice",
            "secret",
            Refusal::MustChangePassword,
        ),
    ];
    for (users, id, pw, refusal) in cases {
        let w = world_with(users, false, false);
        let mut req = deliver_req(None);
        req.authentication_id = id.into();
        req.static_password = Some(pw.into());
        let err = w.svc.deliver(req, &caller()).await.unwrap_err();
        assert_eq!(err, AuthError::InvalidCredentials(refusal));
        assert_eq!(err.to_string(), "invalid credentials");
        assert!(w.email.sent.lock().unwrap().is_empty());
        assert_eq!(w.store.audit.lock().unwrap()[0].reason, refusal.as_str());
        if refusal == Refusal::UnknownUser {
            assert_eq!(
                w.dir
                    .nobody_checks
                    .load(std::sync::atomic::Ordering::SeqCst),
                1
            );
        }
    }
}

#[tokio::test]
async fn step_up_needs_the_same_bound_user() {
    let w = world();
    let mut req = deliver_req(None);
    req.static_password = None;
    let err = w.svc.deliver(req.clone(), &caller()).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::NoPassword));
    let bound = Caller {
        bound_as: Some(alice().key()),
        ..caller()
    };
    assert!(w.svc.deliver(req, &bound).await.is_ok());
}

#[tokio::test]
async fn expired_otp_fails() {
    let w = world();
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let otp = last_otp(&w.email);
    w.clock.advance(Duration::from_secs(301));
    let err = w.svc.verify(verify_req(&otp), &caller()).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::OtpExpired));
}

#[tokio::test]
async fn too_many_wrong_tries_void_the_otp() {
    let w = world();
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let otp = last_otp(&w.email);
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    for expected in [Refusal::WrongOtp, Refusal::WrongOtp, Refusal::OtpVoided] {
        let err = w
            .svc
            .verify(verify_req(wrong), &caller())
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::InvalidCredentials(expected));
    }
    let err = w.svc.verify(verify_req(&otp), &caller()).await.unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::NoOtp));
}

#[tokio::test]
async fn a_new_otp_replaces_the_old_one() {
    let w = world();
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let first = last_otp(&w.email);
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let second = last_otp(&w.email);
    assert_ne!(first, second);
    let err = w
        .svc
        .verify(verify_req(&first), &caller())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::WrongOtp));
    assert!(w.svc.verify(verify_req(&second), &caller()).await.is_ok());
}

#[tokio::test]
async fn authorization_identity_must_be_the_users_own() {
    let w = world();
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let otp = last_otp(&w.email);
    let mut req = verify_req(&otp);
    req.authorization_id = Some("dn:uid=bob,ou=people,dc=example,dc=com".into());
    let err = w.svc.verify(req.clone(), &caller()).await.unwrap_err();
    assert!(matches!(err, AuthError::AuthorizationDenied(_)));
    req.authorization_id = Some("dn:UID=alice, ou=people,dc=example,dc=com".into());
    assert!(
        w.svc.verify(req, &caller()).await.is_ok(),
        "OTP kept for a correct retry"
    );
}

#[tokio::test]
async fn audit_never_holds_secrets() {
    let w = world();
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let otp = last_otp(&w.email);
    w.svc.verify(verify_req(&otp), &caller()).await.unwrap();
    let audit = w.store.audit.lock().unwrap();
    assert_eq!(audit.len(), 2);
    for r in audit.iter() {
        let all = format!("{r:?}");
        assert!(!all.contains(&otp) && !all.contains("secret"), "{all}");
    }
    assert_eq!(audit[0].mechanism.as_deref(), Some("Email"));
    assert_eq!(audit[0].recipient.as_deref(), Some("alice@example.com"));
    assert_eq!(audit[0].client.as_deref(), Some("192.0.2.1"));
}

#[tokio::test]
async fn rate_limit_per_user_refuses_before_any_work() {
    let w = world_limited(vec![alice()], false, false, deliver_per_user(2));
    for _ in 0..2 {
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    }
    let err = w
        .svc
        .deliver(deliver_req(None), &caller())
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::RateLimited { .. }));
    assert_eq!(w.email.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn per_user_limit_counts_the_user_whatever_the_spelling() {
    let w = world_limited(vec![alice()], false, false, deliver_per_user(2));
    for id in ["u:alice", "dn:uid=alice,ou=people,dc=example,dc=com"] {
        let mut req = deliver_req(None);
        req.authentication_id = id.into();
        w.svc.deliver(req, &caller()).await.unwrap();
    }
    let mut req = deliver_req(None);
    req.authentication_id = "dn:UID=alice , ou=people,dc=example,dc=com".into();
    let err = w.svc.deliver(req, &caller()).await.unwrap_err();
    assert!(matches!(err, AuthError::RateLimited { .. }), "{err:?}");
    assert_eq!(w.email.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64() {
    let mut limits = RateLimits::default();
    limits.verify_per_client = Some(per_minute(2));
    let w = world_limited(vec![alice()], false, false, limits);
    for client in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::ffff",
        "2001:db8:1:2:aa::7",
    ] {
        let c = Caller {
            client: Some(client.into()),
            ..caller()
        };
        let r = w.svc.verify(verify_req("123456"), &c).await;
        if client.ends_with("::7") {
            assert!(matches!(r, Err(AuthError::RateLimited { .. })), "{r:?}");
        }
    }
    let other = Caller {
        client: Some("2001:db8:1:3::1".into()),
        ..caller()
    };
    let r = w.svc.verify(verify_req("123456"), &other).await;
    assert!(
        matches!(r, Err(AuthError::InvalidCredentials(_))),
        "another /64"
    );
}

#[tokio::test]
async fn ambiguous_identity_costs_a_password_check_too() {
    let mut twin = alice();
    twin.dn = Dn::new("uid=alice2,ou=people,dc=example,dc=com");
    let w = world_with(vec![alice(), twin], false, false);
    let err = w
        .svc
        .deliver(deliver_req(None), &caller())
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::InvalidCredentials(Refusal::AmbiguousUser));
    assert_eq!(
        w.dir
            .nobody_checks
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn oversized_requests_are_refused_before_any_work() {
    let w = world();
    let mut req = deliver_req(Some(vec![MechanismChoice::named("Email"); 17]));
    assert!(matches!(
        w.svc.deliver(req.clone(), &caller()).await,
        Err(AuthError::InvalidRequest(_))
    ));
    req.mechanisms = None;
    req.texts.full_before = Some("x".repeat(1025));
    let err = w.svc.deliver(req, &caller()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the full text before the OTP is longer than 1024 characters"
    );
    assert!(w.email.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn supported_mechanisms_lists_one_item_per_recipient() {
    let mut a = alice();
    a.mobile.clear();
    let w = world_with(vec![a], false, false);
    let list = w
        .svc
        .supported_mechanisms(
            "uid=alice,ou=people,dc=example,dc=com",
            &caller(),
            RecipientView::Full,
        )
        .await
        .unwrap();
    let items: Vec<(&str, bool, Option<&str>)> = list
        .iter()
        .map(|m| (m.mechanism.as_str(), m.supported, m.recipient.as_deref()))
        .collect();
    assert_eq!(
        items,
        [
            ("Email", true, Some("alice@example.com")),
            ("Email", true, Some("alice@home.example")),
            ("SMS", false, None)
        ]
    );
    assert_eq!(
        w.svc
            .supported_mechanisms("uid=nobody,dc=x", &caller(), RecipientView::Full)
            .await
            .unwrap_err(),
        AuthError::NoSuchUser
    );
}

// ---------------------------------------------------------------------------------------
// Rate limits reveal nothing and lock nobody out (docs/rate-limits.md).

/// The limits the configuration sets when it says nothing, scaled down.
fn tight_limits() -> RateLimits {
    let mut limits = deliver_per_user(3);
    limits.verify_failures_per_user_and_client = Some(per_minute(3));
    limits.failures_per_user = Some(per_minute(6));
    limits
}

/// What a client sees: the HTTP status class of each answer.
fn seen<T>(r: &Result<T, AuthError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(AuthError::InvalidCredentials(_)) => "refused",
        Err(AuthError::RateLimited { .. }) => "limited",
        Err(_) => "other",
    }
}

#[tokio::test]
async fn a_known_and_an_unknown_user_are_limited_identically() {
    // The same sequence of wrong guesses, spelt several ways, against alice (who exists) and
    // against mallory (who does not): the answers must not differ anywhere.
    let w = world_limited(vec![alice()], false, false, tight_limits());
    let mut answers = Vec::new();
    for who in ["alice", "mallory"] {
        let mut mine = Vec::new();
        for (i, id) in [
            format!("u:{who}"),
            format!("U:{}", who.to_uppercase()),
            format!("dn:uid={who},ou=people,dc=example,dc=com"),
            format!("dn:UID={who}, ou=people,dc=example,dc=com"),
            format!("u:{who}"),
        ]
        .iter()
        .enumerate()
        {
            let mut req = deliver_req(None);
            req.authentication_id = id.clone();
            req.static_password = Some("wrong".into());
            mine.push(seen(&w.svc.deliver(req, &caller()).await));
            let mut v = verify_req("000000");
            v.authentication_id = id.clone();
            mine.push(seen(&w.svc.verify(v, &caller_at("192.0.2.9")).await));
            let pw = w
                .svc
                .passwords
                .authenticate(
                    id,
                    &"wrong".into(),
                    &caller_at(&format!("192.0.2.{}", 20 + i)),
                )
                .await;
            mine.push(seen(&pw));
        }
        answers.push(mine);
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[0].contains(&"limited"), "{:?}", answers[0]);
    assert!(w.email.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_attacker_who_knows_the_username_cannot_lock_the_user_out() {
    let w = world_limited(vec![alice()], false, false, tight_limits());
    let home = caller_at("198.51.100.7");
    // Alice signs in from home once, as every day.
    w.svc.deliver(deliver_req(None), &home).await.unwrap();
    let code = last_otp(&w.email);
    w.svc.verify(verify_req(&code), &home).await.unwrap();

    // Mallory, from many addresses, sends wrong passwords and wrong codes for alice until
    // every limit she can reach refuses her.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut mallory_limited = 0;
    for i in 0..40 {
        let from = caller_at(&format!("203.0.113.{i}"));
        let mut req = deliver_req(None);
        req.static_password = Some("guess".into());
        let r = w.svc.deliver(req, &from).await;
        mallory_limited += usize::from(seen(&r) == "limited");
        let r = w.svc.verify(verify_req(wrong), &from).await;
        mallory_limited += usize::from(seen(&r) == "limited");
        let r = w
            .svc
            .passwords
            .authenticate("u:alice", &"guess".into(), &from)
            .await;
        mallory_limited += usize::from(seen(&r) == "limited");
    }
    assert!(
        mallory_limited > 0,
        "the per-user ceiling stops the guessing"
    );

    // Alice still gets a code from home, Mallory's wrong codes do not void it, and it works.
    w.svc.deliver(deliver_req(None), &home).await.unwrap();
    let code = last_otp(&w.email);
    for i in 0..10 {
        let from = caller_at(&format!("203.0.113.{}", 100 + i));
        let r = w.svc.verify(verify_req(wrong), &from).await;
        assert_ne!(seen(&r), "ok");
    }
    assert_eq!(
        w.svc
            .verify(verify_req(&code), &home)
            .await
            .unwrap()
            .username,
        "alice"
    );
    // And her password binds go through too.
    assert!(
        w.svc
            .passwords
            .authenticate("u:alice", &"secret".into(), &home)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn failures_from_one_client_do_not_spend_another_clients_budget() {
    let w = world_limited(vec![alice()], false, false, tight_limits());
    let mallory = caller_at("203.0.113.1");
    for _ in 0..3 {
        let mut req = deliver_req(None);
        req.static_password = Some("guess".into());
        let r = w.svc.deliver(req, &mallory).await;
        assert_eq!(seen(&r), "refused");
    }
    let mut req = deliver_req(None);
    req.static_password = Some("guess".into());
    assert_eq!(seen(&w.svc.deliver(req, &mallory).await), "limited");
    // Alice, from a client that never authenticated before, is not affected.
    assert!(
        w.svc
            .deliver(deliver_req(None), &caller_at("198.51.100.8"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn successful_deliveries_are_limited_per_user_against_bombing() {
    let w = world_limited(vec![alice()], false, false, tight_limits());
    for i in 0..3 {
        let from = caller_at(&format!("198.51.100.{i}"));
        w.svc.deliver(deliver_req(None), &from).await.unwrap();
    }
    let r = w
        .svc
        .deliver(deliver_req(None), &caller_at("198.51.100.50"))
        .await;
    assert_eq!(seen(&r), "limited");
    assert_eq!(w.email.sent.lock().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------
// A failed Deliver OTP keeps the user's outstanding code.

#[tokio::test]
async fn a_deliver_that_delivers_nothing_keeps_the_outstanding_code() {
    let w = world_with(vec![alice()], false, true);
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let code = last_otp(&w.email);
    let failing = [
        vec![MechanismChoice::named("Pigeon")],
        vec![MechanismChoice {
            name: "Email".into(),
            recipient: Some("mallory@evil.example".into()),
        }],
        vec![MechanismChoice::named("SMS")],
    ];
    for list in failing {
        let err = w
            .svc
            .deliver(deliver_req(Some(list)), &caller())
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::NotDelivered { .. }), "{err:?}");
    }
    assert_eq!(w.email.sent.lock().unwrap().len(), 1);
    assert!(w.svc.verify(verify_req(&code), &caller()).await.is_ok());
}

// ---------------------------------------------------------------------------------------
// Identities with control characters, or too long, are malformed everywhere.

#[tokio::test]
async fn bad_identities_get_the_malformed_answer_in_every_operation() {
    let w = world();
    let long = format!("u:{}", "a".repeat(MAX_IDENTITY_LEN));
    for id in [
        "u:alice\nforged",
        "dn:uid=alice\u{1b}[2J,dc=x",
        long.as_str(),
    ] {
        let mut req = deliver_req(None);
        req.authentication_id = id.into();
        let d = w.svc.deliver(req, &caller()).await.unwrap_err();
        let mut v = verify_req("123456");
        v.authentication_id = id.into();
        let v = w.svc.verify(v, &caller()).await.unwrap_err();
        let b = w
            .svc
            .passwords
            .authenticate(id, &"secret".into(), &caller())
            .await
            .unwrap_err();
        let dn = id.trim_start_matches("dn:").trim_start_matches("u:");
        let m = w
            .svc
            .supported_mechanisms(dn, &caller(), RecipientView::Full)
            .await;
        for e in [&d, &v, &b] {
            assert!(
                matches!(e, AuthError::MalformedIdentity(_)),
                "{id:?}: {e:?}"
            );
            assert_eq!(e, &d, "the same answer everywhere");
        }
        // A bare DN is as long as in `dn:<DN>`: over the limit here too.
        assert!(
            matches!(m, Err(AuthError::MalformedIdentity(_))),
            "{id:?}: {m:?}"
        );
    }
    assert_eq!(
        w.dir
            .nobody_checks
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_malformed_authorization_identity_gets_one_answer_whatever_the_code() {
    let w = world();
    let with_authz = |otp: &str| VerifyRequest {
        authorization_id: Some("u:al\u{0}ice".into()),
        ..verify_req(otp)
    };
    // No code outstanding, then a right one: the same refusal, and the code is not spent.
    let none = w.svc.verify(with_authz("123456"), &caller()).await;
    assert!(
        matches!(none, Err(AuthError::MalformedIdentity(_))),
        "{none:?}"
    );
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let otp = last_otp(&w.email);
    let right = w.svc.verify(with_authz(&otp), &caller()).await;
    assert!(
        matches!(right, Err(AuthError::MalformedIdentity(_))),
        "{right:?}"
    );
    // `dn:` alone is the anonymous identity: well-formed, and not alice's to assume.
    let anonymous = VerifyRequest {
        authorization_id: Some("dn:".into()),
        ..verify_req(&otp)
    };
    let denied = w.svc.verify(anonymous, &caller()).await;
    assert!(
        matches!(denied, Err(AuthError::AuthorizationDenied(_))),
        "{denied:?}"
    );
    assert!(w.svc.verify(verify_req(&otp), &caller()).await.is_ok());
}

#[tokio::test]
async fn strangers_guessing_at_one_code_void_it_at_the_backstop_whatever_the_budgets() {
    // No failure budgets at all: only the backstop bounds guesses from untrusted clients.
    let w = world();
    w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
    let otp = last_otp(&w.email);
    let wrong = if otp == "000000" { "999999" } else { "000000" };
    let ceiling =
        w.svc.settings.max_failed_attempts * crate::ratelimit::STRANGER_GUESSES_PER_MAX_FAILED;
    for i in 1..ceiling {
        let stranger = caller_at(&format!("198.51.100.{}", i % 250));
        let r = w.svc.verify(verify_req(wrong), &stranger).await;
        assert_eq!(
            r.unwrap_err(),
            AuthError::InvalidCredentials(Refusal::WrongOtp)
        );
    }
    let last = w
        .svc
        .verify(verify_req(wrong), &caller_at("203.0.113.1"))
        .await;
    assert_eq!(
        last.unwrap_err(),
        AuthError::InvalidCredentials(Refusal::OtpVoided)
    );
    let user = w.svc.verify(verify_req(&otp), &caller()).await;
    assert_eq!(
        user.unwrap_err(),
        AuthError::InvalidCredentials(Refusal::NoOtp)
    );
}
