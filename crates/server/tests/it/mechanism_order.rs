//! The order mechanisms are tried in (Ping spec §7.1 step 7), observed at the real SMTP server
//! and SMS gateway.

use serde_json::json;

use crate::fixtures::*;

async fn both(default: Vec<&'static str>, smtp_port: u16, gw: &SmsGateway) -> Countersign {
    Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp_port)),
        sms_url: Some(gw.url.clone()),
        default_mechanisms: default,
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn request_list_is_tried_in_order_with_no_fallback_beyond_it() {
    let gw = SmsGateway::start().await;
    // SMTP down: nothing listens on this port.
    let cs = both(vec!["Email", "SMS"], closed_port(), &gw).await;
    cs.add_user(alice()).await;
    let mut body = deliver_alice();
    body["mechanisms"] = json!(["Email"]);
    let a = cs.deliver(body).await;
    assert_eq!(a.status, 502, "{}", a.json);
    assert_eq!(
        a.json["tried"],
        json!([{"mechanism": "Email", "reason": "delivery failed"}])
    );
    assert!(
        gw.requests().is_empty(),
        "SMS is a default, but the request named only Email"
    );

    // The request's own order: SMS first even though Email is the first default.
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = both(vec!["Email", "SMS"], smtp.port, &gw).await;
    cs.add_user(alice()).await;
    let mut body = deliver_alice();
    body["mechanisms"] = json!(["SMS", "Email"]);
    assert_eq!(cs.deliver(body).await.json["delivery_mechanism"], "SMS");
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn preferred_mechanisms_then_defaults_skipping_those_already_tried() {
    let gw = SmsGateway::start().await;
    gw.status.store(503, std::sync::atomic::Ordering::SeqCst);
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = both(vec!["SMS", "Email"], smtp.port, &gw).await;
    cs.add_user(TestUser {
        preferred: vec!["SMS"],
        ..alice()
    })
    .await;
    let a = cs.deliver(deliver_alice()).await;
    // SMS (preferred) fails; the defaults are SMS then Email, and SMS is not tried twice.
    assert_eq!(a.json["delivery_mechanism"], "Email", "{}", a.json);
    assert_eq!(
        gw.requests().len(),
        1,
        "the failed preferred mechanism was tried once"
    );
    assert_eq!(smtp.wait_for(1).len(), 1);
}

#[tokio::test]
async fn preferred_mechanism_wins_over_defaults() {
    let gw = SmsGateway::start().await;
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = both(vec!["Email", "SMS"], smtp.port, &gw).await;
    cs.add_user(TestUser {
        preferred: vec!["SMS"],
        ..alice()
    })
    .await;
    assert_eq!(
        cs.deliver(deliver_alice()).await.json["delivery_mechanism"],
        "SMS"
    );
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn smtp_down_falls_to_the_next_mechanism_and_all_failing_is_a_clear_error() {
    let gw = SmsGateway::start().await;
    let cs = both(vec!["Email", "SMS"], closed_port(), &gw).await;
    cs.add_user(alice()).await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json["delivery_mechanism"], "SMS");
    let key = countersign_core::UserKey {
        directory: "local".into(),
        dn: alice_dn().into(),
    };
    let delivered = cs.app.store.get_otp(&key).await.unwrap().unwrap();

    gw.status.store(500, std::sync::atomic::Ordering::SeqCst);
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 502);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    assert_eq!(a.json["title"], "Not delivered");
    assert_eq!(
        a.json["tried"],
        json!([{"mechanism": "Email", "reason": "delivery failed"}, {"mechanism": "SMS", "reason": "delivery failed"}])
    );
    let detail = a.json["detail"].as_str().unwrap();
    assert!(
        !detail.contains("alice@example.com") && !detail.contains("+1555"),
        "no addresses to the caller: {detail}"
    );
    // The OTP that could not be delivered is never stored; (issue 7, item 8) the one delivered
    // earlier stays outstanding.
    let outstanding = cs.app.store.get_otp(&key).await.unwrap().unwrap();
    assert_eq!(outstanding.id, delivered.id);
}

#[tokio::test]
async fn recipient_id_must_be_one_of_the_users_addresses() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        ..Setup::default()
    })
    .await;
    cs.add_user(TestUser {
        mail: vec!["alice@example.com", "alice@home.example"],
        ..alice()
    })
    .await;

    let mut body = deliver_alice();
    body["mechanisms"] = json!([{"name": "Email", "recipient_id": "attacker@evil.example"}]);
    let a = cs.deliver(body).await;
    assert_eq!(a.status, 422, "{}", a.json);
    assert_eq!(
        a.json["tried"][0]["reason"],
        "the recipient ID is not one of the user's addresses"
    );
    assert!(
        smtp.messages().is_empty(),
        "nothing may go to an address the user does not own"
    );

    let mut body = deliver_alice();
    body["mechanisms"] = json!([{"name": "Email", "recipient_id": "Alice@Home.example"}]);
    let a = cs.deliver(body).await;
    assert_eq!(a.json["recipient_id"], "alice@home.example", "{}", a.json);
    assert_eq!(smtp.wait_for(1)[0].rcpt_tos, ["alice@home.example"]);
}

#[tokio::test]
async fn supported_mechanisms_masks_recipients_unless_told_otherwise() {
    let gw = SmsGateway::start().await;
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = both(vec!["Email", "SMS"], smtp.port, &gw).await;
    cs.add_user(TestUser {
        mail: vec!["alice@example.com", "bob.alice@example.org"],
        mobile: vec![],
        ..alice()
    })
    .await;
    let a = cs
        .get(&format!("/api/v1/otp/mechanisms?dn={}", alice_dn()))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json["mechanisms"],
        json!([
            {"delivery_mechanism": "Email", "is_supported": true, "recipient_id": "a***@example.com"},
            {"delivery_mechanism": "Email", "is_supported": true, "recipient_id": "b***@example.org"},
            {"delivery_mechanism": "SMS", "is_supported": false}
        ])
    );
    // Nobody by that DN looks like a user no mechanism can reach: no user enumeration.
    let nobody = cs
        .get("/api/v1/otp/mechanisms?dn=uid=nobody,ou=people,dc=example,dc=com")
        .await;
    assert_eq!(nobody.status, 200);
    assert_eq!(
        nobody.json["mechanisms"],
        json!([{"delivery_mechanism": "Email", "is_supported": false}, {"delivery_mechanism": "SMS", "is_supported": false}])
    );
    assert_eq!(cs.get("/api/v1/otp/mechanisms").await.status, 400);

    // A masked recipient ID, as handed out, selects that address.
    let mut body = deliver_alice();
    body["mechanisms"] = json!([{"name": "Email", "recipient_id": "b***@example.org"}]);
    let d = cs.deliver(body).await;
    assert_eq!(
        d.json["recipient_id"], "bob.alice@example.org",
        "{}",
        d.json
    );
    assert_eq!(smtp.wait_for(1)[0].rcpt_tos, ["bob.alice@example.org"]);
}

#[tokio::test]
async fn supported_mechanisms_reveals_recipients_when_configured() {
    let gw = SmsGateway::start().await;
    let cs = Countersign::start(&Setup {
        sms_url: Some(gw.url.clone()),
        extra: "[http]\nreveal_recipients = true\n".into(),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let a = cs
        .get(&format!("/api/v1/otp/mechanisms?dn={}", alice_dn()))
        .await;
    assert_eq!(
        a.json["mechanisms"],
        json!([{"delivery_mechanism": "SMS", "is_supported": true, "recipient_id": "+15550100001"}])
    );
    // Trusted callers may also learn that a DN is unknown.
    let nobody = cs
        .get("/api/v1/otp/mechanisms?dn=uid=nobody,ou=people,dc=example,dc=com")
        .await;
    assert_eq!(nobody.status, 404);
}
