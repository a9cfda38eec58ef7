//! Rate limits over HTTP, from several client addresses (all of 127.0.0.0/8 is loopback on
//! Linux, so each client binds its own source address): the limits answer an unknown user
//! exactly as a known one, and someone who knows only a username cannot keep the real user
//! from getting and using a code (docs/rate-limits.md).

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use crate::fixtures::*;

/// An HTTP client whose requests come from 127.0.0.`octet`.
fn client_at(octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet)))
        .build()
        .unwrap()
}

async fn post(
    cs: &Countersign,
    client: &reqwest::Client,
    path: &str,
    body: serde_json::Value,
) -> u16 {
    client
        .post(format!("{}{path}", cs.base))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn deliver(cs: &Countersign, c: &reqwest::Client, id: &str, pw: &str) -> u16 {
    post(
        cs,
        c,
        "/api/v1/otp/deliver",
        json!({"authentication_id": id, "static_password": pw}),
    )
    .await
}

async fn verify(cs: &Countersign, c: &reqwest::Client, id: &str, otp: &str) -> u16 {
    post(
        cs,
        c,
        "/api/v1/otp/verify",
        json!({"authentication_id": id, "otp": otp}),
    )
    .await
}

async fn with_smtp(rate_limits: &str) -> (SmtpServer, Countersign) {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        default_mechanisms: vec!["Email"],
        rate_limits: rate_limits.into(),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    (smtp, cs)
}

#[tokio::test]
async fn the_default_limits_answer_a_known_and_an_unknown_user_alike() {
    // The defaults (the section says nothing), and the same wrong guesses under several
    // spellings, for alice (who exists) and for mallory (who does not).
    let (_smtp, cs) = with_smtp("").await;
    let c = client_at(1);
    let mut answers = Vec::new();
    for who in ["alice", "mallory"] {
        let mut mine = Vec::new();
        let spellings = [
            format!("u:{who}"),
            format!("U:{who}"),
            format!("dn:uid={who},ou=people,dc=example,dc=com"),
            format!("dn:UID={who}, ou=people,dc=example,dc=com"),
        ];
        for round in 0..4 {
            for id in &spellings {
                mine.push(deliver(&cs, &c, id, "wrong").await);
                mine.push(verify(&cs, &c, id, &format!("{round:06}")).await);
            }
        }
        answers.push(mine);
    }
    assert_eq!(
        answers[0], answers[1],
        "the limits must not tell who exists"
    );
    assert!(answers[0].contains(&429), "{:?}", answers[0]);
}

#[tokio::test]
async fn an_attacker_who_knows_only_the_username_cannot_lock_the_user_out() {
    let (smtp, cs) = with_smtp(
        "deliver_per_user = \"3/15m\"\nverify_per_user = \"3/5m\"\nfailures_per_user = \"10/15m\"\n",
    )
    .await;
    let home = client_at(2);
    // Alice signs in from home, as on any day.
    assert_eq!(deliver(&cs, &home, "u:alice", "alice-password").await, 200);
    let code = smtp.wait_for(1)[0].otp(6);
    assert_eq!(verify(&cs, &home, "u:alice", &code).await, 200);

    // Mallory sends wrong passwords and wrong codes for alice from many addresses, until the
    // limits refuse her.
    let mut mallory = Vec::new();
    for octet in 10..22 {
        let c = client_at(octet);
        for _ in 0..4 {
            mallory.push(deliver(&cs, &c, "u:alice", "guess").await);
            mallory.push(verify(&cs, &c, "u:alice", "000000").await);
        }
    }
    assert!(
        mallory.iter().all(|s| *s == 401 || *s == 429),
        "{mallory:?}"
    );
    assert!(mallory.contains(&429), "{mallory:?}");

    // Alice still gets a code from home; Mallory's wrong codes (more than the three that void
    // a code) do not spoil it; it works.
    assert_eq!(deliver(&cs, &home, "u:alice", "alice-password").await, 200);
    let code = smtp.wait_for(2)[1].otp(6);
    let wrong = if code == "000000" { "999999" } else { "000000" };
    for octet in 30..36 {
        let s = verify(&cs, &client_at(octet), "u:alice", wrong).await;
        assert!(s == 401 || s == 429, "{s}");
    }
    assert_eq!(verify(&cs, &home, "u:alice", &code).await, 200);
}

#[tokio::test]
async fn respelling_the_user_does_not_buy_more_guesses_at_a_code() {
    // Directories match names loosely, so `u:alice `, `u:ALICE` and a DN with the OID of `uid`
    // all reach alice's code. Each spelling from a fresh address must still draw on one
    // per-user budget, or an attacker could guess at the code without end (wrong codes from
    // strangers never void it).
    let (smtp, cs) = with_smtp("failures_per_user = \"10/15m\"\n").await;
    let home = client_at(2);
    assert_eq!(deliver(&cs, &home, "u:alice", "alice-password").await, 200);
    let code = smtp.wait_for(1)[0].otp(6);
    let wrong = if code == "000000" { "999999" } else { "000000" };
    let spellings = [
        "u:alice".to_owned(),
        "u:alice ".to_owned(),
        "u: alice".to_owned(),
        "U:ALICE".to_owned(),
        "u:al\u{ad}ice".to_owned(),
        format!("dn:{}", alice_dn()),
        format!(
            "dn:{}",
            alice_dn().replacen("uid=", "0.9.2342.19200300.100.1.1=", 1)
        ),
        format!("dn:{}", alice_dn().replacen("uid=alice", "uid=\\61lice", 1)),
    ];
    let mut answers = Vec::new();
    for (i, spelling) in spellings.iter().cycle().take(24).enumerate() {
        let c = client_at(40 + i as u8);
        answers.push(verify(&cs, &c, spelling, wrong).await);
    }
    assert_eq!(
        answers.iter().filter(|s| **s == 401).count(),
        10,
        "ten guesses in all, whatever the spelling: {answers:?}"
    );
    assert!(answers[10..].iter().all(|s| *s == 429), "{answers:?}");
    // The real user, at home, is not held back and the code still works.
    assert_eq!(verify(&cs, &home, "u:alice", &code).await, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_behind_it_has_its_own_budget() {
    // The proxy is 127.0.0.9; its clients are named by X-Forwarded-For. Anyone else's header
    // is ignored.
    let cs = Countersign::start(&Setup {
        extra: "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n\n[http]\ntrusted_proxies = [\"127.0.0.9\"]\n".into(),
        default_mechanisms: vec!["File"],
        rate_limits: "deliver_per_client = \"2/1h\"\n".into(),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let ask = |from: u8, forwarded: &'static str| {
        let c = client_at(from);
        let url = format!("{}/api/v1/otp/mechanisms?dn={}", cs.base, alice_dn());
        async move {
            c.get(url)
                .header("x-forwarded-for", forwarded)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Two clients behind the proxy: two budgets of two.
    for forwarded in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(ask(9, forwarded).await, 200);
        assert_eq!(ask(9, forwarded).await, 200);
        assert_eq!(ask(9, forwarded).await, 429, "{forwarded}");
    }
    // A client that is not the proxy cannot borrow another's budget by writing the header.
    assert_eq!(ask(20, "198.51.100.3").await, 200);
    assert_eq!(ask(20, "198.51.100.4").await, 200);
    assert_eq!(ask(20, "198.51.100.5").await, 429);
    // A client writing its own header through the proxy gets the address the proxy saw.
    assert_eq!(ask(9, "198.51.100.6, 198.51.100.1").await, 429);
}
