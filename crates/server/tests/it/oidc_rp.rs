//! The OpenID Connect provider against a relying party not written here: Debian's
//! python3-authlib (`oidc_rp.py`) completes the code flow with PKCE, checks the ID token's
//! signature from the JWKS and its `iss`, `aud`, `exp` and `nonce`, and reads `/userinfo`; then
//! every refusal a client must get: a replayed code (which also revokes the access token it
//! gave), a wrong verifier, a wrong client secret, an expired code, an unknown client and a
//! wrong redirect URI (neither of which may be redirected to).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::approval_ldap::{add_user, approval_config};
use crate::fixtures::harness::{Countersign, Setup};
use crate::fixtures::smtp::{SmtpOptions, SmtpServer};

pub const CLIENT: &str = "wiki";
pub const SECRET: &str = "wiki-client-secret-0123456789abcdef";
pub const REDIRECT: &str = "https://rp.example.test/callback";
/// A public client (a single-page app): no secret, PKCE required.
pub const PUBLIC_CLIENT: &str = "spa";
pub const PUBLIC_REDIRECT: &str = "https://spa.example.test/cb";

pub struct Provider {
    pub cs: Countersign,
    pub smtp: SmtpServer,
    _keys: tempfile::TempDir,
}

/// A free port for the provider's HTTP listener (its issuer URL must be known before start).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The application `wiki` as an OpenID Connect client (confidential), besides the approval
/// configuration of approval_ldap.rs: dora needs her sponsor's approval, ivan's is informed.
pub fn client_config(dir: &Path, methods: &str, also: &str) -> String {
    let secret_file = dir.join("wiki.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    format!(
        "\n[[application]]\nname = \"{CLIENT}\"\nredirect_uris = [\"{REDIRECT}\", \"{also}\"]\nclient_secret_file = \"{}\"\nmethods = {methods}\n\n[[application]]\nname = \"{PUBLIC_CLIENT}\"\nredirect_uris = [\"{PUBLIC_REDIRECT}\"]\npublic_client = true\nmethods = {methods}\n",
        secret_file.display()
    )
}

pub async fn provider(methods: &str) -> Provider {
    provider_with(methods, "http://127.0.0.1:9/cb").await
}

/// The provider, with `also` registered as a second redirect URI of the client.
pub async fn provider_with(methods: &str, also: &str) -> Provider {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let keys = tempfile::TempDir::new().unwrap();
    let key_file = keys.path().join("vpn.key");
    std::fs::write(&key_file, "vpn-portal-api-key-0123456789abcdef\n").unwrap();
    let (extra, _) = approval_config(&key_file, "30s");
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        http_port: Some(free_port()),
        extra: extra + &client_config(keys.path(), methods, also),
        ..Setup::default()
    })
    .await;
    add_user(&cs, "dora", "contractor").await;
    add_user(&cs, "ivan", "staff").await;
    Provider {
        cs,
        smtp,
        _keys: keys,
    }
}

/// Runs a subcommand of oidc_rp.py (on a blocking thread: it calls back into the server).
pub async fn rp(args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/oidc_rp.py");
        let out = Command::new("/usr/bin/python3")
            .arg(script)
            .args(&args)
            // The provider is plain http on loopback in the tests.
            .env("AUTHLIB_INSECURE_TRANSPORT", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "oidc_rp.py {args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    })
    .await
    .unwrap()
}

/// An HTTP client that does not follow redirects (the tests read each `Location`).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The code in a redirect to the client.
pub fn code_in(location: &str) -> &str {
    let after = location
        .split("code=")
        .nth(1)
        .unwrap_or_else(|| panic!("{location}"));
    after.split('&').next().unwrap()
}

/// The code redeemed as the confidential client would (client_secret_basic; the verifier
/// when the request had a challenge).
pub async fn redeem(
    http: &reqwest::Client,
    base: &str,
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        countersign_core::oidc::percent_encode(redirect)
    );
    if let Some(v) = verifier {
        body += &format!("&code_verifier={v}");
    }
    http.post(format!("{base}/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Part `i` of a JWS (0 the header, 1 the payload) as JSON, unverified.
pub fn jws_part(jws: &str, i: usize) -> Value {
    use base64::Engine;
    let part = jws.split('.').nth(i).unwrap_or_else(|| panic!("{jws}"));
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

impl Provider {
    pub async fn login(&self, user: &str, password: &str) -> Value {
        rp(vec![
            "login".into(),
            self.cs.base.clone(),
            CLIENT.into(),
            SECRET.into(),
            REDIRECT.into(),
            user.into(),
            password.into(),
        ])
        .await
    }

    async fn exchange(&self, login: &Value, secret: &str, verifier: &str, auth: &str) -> Value {
        rp(vec![
            "exchange".into(),
            self.cs.base.clone(),
            CLIENT.into(),
            secret.into(),
            REDIRECT.into(),
            login["code"].as_str().unwrap().into(),
            verifier.into(),
            login["nonce"].as_str().unwrap().into(),
            auth.into(),
        ])
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_completes_the_code_flow_and_verifies_the_id_token() {
    let p = provider("[\"password\"]").await;
    let login = p.login("ivan", "ivan-password").await;
    assert_eq!(login["state_ok"], true, "{login}");
    assert_eq!(
        login["iss"],
        p.cs.base.as_str(),
        "RFC 9207 iss in the response"
    );
    let verifier = login["verifier"].as_str().unwrap();
    let done = p.exchange(&login, SECRET, verifier, "basic").await;
    assert_eq!(done["status"], 200, "{done}");
    assert_eq!(done["checks"]["iss"], true);
    assert_eq!(done["checks"]["aud"], true);
    assert_eq!(done["checks"]["nonce"], true);
    assert_eq!(done["token_type"], "Bearer");
    assert_eq!(done["cache_control"], "no-store");
    let claims = &done["claims"];
    assert_eq!(claims["preferred_username"], "ivan");
    assert_eq!(claims["name"], "ivan (test)");
    assert_eq!(claims["email"], "ivan@example.com");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["acr"], "urn:countersign:acr:information");
    assert_eq!(claims["sub"].as_str().unwrap().len(), 40);
    assert_eq!(done["userinfo"]["sub"], claims["sub"]);
    assert_eq!(done["userinfo"]["email"], "ivan@example.com");
    // The information profile told the sponsor.
    assert!(!p.smtp.messages().is_empty());

    // The same user signs in again: the same `sub`.
    let again = p.login("ivan", "ivan-password").await;
    let verifier = again["verifier"].as_str().unwrap();
    let second = p.exchange(&again, SECRET, verifier, "post").await;
    assert_eq!(second["status"], 200, "client_secret_post: {second}");
    assert_eq!(second["claims"]["sub"], claims["sub"]);

    // The first code, presented again: refused, and the access token it gave is revoked.
    let replay = p
        .exchange(&login, SECRET, login["verifier"].as_str().unwrap(), "basic")
        .await;
    assert_eq!(replay["error"], "invalid_grant", "{replay}");
    let info =
        p.cs.http
            .get(format!("{}/userinfo", p.cs.base))
            .bearer_auth(done["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(info.status(), 401);
    assert!(
        info.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_verifiers_secrets_and_expired_codes_are_refused_with_the_oauth_error() {
    let p = provider("[\"password\"]").await;
    let wrong_verifier = "x".repeat(43);
    let cases: [(&str, &str, &str, u16, &str); 3] = [
        (SECRET, &wrong_verifier, "basic", 400, "invalid_grant"),
        (
            "not-the-secret-0123456789abcdef0000",
            "",
            "basic",
            401,
            "invalid_client",
        ),
        (
            "not-the-secret-0123456789abcdef0000",
            "",
            "post",
            400,
            "invalid_client",
        ),
    ];
    for (secret, verifier, auth, status, error) in cases {
        let login = p.login("ivan", "ivan-password").await;
        let verifier = if verifier.is_empty() {
            login["verifier"].as_str().unwrap().to_owned()
        } else {
            verifier.to_owned()
        };
        let r = p.exchange(&login, secret, &verifier, auth).await;
        assert_eq!(r["status"], status, "{auth}: {r}");
        assert_eq!(r["error"], error, "{auth}: {r}");
        if auth == "basic" && status == 401 {
            assert!(r["www_authenticate"].as_str().unwrap().starts_with("Basic"));
        }
    }
    // Expired: the code lives a minute.
    let login = p.login("ivan", "ivan-password").await;
    p.cs.clock.advance(Duration::from_secs(61));
    let r = p
        .exchange(&login, SECRET, login["verifier"].as_str().unwrap(), "basic")
        .await;
    assert_eq!(r["error"], "invalid_grant", "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_clients_and_unregistered_redirects_are_told_on_our_page_not_redirected() {
    let p = provider("[\"password\"]").await;
    let client = no_redirects();
    let authorize = |query: &str| {
        let url = format!("{}/authorize?{query}", p.cs.base);
        let client = client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let base = "response_type=code&scope=openid&code_challenge_method=S256&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&state=s1";
    for query in [
        format!("{base}&client_id=nobody&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback"),
        format!("{base}&client_id={CLIENT}&redirect_uri=https%3A%2F%2Fevil.example%2Fcallback"),
        format!("{base}&client_id={CLIENT}"),
    ] {
        let r = authorize(&query).await;
        assert_eq!(r.status(), 400, "{query}");
        assert!(r.headers().get("location").is_none());
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
    // With the client and redirect right, problems go back to the client.
    let r = authorize(&format!(
        "response_type=token&scope=openid&state=s1&client_id={CLIENT}&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback"
    ))
    .await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://rp.example.test/callback?error=unsupported_response_type&"),
        "{location}"
    );
    assert!(location.contains("&state=s1&"));
    // Wrong passwords: the form again, one message, no code.
    let stopped = p.login("ivan", "wrong").await;
    assert_eq!(stopped["status"], 200, "the form again: {stopped}");
    let unknown = p.login("nobody", "wrong").await;
    assert_eq!(unknown["status"], 200, "the form again: {unknown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_pages_carry_the_security_headers_and_refuse_forged_posts() {
    let p = provider("[\"password\"]").await;
    let client = no_redirects();
    let start = client
        .get(format!(
            "{}/authorize?response_type=code&scope=openid&state=s&client_id={CLIENT}&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback",
            p.cs.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let flow = start.headers()["location"].to_str().unwrap().to_owned();
    let cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        cookie.contains(&format!("Path={flow}")),
        "scoped to its flow: {cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = client
        .get(format!("{}{flow}", p.cs.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let csrf = crate::http_approval::csrf_of(&html);
    let post = |body: String, cross_site: bool| {
        let mut r = client
            .post(format!("{}{flow}/password", p.cs.base))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if cross_site {
            r = r.header("sec-fetch-site", "cross-site");
        }
        r.send()
    };
    let forged = [
        (String::from("username=ivan&password=ivan-password"), false),
        (
            format!("csrf={csrf}&username=ivan&password=ivan-password"),
            true,
        ),
        (
            String::from("csrf=00&username=ivan&password=ivan-password"),
            false,
        ),
    ];
    for (body, cross_site) in forged {
        let r = post(body, cross_site).await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(
            r.headers().get("location").is_none(),
            "no code for a forged POST"
        );
    }
    // Without the flow's cookie, the page does not exist.
    let r = client
        .get(format!("{}{flow}", p.cs.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The genuine form signs in.
    let r = post(
        format!("csrf={csrf}&username=ivan&password=ivan-password"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(REDIRECT)
    );
}

/// The `kid` in a JWS's header.
fn kid_of(jws: &str) -> String {
    let header = jws_part(jws, 0);
    assert_eq!(header["alg"], "RS256");
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(p: &Provider) -> Vec<String> {
    let set: Value =
        p.cs.http
            .get(format!("{}/jwks", p.cs.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert_eq!(
                (k["kty"].as_str(), k["alg"].as_str()),
                (Some("RSA"), Some("RS256"))
            );
            assert!(k.get("d").is_none(), "never the private part");
            k["kid"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A sign-in of ivan (authlib's sign-in), the code exchanged here: the ID token's `kid`.
async fn signed_kid(p: &Provider) -> String {
    let login = p.login("ivan", "ivan-password").await;
    let code = login["code"].as_str().unwrap();
    let verifier = login["verifier"].as_str();
    let r: Value = redeem(&p.cs.http, &p.cs.base, code, REDIRECT, verifier)
        .await
        .json()
        .await
        .unwrap();
    kid_of(r["id_token"].as_str().unwrap_or_else(|| panic!("{r}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_names_what_is_supported() {
    let p = provider("[\"password\"]").await;
    let d: Value =
        p.cs.http
            .get(format!("{}/.well-known/openid-configuration", p.cs.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let base = p.cs.base.as_str();
    assert_eq!(d["issuer"], base);
    assert_eq!(d["authorization_endpoint"], format!("{base}/authorize"));
    assert_eq!(d["token_endpoint"], format!("{base}/token"));
    assert_eq!(d["jwks_uri"], format!("{base}/jwks"));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    let methods = d["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&"client_secret_basic".into()));
    assert!(methods.contains(&"client_secret_post".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_signs_at_once_and_the_old_one_stays_published_until_its_tokens_expire() {
    let p = provider("[\"password\"]").await;
    let first = signed_kid(&p).await;
    assert_eq!(jwks_kids(&p).await, std::slice::from_ref(&first));
    let oidc = p.cs.app.oidc.as_ref().unwrap();
    let store: &dyn countersign_core::ports::oidc::OidcStore = p.cs.app.store.as_ref();
    let second = countersign::oidc::keys::rotate(store, oidc.seal(), p.cs.clock.as_ref())
        .await
        .unwrap();
    assert_ne!(second, first);
    assert_eq!(
        signed_kid(&p).await,
        second,
        "the new key signs from the next token on"
    );
    assert_eq!(jwks_kids(&p).await, [second.clone(), first.clone()]);
    // Ten minutes (the ID tokens' lifetime) and a minute's margin after the rotation.
    p.cs.clock.advance(Duration::from_secs(661));
    assert_eq!(jwks_kids(&p).await, [second]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_and_keys_list_on_the_command_line() {
    let p = provider("[\"password\"]").await;
    let first = signed_kid(&p).await;
    let config = p.cs.dir.path().join("countersign.toml");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rotated = run(&["keys", "rotate"]);
    let new_kid = rotated
        .trim()
        .strip_prefix("new signing key ")
        .unwrap()
        .to_owned();
    let list = run(&["keys", "list"]);
    let line = |kid: &str| {
        list.lines()
            .find(|l| l.starts_with(kid))
            .unwrap()
            .to_owned()
    };
    assert_eq!(list.lines().count(), 2, "{list}");
    // (The command's clock is the system's, the server's a test clock: found by kid here.)
    assert!(line(&new_kid).ends_with("signing"), "{list}");
    assert!(line(&first).contains("published until"), "{list}");
    // The running server signs with the key the command made.
    assert_eq!(signed_kid(&p).await, new_kid);
}

#[tokio::test(flavor = "multi_thread")]
async fn looking_at_a_waiting_sign_in_changes_nothing_and_only_its_own_form_cancels_it() {
    let p = provider("[\"password\"]").await;
    let client = no_redirects();
    let start = client
        .get(format!(
            "{}/authorize?response_type=code&scope=openid&client_id={CLIENT}&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback",
            p.cs.base
        ))
        .send()
        .await
        .unwrap();
    let flow = start.headers()["location"].to_str().unwrap().to_owned();
    let cookie = |r: &reqwest::Response| {
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let signed_out = cookie(&start);
    let page = |c: String, path: &'static str, method: reqwest::Method| {
        client
            .request(method, format!("{}{flow}{path}", p.cs.base))
            .header("cookie", c)
            .send()
    };
    let html = page(signed_out.clone(), "", reqwest::Method::GET)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::http_approval::csrf_of(&html);
    let signed_in = client
        .post(format!("{}{flow}/password", p.cs.base))
        .header("cookie", &signed_out)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&username=dora&password=dora-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let waiting = cookie(&signed_in);
    let audit_before =
        p.cs.app
            .store
            .list_audit(&Default::default())
            .await
            .unwrap()
            .len();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::HEAD,
        reqwest::Method::GET,
    ] {
        let r = page(waiting.clone(), "", method).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = page(waiting.clone(), "/cancel", reqwest::Method::GET)
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "a GET never cancels");
    // A forged cancel (no field, or from another site) is refused.
    for (body, cross_site) in [(String::new(), false), (format!("csrf={csrf}"), true)] {
        let mut r = client
            .post(format!("{}{flow}/cancel", p.cs.base))
            .header("cookie", &waiting)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if cross_site {
            r = r.header("sec-fetch-site", "cross-site");
        }
        assert_eq!(r.send().await.unwrap().status(), 403);
    }
    let pending =
        p.cs.app
            .store
            .list_approvals(&countersign_core::ports::ApprovalQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].state,
        countersign_core::approval::ApprovalState::Pending
    );
    let audit_after =
        p.cs.app
            .store
            .list_audit(&Default::default())
            .await
            .unwrap()
            .len();
    assert_eq!(audit_after, audit_before, "looking wrote nothing");
    // The page's own form cancels it.
    let r = client
        .post(format!("{}{flow}/cancel", p.cs.base))
        .header("cookie", &waiting)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let outcome = page(waiting, "", reqwest::Method::GET).await.unwrap();
    assert!(
        outcome
            .text()
            .await
            .unwrap()
            .contains("data-outcome=\"cancelled\"")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_client_signs_in_with_pkce_alone() {
    let p = provider("[\"password\"]").await;
    let args = |cmd: &str| -> Vec<String> {
        vec![
            cmd.into(),
            p.cs.base.clone(),
            PUBLIC_CLIENT.into(),
            String::new(),
            PUBLIC_REDIRECT.into(),
        ]
    };
    let mut login_args = args("login");
    login_args.extend(["ivan".into(), "ivan-password".into()]);
    let login = rp(login_args).await;
    assert_eq!(login["state_ok"], true, "{login}");
    let exchange = |verifier: String| {
        let mut a = args("exchange");
        a.extend([
            login["code"].as_str().unwrap().into(),
            verifier,
            login["nonce"].as_str().unwrap().into(),
            "none".into(),
        ]);
        rp(a)
    };
    let done = exchange(login["verifier"].as_str().unwrap().into()).await;
    assert_eq!(done["status"], 200, "{done}");
    assert_eq!(done["claims"]["aud"], PUBLIC_CLIENT);
    assert_eq!(done["checks"]["nonce"], true);
    // Without PKCE a public client's request goes back refused.
    let r = no_redirects()
        .get(format!(
            "{}/authorize?response_type=code&scope=openid&client_id={PUBLIC_CLIENT}&redirect_uri=https%3A%2F%2Fspa.example.test%2Fcb",
            p.cs.base
        ))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://spa.example.test/cb?error=invalid_request&"),
        "{location}"
    );
}
