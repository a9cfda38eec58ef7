//! `countersign demo`'s browser walkthrough: its own relying party at `/demo` signs a newcomer
//! in over OpenID Connect. In a real headless Chromium: the start page, sign-in as the
//! contractor, the waiting page, a cancel that comes back as `access_denied`, then the manager's
//! link taken from the demo's file courier and approved, and the first tab continuing by itself
//! to the verified claims. Over plain HTTP: the start's cookie, a forged `state`, an `error=`
//! answer, a code the provider does not know, another issuer, and a server that is not the
//! demo (no `/demo` at all).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::demo::{after, banner, start_demo};
use crate::fixtures::browser::{Browser, BrowserOptions};

/// A running demo: its process, folder and HTTP base URL.
struct Demo {
    child: Child,
    home: PathBuf,
    base: String,
    text: String,
    _out: std::io::BufReader<std::process::ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start() -> Demo {
        // reqwest is built without a TLS provider of its own.
        countersign::app::install_crypto_provider();
        let dir = tempfile::TempDir::new().unwrap();
        let home = dir.path().join("demo");
        let mut child = start_demo(&home);
        let (text, out) = banner(&mut child);
        let base = format!("http://{}", after(&text, "HTTP API on http://"));
        Demo {
            child,
            home,
            base,
            text,
            _out: out,
            _dir: dir,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every approval link the demo's courier wrote, oldest first (its files are named after the
/// time in milliseconds).
fn links(home: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(home.join("outbox")) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = dir.map(|f| f.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|m| {
            let start = m.find("http://")?;
            let link = m[start..].split_whitespace().next()?;
            link.contains("/approve/").then(|| link.to_owned())
        })
        .collect()
}

/// The `n`th approval link (1-based), once the courier has written it.
async fn nth_link(home: &Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(link) = links(home).get(n - 1) {
            return link.clone();
        }
        assert!(Instant::now() < deadline, "no approval link {n} in outbox/");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the manager's browser does with the link: the page, then its form.
async fn approve(link: &str) {
    let http = reqwest::Client::new();
    let page = http.get(link).send().await.unwrap().text().await.unwrap();
    let csrf = crate::http_approval::csrf_of(&page);
    let r = http
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&decision=approve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn sign_in_as_dave(b: &mut Browser) {
    b.wait_css("form#signin", 10);
    b.type_text("#username", "dave");
    b.type_text("#password", "dave-demo-password");
    b.click("#submit");
    b.wait_css("main.waiting", 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_clicks_through_sign_in_approval_and_verified_claims_in_chromium() {
    let demo = Demo::start();
    // The walkthrough says where to go and as whom.
    assert!(
        demo.text
            .contains(&format!("open {}/demo and press", demo.base)),
        "{}",
        demo.text
    );
    assert!(demo.text.contains("sign in as dave / dave-demo-password"));
    {
        use std::os::unix::fs::PermissionsExt;
        let secret = demo.home.join("demo-app.secret");
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut b = Browser::start(BrowserOptions::default());
    b.get(&format!("{}/demo", demo.base));
    b.wait_css("#demo-signin", 10);
    b.screenshot("demo-start-en");
    b.click("#demo-signin");
    sign_in_as_dave(&mut b);

    // Cancelled: back at the demo application with access_denied, and a way to try again.
    b.click("#cancel-button");
    b.wait_css("main[data-outcome=cancelled]", 10);
    b.click("#back");
    b.wait_url(&format!("{}/demo/callback?", demo.base), 10);
    b.wait_css("main[data-demo=failed]", 10);
    assert_eq!(b.text("#demo-error-code"), "access_denied");
    assert!(
        b.text("#demo-error")
            .contains("rejected, cancelled or ran out")
    );
    b.click("#again");
    b.wait_css("#demo-signin", 10);

    // Again, and this time Bob approves from "another tab" with the link the courier wrote.
    b.click("#demo-signin");
    sign_in_as_dave(&mut b);
    b.execute("window.stayedOnThePage = true; return null;");
    let link = nth_link(&demo.home, 2).await;
    assert_ne!(link, nth_link(&demo.home, 1).await, "a new request");
    approve(&link).await;
    let arrived = b.wait_url(&format!("{}/demo/callback?", demo.base), 10);
    assert!(arrived.contains("code="), "{arrived}");
    b.wait_css("main[data-demo=signed-in]", 10);
    b.screenshot("demo-claims-en");
    assert_eq!(b.text("#claim-preferred_username"), "dave");
    assert_eq!(b.text("#claim-name"), "Dave Contractor");
    assert_eq!(b.text("#claim-email"), "dave@example.com");
    assert_eq!(b.text("#claim-amr"), "pwd mca");
    assert_eq!(b.text("#claim-acr"), "urn:countersign:acr:approval");
    assert_eq!(b.text("#claim-sub").len(), 40);
    let auth_time = b.attr("#claim-auth_time time", "datetime").unwrap();
    assert!(
        auth_time.ends_with('Z') && auth_time.len() >= 20,
        "{auth_time}"
    );
    // The sign-in is over: a reload of the callback (its code spent, its cookie gone) is a
    // clear refusal, not a second sign-in.
    b.refresh();
    b.wait_css("main[data-demo=failed]", 10);
    assert!(b.text("#demo-error").contains("no sign-in in progress"));
    let console: Vec<String> = b.logs().iter().map(|l| l.to_string()).collect();
    assert!(
        !console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:?}"
    );
}

/// A client that shows redirects instead of following them, and the start of a sign-in.
struct Started {
    base: String,
    http: reqwest::Client,
    cookie: String,
    state: String,
}

async fn start_sign_in(base: &str) -> Started {
    let http = crate::oidc_rp::no_redirects();
    let r = http
        .post(format!("{base}/demo/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/authorize?response_type=code&client_id=demo-app&"));
    for part in [
        "code_challenge_method=S256",
        "scope=openid+profile+email",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A",
    ] {
        assert!(location.contains(part), "{location}");
    }
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.ends_with("; Path=/demo; Max-Age=3600; HttpOnly; SameSite=Lax"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let state = location
        .split("&state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    Started {
        base: base.to_owned(),
        http,
        cookie,
        state,
    }
}

impl Started {
    async fn callback(&self, query: &str, with_cookie: bool) -> (u16, String, Option<String>) {
        let mut r = self
            .http
            .get(format!("{}/demo/callback?{query}", self.base));
        if with_cookie {
            r = r.header("cookie", &self.cookie);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let cleared = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, r.text().await.unwrap(), cleared)
    }
}

#[tokio::test]
async fn the_callback_refuses_what_is_not_this_browsers_sign_in_and_says_why() {
    let demo = Demo::start();
    let page = reqwest::get(format!("{}/demo?lang=tr", demo.base))
        .await
        .unwrap();
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let page = page.text().await.unwrap();
    assert!(page.contains("<html lang=\"tr\">"), "{page}");
    assert!(page.contains("Demo uygulamasında oturum aç"), "{page}");

    // The language switch of the callback's pages leads to the start page in that language.
    let switch = crate::oidc_rp::no_redirects()
        .get(format!("{}/demo/callback?lang=tr", demo.base))
        .send()
        .await
        .unwrap();
    assert_eq!(switch.status(), 303);
    assert_eq!(switch.headers()["location"], "/demo?lang=tr");

    // Another site cannot start a sign-in in the user's browser.
    let forged_start = reqwest::Client::new()
        .post(format!("{}/demo/login", demo.base))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(forged_start.status(), 403);

    let s = start_sign_in(&demo.base).await;
    // A state that is not this browser's: refused, and the real sign-in is left alone.
    let (status, page, cleared) = s.callback("code=abc&state=forged", true).await;
    assert_eq!(status, 400);
    assert!(page.contains("its state does not match"), "{page}");
    assert_eq!(cleared, None);
    // No cookie at all: nothing in progress in this browser.
    let query = format!("code=abc&state={}", s.state);
    let (status, page, _) = s.callback(&query, false).await;
    assert_eq!(status, 400);
    assert!(page.contains("no sign-in in progress"), "{page}");
    // Another issuer (RFC 9207).
    let query = format!("code=abc&state={}&iss=http%3A%2F%2Fevil.example", s.state);
    let (status, page, _) = s.callback(&query, true).await;
    assert_eq!(status, 400);
    assert!(page.contains("another issuer"), "{page}");

    // The provider's error, with this browser's state: shown, with a way to try again.
    let s = start_sign_in(&demo.base).await;
    let query = format!(
        "error=access_denied&error_description=the+manager+rejected&state={}",
        s.state
    );
    let (status, page, cleared) = s.callback(&query, true).await;
    assert_eq!(status, 403);
    assert!(
        page.contains("<code id=\"demo-error-code\">access_denied</code>"),
        "{page}"
    );
    assert!(page.contains("the manager rejected"), "{page}");
    assert!(page.contains("id=\"again\" class=\"button secondary\" href=\"/demo\""));
    assert!(cleared.unwrap().contains("cs_demo=; Path=/demo; Max-Age=0"));

    // A code the provider never issued: its token endpoint's refusal, shown.
    let s = start_sign_in(&demo.base).await;
    let query = format!("code=not-a-code&state={}", s.state);
    let (status, page, _) = s.callback(&query, true).await;
    assert_eq!(status, 502);
    assert!(
        page.contains("<code id=\"demo-error-code\">invalid_grant</code>"),
        "{page}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_the_demo_has_no_demo_relying_party() {
    let p = crate::oidc_rp::provider("[\"password\"]").await;
    for path in ["/demo", "/demo/callback?code=a&state=b"] {
        let r =
            p.cs.http
                .get(format!("{}{path}", p.cs.base))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r =
        p.cs.http
            .post(format!("{}/demo/login", p.cs.base))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
}
