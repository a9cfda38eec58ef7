//! The hosted sign-in in a real headless Chromium: `/authorize`, the sign-in form, the page
//! that waits for the manager and turns live (SSE) into the relying party's callback when the
//! manager approves through the link in the mail the real SMTP server captured, without a
//! reload; rejection and expiry shown live with a way back; the same without JavaScript (the
//! refresh fallback); the OTP step; Turkish pages. Screenshots of each page go to
//! `target/screenshots/`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::approval_ldap::link_token;
use crate::fixtures::browser::{Browser, BrowserOptions, OtherSite};
use crate::oidc_rp::{CLIENT, Provider, code_in, jws_part, provider_with, redeem};

/// The relying party's callback page (another origin than countersign).
async fn relying_party() -> OtherSite {
    OtherSite::start(vec![(
        "/cb",
        "<!doctype html><title>RP</title><h1 id=\"rp\">Relying party</h1>".to_owned(),
    )])
    .await
}

fn authorize_url(p: &Provider, callback: &str, state: &str) -> String {
    let callback: String = countersign_core::oidc::percent_encode(callback);
    format!(
        "{}/authorize?response_type=code&client_id={CLIENT}&redirect_uri={callback}&scope=openid%20profile%20email&state={state}&nonce=n-{state}",
        p.cs.base
    )
}

fn sign_in(b: &mut Browser, user: &str) {
    b.wait_css("form#signin", 10);
    b.type_text("#username", user);
    b.type_text("#password", &format!("{user}-password"));
    b.click("#submit");
}

/// The approval link of the `n`th mail to bob, once it is there.
async fn link(p: &Provider, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mail = loop {
        let mails: Vec<_> = p
            .smtp
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos.iter().any(|r| r == "bob@example.com"))
            .collect();
        if mails.len() >= n {
            break mails[n - 1].clone();
        }
        assert!(Instant::now() < deadline, "no approval mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    format!("{}/approve/{}", p.cs.base, link_token(&mail))
}

/// The manager decides through the link in the `n`th mail to bob: the page, then its form.
async fn decide(p: &Provider, n: usize, decision: &str) {
    let link = link(p, n).await;
    let page = p.cs.http.get(&link).send().await.unwrap();
    let csrf = crate::http_approval::csrf_of(&page.text().await.unwrap());
    let r =
        p.cs.http
            .post(&link)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&decision={decision}"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
}

/// The six-digit code in the one-time-password mail to `to`.
fn otp_mailed_to(p: &Provider, to: &str) -> String {
    let mail = p
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.rcpt_tos.iter().any(|r| r == to) && m.body().contains("one-time password"))
        .unwrap_or_else(|| panic!("no OTP mail to {to}: {:?}", p.smtp.messages()));
    mail.body()
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned()
}

/// The code in the callback URL, exchanged as the client would: the ID token's claims.
async fn claims_of(p: &Provider, callback_url: &str, redirect: &str) -> Value {
    let code = code_in(callback_url);
    let r: Value = redeem(&p.cs.http, &p.cs.base, code, redirect, None)
        .await
        .json()
        .await
        .unwrap();
    jws_part(r["id_token"].as_str().unwrap_or_else(|| panic!("{r}")), 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_waiting_page_turns_into_the_application_when_the_manager_approves() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"password\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default());
    b.get(&authorize_url(&p, &callback, "s1"));
    b.screenshot("signin-en");
    sign_in(&mut b, "dora");
    b.wait_css("main.waiting", 10);
    assert!(b.text("#approver").contains("b***"), "masked approver");
    assert!(!b.text("#countdown").is_empty());
    b.screenshot("waiting-en");
    let at_page = b.current_url();
    // With script on, the no-script refresh is inert text: nothing but the page's script can
    // take the browser on.
    let refreshes =
        b.execute("return document.querySelectorAll('meta[http-equiv=refresh]').length");
    assert_eq!(refreshes, serde_json::json!(0));
    decide(&p, 1, "approve").await;
    // The page's script follows the event stream: no reload asked for, and the no-script
    // refresh does not apply (JavaScript is on).
    let started = Instant::now();
    let arrived = b.wait_url(&callback, 10);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "live, not by refresh"
    );
    assert!(at_page.contains("/flow/"));
    assert!(arrived.contains("state=s1"), "{arrived}");
    let claims = claims_of(&p, &arrived, &callback).await;
    assert_eq!(claims["preferred_username"], "dora");
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "mca"]));
    assert_eq!(claims["acr"], "urn:countersign:acr:approval");
    assert_eq!(claims["nonce"], "n-s1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_and_an_expiry_show_live_with_a_way_back_to_the_application() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"password\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default());
    b.get(&authorize_url(&p, &callback, "r1"));
    sign_in(&mut b, "dora");
    b.wait_css("main.waiting", 10);
    decide(&p, 1, "reject").await;
    b.wait_css("main[data-outcome=rejected]", 10);
    b.screenshot("rejected-en");
    b.click("#back");
    let back = b.wait_url(&callback, 10);
    assert!(back.contains("error=access_denied"), "{back}");
    assert!(back.contains("state=r1"), "{back}");

    // Rejected just now: the cooldown refuses dora at once. ivan's sponsor is only informed,
    // so expiry is shown with a second contractor.
    p.cs.clock.advance(Duration::from_secs(600));
    b.get(&authorize_url(&p, &callback, "e1"));
    sign_in(&mut b, "dora");
    b.wait_css("main.waiting", 10);
    // Past the link's expiry: the server's job marks it expired and the page follows.
    p.cs.clock.advance(Duration::from_secs(11 * 60));
    b.wait_css("main[data-outcome=expired]", 15);
    b.screenshot("expired-en");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_javascript_the_waiting_page_refreshes_until_the_decision() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"password\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default().without_javascript());
    b.get(&authorize_url(&p, &callback, "n1"));
    sign_in(&mut b, "dora");
    b.wait_css("main.waiting", 10);
    decide(&p, 1, "approve").await;
    // The 5 s refresh finds the login granted and continues.
    let arrived = b.wait_url(&callback, 15);
    assert!(arrived.contains("code="), "{arrived}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_requiring_a_delivered_otp_gets_the_otp_step() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"delivered_otp\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default());
    b.get(&authorize_url(&p, &callback, "o1"));
    sign_in(&mut b, "ivan");
    b.wait_css("form#otp-send", 10);
    assert!(b.text("form#otp-send").contains("i***"), "masked address");
    b.screenshot("otp-pick-en");
    b.click("#send");
    b.wait_css("form#otp-verify", 10);
    b.screenshot("otp-code-en");
    let code = otp_mailed_to(&p, "ivan@example.com");
    b.type_text("#code", "000000");
    b.click("#verify");
    b.wait_css("#error", 10);
    b.type_text("#code", &code);
    b.click("#verify");
    let arrived = b.wait_url(&callback, 10);
    let claims = claims_of(&p, &arrived, &callback).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn turkish_pages_under_accept_language_tr() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"password\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default().lang("tr"));
    b.get(&authorize_url(&p, &callback, "t1"));
    b.wait_css("form#signin", 10);
    assert_eq!(b.attr("html", "lang").as_deref(), Some("tr"));
    b.screenshot("signin-tr");
    sign_in(&mut b, "dora");
    b.wait_css("main.waiting", 10);
    assert_eq!(b.attr("html", "lang").as_deref(), Some("tr"));
    b.screenshot("waiting-tr");
    // The manager, also Turkish, approves in a browser of their own: the same look.
    let mut manager = Browser::start(BrowserOptions::default().lang("tr"));
    manager.get(&link(&p, 1).await);
    manager.wait_css("form.decide", 10);
    assert_eq!(manager.attr("html", "lang").as_deref(), Some("tr"));
    manager.screenshot("approve-tr");
    manager.click("button.approve");
    manager.wait_css("main.card.approved", 10);
    manager.screenshot("approved-manager-tr");
    b.wait_url(&callback, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manager_page_in_english_has_the_same_look() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"password\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default());
    b.get(&authorize_url(&p, &callback, "m1"));
    sign_in(&mut b, "dora");
    b.wait_css("main.waiting", 10);
    let mut manager = Browser::start(BrowserOptions::default().phone());
    manager.get(&link(&p, 1).await);
    manager.wait_css("form.decide", 10);
    let sheet = manager.attr("link[rel=stylesheet]", "href").unwrap();
    assert!(
        sheet.ends_with("/assets/countersign.css"),
        "one stylesheet for every page: {sheet}"
    );
    manager.screenshot("approve-en-phone");
    manager.click("button.approve");
    manager.wait_css("main.card.approved", 10);
    manager.screenshot("approved-manager-en-phone");
    b.wait_url(&callback, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_otp_step_and_a_rejection_in_turkish() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"delivered_otp\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default().lang("tr"));
    b.get(&authorize_url(&p, &callback, "t2"));
    sign_in(&mut b, "dora");
    b.wait_css("form#otp-send", 10);
    assert_eq!(b.attr("html", "lang").as_deref(), Some("tr"));
    b.screenshot("otp-pick-tr");
    b.click("#send");
    b.wait_css("form#otp-verify", 10);
    b.screenshot("otp-code-tr");
    let code = otp_mailed_to(&p, "dora@example.com");
    b.type_text("#code", &code);
    b.click("#verify");
    b.wait_css("main.waiting", 10);
    decide(&p, 1, "reject").await;
    b.wait_css("main[data-outcome=rejected]", 10);
    assert_eq!(b.attr("html", "lang").as_deref(), Some("tr"));
    b.screenshot("rejected-tr");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_phone_the_sign_in_fits_and_works_from_the_keyboard() {
    let rp = relying_party().await;
    let callback = rp.same_site("/cb");
    let p = provider_with("[\"password\"]", &callback).await;
    let mut b = Browser::start(BrowserOptions::default().phone());
    b.get(&authorize_url(&p, &callback, "k1"));
    b.wait_css("form#signin", 10);
    // Labels name the fields for screen readers; the first Tab reaches the language switch or
    // the username, and the fields follow in order.
    for field in ["username", "password"] {
        assert!(
            b.exists(&format!("label[for={field}]")),
            "a label for {field}"
        );
    }
    b.tab_to("#username", 6);
    b.type_text("#username", "ivan");
    assert_eq!(
        b.tab_to("#password", 1),
        1,
        "password right after the username"
    );
    b.type_text("#password", "ivan-password");
    let fit = b.execute(
        "return { scroll: document.documentElement.scrollWidth, width: window.innerWidth,
                  button: document.querySelector('#submit').getBoundingClientRect().height };",
    );
    assert!(
        fit["scroll"].as_u64().unwrap() <= fit["width"].as_u64().unwrap(),
        "{fit}"
    );
    assert!(fit["button"].as_f64().unwrap() >= 24.0, "{fit}");
    b.screenshot("signin-en-phone");
    b.press("ENTER");
    let arrived = b.wait_url(&callback, 10);
    assert!(arrived.contains("code="), "{arrived}");
}
