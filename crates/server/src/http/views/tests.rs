//! Every hosted page rendered in both languages: the contract's ids and attributes, values
//! escaped, the language marked and switchable, and nothing inline for the CSP to refuse.

use super::*;

const FLOW: &str = "0123456789abcdef0123456789abcdef";
const NASTY: &str = "<script>alert(\"x\")</script> & 'Co'";
const NASTY_ESCAPED: &str =
    "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;Co&#39;";

/// What every page must be, whatever it shows.
fn assert_page(html: &str, lang: Lang) {
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(
        html.contains(&format!("<html lang=\"{}\">", lang.code())),
        "{html}"
    );
    let t = lang.catalogue();
    assert!(
        html.contains(&format!(
            "<nav class=\"lang\" aria-label=\"{}\">",
            t.lang_nav_label
        )),
        "{html}"
    );
    for other in Lang::ALL {
        let current = if other == lang {
            " aria-current=\"true\""
        } else {
            ""
        };
        let link = format!(
            "<a href=\"?lang={0}\" hreflang=\"{0}\" lang=\"{0}\"{current}>{1}</a>",
            other.code(),
            other.own_name()
        );
        assert!(html.contains(&link), "{link} missing: {html}");
    }
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/assets/countersign.css\">"));
    // Nothing the CSP (`script-src 'self'`, `style-src 'self'`) would refuse, nothing from
    // elsewhere.
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains(" style="), "inline style: {html}");
    assert!(!lower.contains("<style"), "style element: {html}");
    assert!(!lower.contains("javascript:"), "{html}");
    assert!(
        !lower
            .split(|c: char| c.is_whitespace())
            .any(|w| w.starts_with("on") && w.contains('=')),
        "an on* handler: {html}"
    );
    for (i, _) in lower.match_indices("<script") {
        let tag_end = i + lower[i..].find('>').unwrap();
        assert!(
            lower[i..tag_end].contains(" src=\"/assets/"),
            "inline script: {html}"
        );
        assert!(
            lower[tag_end..].starts_with("></script>"),
            "a script with a body: {html}"
        );
    }
    assert!(!lower.contains("http://") && !lower.contains("https://"));
    assert!(!html.contains("{application}") && !html.contains("{address}"));
}

fn has_ids(html: &str, ids: &[&str]) {
    for id in ids {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "#{id} missing: {html}"
        );
    }
}

#[test]
fn sign_in_keeps_the_username_escaped_and_shows_one_refusal() {
    for lang in Lang::ALL {
        let t = lang.catalogue();
        let first = SignIn {
            flow: FLOW,
            csrf: "c5rf",
            application: "Wiki & Co",
            username: "",
            error: None,
        };
        let html = first.render(lang).unwrap();
        assert_page(&html, lang);
        has_ids(&html, &["signin", "username", "password", "submit"]);
        assert!(html.contains(&format!(
            "<form id=\"signin\" method=\"post\" action=\"/flow/{FLOW}/password\">"
        )));
        assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"c5rf\">"));
        assert!(html.contains("name=\"username\" type=\"text\" autocomplete=\"username\""));
        assert!(
            html.contains("name=\"password\" type=\"password\" autocomplete=\"current-password\"")
        );
        assert!(
            html.contains("<label for=\"username\">") && html.contains("<label for=\"password\">")
        );
        assert!(html.contains("<strong>Wiki &#38; Co</strong>"), "{html}");
        assert!(html.contains(t.signin_button));
        assert!(!html.contains("id=\"error\""));

        let again = SignIn {
            username: NASTY,
            error: Some(FormError::Refused),
            ..first
        };
        let html = again.render(lang).unwrap();
        assert_page(&html, lang);
        assert!(
            html.contains(&format!("value=\"{NASTY_ESCAPED}\"")),
            "{html}"
        );
        assert!(html.contains(&format!(
            "<p id=\"error\" class=\"error\" role=\"alert\">{}</p>",
            t.signin_refused
        )));
        assert!(html.contains("aria-describedby=\"error\""));
        let limited = SignIn {
            error: Some(FormError::TooManyAttempts),
            ..first
        };
        assert!(limited.render(lang).unwrap().contains(t.signin_too_many));
    }
}

#[test]
fn the_otp_steps_list_mechanisms_and_ask_for_the_code() {
    for lang in Lang::ALL {
        let t = lang.catalogue();
        let pick = OtpPick {
            flow: FLOW,
            csrf: "c5rf",
            application: "vpn",
            mechanisms: vec![
                MechanismChoice {
                    index: 0,
                    name: "Email".into(),
                    address: "a***@example.com".into(),
                },
                MechanismChoice {
                    index: 1,
                    name: "SMS".into(),
                    address: NASTY.into(),
                },
            ],
            error: None,
        };
        let html = pick.render(lang).unwrap();
        assert_page(&html, lang);
        has_ids(&html, &["otp-send", "mechanism-0", "mechanism-1", "send"]);
        assert!(html.contains(&format!(
            "<form id=\"otp-send\" method=\"post\" action=\"/flow/{FLOW}/otp/send\">"
        )));
        assert!(html.contains(
            "<input type=\"radio\" id=\"mechanism-0\" name=\"mechanism\" value=\"0\" checked>"
        ));
        assert!(html.contains("id=\"mechanism-1\" name=\"mechanism\" value=\"1\">"));
        assert!(html.contains("<label for=\"mechanism-1\"><span class=\"name\">SMS</span>"));
        assert!(html.contains(NASTY_ESCAPED) && !html.contains("<script>"));
        assert!(html.contains(t.otp_pick_legend));

        let none = OtpPick {
            mechanisms: vec![],
            error: Some(FormError::NotSent),
            ..pick
        };
        let html = none.render(lang).unwrap();
        assert_page(&html, lang);
        assert!(html.contains(t.otp_none) && html.contains(t.otp_not_sent));
        assert!(!html.contains("id=\"otp-send\""));

        let code = OtpCode {
            flow: FLOW,
            csrf: "c5rf",
            mechanism: "Email",
            address: "a***@example.com",
            resend: &format!("/flow/{FLOW}?step=mechanism"),
            error: Some(FormError::Refused),
        };
        let html = code.render(lang).unwrap();
        assert_page(&html, lang);
        has_ids(&html, &["otp-verify", "code", "verify", "error", "resend"]);
        assert!(html.contains(&format!(
            "<form id=\"otp-verify\" method=\"post\" action=\"/flow/{FLOW}/otp\">"
        )));
        assert!(html.contains(
            "name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\""
        ));
        assert!(html.contains("<strong>a***@example.com</strong>"), "{html}");
        assert!(html.contains(t.otp_code_refused) && html.contains(t.otp_resend_link));
        assert!(html.contains(&format!("href=\"/flow/{FLOW}?step=mechanism\"")));
    }
}

#[test]
fn the_waiting_page_carries_what_its_script_needs_and_a_refresh_without_it() {
    for lang in Lang::ALL {
        let t = lang.catalogue();
        let now = Timestamp(1_700_000_000_000);
        let waiting = Waiting {
            flow: FLOW,
            csrf: "c5rf",
            approver: "b***@example.com",
            expires_at: Timestamp(now.0 + 15 * 60 * 1000 - 1),
            now,
        };
        let html = waiting.render(lang).unwrap();
        assert_page(&html, lang);
        has_ids(
            &html,
            &[
                "approver",
                "expires",
                "countdown",
                "status",
                "cancel",
                "cancel-button",
            ],
        );
        assert!(html.contains(&format!(
            "<main class=\"card waiting\" data-state=\"waiting\" data-events=\"/flow/{FLOW}/events\" data-expires=\"2023-11-14T22:28:19Z\">"
        )), "{html}");
        assert!(html.contains("<dd id=\"approver\">b***@example.com</dd>"));
        assert!(html.contains(
            "<time id=\"expires\" datetime=\"2023-11-14T22:28:19Z\">2023-11-14 22:28:19 UTC</time>"
        ));
        // 899.999 s left: the countdown rounds up.
        assert!(html.contains("data-seconds=\"900\">15:00</span>"), "{html}");
        assert!(html.contains(&format!(
            "<p id=\"status\" class=\"status\" aria-live=\"polite\" data-approved=\"{}\" data-rejected=\"{}\" data-expired=\"{}\">{}</p>",
            t.waiting_status_approved,
            t.waiting_status_rejected,
            t.waiting_status_expired,
            t.waiting_status_pending
        )));
        assert!(html.contains("<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>"));
        assert!(html.contains("<script src=\"/assets/waiting.js\" defer></script>"));
        assert!(html.contains(&format!(
            "<form id=\"cancel\" method=\"post\" action=\"/flow/{FLOW}/cancel\">"
        )));
        assert!(html.contains(t.cancel_button));
        // English says "manager's": askama escapes the apostrophe.
        assert!(
            html.contains(&t.waiting_heading.replace('\'', "&#39;")),
            "{html}"
        );

        // Past its expiry, the countdown shows zero, never a negative time.
        let late = Waiting {
            now: Timestamp(now.0 + 3_600_000),
            ..waiting
        };
        assert!(
            late.render(lang)
                .unwrap()
                .contains("data-seconds=\"0\">00:00</span>")
        );
    }
}

#[test]
fn outcomes_have_their_kind_their_words_and_a_way_back() {
    let kinds = [
        OutcomeKind::Approved,
        OutcomeKind::Rejected,
        OutcomeKind::Expired,
        OutcomeKind::Cancelled,
        OutcomeKind::Error,
        OutcomeKind::Used,
    ];
    for lang in Lang::ALL {
        let t = lang.catalogue();
        for kind in kinds {
            let outcome = Outcome::standard(kind, FLOW, NASTY, lang);
            let html = outcome.render(lang).unwrap();
            assert_page(&html, lang);
            assert!(html.contains(&format!(
                "<main class=\"card {kind}\" data-outcome=\"{kind}\">"
            )));
            assert!(html.contains(&format!("<h1>{}</h1>", outcome.title)));
            assert!(html.contains(&format!(
                "<a id=\"back\" class=\"button secondary\" href=\"/flow/{FLOW}/back\">{}</a>",
                t.back_link
            )));
            assert!(!html.contains("<script>"));
        }
        let rejected = Outcome::standard(OutcomeKind::Rejected, FLOW, "vpn", lang);
        assert_eq!(rejected.title, t.outcome_rejected_title);
        assert_eq!(
            rejected.lines,
            [t.outcome_rejected_line, t.outcome_rejected_advice]
        );
        let approved = Outcome::standard(OutcomeKind::Approved, FLOW, NASTY, lang);
        assert!(approved.render(lang).unwrap().contains(NASTY_ESCAPED));
    }
    assert_eq!(
        Outcome::standard(OutcomeKind::Expired, FLOW, "vpn", Lang::Tr).title,
        "Süre doldu"
    );
}

#[test]
fn times_show_in_utc_and_countdowns_in_minutes() {
    let t = Shown::of(Timestamp(1_700_000_000_000));
    assert_eq!(t.iso, "2023-11-14T22:13:20Z");
    assert_eq!(t.shown, "2023-11-14 22:13:20 UTC");
    assert_eq!(countdown_text(0), "00:00");
    assert_eq!(countdown_text(59), "00:59");
    assert_eq!(countdown_text(15 * 60), "15:00");
    assert_eq!(countdown_text(3600 + 61), "1:01:01");
}
