//! The manager's page through the router: what it shows, that looking never decides, forged
//! POSTs refused, one decision only, the pages of unknown and expired links, and the security
//! headers on every answer.

use axum::body::Body;
use axum::http::Request;

use super::*;

fn page_req(method: &str, token: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("/approve/{token}"))
        .header("host", "mfa.internal:8080")
}

/// A POST's head as a browser sends the page's form, from the manager's phone.
fn form_post(token: &str) -> axum::http::request::Builder {
    form_post_as(token, "https://mfa.example.com", "same-origin")
}

/// As [`form_post`], with this `Origin` and `Sec-Fetch-Site`.
fn form_post_as(token: &str, origin: &str, fetch_site: &str) -> axum::http::request::Builder {
    from(page_req("POST", token), "203.0.113.5")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", origin)
        .header("sec-fetch-site", fetch_site)
        .header("user-agent", "Mozilla/5.0 (Phone)\t")
}

fn form_body(csrf: Option<&str>, decision: &str) -> Body {
    let mut f = form_urlencoded::Serializer::new(String::new());
    if let Some(c) = csrf {
        f.append_pair("csrf", c);
    }
    f.append_pair("decision", decision);
    Body::from(f.finish())
}

#[tokio::test]
async fn the_managers_page_shows_the_request_and_looking_never_decides() {
    let rig = rig();
    let router = rig.router();
    let (id, token) = rig.pending("eve").await;

    let get = send(
        &router,
        page_req("GET", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.headers["content-type"], "text/html; charset=utf-8");
    assert_page_headers(&get.headers, "GET");
    let page = &get.body;
    assert!(
        page.contains("&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; Co"),
        "{page}"
    );
    assert!(
        !page.contains("<script"),
        "no markup from the user's name: {page}"
    );
    for shown in [
        "(eve)",
        "vpn",
        "198.51.100.7",
        ASKED_AT,
        VALID_UNTIL,
        "name=\"viewport\"",
    ] {
        assert!(page.contains(shown), "{shown} missing: {page}");
    }
    assert!(page.contains("value=\"approve\"") && page.contains("value=\"reject\""));
    assert_eq!(csrf_of(page), CsrfKey::derive(SERVER_KEY).token_for(&token));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );

    let head = send(
        &router,
        page_req("HEAD", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.headers["content-length"],
        page.len().to_string().as_str()
    );
    assert_page_headers(&head.headers, "HEAD");

    let options = send(
        &router,
        page_req("OPTIONS", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(options.status, 204);
    assert_eq!(options.headers["allow"], "GET, HEAD, POST");
    assert_page_headers(&options.headers, "OPTIONS");

    let put = send(
        &router,
        page_req("PUT", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(put.status, 405);
    assert_eq!(put.headers["allow"], "GET, HEAD, POST");
    assert!(
        put.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_page_headers(&put.headers, "PUT");

    assert_eq!(
        rig.request(&id).state,
        ApprovalState::Pending,
        "looking decided nothing"
    );
    assert_eq!(rig.decisions(), 0);

    let css = send(
        &router,
        Request::get("/assets/countersign.css")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(css.status, 200);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert_page_headers(&css.headers, "stylesheet");
    assert!(css.body.contains("button.approve"));
}

#[tokio::test]
async fn forged_posts_are_refused_and_a_real_one_decides_once() {
    let rig = rig();
    let router = rig.router();
    let (id, token) = rig.pending("alice").await;
    let csrf = CsrfKey::derive(SERVER_KEY).token_for(&token);

    let wrong = "0".repeat(64);
    let other_link = CsrfKey::derive(SERVER_KEY).token_for(&"a".repeat(64));
    let forged = [
        (
            "cross-site fetch",
            form_post_as(&token, "https://mfa.example.com", "cross-site"),
            Some(csrf.as_str()),
        ),
        (
            "foreign origin",
            form_post_as(&token, "https://evil.example", "same-site"),
            Some(csrf.as_str()),
        ),
        ("no csrf field", form_post(&token), None),
        ("wrong csrf field", form_post(&token), Some(wrong.as_str())),
        (
            "another link's field",
            form_post(&token),
            Some(other_link.as_str()),
        ),
    ];
    for (what, req, field) in forged {
        let r = send(&router, req.body(form_body(field, "approve")).unwrap()).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.body.contains("Request refused"), "{what}");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_page_headers(&r.headers, what);
    }
    // Not a form, or no decision: refused too.
    let r = send(
        &router,
        from(page_req("POST", &token), "203.0.113.5")
            .header("content-type", "application/json")
            .header("sec-fetch-site", "same-origin")
            .body(form_body(Some(&csrf), "approve"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 415);
    let r = send(
        &router,
        form_post(&token)
            .body(form_body(Some(&csrf), "maybe"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(
        rig.request(&id).state,
        ApprovalState::Pending,
        "nothing decided"
    );
    assert_eq!(rig.decisions(), 0);

    // `Origin: null` is what our own no-referrer page makes a browser send, with same-origin.
    let r = send(
        &router,
        form_post_as(&token, "null", "same-origin")
            .body(form_body(Some(&csrf), "reject"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Sign-in rejected"));
    assert_page_headers(&r.headers, "decided");
    let decided = rig.request(&id);
    assert_eq!(decided.state, ApprovalState::Rejected);
    let by = decided.decided_by.unwrap();
    assert_eq!(by.address.as_deref(), Some("203.0.113.5"));
    assert_eq!(by.user_agent.as_deref(), Some("Mozilla/5.0 (Phone)"));
    assert_eq!(rig.decisions(), 1);

    // The second decision is told the first won.
    let r = send(
        &router,
        form_post(&token)
            .body(form_body(Some(&csrf), "approve"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body
            .contains("already rejected at 2023-11-14 22:13:20 UTC"),
        "{}",
        r.body
    );
    assert_eq!(rig.request(&id).state, ApprovalState::Rejected);
    assert_eq!(rig.decisions(), 1);
    // And the page says so on a GET.
    let r = send(
        &router,
        page_req("GET", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("Already rejected") && !r.body.contains("<form"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn unknown_malformed_and_expired_links_get_their_own_pages() {
    let rig = rig();
    let router = rig.router();
    let (id, token) = rig.pending("alice").await;

    let mut not_found = Vec::new();
    for odd in [
        "0".repeat(64),
        token.to_uppercase(),
        token[1..].to_owned(),
        "x".to_owned(),
        format!("{token}/more"),
        "%3Cscript%3E".to_owned(),
        String::new(),
    ] {
        let r = send(&router, page_req("GET", &odd).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, 404, "{odd}");
        assert_page_headers(&r.headers, "404");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        not_found.push(r.body);
    }
    assert!(
        not_found.windows(2).all(|w| w[0] == w[1]),
        "byte-identical 404 pages"
    );
    assert!(not_found[0].contains("Link not valid"));
    // A POST to a link that does not exist, with the field for it: the same page.
    let nothing = "0".repeat(64);
    let field = CsrfKey::derive(SERVER_KEY).token_for(&nothing);
    let r = send(
        &router,
        form_post(&nothing)
            .body(form_body(Some(&field), "approve"))
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, &r.body), (404, &not_found[0]));

    rig.w.clock.advance(Duration::from_secs(3600));
    let r = send(
        &router,
        page_req("GET", &token).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 410);
    assert!(
        r.body.contains("Link expired") && r.body.contains(VALID_UNTIL),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<form"));
    assert_page_headers(&r.headers, "410");
    let csrf = CsrfKey::derive(SERVER_KEY).token_for(&token);
    let r = send(
        &router,
        form_post(&token)
            .body(form_body(Some(&csrf), "approve"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert!(r.body.contains("Link expired"));
    assert_ne!(rig.request(&id).state, ApprovalState::Approved);
    assert_eq!(rig.decisions(), 0);

    // The JSON API's answers are unchanged around the pages.
    let r = send(
        &router,
        Request::get("/no/such/thing").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_managers_page_speaks_the_chosen_language_and_remembers_the_switch() {
    let rig = rig();
    let router = rig.router();
    let (id, token) = rig.pending("eve").await;
    let get = |uri: String, header: Option<(&'static str, &'static str)>| {
        let mut req = Request::get(uri).header("host", "mfa.internal:8080");
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        req.body(Body::empty()).unwrap()
    };

    // The browser's languages choose Turkish: every word of the page is Turkish.
    let r = send(
        &router,
        get(
            format!("/approve/{token}"),
            Some(("accept-language", "tr-TR,tr;q=0.9,en-US;q=0.8,en;q=0.7")),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-language"], "tr");
    assert!(r.headers.get("set-cookie").is_none(), "nothing chosen yet");
    assert_page_headers(&r.headers, "Turkish page");
    for shown in [
        "<html lang=\"tr\">",
        "<title>Oturum açmayı onaylayın · countersign</title>",
        "Bu oturum açma isteğini onaylıyor musunuz?",
        "uygulamasında oturum açmak istiyor.",
        "<dt>İstek zamanı</dt>",
        ">Onayla</button>",
        ">Reddet</button>",
        "<nav class=\"lang\" aria-label=\"Dil\">",
        "<a href=\"?lang=tr\" hreflang=\"tr\" lang=\"tr\" aria-current=\"true\">Türkçe</a>",
        "<a href=\"?lang=en\" hreflang=\"en\" lang=\"en\">English</a>",
        ASKED_AT,
    ] {
        assert!(r.body.contains(shown), "{shown} missing: {}", r.body);
    }
    for english in ["Approve this sign-in?", ">Approve</button>", "Asked at"] {
        assert!(!r.body.contains(english), "{english} left in English");
    }

    // The switch's link: `?lang=en` beats the browser and is remembered for a year.
    let r = send(
        &router,
        get(
            format!("/approve/{token}?lang=en"),
            Some(("accept-language", "tr")),
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<html lang=\"en\">") && r.body.contains("Approve this sign-in?"));
    assert_eq!(
        r.headers["set-cookie"],
        "cs_lang=en; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly"
    );

    // The remembered choice beats the browser on the next pages, forms and errors included.
    let r = send(
        &router,
        get(format!("/approve/{token}"), Some(("cookie", "cs_lang=tr"))),
    )
    .await;
    assert!(r.body.contains("<html lang=\"tr\">"));
    let forged = send(
        &router,
        form_post_as(&token, "https://evil.example", "cross-site")
            .header("cookie", "theme=dark; cs_lang=tr")
            .body(form_body(None, "approve"))
            .unwrap(),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("İstek reddedildi"), "{}", forged.body);
    assert!(forged.headers.get("set-cookie").is_none());
    let unknown = send(
        &router,
        get(
            "/approve/nothing".to_owned(),
            Some(("cookie", "cs_lang=tr")),
        ),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("Bağlantı geçersiz"));
    let put = send(
        &router,
        Request::put(format!("/approve/{token}"))
            .header("accept-language", "tr")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(put.status, 405);
    assert!(
        put.body.contains("Bu istek türü kabul edilmiyor"),
        "{}",
        put.body
    );

    // A decision in Turkish, and its answer.
    let csrf = CsrfKey::derive(SERVER_KEY).token_for(&token);
    let r = send(
        &router,
        form_post(&token)
            .header("accept-language", "tr")
            .body(form_body(Some(&csrf), "approve"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Oturum açma onaylandı"), "{}", r.body);
    assert!(r.body.contains("uygulamasında oturum açmasını onayladınız"));
    assert_eq!(rig.request(&id).state, ApprovalState::Approved);
}

#[tokio::test]
async fn the_waiting_pages_script_is_served_beside_the_stylesheet() {
    let rig = rig();
    let router = rig.router();
    let r = send(
        &router,
        Request::get("/assets/waiting.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_page_headers(&r.headers, "script");
    assert!(r.body.contains("EventSource") && r.body.contains("location.assign"));
    assert!(
        !r.body.contains("fetch(") && !r.body.contains("XMLHttpRequest"),
        "no polling"
    );
}
