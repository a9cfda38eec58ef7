//! The manager's approval page in a real headless Chromium (the `browser` fixture): the link
//! from the mail opened, Approve clicked or Reject pressed by keyboard alone, and the login's
//! API status following;
//! the same without JavaScript; a phone-size rendering and its screenshot; forged form POSTs
//! made by pages on another site and another origin refused in the browser without deciding
//! anything; and the fixture's own promises (failures answer, never hang; language, marker
//! probes; nothing left running). Assertions use element classes and a few English words: the
//! page's wording is translated elsewhere.

use std::time::{Duration, Instant};

use countersign_core::approval::ApprovalState;
use serde_json::{Value, json};

use crate::approval_ldap::{API_KEY, start, text_of};
use crate::fixtures::browser::{
    Browser, BrowserOptions, OtherSite, html_escape, png_size, screenshots_dir,
};
use crate::fixtures::harness::{Answer, Countersign};
use crate::fixtures::smtp::{SmtpOptions, SmtpServer};
use crate::http_approval::csrf_of;

/// The approval profile's public server, as written in the manager's mail.
const MAIL_ORIGIN: &str = "https://mfa.example.test";

/// countersign with the approval configuration of approval_ldap.rs (dora, a contractor, needs
/// her sponsor bob's approval) mailing through a real SMTP server.
struct World {
    cs: Countersign,
    smtp: SmtpServer,
    _keys: tempfile::TempDir,
}

async fn world() -> World {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, keys) = start(smtp.port, "30s").await;
    World {
        cs,
        smtp,
        _keys: keys,
    }
}

impl World {
    /// dora signs in to vpn with her password: pending; the login id and the link from bob's
    /// mail, pointed at this server instead of the profile's public name.
    async fn pending_login(&self) -> (String, String) {
        let r = self
            .cs
            .http
            .post(format!("{}/api/v1/logins", self.cs.base))
            .bearer_auth(API_KEY)
            .json(&json!({"authentication_id": "u:dora", "password": "dora-password"}))
            .send()
            .await
            .unwrap();
        let r = Countersign::answer(r).await;
        assert_eq!(r.status, 202, "{}", r.json);
        let id = r.json["login"].as_str().unwrap().to_owned();
        (id, self.link().await)
    }

    /// The approval link in the last mail to bob, on this server.
    async fn link(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mail = self
                .smtp
                .messages()
                .into_iter()
                .rfind(|m| m.rcpt_tos.iter().any(|r| r == "bob@example.com"));
            if let Some(mail) = mail {
                let body = text_of(&mail);
                let start = body.find(&format!("{MAIL_ORIGIN}/approve/")).unwrap();
                let path = &body[start + MAIL_ORIGIN.len()..];
                let path = &path[..path.find(char::is_whitespace).unwrap_or(path.len())];
                assert_eq!(path.len(), "/approve/".len() + 64, "{body}");
                return format!("{}{path}", self.cs.base);
            }
            assert!(Instant::now() < deadline, "no mail to bob");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The login as its application reads it (`?wait=S`: until decided, at most S seconds).
    async fn status(&self, id: &str, wait: u64) -> Answer {
        let r = self
            .cs
            .http
            .get(format!("{}/api/v1/logins/{id}?wait={wait}", self.cs.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        Countersign::answer(r).await
    }

    async fn request(&self, id: &str) -> countersign_core::approval::ApprovalRequest {
        self.cs.app.store.approval(id).await.unwrap().unwrap()
    }
}

/// Opens `link` and checks the page asks about dora's sign-in to vpn, decides nothing.
async fn open_asking_page(w: &World, b: &mut Browser, id: &str, link: &str) {
    b.get(link);
    b.wait_css("main.card.ask", 5);
    assert_eq!(b.attr("html", "lang").as_deref(), Some("en"));
    assert!(b.title().contains("countersign"), "{}", b.title());
    let shown = b.text("main");
    for what in ["(dora)", "vpn", "127.0.0.1"] {
        assert!(shown.contains(what), "{what} not shown: {shown}");
    }
    assert!(b.exists("form.decide input[type=hidden][name=csrf]"));
    assert!(b.exists("form.decide button.approve") && b.exists("form.decide button.reject"));
    let pending = w.status(id, 0).await;
    assert_eq!(
        pending.json["status"], "pending",
        "looking decided: {}",
        pending.json
    );
}

/// Approve in a browser with these options: the approved page, the login granted, the decision
/// recorded with Chromium's user agent; back shows it decided, with no form.
async fn approve_in(options: BrowserOptions) -> Browser {
    let w = world().await;
    let (id, link) = w.pending_login().await;
    let mut b = Browser::start(options);
    open_asking_page(&w, &mut b, &id, &link).await;

    b.click("button.approve");
    b.wait_css("main.card.approved", 5);
    assert!(b.text("h1").contains("approved"), "{}", b.text("main"));
    let granted = w.status(&id, 5).await;
    assert_eq!(granted.status, 200, "{}", granted.json);
    assert_eq!(granted.json["status"], "granted");
    assert_eq!(granted.json["user"]["username"], "dora");
    let decided = w.request(&id).await;
    assert_eq!(decided.state, ApprovalState::Approved);
    let by = decided.decided_by.unwrap();
    assert_eq!(by.address.as_deref(), Some("127.0.0.1"));
    assert!(
        by.user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("Chrome/")),
        "{:?}",
        by.user_agent
    );

    // Back to the link: the page now says it was decided, and offers nothing to press.
    b.back();
    b.wait_css("main.card.approved", 5);
    assert!(!b.exists("form"), "{}", b.source());
    assert_eq!(w.request(&id).await.state, ApprovalState::Approved);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_approves_in_chromium_and_the_login_is_granted() {
    let mut b = approve_in(BrowserOptions::default()).await;
    // No console errors (a CSP violation would be one); the browser's own /favicon.ico request
    // finds none, which is no error of the page's.
    let errors: Vec<Value> = b
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "SEVERE")
        .filter(|l| !l["message"].as_str().unwrap_or("").contains("/favicon.ico"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_managers_page_works_the_same() {
    // JavaScript is really off: a page's <noscript> shows and its script does not run.
    let probe = OtherSite::start(vec![(
        "/probe",
        "<!doctype html><p id=\"ran\">no</p><noscript><p id=\"noscript\">off</p></noscript>\
         <script>document.getElementById('ran').textContent = 'yes'</script>"
            .to_owned(),
    )])
    .await;
    let mut b = Browser::start(BrowserOptions::default().without_javascript());
    b.get(&probe.same_site("/probe"));
    assert_eq!(b.text("#ran"), "no");
    assert!(b.exists("#noscript"));
    drop(b);

    approve_in(BrowserOptions::default().without_javascript()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_rejects_by_keyboard_alone_and_the_login_is_denied() {
    let w = world().await;
    let (id, link) = w.pending_login().await;
    let mut b = Browser::start(BrowserOptions::default());
    open_asking_page(&w, &mut b, &id, &link).await;

    // By keyboard alone: Tab reaches Reject through Approve, the focus is visible, Enter
    // presses it.
    let to_approve = b.tab_to("button.approve", 10);
    let to_reject = b.tab_to("button.reject", 1);
    assert!(to_approve >= 1 && to_reject == 1);
    let outline = b.execute(
        "const s = getComputedStyle(document.activeElement);
         return [s.outlineStyle, parseFloat(s.outlineWidth)];",
    );
    assert!(
        outline[0] != "none" && outline[1].as_f64().unwrap() >= 2.0,
        "no visible focus: {outline}"
    );
    b.press("ENTER");
    b.wait_css("main.card.rejected", 5);
    assert!(b.text("h1").contains("rejected"), "{}", b.text("main"));
    let denied = w.status(&id, 5).await;
    assert_eq!(denied.status, 403, "{}", denied.json);
    assert_eq!(
        (&denied.json["outcome"], &denied.json["reason"]),
        (&json!("denied"), &json!("rejected"))
    );
    assert_eq!(w.request(&id).await.state, ApprovalState::Rejected);

    // Opening the link again cannot turn it into an approval.
    b.get(&link);
    b.wait_css("main.card.rejected", 5);
    assert!(!b.exists("button.approve"));
    assert_eq!(w.request(&id).await.state, ApprovalState::Rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_page_fits_and_is_screenshotted() {
    let w = world().await;
    let (id, link) = w.pending_login().await;
    let mut b = Browser::start(BrowserOptions::default().phone());
    open_asking_page(&w, &mut b, &id, &link).await;

    // One column, 390 CSS pixels wide: nothing scrolls sideways, both buttons are on screen
    // and big enough to tap (WCAG 2.2 target size: 24 px at least).
    let fit = b.execute(
        "const w = window.innerWidth;
         const box = s => document.querySelector(s).getBoundingClientRect();
         const a = box('button.approve'), r = box('button.reject');
         return { width: w, height: window.innerHeight, scroll: document.documentElement.scrollWidth,
                  inside: [a, r].every(b => b.left >= 0 && b.right <= w),
                  tall: Math.min(a.height, r.height), wide: Math.min(a.width, r.width) };",
    );
    assert_eq!(
        (&fit["width"], &fit["height"]),
        (&json!(390), &json!(844)),
        "{fit}"
    );
    assert!(
        fit["scroll"].as_u64().unwrap() <= 390,
        "sideways scroll: {fit}"
    );
    assert_eq!(fit["inside"], true, "{fit}");
    assert!(fit["tall"].as_f64().unwrap() >= 24.0, "{fit}");
    assert!(fit["wide"].as_f64().unwrap() >= 24.0, "{fit}");

    let shot = b.screenshot("manager-page-phone");
    assert_eq!(png_size(&shot), (390, 844), "{}", shot.display());
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 5_000,
        "an empty picture?"
    );

    // The picture is of a page still asking: taking it decided nothing.
    assert_eq!(w.request(&id).await.state, ApprovalState::Pending);
}

/// A page that posts the manager's form to `action` as soon as it loads, with the right hidden
/// field (an attacker who learnt it): only where the POST comes from can refuse it.
fn forging_page(action: &str, csrf: &str) -> String {
    format!(
        "<!doctype html><title>Win a prize</title>\
         <form method=\"post\" action=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"decision\" value=\"approve\"></form>\
         <script>document.forms[0].submit()</script>",
        html_escape(action),
        html_escape(csrf)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_form_posts_from_chromium_are_refused_and_decide_nothing() {
    let w = world().await;
    let (id, link) = w.pending_login().await;
    let page =
        w.cs.http
            .get(&link)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    let csrf = csrf_of(&page);
    let evil = OtherSite::start(vec![("/prize", forging_page(&link, &csrf))]).await;

    let mut b = Browser::start(BrowserOptions::default());
    // Another site (localhost is not 127.0.0.1), then the same site on another port: the
    // browser follows the form to countersign, which refuses it.
    for from in [evil.cross_site("/prize"), evil.same_site("/prize")] {
        b.get(&from);
        b.wait_url(&link, 5);
        b.wait_css("main.card.refused", 5);
        assert!(
            b.text("h1").contains("refused"),
            "{from}: {}",
            b.text("main")
        );
        assert!(!b.exists("form"), "{from}");
        let still = w.status(&id, 0).await;
        assert_eq!(still.json["status"], "pending", "{from}: {}", still.json);
        assert_eq!(w.request(&id).await.state, ApprovalState::Pending, "{from}");
    }

    // The link still works for the manager.
    open_asking_page(&w, &mut b, &id, &link).await;
    b.click("button.approve");
    b.wait_css("main.card.approved", 5);
    assert_eq!(w.status(&id, 5).await.json["status"], "granted");
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_fixture_answers_every_command_and_leaves_nothing_running() {
    let site = OtherSite::start(vec![(
        "/marker",
        "<!doctype html><title>Marker</title><a id=\"same\" href=\"#below\">below</a>\
         <p id=\"below\" data-x=\"1\">here</p><input id=\"field\" value=\"old\">\
         <p id=\"late\">waiting</p><script>document.cookie = 'seen=1; path=/';\
         setTimeout(() => document.getElementById('late').textContent = 'arrived', 300)</script>"
            .to_owned(),
    )])
    .await;
    let mut b = Browser::start(BrowserOptions::default().lang("tr"));
    let profile = b.profile_dir().to_str().unwrap().to_owned();
    assert!(!processes_with(&profile).is_empty(), "Chromium runs");

    // The language option reaches the server as Accept-Language.
    b.get(&site.same_site("/headers"));
    let headers = b.text("#headers").to_lowercase();
    assert!(headers.contains("accept-language: tr"), "{headers}");

    // A marker on window survives an in-page change and is gone after a reload.
    b.get(&site.same_site("/marker"));
    assert_eq!(b.current_url(), site.same_site("/marker"));
    assert_eq!(b.title(), "Marker");
    assert_eq!(b.wait_text("#late", "arrived", 3), "arrived");
    b.type_text("#field", "yeni değer");
    assert_eq!(b.attr("#field", "value").as_deref(), Some("yeni değer"));
    let cookies = b.cookies();
    assert!(
        cookies
            .iter()
            .any(|c| c["name"] == "seen" && c["value"] == "1"),
        "{cookies:?}"
    );
    assert_eq!(b.attr("#below", "data-x").as_deref(), Some("1"));
    b.execute("window.__kept = 1");
    b.click("#same");
    assert!(
        b.wait_url(&site.same_site("/marker#below"), 2)
            .ends_with("#below")
    );
    assert_eq!(b.execute("return window.__kept"), json!(1));
    b.refresh();
    assert_eq!(b.execute("return window.__kept ?? null"), Value::Null);

    // Failures are answers: what is missing, and a wait that gives up on time.
    let missing = b.try_command("click", json!({"css": "#nowhere"}), 0);
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.contains("no such element")),
        "{missing:?}"
    );
    let started = Instant::now();
    let waited = b.try_command("wait_css", json!({"css": "#nowhere", "secs": 1}), 1);
    assert!(
        waited
            .as_ref()
            .is_err_and(|e| e.contains("timed out after 1")),
        "{waited:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let unknown = b.try_command("fly", Value::Null, 0);
    assert!(unknown.is_err_and(|e| e.contains("unknown command")));
    // The browser still works after them.
    assert!(b.exists("#below"));

    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with(&profile).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left running: {:?}",
            processes_with(&profile)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!std::path::Path::new(&profile).exists(), "profile removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_browser_step_fails_the_test_and_leaves_a_screenshot() {
    let site = OtherSite::start(vec![(
        "/page",
        "<!doctype html><title>Here</title><p>here</p>".to_owned(),
    )])
    .await;
    let shot = screenshots_dir().join("failed-browser_failure_probe.png");
    let _ = std::fs::remove_file(&shot);
    let url = site.same_site("/page");
    let started = Instant::now();
    let failed = std::thread::Builder::new()
        .name("browser_failure_probe".into())
        .spawn(move || {
            let mut b = Browser::start(BrowserOptions::default());
            b.get(&url);
            b.click("#nowhere");
        })
        .unwrap()
        .join();
    let message = failed.expect_err("the step failed the thread");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("click")
            && message.contains("#nowhere")
            && message.contains("no such element"),
        "{message}"
    );
    assert_eq!(png_size(&shot), (1280, 900), "the page as it was");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
