//! Approved OTP over HTTP end to end on the real server (the harness's countersign on loopback
//! with the approval configuration of approval_ldap.rs and a real SMTP server): the login API,
//! the manager's mail and page, long-polls and event streams woken by the page's POST, forged
//! POSTs, rejection, expiry by the approvals job, joined retries, the grace period, an
//! undeliverable approval message, an OTP login through verify, the SASL bind held until the
//! approval, and what `countersign audit` says about all of it.

use std::time::{Duration, Instant};

use countersign::ldap::exop;
use countersign_core::Secret;
use countersign_core::approval::ApprovalState;
use countersign_core::ports::ApprovalQuery;
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::*;
use serde_json::{Value, json};

use crate::approval_ldap::{API_KEY, link_token, start, text_of};
use crate::fixtures::harness::{Answer, Countersign, run_countersign};
use crate::fixtures::smtp::{Mail, SmtpOptions, SmtpServer, closed_port};
use crate::http_approval::csrf_of;
use crate::http_approval::waiting::next_event;

/// The profile's server: an origin the page may be posted from.
const OWN_ORIGIN: &str = "https://mfa.example.test";

struct World {
    cs: Countersign,
    smtp: Option<SmtpServer>,
    _keys: tempfile::TempDir,
}

/// countersign with dora (a contractor: her sponsor bob must approve) and ivan (staff: bob is
/// informed), sending through a real SMTP server, or to a closed port when `smtp_up` is false.
async fn world(smtp_up: bool) -> World {
    let smtp = smtp_up.then(|| SmtpServer::start(SmtpOptions::default()));
    let port = smtp.as_ref().map_or_else(closed_port, |s| s.port);
    let (cs, keys) = start(port, "30s").await;
    World {
        cs,
        smtp,
        _keys: keys,
    }
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cs.base)
    }

    /// A password login by the vpn application.
    async fn login(&self, name: &str, password: &str) -> Answer {
        let r = self
            .cs
            .http
            .post(self.url("/api/v1/logins"))
            .bearer_auth(API_KEY)
            .json(&json!({"authentication_id": format!("u:{name}"), "password": password}))
            .send()
            .await
            .unwrap();
        Countersign::answer(r).await
    }

    /// `GET /api/v1/logins/{id}?wait=S` as vpn (`key`) or the keyless application; on a task.
    fn poll(&self, id: &str, wait: u64, key: bool) -> tokio::task::JoinHandle<(Answer, Duration)> {
        let mut req = self
            .cs
            .http
            .get(self.url(&format!("/api/v1/logins/{id}?wait={wait}")));
        if key {
            req = req.bearer_auth(API_KEY);
        }
        tokio::spawn(async move {
            let started = Instant::now();
            let a = Countersign::answer(req.send().await.unwrap()).await;
            (a, started.elapsed())
        })
    }

    async fn events(&self, id: &str) -> reqwest::Response {
        let r = self
            .cs
            .http
            .get(self.url(&format!("/api/v1/logins/{id}/events")))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        r
    }

    /// The mails to `to` so far, once there are at least `n`.
    async fn mails_to(&self, to: &str, n: usize) -> Vec<Mail> {
        let smtp = self.smtp.as_ref().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails: Vec<Mail> = smtp
                .messages()
                .into_iter()
                .filter(|m| m.rcpt_tos.iter().any(|r| r == to))
                .collect();
            if mails.len() >= n {
                return mails;
            }
            assert!(Instant::now() < deadline, "{n} mails to {to}: {mails:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The link token of the last approval mail to bob, once there are `n`.
    async fn token(&self, n: usize) -> String {
        link_token(self.mails_to("bob@example.com", n).await.last().unwrap())
    }

    async fn page(
        &self,
        method: reqwest::Method,
        token: &str,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .cs
            .http
            .request(method, self.url(&format!("/approve/{token}")))
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.unwrap())
    }

    /// The page's form POSTed as a browser sends it, with these `Origin` and `Sec-Fetch-Site`.
    async fn post_form(
        &self,
        token: &str,
        csrf: &str,
        decision: &str,
        origin: &str,
        site: &str,
    ) -> (u16, String) {
        let r = self
            .cs
            .http
            .post(self.url(&format!("/approve/{token}")))
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .header("user-agent", "Manager's Phone/1.0")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&decision={decision}"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The manager opens the link and presses a button.
    async fn decide(&self, token: &str, decision: &str) -> (u16, String) {
        let (status, _, page) = self.page(reqwest::Method::GET, token).await;
        assert_eq!(status, 200, "{page}");
        self.post_form(token, &csrf_of(&page), decision, OWN_ORIGIN, "same-origin")
            .await
    }

    async fn state_of(&self, id: &str) -> ApprovalState {
        self.cs.app.store.approval(id).await.unwrap().unwrap().state
    }

    async fn requests(&self, state: ApprovalState) -> usize {
        let q = ApprovalQuery {
            state: Some(state),
            limit: 100,
            ..Default::default()
        };
        self.cs.app.store.list_approvals(&q).await.unwrap().len()
    }

    /// `countersign audit --action ACTION --json`, newest first.
    async fn audit(&self, action: &str) -> Vec<Value> {
        let config = self.cs.dir.path().join("countersign.toml");
        let action = action.to_owned();
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            run_countersign(
                &config,
                &["audit", "--action", &action, "--json", "--limit", "0"],
                "",
            )
        })
        .await
        .unwrap();
        assert!(ok, "{out}{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Deliver OTP to dora by HTTP; the code from her mail (the `n`th to her).
    async fn deliver_dora(&self, n: usize) -> String {
        let r = self
            .cs
            .deliver(json!({"authentication_id": "u:dora", "static_password": "dora-password"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        self.mails_to("dora@example.com", n).await[n - 1].otp(6)
    }
}

fn assert_denied(a: &Answer, status: u16, reason: &str) {
    assert_eq!(a.status, status, "{}", a.json);
    assert_eq!(a.json["outcome"], "denied", "{}", a.json);
    assert_eq!(a.json["reason"], reason, "{}", a.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_post_wakes_a_long_poll_and_an_event_stream_at_once() {
    let w = world(true).await;
    let r = w.login("dora", "dora-password").await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["login"].as_str().unwrap().to_owned();
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["poll"], format!("/api/v1/logins/{id}?wait=30"));
    assert_eq!(
        r.headers["location"],
        format!("/api/v1/logins/{id}").as_str()
    );

    // Bob's mail has the link.
    let mail = w.mails_to("bob@example.com", 1).await.remove(0);
    let body = text_of(&mail);
    assert!(
        body.contains("dora (test) (dora) asks to sign in to vpn"),
        "{body}"
    );
    assert!(body.contains(&format!("{OWN_ORIGIN}/approve/")), "{body}");
    let token = link_token(&mail);

    // Looking never decides: GET, HEAD and OPTIONS leave the request pending.
    let (status, headers, page) = w.page(reqwest::Method::GET, &token).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(page.contains("(dora)") && page.contains("vpn") && page.contains("127.0.0.1"));
    let (status, _, body) = w.page(reqwest::Method::HEAD, &token).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, headers, _) = w.page(reqwest::Method::OPTIONS, &token).await;
    assert_eq!(status, 204);
    assert_eq!(headers["allow"], "GET, HEAD, POST");
    assert_eq!(w.state_of(&id).await, ApprovalState::Pending);

    // Forged POSTs decide nothing: cross-site, a foreign origin, a wrong hidden field.
    let csrf = csrf_of(&page);
    for (csrf, origin, site, what) in [
        (csrf.as_str(), OWN_ORIGIN, "cross-site", "cross-site"),
        (
            csrf.as_str(),
            "https://evil.example",
            "same-site",
            "foreign origin",
        ),
        (
            &"0".repeat(64)[..],
            OWN_ORIGIN,
            "same-origin",
            "wrong field",
        ),
    ] {
        let (status, _) = w.post_form(&token, csrf, "approve", origin, site).await;
        assert_eq!(status, 403, "{what}");
    }
    assert_eq!(w.state_of(&id).await, ApprovalState::Pending);
    assert!(w.audit("decision").await.is_empty());

    // An event stream and a long-poll wait; the manager approves.
    let mut stream = w.events(&id).await;
    let mut buf = String::new();
    let (_, first) = next_event(&mut stream, &mut buf).await.unwrap();
    assert_eq!(first["status"], "pending");
    let poll = w.poll(&id, 30, true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.cs.app.waiting.waited_on() < 1 {
        assert!(Instant::now() < deadline, "nobody waits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let approved = Instant::now();
    let (status, page) = w
        .post_form(&token, &csrf, "approve", OWN_ORIGIN, "same-origin")
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sign-in approved"), "{page}");
    let (answer, _) = poll.await.unwrap();
    let (event, granted) = next_event(&mut stream, &mut buf).await.unwrap();
    assert!(
        approved.elapsed() < Duration::from_secs(5),
        "{:?}",
        approved.elapsed()
    );
    assert_eq!(answer.status, 200, "{}", answer.json);
    let user = json!({"dn": "uid=dora,ou=people,dc=example,dc=com", "username": "dora",
        "display_name": "dora (test)"});
    assert_eq!(answer.json, json!({"status": "granted", "user": user}));
    assert_eq!((event.as_str(), &granted), ("status", &answer.json));
    assert!(
        next_event(&mut stream, &mut buf).await.is_none(),
        "the stream ends"
    );

    // A second POST finds it decided.
    let (status, page) = w
        .post_form(&token, &csrf, "reject", OWN_ORIGIN, "same-origin")
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("Already approved"), "{page}");
    assert_eq!(w.state_of(&id).await, ApprovalState::Approved);

    // The audit: the login with its application, policy, profile and id; the decision with
    // who decided from where.
    let logins = w.audit("login").await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    let l = &logins[0];
    assert_eq!(
        (
            &l["identity"],
            &l["application"],
            &l["policy"],
            &l["profile"],
            &l["login"]
        ),
        (
            &json!("u:dora"),
            &json!("vpn"),
            &json!("contractors"),
            &json!("critical"),
            &json!(id)
        )
    );
    assert_eq!(l["recipient"], "bob@example.com");
    let decisions = w.audit("decision").await;
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    let d = &decisions[0];
    assert_eq!(
        (&d["login"], &d["client"]),
        (&json!(id), &json!("127.0.0.1"))
    );
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("approved via link from 127.0.0.1")
            && reason.contains("Manager's Phone/1.0"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_and_an_expiry_reach_the_waiters_as_denials() {
    let w = world(true).await;
    let r = w.login("dora", "dora-password").await;
    let rejected = r.json["login"].as_str().unwrap().to_owned();
    let poll = w.poll(&rejected, 30, true);
    let (status, page) = w.decide(&w.token(1).await, "reject").await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign-in rejected"), "{page}");
    let (answer, took) = poll.await.unwrap();
    assert_denied(&answer, 403, "rejected");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // Within the rejection cooldown the approver is not asked again.
    let again = w.login("dora", "dora-password").await;
    assert_denied(&again, 403, "rejected");
    // After it, a new login asks again; nobody answers until the link expires (10 minutes).
    w.cs.clock.advance(Duration::from_secs(300));
    let r = w.login("dora", "dora-password").await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["login"].as_str().unwrap().to_owned();
    assert_ne!(id, rejected);
    let token = w.token(2).await;
    let mut stream = w.events(&id).await;
    let mut buf = String::new();
    assert_eq!(
        next_event(&mut stream, &mut buf).await.unwrap().1["status"],
        "pending"
    );
    let poll = w.poll(&id, 30, true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.cs.clock.advance(Duration::from_secs(11 * 60));
    // The approvals job (once a second) marks it expired and wakes both.
    let moved = Instant::now();
    let (answer, _) = poll.await.unwrap();
    assert_denied(&answer, 403, "expired");
    let (_, last) = next_event(&mut stream, &mut buf).await.unwrap();
    assert_eq!(
        (last["reason"].as_str(), last["status"].as_u64()),
        (Some("expired"), Some(403))
    );
    assert!(next_event(&mut stream, &mut buf).await.is_none());
    assert!(
        moved.elapsed() < Duration::from_secs(5),
        "{:?}",
        moved.elapsed()
    );
    assert_eq!(
        w.state_of(&id).await,
        ApprovalState::Expired,
        "marked in the store"
    );
    let expiries = w.audit("expiry").await;
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    assert_eq!(expiries[0]["login"], id.as_str());

    // The expired link's page says so, and a POST to it decides nothing.
    let (status, _, page) = w.page(reqwest::Method::GET, &token).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("Link expired"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_joins_the_pending_login_and_after_approval_gets_in_within_the_grace_period() {
    let w = world(true).await;
    let first = w.login("dora", "dora-password").await;
    let second = w.login("dora", "dora-password").await;
    assert_eq!((first.status, second.status), (202, 202));
    assert_eq!(first.json["login"], second.json["login"], "joined");
    assert_eq!(first.json["expires_at"], second.json["expires_at"]);
    // A wrong password is checked even with a request pending.
    assert_denied(&w.login("dora", "nope").await, 401, "invalid_credentials");
    let (status, _) = w.decide(&w.token(1).await, "approve").await;
    assert_eq!(status, 200);

    // Right after the approval: in at once, no second approval; the password still counts.
    let r = w.login("dora", "dora-password").await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "granted");
    assert_denied(&w.login("dora", "nope").await, 401, "invalid_credentials");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        w.smtp.as_ref().unwrap().messages().len(),
        1,
        "one mail for it all"
    );
    assert_eq!(w.requests(ApprovalState::Approved).await, 1);

    // Past the grace period (2 minutes) a new approval is needed.
    w.cs.clock.advance(Duration::from_secs(121));
    let r = w.login("dora", "dora-password").await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_ne!(r.json["login"], first.json["login"]);
    w.mails_to("bob@example.com", 2).await;

    // Ivan's sponsor is only informed: ivan is in at once.
    let r = w.login("ivan", "ivan-password").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let mail = w.mails_to("bob@example.com", 3).await.remove(2);
    assert!(text_of(&mail).contains("ivan (test) (ivan) signed in to vpn"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_cannot_be_sent_is_refused_with_its_reason() {
    let w = world(false).await;
    let started = Instant::now();
    let r = w.login("dora", "dora-password").await;
    assert_denied(&r, 403, "approval_not_sent");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(w.requests(ApprovalState::Cancelled).await, 1);
    assert_eq!(
        w.requests(ApprovalState::Pending).await,
        0,
        "nothing left hanging"
    );
    // Information mode does not wait for the mail.
    let r = w.login("ivan", "ivan-password").await;
    assert_eq!(r.status, 200, "{}", r.json);
    let logins = w.audit("login").await;
    let dora = logins.iter().find(|l| l["identity"] == "u:dora").unwrap();
    assert_eq!(dora["outcome"], "failure");
    assert!(
        dora["reason"]
            .as_str()
            .unwrap()
            .contains("request cancelled"),
        "{dora}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otp_verify_is_a_login_that_waits_for_the_approval() {
    let w = world(true).await;
    let code = w.deliver_dora(1).await;
    // No key: the keyless application, under dora's approval profile.
    let r = w.cs.verify("u:dora", &code).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["login"].as_str().unwrap().to_owned();
    let poll = w.poll(&id, 30, false);
    let (status, _) = w.decide(&w.token(1).await, "approve").await;
    assert_eq!(status, 200);
    let (answer, took) = poll.await.unwrap();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["user"]["username"], "dora");
    // The code was used up by the verify.
    assert_denied(
        &w.cs.verify("u:dora", &code).await,
        401,
        "invalid_credentials",
    );
    let logins = w.audit("login").await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(
        (
            &logins[0]["application"],
            &logins[0]["profile"],
            &logins[0]["login"]
        ),
        (&json!("http"), &json!("critical"), &json!(id))
    );
}

/// A SASL `UNBOUNDID-DELIVERED-OTP` bind request.
fn sasl_bind(user: &str, otp: &str) -> LdapMsg {
    let credentials = exop::encode_sasl_credentials(&exop::DeliveredOtpCredentials {
        authentication_id: user.into(),
        authorization_id: None,
        otp: Secret::new(otp.to_owned()),
    });
    LdapMsg::new(
        1,
        LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: String::new(),
            cred: LdapBindCred::SASL(SaslCredentials {
                mechanism: exop::SASL_DELIVERED_OTP.into(),
                credentials,
            }),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_otp_bind_is_held_until_the_manager_approves() {
    let w = world(true).await;
    let code = w.deliver_dora(1).await;
    let mut conn = w.cs.ldap_connect().await;
    conn.send(sasl_bind("u:dora", &code)).await.unwrap();
    // The manager is asked; the bind waits for the answer.
    let token = w.token(1).await;
    let early = tokio::time::timeout(Duration::from_millis(500), conn.next()).await;
    assert!(early.is_err(), "held: {early:?}");
    let approved = Instant::now();
    let (status, _) = w.decide(&token, "approve").await;
    assert_eq!(status, 200);
    let msg = tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .expect("the bind is answered")
        .unwrap()
        .unwrap();
    assert!(approved.elapsed() < Duration::from_secs(5));
    let LdapOp::BindResponse(resp) = msg.op else {
        panic!("{msg:?}")
    };
    assert_eq!(
        resp.res.code,
        LdapResultCode::Success,
        "{}",
        resp.res.message
    );
    // Bound as dora.
    conn.send(LdapMsg::new(
        2,
        LdapOp::ExtendedRequest(LdapExtendedRequest {
            name: exop::WHO_AM_I.into(),
            value: None,
        }),
    ))
    .await
    .unwrap();
    let msg = conn.next().await.unwrap().unwrap();
    let LdapOp::ExtendedResponse(resp) = msg.op else {
        panic!("{msg:?}")
    };
    assert_eq!(
        resp.value.as_deref(),
        Some(&b"dn:uid=dora,ou=people,dc=example,dc=com"[..])
    );
    // The bind is a login of vpn (`[ldap] application`) through the LDAP front: its OTP check
    // audited as a verify, its approval step as a login.
    let logins = w.audit("login").await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(
        (
            &logins[0]["front"],
            &logins[0]["application"],
            &logins[0]["profile"]
        ),
        (&json!("ldap"), &json!("vpn"), &json!("critical"))
    );
    assert_eq!(w.audit("verify").await[0]["outcome"], "success");
}
