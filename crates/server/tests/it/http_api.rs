//! The HTTP API's edges: problem+json for bad input, rate limits with Retry-After, health, and
//! the router tested without sockets.

use serde_json::json;

use crate::fixtures::*;

#[tokio::test]
async fn bad_requests_are_problem_json_and_lose_nothing() {
    let cs = Countersign::start(&Setup {
        extra: file_mechanism(),
        default_mechanisms: vec!["File"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let r = cs
        .http
        .post(format!("{}/api/v1/otp/deliver", cs.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["status"], 400);
    assert!(
        p["detail"].as_str().unwrap().starts_with("request body:"),
        "{p}"
    );

    let a = cs.deliver(json!({"authentication_id": "u:alice"})).await;
    assert_eq!(a.status, 400);
    assert!(
        a.json["detail"]
            .as_str()
            .unwrap()
            .contains("static_password"),
        "{}",
        a.json
    );
    let a = cs
        .deliver(json!({"authentication_id": "u:alice", "static_password": "x", "surprise": 1}))
        .await;
    assert_eq!(a.status, 400, "unknown fields are refused");

    let big = "x".repeat(100 * 1024);
    let a = cs
        .deliver(json!({"authentication_id": big, "static_password": "x"}))
        .await;
    assert_eq!(a.status, 413);

    let mut many = deliver_alice();
    many["mechanisms"] = json!(vec!["File"; 17]);
    let a = cs.deliver(many).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.json["detail"],
        "at most 16 delivery mechanisms may be requested"
    );

    assert_eq!(cs.get("/no/such/thing").await.status, 404);
    // After all that, the server still works.
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
    let h = cs.get("/healthz").await;
    assert_eq!((h.status, h.json["status"].as_str()), (200, Some("ok")));
}

fn file_mechanism() -> String {
    "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n".into()
}

#[tokio::test]
async fn deliver_is_rate_limited_per_user_with_retry_after() {
    let setup = Setup {
        extra: file_mechanism(),
        default_mechanisms: vec!["File"],
        rate_limits: "deliver_per_user = \"2/1m\"\ndeliver_per_client = \"off\"\nverify_per_user = \"off\"\nverify_per_client = \"off\"\n".into(),
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    cs.add_user(alice()).await;
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["retry-after"], "30");
    assert_eq!(a.json["title"], "Too many attempts");
    // Unknown users are limited the same way, so the limit reveals nothing.
    let nobody = json!({"authentication_id": "u:nobody", "static_password": "x"});
    assert_eq!(cs.deliver(nobody.clone()).await.status, 401);
    assert_eq!(cs.deliver(nobody.clone()).await.status, 401);
    assert_eq!(cs.deliver(nobody).await.status, 429);
    // Time heals.
    cs.clock.advance(std::time::Duration::from_secs(31));
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
    let files = std::fs::read_dir(cs.dir.path().join("outbox"))
        .unwrap()
        .count();
    assert_eq!(files, 3, "exactly the allowed deliveries were sent");
}

#[tokio::test]
async fn verify_is_rate_limited_per_client() {
    let setup = Setup {
        extra: file_mechanism(),
        default_mechanisms: vec!["File"],
        rate_limits: "deliver_per_user = \"off\"\ndeliver_per_client = \"off\"\nverify_per_user = \"off\"\nverify_per_client = \"3/1m\"\n".into(),
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    for user in ["u:a", "u:b", "u:c"] {
        assert_eq!(cs.verify(user, "123456").await.status, 401);
    }
    let a = cs.verify("u:d", "123456").await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["retry-after"], "20");
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert_eq!(audit[0].reason, "rate limited");
    assert_eq!(audit[0].client.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn router_answers_without_sockets() {
    use tower::ServiceExt;
    let cs = Countersign::start(&Setup {
        extra: file_mechanism(),
        default_mechanisms: vec!["File"],
        ..Setup::default()
    })
    .await;
    let router = countersign::http::api::router(cs.app.http_state());
    let req = axum::http::Request::post("/api/v1/otp/verify")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            r#"{"authentication_id":"u:x","otp":"1"}"#,
        ))
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn default_limits_apply_when_the_config_says_nothing() {
    // Setup's rate_limits section empty: the defaults (deliver_per_user = 5/15m) are in force,
    // and spelling the identity differently does not buy more attempts.
    let setup = Setup {
        extra: file_mechanism(),
        default_mechanisms: vec!["File"],
        rate_limits: String::new(),
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    cs.add_user(alice()).await;
    for id in [
        "u:alice",
        "U:alice",
        "dn:uid=alice,ou=people,dc=example,dc=com",
        "dn:UID=alice, ou=people,dc=example,dc=com",
        "u:alice",
    ] {
        let a = cs
            .deliver(json!({"authentication_id": id, "static_password": "alice-password"}))
            .await;
        assert_eq!(a.status, 200, "{id}: {}", a.json);
    }
    let a = cs.deliver(json!({"authentication_id": "dn:uid=alice,  ou=people,dc=example,dc=com", "static_password": "alice-password"})).await;
    assert_eq!(a.status, 429, "{}", a.json);
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry, 180, "one attempt comes back every 15m / 5");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra = format!(
        "{}\n[http]\nheader_read_timeout = \"1s\"\n",
        file_mechanism()
    );
    let cs = Countersign::start(&Setup {
        extra,
        default_mechanisms: vec!["File"],
        ..Setup::default()
    })
    .await;
    let addr = cs.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server gives up on the unfinished request (a 408 or a plain close), well before a
    // real slowloris would have to stop.
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        slow.read_to_end(&mut got),
    )
    .await;
    assert!(read.is_ok(), "the connection must be closed by the server");
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Everyone else is served.
    assert_eq!(cs.get("/healthz").await.status, 200);
}
