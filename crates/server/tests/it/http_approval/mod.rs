//! Approved OTP over HTTP: the login API and its answers, long-poll and event stream woken by a
//! decision, verify as an OTP login, and the manager's page (what it shows, that looking never
//! decides, forged POSTs refused, the security headers). The core's in-memory world stands
//! behind the real router and, for everything that waits, the real listener on a loopback
//! socket; the signal is the server's own `WaitingRoom`. Here: the rig, the login API and
//! verify; [`waiting`]: long-polls and event streams over the socket; [`page`]: the manager's
//! page.

mod page;
pub(crate) mod waiting;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use countersign::http::{
    ApiState, ApprovalApi, CsrfKey, HttpLimits, HttpServer, router as http_router,
};
use countersign::signal::WaitingRoom;
use countersign_core::application::{Application, Applications, AuthMethod};
use countersign_core::approval::profile::DEFAULT_APPROVAL_MESSAGE;
use countersign_core::approval::{
    ApprovalDelivery, ApprovalProfile, ApprovalState, DecidedBy, MessageTemplate, Policies, Policy,
    ProfileKind, ValuePattern,
};
use countersign_core::audit::AuditAction;
use countersign_core::login::{ApprovalRules, LoginService};
use countersign_core::otp::OtpService;
use countersign_core::testkit::*;
use countersign_core::{Dn, Sponsor, User};
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY_VPN: &str = "k-vpn-7f3a9c1e5b";
const KEY_WIKI: &str = "k-wiki-2d8e4f6a0c";
const KEY_INTRANET: &str = "k-intranet-9b1d3f5e7a";
const KEY_OTP_ONLY: &str = "k-otponly-4c6e8a0b2d";
const SERVER_KEY: &[u8] = b"the server's 32-byte secret key!";
const NASTY_NAME: &str = "<script>alert(\"x\")</script> & Co";
/// The times of the test clock as the page shows them (`T0`, and the link's hour).
const ASKED_AT: &str = "2023-11-14 22:13:20 UTC";
const VALID_UNTIL: &str = "2023-11-14 23:13:20 UTC";

/// The core's world with Approved OTP on top, and the HTTP state over it.
struct Rig {
    w: World,
    login: Arc<LoginService>,
    approvals: Arc<MemApprovals>,
    manager_mail: Arc<RecordingCourier>,
    room: Arc<WaitingRoom>,
    state: ApiState,
}

fn user(name: &str, display: &str, department: Option<&str>, managed: bool) -> User {
    let mut u = alice();
    u.dn = Dn::new(format!("uid={name},ou=people,dc=example,dc=com"));
    u.username = name.to_owned();
    u.display_name = Some(display.to_owned());
    u.mail = vec![format!("{name}@example.com")];
    u.mobile = vec![];
    if let Some(d) = department {
        u.attributes
            .insert("department".to_owned(), vec![d.to_owned()]);
    }
    if managed {
        u.sponsor = Some(Sponsor {
            name: Some("Boss".into()),
            email: Some("boss@example.com".into()),
            phone: None,
        });
    }
    u
}

fn users() -> Vec<User> {
    let mut list = vec![
        user("alice", "Alice", Some("staff"), true),
        user("eve", NASTY_NAME, Some("staff"), true),
        user("lonely", "Lonely", Some("staff"), false),
        user("labrat", "Lab Rat", Some("lab"), true),
        user("outsider", "Outsider", None, true),
    ];
    list.extend((0..50).map(|i| {
        user(
            &format!("u{i:02}"),
            &format!("User {i}"),
            Some("staff"),
            true,
        )
    }));
    list
}

fn profile(name: &str, courier: &Arc<RecordingCourier>) -> ApprovalProfile {
    ApprovalProfile {
        name: name.into(),
        kind: ProfileKind::Approval,
        server: "https://mfa.example.com".into(),
        message: MessageTemplate::parse(DEFAULT_APPROVAL_MESSAGE).unwrap(),
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

fn policy(department: &str, profile: &str) -> Policy {
    Policy {
        name: department.into(),
        profile: profile.into(),
        directory: "local".into(),
        attribute: "department".into(),
        values: vec![ValuePattern::parse(department).unwrap()],
    }
}

fn rig() -> Rig {
    let w = world_with(users(), false, false);
    let manager_mail = Arc::new(RecordingCourier::default());
    let broken_mail = Arc::new(RecordingCourier {
        fail: true,
        ..Default::default()
    });
    let approvals = w.store.clone();
    let room = Arc::new(WaitingRoom::new(w.clock.clone()));
    let rules = ApprovalRules {
        profiles: vec![
            profile("critical", &manager_mail),
            profile("broken", &broken_mail),
        ],
        default_profile: None,
        policies: Policies::new(vec![policy("staff", "critical"), policy("lab", "broken")]),
        grace_period: Duration::from_secs(120),
        rejection_cooldown: Duration::ZERO,
    };
    let login = Arc::new(w.login_service(
        rules,
        room.clone(),
        Arc::new(countersign::system::SpawnDetach),
        Arc::new(|| {}),
    ));
    let otp = login.otp.clone();
    let all = AuthMethod::ALL.to_vec();
    let applications = Applications::new(vec![
        Application::new("vpn", Some(KEY_VPN), all.clone(), true),
        Application::new("wiki", Some(KEY_WIKI), all.clone(), true),
        Application::new("intranet", Some(KEY_INTRANET), all.clone(), false),
        Application::new(
            "otp-only",
            Some(KEY_OTP_ONLY),
            vec![AuthMethod::DeliveredOtp],
            true,
        ),
    ]);
    let state = ApiState::new(otp, w.store.clone(), false, Duration::from_secs(5), true)
        .with_approvals(ApprovalApi {
            login: login.clone(),
            applications,
            keyless: Application::new("http", None, all, true),
            csrf: CsrfKey::derive(SERVER_KEY),
            own_origins: vec!["https://mfa.example.com".into()],
        });
    Rig {
        w,
        login,
        approvals,
        manager_mail,
        room,
        state,
    }
}

impl Rig {
    fn router(&self) -> Router {
        http_router(self.state.clone())
    }

    /// The link token in the last message that asked about `username`.
    fn token_of(&self, username: &str) -> String {
        let sent = self.manager_mail.sent.lock().unwrap();
        let body = sent
            .iter()
            .rev()
            .map(|m| m.body.expose().to_owned())
            .find(|b| b.contains(&format!("({username})")))
            .unwrap_or_else(|| panic!("no message about {username}"));
        let start = body.find("/approve/").unwrap() + "/approve/".len();
        body[start..start + 64].to_owned()
    }

    fn request(&self, id: &str) -> countersign_core::approval::ApprovalRequest {
        self.approvals
            .requests
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .unwrap()
    }

    fn decisions(&self) -> usize {
        self.w
            .store
            .audit
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.action == AuditAction::Decision)
            .count()
    }

    /// A pending login of `username` through vpn; its id and link token.
    async fn pending(&self, username: &str) -> (String, String) {
        let r = send(
            &self.router(),
            login_req(
                Some(KEY_VPN),
                json!({"authentication_id": format!("u:{username}"), "password": "secret"}),
            ),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.json()["login"].as_str().unwrap().to_owned();
        (id, self.token_of(username))
    }
}

/// What came back, body as text.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

async fn send(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn from(req: axum::http::request::Builder, client: &str) -> axum::http::request::Builder {
    let addr: SocketAddr = format!("{client}:40000").parse().unwrap();
    req.extension(ConnectInfo(addr))
}

fn login_req(key: Option<&str>, body: Value) -> Request<Body> {
    let mut req = from(Request::post("/api/v1/logins"), "198.51.100.7")
        .header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    req.body(Body::from(body.to_string())).unwrap()
}

fn read_req(id: &str, key: Option<&str>, query: &str) -> Request<Body> {
    let mut req = Request::get(format!("/api/v1/logins/{id}{query}"));
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    req.body(Body::empty()).unwrap()
}

fn password(username: &str, password: &str) -> Value {
    json!({"authentication_id": format!("u:{username}"), "password": password})
}

/// The page's security headers, on every answer of the page routes.
fn assert_page_headers(h: &HeaderMap, what: &str) {
    for (name, want) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
             img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        assert_eq!(h[name], want, "{what}: {name}");
    }
}

fn assert_denied(r: &Reply, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let p = r.json();
    assert_eq!(p["status"], status, "{p}");
    assert_eq!(p["outcome"], "denied", "{p}");
    assert_eq!(p["reason"], reason, "{p}");
}

#[tokio::test]
async fn logins_are_granted_pending_or_denied_with_their_reason() {
    let rig = rig();
    let router = rig.router();

    // Granted: an application Approved OTP does not apply to.
    let r = send(
        &router,
        login_req(Some(KEY_INTRANET), password("alice", "secret")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(
        r.json(),
        json!({"status": "granted", "user": {
            "dn": "uid=alice,ou=people,dc=example,dc=com", "username": "alice", "display_name": "Alice"}})
    );

    // Pending: the manager was asked.
    let r = send(
        &router,
        login_req(Some(KEY_VPN), password("alice", "secret")),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let p = r.json();
    let id = p["login"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(p["status"], "pending");
    assert_eq!(p["expires_at"], "2023-11-14T23:13:20Z");
    assert_eq!(p["poll"], format!("/api/v1/logins/{id}?wait=30"));
    assert_eq!(p["events"], format!("/api/v1/logins/{id}/events"));
    assert_eq!(r.headers["location"], format!("/api/v1/logins/{id}"));
    assert_eq!(rig.request(id).client.as_deref(), Some("198.51.100.7"));

    // Every first-factor failure is one answer: wrong password, unknown user, malformed.
    let wrong = send(&router, login_req(Some(KEY_VPN), password("alice", "nope"))).await;
    assert_denied(&wrong, 401, "invalid_credentials");
    for body in [
        password("nobody", "secret"),
        json!({"authentication_id": "alice", "password": "secret"}),
        json!({"authentication_id": "u:al\u{7}ice", "password": "secret"}),
    ] {
        let r = send(&router, login_req(Some(KEY_VPN), body.clone())).await;
        assert_eq!((r.status, r.json()), (401, wrong.json()), "{body}");
    }
    assert!(
        wrong.json()["detail"]
            .as_str()
            .unwrap()
            .contains("not valid"),
        "the uniform detail: {}",
        wrong.body
    );

    // Denials after a right first factor, each with its reason.
    let cases = [
        (KEY_VPN, "outsider", "no_matching_policy"),
        (KEY_VPN, "lonely", "approver_unreachable"),
        (KEY_VPN, "labrat", "approval_not_sent"),
        (KEY_OTP_ONLY, "alice", "method_not_allowed"),
    ];
    for (key, who, reason) in cases {
        let r = send(&router, login_req(Some(key), password(who, "secret"))).await;
        assert_denied(&r, 403, reason);
    }

    // Exactly one of password and otp.
    for body in [
        json!({"authentication_id": "u:alice"}),
        json!({"authentication_id": "u:alice", "password": "secret", "otp": "123456"}),
        json!({"authentication_id": "u:alice", "password": "secret", "authorization_id": "u:alice"}),
        json!({"authentication_id": "u:alice", "password": "secret", "extra": 1}),
    ] {
        let r = send(&router, login_req(Some(KEY_VPN), body.clone())).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
}

#[tokio::test]
async fn decisions_expiry_and_cancellation_are_read_as_denials() {
    let rig = rig();
    let router = rig.router();
    let (rejected, token) = rig.pending("alice").await;
    rig.login
        .decide_by_link(&token, false, DecidedBy::default())
        .await
        .unwrap();
    assert_denied(
        &send(&router, read_req(&rejected, Some(KEY_VPN), "")).await,
        403,
        "rejected",
    );

    let (cancelled, _) = rig.pending("alice").await;
    rig.login
        .decide(&cancelled, ApprovalState::Cancelled, DecidedBy::default())
        .await
        .unwrap();
    assert_denied(
        &send(&router, read_req(&cancelled, Some(KEY_VPN), "")).await,
        403,
        "cancelled",
    );

    let (pending, _) = rig.pending("eve").await;
    let r = send(&router, read_req(&pending, Some(KEY_VPN), "?wait=0")).await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (202, json!("pending"))
    );
    rig.w.clock.advance(Duration::from_secs(3600));
    assert_denied(
        &send(&router, read_req(&pending, Some(KEY_VPN), "")).await,
        403,
        "expired",
    );

    // After an approval, the read gives the user.
    let (approved, token) = rig.pending("u00").await;
    rig.login
        .decide_by_link(&token, true, DecidedBy::default())
        .await
        .unwrap();
    let r = send(&router, read_req(&approved, Some(KEY_VPN), "?wait=5")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"status": "granted", "user": {
            "dn": "uid=u00,ou=people,dc=example,dc=com", "username": "u00", "display_name": "User 0"}})
    );
    for bad in ["?wait=61", "?wait=-1", "?wait=soon"] {
        let r = send(&router, read_req(&approved, Some(KEY_VPN), bad)).await;
        assert_eq!(r.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn applications_must_show_their_key_and_see_only_their_own_logins() {
    let rig = rig();
    let router = rig.router();
    let (id, _) = rig.pending("alice").await;

    // Missing, malformed or unknown key: the same 401 with the Bearer challenge.
    let mut unauthenticated = Vec::new();
    for auth in [
        None,
        Some("Bearer k-nope"),
        Some("Basic dnBuOms="),
        Some("Bearer"),
        Some(KEY_VPN),
    ] {
        let mut req = Request::post("/api/v1/logins").header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = send(
            &router,
            req.body(Body::from(password("alice", "secret").to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert_eq!(r.headers["www-authenticate"], "Bearer", "{auth:?}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
        unauthenticated.push(r.body);
    }
    assert!(
        unauthenticated.windows(2).all(|w| w[0] == w[1]),
        "{unauthenticated:?}"
    );
    // Reading with a wrong key is refused the same way, even though reading needs no key.
    let r = send(&router, read_req(&id, Some("k-nope"), "")).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, unauthenticated[0].as_str())
    );

    // Another application's key, no key at all (the keyless application) and an unknown id
    // are the same 404.
    let owner = send(&router, read_req(&id, Some(KEY_VPN), "")).await;
    assert_eq!(owner.status, 202);
    let unknown = send(&router, read_req(&"0".repeat(32), Some(KEY_VPN), "")).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.headers["content-type"], "application/problem+json");
    for (key, what) in [(Some(KEY_WIKI), "another application"), (None, "keyless")] {
        let r = send(&router, read_req(&id, key, "")).await;
        assert_eq!((r.status, &r.body), (404, &unknown.body), "{what}");
        let r = send(&router, read_req(&id, key, "/events")).await;
        assert_eq!((r.status, &r.body), (404, &unknown.body), "{what}: events");
    }
    for odd in ["not-an-id", "0123"] {
        let r = send(&router, read_req(odd, Some(KEY_VPN), "")).await;
        assert_eq!((r.status, &r.body), (404, &unknown.body), "{odd}");
    }
}

#[tokio::test]
async fn verify_is_an_otp_login_of_the_keyless_or_the_keyed_application() {
    let rig = rig();
    let router = rig.router();
    let verify = |key: Option<&str>, otp: &str| {
        let mut req = from(Request::post("/api/v1/otp/verify"), "198.51.100.7")
            .header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        req.body(Body::from(
            json!({"authentication_id": "u:alice", "otp": otp}).to_string(),
        ))
        .unwrap()
    };
    let deliver = || async {
        rig.w
            .svc
            .deliver(deliver_req(None), &caller())
            .await
            .unwrap();
        last_otp(&rig.w.email)
    };

    // No key: the keyless application, under the approval profile: pending.
    let code = deliver().await;
    let r = send(&router, verify(None, &code)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["login"].as_str().unwrap().to_owned();
    assert_eq!(rig.request(&id).application, "http");
    // Its logins are read without a key, and by nobody else.
    assert_eq!(send(&router, read_req(&id, None, "")).await.status, 202);
    assert_eq!(
        send(&router, read_req(&id, Some(KEY_VPN), "")).await.status,
        404
    );
    rig.login
        .decide_by_link(&rig.token_of("alice"), true, DecidedBy::default())
        .await
        .unwrap();
    let r = send(&router, read_req(&id, None, "")).await;
    assert_eq!(
        (r.status, r.json()["user"]["username"].clone()),
        (200, json!("alice"))
    );

    // A key names the application: exempt from Approved OTP, the answer keeps verify's shape.
    let code = deliver().await;
    let r = send(&router, verify(Some(KEY_INTRANET), &code)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"user_dn": "uid=alice,ou=people,dc=example,dc=com", "username": "alice"})
    );
    // An unknown key is refused before the code is looked at (it stays usable).
    let code = deliver().await;
    let r = send(&router, verify(Some("k-nope"), &code)).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = send(&router, verify(Some(KEY_WIKI), &code)).await;
    assert_eq!(r.status, 202, "{}", r.body);
    // A wrong code is the uniform 401, marked denied.
    let r = send(&router, verify(None, "000000")).await;
    assert_denied(&r, 401, "invalid_credentials");

    // The login API takes OTPs too; the user comes back from the use case.
    let code = deliver().await;
    let r = send(
        &router,
        login_req(
            Some(KEY_INTRANET),
            json!({"authentication_id": "u:alice", "otp": code}),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["user"]["display_name"].clone()),
        (200, json!("Alice"))
    );
}

/// The hidden field of a page.
pub(crate) fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[start..start + 64].to_owned()
}

#[tokio::test]
async fn without_approved_otp_the_new_endpoints_do_not_exist() {
    let w = world();
    let otp = Arc::new(OtpService {
        passwords: w.svc.passwords.clone(),
        mechanisms: w.svc.mechanisms.clone(),
        default_mechanisms: w.svc.default_mechanisms.clone(),
        generator: w.svc.generator.clone(),
        settings: w.svc.settings,
        hasher: w.svc.hasher.clone(),
        store: w.store.clone(),
        clock: w.clock.clone(),
        random: w.svc.random.clone(),
    });
    let router = http_router(ApiState::new(
        otp,
        w.store.clone(),
        false,
        Duration::from_secs(5),
        true,
    ));
    for (method, path) in [
        ("POST", "/api/v1/logins"),
        ("GET", "/api/v1/logins/00000000000000000000000000000000"),
        (
            "GET",
            "/api/v1/logins/00000000000000000000000000000000/events",
        ),
        ("GET", &format!("/approve/{}", "0".repeat(64))),
        ("GET", "/assets/countersign.css"),
    ] {
        let r = send(
            &router,
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
}
