#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use super::authorize::{NoRedirect, check};
use super::token::s256;
use super::*;
use crate::application::{Application, AuthMethod, OidcClient};
use crate::ports::oidc::OidcStore;
use crate::testkit::{MemStore, TestClock, UniqueRandom};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RP: &str = "https://rp.example/cb";

fn apps() -> Applications {
    Applications::new(vec![
        Application::new("conf", None, AuthMethod::ALL.to_vec(), true)
            .with_oidc(OidcClient::new(vec![RP.into()], Some("s3cret"))),
        Application::new("spa", None, AuthMethod::ALL.to_vec(), true).with_oidc(OidcClient::new(
            vec!["https://spa.example/cb?x=1".into()],
            None,
        )),
        Application::new(
            "api-only",
            Some("k".repeat(32).as_str()),
            AuthMethod::ALL.to_vec(),
            true,
        ),
    ])
}

fn good() -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "conf".into()),
        ("redirect_uri", RP.into()),
        ("scope", "openid profile email offline_access".into()),
        ("state", "st&1".into()),
        ("nonce", "n-1".into()),
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

fn with(changes: &[(&'static str, Option<&str>)]) -> Vec<(String, String)> {
    let mut p = good();
    for (name, value) in changes {
        p.retain(|(n, _)| n != name);
        if let Some(v) = value {
            p.push((name, (*v).to_owned()));
        }
    }
    p.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

fn redirect_error(r: Result<AuthorizeRequest, AuthorizeError>) -> &'static str {
    match r {
        Err(AuthorizeError::Redirect { error, state, .. }) => {
            assert_eq!(state.as_deref(), Some("st&1"), "errors carry the state");
            error
        }
        other => panic!("expected an error redirect, got {other:?}"),
    }
}

#[test]
fn a_good_request_keeps_what_it_carries() {
    let r = check(&with(&[]), &apps()).unwrap();
    assert_eq!(r.client_id, "conf");
    assert_eq!(
        r.scope,
        ["openid", "profile", "email"],
        "unknown scopes are dropped"
    );
    assert_eq!(r.state.as_deref(), Some("st&1"));
    assert_eq!(r.nonce.as_deref(), Some("n-1"));
    assert_eq!(r.code_challenge, Some(s256(VERIFIER)));
}

#[test]
fn wrong_clients_and_redirects_are_never_redirected_to() {
    let cases = [
        (with(&[("client_id", None)]), NoRedirect::MissingClient),
        (
            with(&[("client_id", Some("nobody"))]),
            NoRedirect::UnknownClient,
        ),
        (
            with(&[("client_id", Some("api-only"))]),
            NoRedirect::UnknownClient,
        ),
        (
            with(&[("redirect_uri", None)]),
            NoRedirect::MissingRedirectUri,
        ),
        (
            with(&[("redirect_uri", Some("https://rp.example/cb/"))]),
            NoRedirect::UnregisteredRedirectUri,
        ),
        (
            with(&[("redirect_uri", Some("https://RP.example/cb"))]),
            NoRedirect::UnregisteredRedirectUri,
        ),
        (
            with(&[("redirect_uri", Some("https://evil.example/cb"))]),
            NoRedirect::UnregisteredRedirectUri,
        ),
    ];
    for (p, expected) in cases {
        assert_eq!(
            check(&p, &apps()),
            Err(AuthorizeError::NoRedirect(expected))
        );
    }
    let mut twice = with(&[]);
    twice.push(("redirect_uri".into(), RP.into()));
    assert_eq!(
        check(&twice, &apps()),
        Err(AuthorizeError::NoRedirect(NoRedirect::Repeated))
    );
}

#[test]
fn later_problems_go_back_to_the_client_with_the_oauth_error() {
    let a = apps();
    let e = |c: &[(&'static str, Option<&str>)]| redirect_error(check(&with(c), &a));
    assert_eq!(e(&[("response_type", None)]), "invalid_request");
    assert_eq!(
        e(&[("response_type", Some("token"))]),
        "unsupported_response_type"
    );
    assert_eq!(e(&[("scope", Some("profile"))]), "invalid_scope");
    assert_eq!(e(&[("scope", None)]), "invalid_scope");
    assert_eq!(
        e(&[("code_challenge_method", Some("plain"))]),
        "invalid_request"
    );
    assert_eq!(e(&[("code_challenge_method", None)]), "invalid_request");
    assert_eq!(e(&[("code_challenge", Some("short"))]), "invalid_request");
    assert_eq!(e(&[("code_challenge", None)]), "invalid_request");
    assert_eq!(e(&[("prompt", Some("none"))]), "login_required");
    assert_eq!(e(&[("prompt", Some("none login"))]), "invalid_request");
    assert_eq!(e(&[("request", Some("eyJ"))]), "request_not_supported");
    assert_eq!(
        e(&[("request_uri", Some("https://x"))]),
        "request_uri_not_supported"
    );
    assert_eq!(e(&[("response_mode", Some("fragment"))]), "invalid_request");
    assert_eq!(e(&[("max_age", Some("soon"))]), "invalid_request");
    let long_state = "s".repeat(authorize::MAX_STATE + 1);
    match check(&with(&[("state", Some(&long_state))]), &a) {
        Err(AuthorizeError::Redirect { error, state, .. }) => {
            assert_eq!((error, state), ("invalid_request", None), "not echoed");
        }
        other => panic!("{other:?}"),
    }
    match check(&with(&[("state", Some("ab\u{FFFD}"))]), &a) {
        Err(AuthorizeError::Redirect { error, state, .. }) => {
            assert_eq!(
                (error, state),
                ("invalid_request", None),
                "not echoed changed"
            );
        }
        other => panic!("{other:?}"),
    }
    let long_nonce = "n".repeat(authorize::MAX_NONCE + 1);
    assert_eq!(e(&[("nonce", Some(&long_nonce))]), "invalid_request");
    let mut twice = with(&[]);
    twice.push(("scope".into(), "openid".into()));
    assert_eq!(redirect_error(check(&twice, &a)), "invalid_request");
}

#[test]
fn public_clients_must_use_pkce_and_confidential_ones_may() {
    let a = apps();
    let spa = |c: &[(&'static str, Option<&str>)]| {
        let mut p = with(c);
        for (n, v) in &mut p {
            if n == "client_id" {
                *v = "spa".into();
            }
            if n == "redirect_uri" {
                *v = "https://spa.example/cb?x=1".into();
            }
        }
        check(&p, &a)
    };
    assert!(spa(&[]).is_ok());
    assert_eq!(
        redirect_error(spa(&[
            ("code_challenge", None),
            ("code_challenge_method", None)
        ])),
        "invalid_request"
    );
    let conf = check(
        &with(&[("code_challenge", None), ("code_challenge_method", None)]),
        &a,
    );
    assert_eq!(conf.unwrap().code_challenge, None);
}

#[test]
fn error_redirects_keep_the_clients_query_and_encode_values() {
    let url = authorize::error_redirect(
        "https://spa.example/cb?x=1",
        Some("a b&c"),
        "https://id.example",
        "access_denied",
        "rejected by the manager",
    );
    assert_eq!(
        url,
        "https://spa.example/cb?x=1&error=access_denied&error_description=rejected%20by%20the%20manager&state=a%20b%26c&iss=https%3A%2F%2Fid.example"
    );
}

struct World {
    service: OidcService,
    clock: Arc<TestClock>,
    store: Arc<MemStore>,
}

fn world() -> World {
    let clock = Arc::new(TestClock::at(1_800_000_000_000));
    let store = Arc::new(MemStore::default());
    let service = OidcService {
        issuer: "https://id.example".into(),
        applications: Arc::new(apps()),
        store: store.clone(),
        clock: clock.clone(),
        random: Arc::new(UniqueRandom::default()),
        lifetimes: Lifetimes::default(),
        audit: crate::attempt::AuditTrail::new(store.clone(), clock.clone()),
    };
    World {
        service,
        clock,
        store,
    }
}

fn authentication() -> Authentication {
    Authentication {
        subject: Subject {
            sub: subject_id("corp", "uid=ayse,dc=example"),
            username: "ayse".into(),
            name: Some("Ayşe Yılmaz".into()),
            email: Some("ayse@example.com".into()),
        },
        auth_time: Timestamp(1_799_999_990_000),
        amr: vec![AMR_PASSWORD.into(), AMR_MANAGER.into()],
        acr: ACR_APPROVAL.into(),
    }
}

/// Issues a code for the good request; returns it.
async fn code(w: &World, flow: &str) -> String {
    let request = check(&with(&[]), &w.service.applications).unwrap();
    let url = w
        .service
        .issue_code(&request, flow, Timestamp(0), authentication())
        .await
        .unwrap();
    assert!(url.starts_with("https://rp.example/cb?code="), "{url}");
    assert!(
        url.contains("&state=st%261&iss=https%3A%2F%2Fid.example"),
        "{url}"
    );
    let code = url
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(code.len(), 64, "256 bits, hex");
    code.to_owned()
}

fn exchange_request(code: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(RP.into()),
        code_verifier: Some(VERIFIER.into()),
    }
}

fn caller() -> crate::attempt::Caller {
    crate::attempt::Caller {
        front: crate::attempt::Front::Http,
        client: Some("192.0.2.7".into()),
        bound_as: None,
    }
}

/// The OAuth error the exchange of `r` by `auth` is refused with.
async fn refusal(w: &World, r: &TokenRequest, auth: &ClientAuth) -> &'static str {
    w.service
        .exchange(r, auth, &caller())
        .await
        .unwrap_err()
        .error
}

fn basic(secret: &str) -> ClientAuth {
    ClientAuth::Basic {
        id: "conf".into(),
        secret: secret.into(),
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_for_the_claims_of_the_sign_in() {
    let w = world();
    let code = code(&w, "flow-1").await;
    let issued = w
        .service
        .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
        .await
        .unwrap();
    let t = &issued.id_token;
    assert_eq!(t.iss, "https://id.example");
    assert_eq!(t.aud, "conf");
    assert_eq!(t.sub.len(), 40);
    assert_eq!(t.nonce.as_deref(), Some("n-1"));
    assert_eq!(t.iat, 1_800_000_000);
    assert_eq!(t.exp, 1_800_000_600);
    assert_eq!(t.auth_time, 1_799_999_990);
    assert_eq!(t.amr, ["pwd", "mca"]);
    assert_eq!(t.acr, ACR_APPROVAL);
    assert_eq!(t.name.as_deref(), Some("Ayşe Yılmaz"));
    assert_eq!(t.preferred_username.as_deref(), Some("ayse"));
    assert_eq!(t.email.as_deref(), Some("ayse@example.com"));
    let info = w
        .service
        .userinfo(&issued.access_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.subject.sub, t.sub);

    // Replayed: refused, and the access token it issued stops working.
    let again = w
        .service
        .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
        .await;
    assert_eq!(again.unwrap_err().error, "invalid_grant");
    assert_eq!(
        w.service.userinfo(&issued.access_token).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_flow_ends_in_one_redeemed_code() {
    let w = world();
    let first = code(&w, "flow-1").await;
    // A double submit: the second answer's code replaces the first, unredeemed one.
    let second = code(&w, "flow-1").await;
    let e = w
        .service
        .exchange(&exchange_request(&first), &basic("s3cret"), &caller())
        .await;
    assert_eq!(e.unwrap_err().error, "invalid_grant", "replaced");
    w.service
        .exchange(&exchange_request(&second), &basic("s3cret"), &caller())
        .await
        .unwrap();
    // Redeemed: the flow issues no more.
    let request = check(&with(&[]), &w.service.applications).unwrap();
    let third = w
        .service
        .issue_code(&request, "flow-1", Timestamp(0), authentication())
        .await;
    assert!(matches!(third, Err(StoreError::Conflict(_))));
}

#[tokio::test]
async fn a_token_written_after_its_code_was_replayed_is_born_revoked() {
    let w = world();
    let code = code(&w, "f").await;
    let hash = hash_secret(&code);
    // The first exchange's redemption, then a replay before its token is written.
    assert!(matches!(
        w.store.redeem_code(&hash, "conf").await.unwrap(),
        crate::ports::oidc::Redeemed::Fresh(_)
    ));
    assert!(matches!(
        w.store.redeem_code(&hash, "conf").await.unwrap(),
        crate::ports::oidc::Redeemed::Replayed(_)
    ));
    let grant = AccessGrant {
        client: "conf".into(),
        code_hash: hash,
        subject: authentication().subject,
        scope: vec!["openid".into()],
        expires_at: Timestamp(i64::MAX),
    };
    w.store.put_access_token(b"t", &grant).await.unwrap();
    assert_eq!(w.store.access_token(b"t").await.unwrap(), None);
}

#[tokio::test]
async fn every_binding_of_the_code_is_checked_and_a_failure_spends_it() {
    let w = world();
    let cases: Vec<(TokenRequest, ClientAuth, &str)> = vec![
        (
            TokenRequest {
                redirect_uri: Some("https://rp.example/other".into()),
                ..exchange_request("")
            },
            basic("s3cret"),
            "invalid_grant",
        ),
        (
            TokenRequest {
                code_verifier: Some("x".repeat(43)),
                ..exchange_request("")
            },
            basic("s3cret"),
            "invalid_grant",
        ),
        (
            TokenRequest {
                code_verifier: None,
                ..exchange_request("")
            },
            basic("s3cret"),
            "invalid_grant",
        ),
        (
            TokenRequest {
                redirect_uri: None,
                ..exchange_request("")
            },
            basic("s3cret"),
            "invalid_request",
        ),
    ];
    for (i, (mut request, auth, error)) in cases.into_iter().enumerate() {
        let code = code(&w, &format!("flow-{i}")).await;
        request.code = Some(code.clone());
        assert_eq!(refusal(&w, &request, &auth).await, error);
        // Spent: the right request fails now too.
        let retry = w
            .service
            .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
            .await;
        assert_eq!(retry.unwrap_err().error, "invalid_grant");
    }
}

#[tokio::test]
async fn clients_must_authenticate() {
    let w = world();
    let code = code(&w, "f").await;
    let r = exchange_request(&code);
    let wrong = w
        .service
        .exchange(&r, &basic("wrong"), &caller())
        .await
        .unwrap_err();
    assert_eq!(
        (wrong.error, wrong.status(), wrong.basic_challenge),
        ("invalid_client", 401, true)
    );
    let post = ClientAuth::Post {
        id: "conf".into(),
        secret: "wrong".into(),
    };
    let e = w.service.exchange(&r, &post, &caller()).await.unwrap_err();
    assert_eq!((e.error, e.basic_challenge), ("invalid_client", false));
    let none = ClientAuth::None { id: "conf".into() };
    assert_eq!(refusal(&w, &r, &none).await, "invalid_client");
    let unknown = ClientAuth::Basic {
        id: "nobody".into(),
        secret: "s3cret".into(),
    };
    assert_eq!(refusal(&w, &r, &unknown).await, "invalid_client");
    let spa_with_secret = ClientAuth::Post {
        id: "spa".into(),
        secret: "anything".into(),
    };
    assert_eq!(refusal(&w, &r, &spa_with_secret).await, "invalid_client");
    // None of these spent the code: client authentication comes first.
    assert!(
        w.service
            .exchange(&r, &basic("s3cret"), &caller())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn codes_expire_and_grant_types_are_checked() {
    let w = world();
    let code = code(&w, "f").await;
    w.clock.advance(Duration::from_secs(61));
    let e = w
        .service
        .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
        .await
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    let r = TokenRequest {
        grant_type: Some("password".into()),
        ..exchange_request("x")
    };
    assert_eq!(
        refusal(&w, &r, &basic("s3cret")).await,
        "unsupported_grant_type"
    );
    let r = TokenRequest {
        grant_type: None,
        ..exchange_request("x")
    };
    assert_eq!(refusal(&w, &r, &basic("s3cret")).await, "invalid_request");
    let r = exchange_request("not-a-code");
    assert_eq!(refusal(&w, &r, &basic("s3cret")).await, "invalid_grant");
    let e = w
        .service
        .exchange(
            &r,
            &ClientAuth::Invalid("two client authentications"),
            &caller(),
        )
        .await;
    assert_eq!(e.unwrap_err().error, "invalid_request");
    assert_eq!(w.store.oidc.lock().unwrap().tokens.len(), 0);
}

#[tokio::test]
async fn scopes_decide_the_claims_and_tokens_expire() {
    let w = world();
    let request = check(&with(&[("scope", Some("openid"))]), &w.service.applications).unwrap();
    let url = w
        .service
        .issue_code(&request, "f", Timestamp(0), authentication())
        .await
        .unwrap();
    let code = url
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let issued = w
        .service
        .exchange(&exchange_request(code), &basic("s3cret"), &caller())
        .await
        .unwrap();
    assert_eq!(issued.id_token.name, None);
    assert_eq!(issued.id_token.preferred_username, None);
    assert_eq!(issued.id_token.email, None);
    w.clock.advance(Duration::from_secs(601));
    assert_eq!(
        w.service.userinfo(&issued.access_token).await.unwrap(),
        None
    );
}

#[test]
fn an_entry_with_an_id_keeps_its_subject_through_a_rename() {
    let mut u =
        crate::model::User::new("corp", crate::model::Dn::new("uid=ayse,dc=example"), "ayse");
    let by_dn = Subject::of(&u).sub;
    u.id = Some("6A1F0C2E-0000-4000-8000-000000000001".into());
    let by_id = Subject::of(&u).sub;
    assert_ne!(by_id, by_dn);
    u.dn = crate::model::Dn::new("uid=ayse.yilmaz,dc=example");
    assert_eq!(Subject::of(&u).sub, by_id, "renamed, same person");
    u.id = Some("6a1f0c2e-0000-4000-8000-000000000001".into());
    assert_eq!(Subject::of(&u).sub, by_id, "UUIDs compare without case");
    let mut newcomer =
        crate::model::User::new("corp", crate::model::Dn::new("uid=ayse,dc=example"), "ayse");
    newcomer.id = Some("6a1f0c2e-0000-4000-8000-000000000002".into());
    assert_ne!(
        Subject::of(&newcomer).sub,
        by_id,
        "a reused DN is someone else"
    );
}

#[test]
fn subjects_are_stable_and_say_nothing_of_the_dn() {
    let a = subject_id("corp", "uid=ayse,dc=example");
    assert_eq!(a, subject_id("corp", "uid=ayse,dc=example"));
    assert_ne!(a, subject_id("local", "uid=ayse,dc=example"));
    assert!(!a.contains("ayse"));
}

#[tokio::test]
async fn another_client_cannot_spend_a_code_and_exchanges_are_audited() {
    let w = world();
    let code = code(&w, "f").await;
    let spa = ClientAuth::None { id: "spa".into() };
    let r = TokenRequest {
        redirect_uri: Some("https://spa.example/cb?x=1".into()),
        ..exchange_request(&code)
    };
    let e = w.service.exchange(&r, &spa, &caller()).await.unwrap_err();
    assert_eq!(e.error, "invalid_grant");
    // Untouched: its own client still exchanges it, once.
    w.service
        .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
        .await
        .unwrap();
    let replay = w
        .service
        .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
        .await;
    assert_eq!(replay.unwrap_err().error, "invalid_grant");
    let audit = w.store.audit.lock().unwrap().clone();
    let tokens: Vec<_> = audit
        .iter()
        .filter(|r| r.action == crate::audit::AuditAction::Token)
        .collect();
    assert_eq!(
        tokens.len(),
        2,
        "the exchange and the replay; not the other client's try"
    );
    assert!(tokens.iter().all(|r| r.identity == "ayse"));
    assert!(
        tokens
            .iter()
            .all(|r| r.client.as_deref() == Some("192.0.2.7"))
    );
    assert!(
        tokens[1].reason.contains("presented again"),
        "{:?}",
        tokens[1]
    );
}

#[tokio::test]
async fn a_redirect_uri_removed_after_the_code_was_issued_gets_nothing() {
    let w = world();
    let code = code(&w, "f").await;
    let narrowed = Applications::new(vec![
        Application::new("conf", None, AuthMethod::ALL.to_vec(), true).with_oidc(OidcClient::new(
            vec!["https://rp.example/other".into()],
            Some("s3cret"),
        )),
    ]);
    let service = OidcService {
        applications: Arc::new(narrowed),
        ..w.service
    };
    let e = service
        .exchange(&exchange_request(&code), &basic("s3cret"), &caller())
        .await
        .unwrap_err();
    assert_eq!(e.error, "invalid_grant");
}
