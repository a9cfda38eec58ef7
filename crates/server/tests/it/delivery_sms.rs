//! SMS delivery to an HTTP gateway server: the rendered body, the headers (plain and from a
//! secret file), form encoding, and failures that move on to the next mechanism.

use std::sync::atomic::Ordering;

use crate::fixtures::*;

#[tokio::test]
async fn json_body_and_headers_reach_the_gateway() {
    let gw = SmsGateway::start().await;
    let cs = Countersign::start(&Setup {
        sms_url: Some(gw.url.clone()),
        default_mechanisms: vec!["SMS"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["delivery_mechanism"], "SMS");
    assert_eq!(a.json["recipient_id"], "+15550100001");

    let reqs = gw.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/send");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-client"), Some("countersign"));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["to"], "+15550100001");
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("Your one-time password is: "), "{text}");
    let otp = find_digits(text, 6).unwrap();
    assert_eq!(cs.verify("u:alice", &otp).await.status, 200);
}

#[tokio::test]
async fn form_encoding_compact_texts_and_secret_header_from_file() {
    let gw = SmsGateway::start().await;
    let tmp = tempfile::TempDir::new().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "Bearer t0ken\n").unwrap();
    let extra = format!(
        "[[sms_profile]]\nname = \"form-gw\"\nurl = \"{}\"\nencoding = \"form\"\nheader_files = {{ Authorization = \"{}\" }}\nbody = {{ msisdn = \"{{to}}\", msg = \"{{message}}\", sender = \"BANK\" }}\n\n[[delivery_mechanism]]\nname = \"Text\"\ntype = \"sms\"\nsms_profile = \"form-gw\"\n",
        gw.url,
        token.display()
    );
    let cs = Countersign::start(&Setup {
        extra,
        default_mechanisms: vec!["Text"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let mut body = deliver_alice();
    body["compact_text_before_otp"] = "Code ".into();
    body["compact_text_after_otp"] = " & more".into();
    body["full_text_before_otp"] = "e-mail only".into();
    let a = cs.deliver(body).await;
    assert_eq!(a.status, 200, "{}", a.json);
    let r = &gw.requests()[0];
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.header("authorization"), Some("Bearer t0ken"));
    let fields: Vec<(String, String)> = form_urlencoded::parse(r.body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("msisdn"), "+15550100001");
    assert_eq!(get("sender"), "BANK");
    let msg = get("msg");
    assert!(
        msg.starts_with("Code ") && msg.ends_with(" & more"),
        "{msg}"
    );
}

#[tokio::test]
async fn gateway_error_status_or_timeout_moves_to_the_next_mechanism() {
    let gw = SmsGateway::start().await;
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        sms_url: Some(gw.url.clone()),
        default_mechanisms: vec!["SMS", "Email"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;

    gw.status.store(500, Ordering::SeqCst);
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.json["delivery_mechanism"], "Email", "{}", a.json);
    assert_eq!(gw.requests().len(), 1);

    // The gateway answers after the 2 s timeout: a failure too.
    gw.status.store(200, Ordering::SeqCst);
    gw.delay_ms.store(3_000, Ordering::SeqCst);
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.json["delivery_mechanism"], "Email", "{}", a.json);
    assert_eq!(smtp.wait_for(2).len(), 2);
}
