//! The sign-in flow and the machine endpoints over plain HTTP, for what a browser test cannot
//! reach easily: a manager who decides after the sign-in's own time, a saved cookie used
//! again, a double submit, `back` during the wait, malformed forms and headers, `ui_locales`,
//! and the statuses RFC 6749 §5.2 and RFC 6750 §3 give.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::approval_ldap::{add_user, approval_config, link_token};
use crate::fixtures::harness::{Countersign, Setup};
use crate::fixtures::smtp::{SmtpOptions, SmtpServer};
use crate::oidc_rp::{CLIENT, REDIRECT, client_config, code_in, redeem};

struct World {
    cs: Countersign,
    smtp: SmtpServer,
    http: reqwest::Client,
    _keys: tempfile::TempDir,
}

/// The provider of oidc_rp.rs, with a one-minute sign-in lifetime (the link lives ten).
async fn world() -> World {
    world_sending_to(None).await
}

/// As [`world`]; mail goes to `smtp_port` when given (e.g. a closed port).
async fn world_sending_to(smtp_port: Option<u16>) -> World {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let keys = tempfile::TempDir::new().unwrap();
    let key_file = keys.path().join("vpn.key");
    std::fs::write(&key_file, "vpn-portal-api-key-0123456789abcdef\n").unwrap();
    let (extra, _) = approval_config(&key_file, "30s");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp_port.unwrap_or(smtp.port))),
        http_port: Some(port),
        extra: extra
            + &client_config(keys.path(), "[\"password\"]", "http://127.0.0.1:9/cb")
            + "\n[oidc]\nsign_in_lifetime = \"1m\"\n",
        ..Setup::default()
    })
    .await;
    add_user(&cs, "dora", "contractor").await;
    add_user(&cs, "ivan", "staff").await;
    let http = crate::oidc_rp::no_redirects();
    World {
        cs,
        smtp,
        http,
        _keys: keys,
    }
}

/// A browser's part of a sign-in: the flow's path and its current cookie.
struct Flow {
    path: String,
    cookie: String,
    csrf: String,
}

fn cookie_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("cs_flow="))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cs.base)
    }

    async fn send(&self, method: Method, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn start(&self, extra_query: &str) -> (Flow, reqwest::Response) {
        let r = self
            .http
            .get(self.url(&format!(
                "/authorize?response_type=code&scope=openid&state=s&client_id={CLIENT}&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback{extra_query}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let path = r.headers()["location"].to_str().unwrap().to_owned();
        let cookie = cookie_of(&r).unwrap();
        let page = self.send(Method::GET, &path, &cookie).await;
        let html = page.text().await.unwrap();
        let csrf = crate::http_approval::csrf_of(&html);
        let page = self.send(Method::GET, &path, &cookie).await;
        (Flow { path, cookie, csrf }, page)
    }

    async fn post(&self, flow: &Flow, step: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("{}{step}", flow.path)))
            .header("cookie", &flow.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// Signs `user` in; the flow with the cookie the answer set, and the answer.
    async fn sign_in(&self, user: &str) -> (Flow, reqwest::Response) {
        let (mut flow, _) = self.start("").await;
        let body = format!(
            "csrf={}&username={user}&password={user}-password",
            flow.csrf
        );
        let r = self.post(&flow, "/password", &body).await;
        assert_eq!(r.status(), 303);
        if let Some(c) = cookie_of(&r) {
            flow.cookie = c;
        }
        (flow, r)
    }

    /// The manager approves through the link of the latest mail to bob.
    async fn approve(&self) {
        let mail = self
            .smtp
            .wait_for(1)
            .into_iter()
            .rfind(|m| m.rcpt_tos.iter().any(|r| r == "bob@example.com"))
            .unwrap();
        let token = link_token(&mail);
        let login = self.cs.app.login.clone();
        let by = countersign_core::approval::DecidedBy {
            channel: "link".into(),
            ..Default::default()
        };
        login.decide_by_link(&token, true, by).await.unwrap();
    }

    async fn exchange(&self, location: &str) -> StatusCode {
        redeem(&self.http, &self.cs.base, code_in(location), REDIRECT, None)
            .await
            .status()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_may_decide_after_the_sign_in_time_and_a_saved_cookie_mints_nothing_more() {
    let w = world().await;
    let (flow, _) = w.sign_in("dora").await;
    // Five minutes: past the one-minute sign-in, within the ten-minute link.
    w.cs.clock.advance(Duration::from_secs(300));
    let waiting = w.send(Method::GET, &flow.path, &flow.cookie).await;
    assert_eq!(waiting.status(), 200, "still waiting, not gone");
    w.approve().await;
    // A double submit (a reload racing the page's script): both answers carry a code; the
    // browser follows the last, which is the one that works.
    let first = w.send(Method::GET, &flow.path, &flow.cookie).await;
    let second = w.send(Method::GET, &flow.path, &flow.cookie).await;
    let (first, second) = (
        first.headers()["location"].to_str().unwrap().to_owned(),
        second.headers()["location"].to_str().unwrap().to_owned(),
    );
    assert!(first.starts_with(REDIRECT) && second.starts_with(REDIRECT));
    assert_eq!(w.exchange(&first).await, 400, "replaced by the second");
    assert_eq!(w.exchange(&second).await, 200);
    // The saved cookie, once the code was redeemed: the sign-in is over.
    let again = w.send(Method::GET, &flow.path, &flow.cookie).await;
    assert_eq!(again.status(), 409);
    assert!(again.headers().get("location").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn back_during_the_wait_abandons_nothing_and_forms_must_be_well_formed() {
    let w = world().await;
    let (flow, _) = w.sign_in("dora").await;
    let back = w
        .send(Method::GET, &format!("{}/back", flow.path), &flow.cookie)
        .await;
    assert_eq!(back.status(), 303);
    assert_eq!(
        back.headers()["location"],
        flow.path.as_str(),
        "back to the waiting page"
    );
    let query = countersign_core::ports::ApprovalQuery {
        limit: 1,
        ..Default::default()
    };
    let id = w.cs.app.store.list_approvals(&query).await.unwrap()[0]
        .id
        .clone();
    let status = w.cs.app.login.status(CLIENT, &id).await.unwrap();
    assert!(status.is_pending(), "{status:?}");
    // Approved: back does not tell the client "denied" while the code is there to fetch.
    w.approve().await;
    let back = w
        .send(Method::GET, &format!("{}/back", flow.path), &flow.cookie)
        .await;
    assert_eq!(back.headers()["location"], flow.path.as_str());
    let on = w.send(Method::GET, &flow.path, &flow.cookie).await;
    assert!(on.headers()["location"].to_str().unwrap().contains("code="));

    let (fresh, _) = w.start("").await;
    let big = format!(
        "csrf={}&username=ivan&password={}",
        fresh.csrf,
        "x".repeat(5000)
    );
    assert_eq!(w.post(&fresh, "/password", &big).await.status(), 413);
    let twice = format!(
        "csrf={}&username=ivan&username=dora&password=ivan-password",
        fresh.csrf
    );
    assert_eq!(w.post(&fresh, "/password", &twice).await.status(), 400);
    let json = w
        .http
        .post(w.url(&format!("{}/password", fresh.path)))
        .header("cookie", &fresh.cookie)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_ui_locales_come_before_accept_language_but_not_before_the_users_choice() {
    let w = world().await;
    let (flow, _) = w.start("&ui_locales=tr%20en").await;
    let page = |cookie: String, query: &'static str, accept: &'static str| {
        w.http
            .get(w.url(&format!("{}{query}", flow.path)))
            .header("cookie", cookie)
            .header("accept-language", accept)
            .send()
    };
    let html = page(flow.cookie.clone(), "", "en")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"tr\""), "ui_locales tr");
    let chosen = page(flow.cookie.clone(), "?lang=en", "tr").await.unwrap();
    assert!(chosen.headers().get_all("set-cookie").iter().count() <= 2);
    assert!(
        chosen.text().await.unwrap().contains("<html lang=\"en\""),
        "?lang= wins"
    );
    let (regional, _) = w.start("&ui_locales=tr-TR").await;
    let html = w
        .send(Method::GET, &regional.path, &regional.cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"tr\""), "tr-TR is Turkish");
    let with_cookie = format!("{}; cs_lang=en", flow.cookie);
    let html = page(with_cookie, "", "tr")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"en\""), "the cookie wins");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_and_userinfo_answer_with_the_statuses_of_rfc_6749_and_6750() {
    let w = world().await;
    let token = |auth: Option<&'static str>| {
        let mut r = w
            .http
            .post(w.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=authorization_code&code=x&redirect_uri=y");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    // Credentials in the header that cannot be read: 401 with the Basic challenge.
    let r = token(Some("Basic %%%not-base64")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // No client at all: 400.
    assert_eq!(token(None).await.unwrap().status(), 400);

    let userinfo = |auth: Vec<&'static str>| {
        let mut r = w.http.get(w.url("/userinfo"));
        for a in auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let bare = userinfo(vec![]).await.unwrap();
    assert_eq!(bare.status(), 401);
    assert_eq!(
        bare.headers()["www-authenticate"],
        "Bearer realm=\"countersign\""
    );
    let body: serde_json::Value = bare.json().await.unwrap();
    assert!(
        body.get("error").is_none(),
        "no error code without a token: {body}"
    );
    let wrong = userinfo(vec!["Bearer nope"]).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(userinfo(vec!["Basic eDp5"]).await.unwrap().status(), 400);
    assert_eq!(
        userinfo(vec!["Bearer a", "Bearer b"])
            .await
            .unwrap()
            .status(),
        400
    );
    for path in [
        "/token",
        "/userinfo",
        "/jwks",
        "/.well-known/openid-configuration",
    ] {
        let r = w.http.get(w.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_sign_in_says_the_same_whoever_the_user_is() {
    let w = world().await;
    // ivan exists (wrong password), nobody does not: the same page apart from the echoed
    // username and the flow's own id and field.
    let mut pages = Vec::new();
    for (user, password) in [("ivan", "wrong"), ("nobody", "wrong")] {
        let (flow, _) = w.start("").await;
        let body = format!("csrf={}&username={user}&password={password}", flow.csrf);
        let r = w.post(&flow, "/password", &body).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("location").is_none());
        let html = r.text().await.unwrap();
        assert!(html.contains("id=\"error\""), "{html}");
        let id = flow.path.trim_start_matches("/flow/");
        pages.push(
            html.replace(id, "ID")
                .replace(&flow.csrf, "CSRF")
                .replace(&format!("value=\"{user}\""), "value=\"USER\""),
        );
    }
    assert_eq!(pages[0], pages[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_whose_manager_cannot_be_asked_says_so_with_a_way_back() {
    let w = world_sending_to(Some(crate::fixtures::smtp::closed_port())).await;
    let (flow, _) = w.start("").await;
    let body = format!("csrf={}&username=dora&password=dora-password", flow.csrf);
    let r = w.post(&flow, "/password", &body).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("data-outcome=\"error\""), "{html}");
    assert!(html.contains("could not be asked for approval"), "{html}");
    assert!(html.contains("id=\"back\""), "a way back: {html}");
}
