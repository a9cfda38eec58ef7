//! E-mail delivery through lettre to aiosmtpd, a real SMTP server in its own process: plain,
//! STARTTLS and implicit TLS with authentication, and the OTP it carries verifying once.

use crate::fixtures::*;

#[tokio::test]
async fn otp_mailed_over_plain_smtp_verifies_once() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;

    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["delivery_mechanism"], "Email");
    assert_eq!(a.json["recipient_dn"], alice_dn());
    assert_eq!(a.json["recipient_id"], "alice@example.com");

    let mails = smtp.wait_for(1);
    let m = &mails[0];
    assert_eq!(m.rcpt_tos, ["alice@example.com"]);
    assert_eq!(m.mail_from, "mfa@example.com");
    assert_eq!(m.header("Subject").as_deref(), Some("Your sign-in code"));
    // A Message-ID of its own, in the sender's domain (RFC 5322 §3.6.4).
    let id = m.header("Message-ID").unwrap_or_default();
    assert!(
        id.starts_with('<') && id.ends_with("@example.com>") && id.len() == 46,
        "{id}"
    );
    assert!(
        m.body().starts_with("Your one-time password is: "),
        "{}",
        m.body()
    );
    let otp = m.otp(6);

    let v = cs.verify("u:alice", &otp).await;
    assert_eq!(v.status, 200, "{}", v.json);
    assert_eq!(v.json["user_dn"], alice_dn());
    let again = cs.verify("u:alice", &otp).await;
    assert_eq!(again.status, 401, "a used OTP must not verify again");
}

/// An SMTP server that requires STARTTLS (with the test CA) and authentication as
/// `mfa`/`s3cret`, and the mail profile that reaches it (password from a file in `dir`).
fn starttls_with_auth(dir: &std::path::Path) -> (SmtpServer, String) {
    let tls = tls_files(dir);
    let smtp = SmtpServer::start(SmtpOptions {
        starttls: Some(&tls),
        auth: Some(("mfa", "s3cret")),
        ..Default::default()
    });
    std::fs::write(dir.join("smtp.pw"), "s3cret\n").unwrap();
    let profile = format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\nusername = \"mfa\"\npassword_file = \"{}\"\ntimeout = \"5s\"\n",
        smtp.port,
        tls.ca.display(),
        dir.join("smtp.pw").display()
    );
    (smtp, profile)
}

#[tokio::test]
async fn starttls_with_authentication_reaches_the_server() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (smtp, profile) = starttls_with_auth(tmp.path());
    let cs = Countersign::start(&Setup {
        smtp: Some(profile),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    let m = &smtp.wait_for(1)[0];
    assert!(m.tls, "the message must have travelled over TLS");
    assert!(m.authenticated);
    assert_eq!(cs.verify("u:alice", &m.otp(6)).await.status, 200);
}

#[tokio::test]
async fn implicit_tls_reaches_the_server() {
    let tmp = tempfile::TempDir::new().unwrap();
    let tls = tls_files(tmp.path());
    let smtp = SmtpServer::start(SmtpOptions {
        implicit_tls: Some(&tls),
        ..Default::default()
    });
    let profile = format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\nca_file = \"{}\"\ntimeout = \"5s\"\n",
        smtp.port,
        tls.ca.display()
    );
    let cs = Countersign::start(&Setup {
        smtp: Some(profile),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert!(smtp.wait_for(1)[0].tls);
}

#[tokio::test]
async fn untrusted_certificate_is_a_delivery_failure() {
    let tmp = tempfile::TempDir::new().unwrap();
    let tls = tls_files(tmp.path());
    let smtp = SmtpServer::start(SmtpOptions {
        starttls: Some(&tls),
        ..Default::default()
    });
    // No ca_file: the test CA is not trusted, so the STARTTLS handshake must fail.
    let profile = format!(
        "host = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\ntimeout = \"5s\"\n",
        smtp.port
    );
    let cs = Countersign::start(&Setup {
        smtp: Some(profile),
        default_mechanisms: vec!["Email"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 502, "{}", a.json);
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn request_subject_and_full_texts_override_configured_ones() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let mut body = deliver_alice();
    body["message_subject"] = "Bank sign-in".into();
    body["full_text_before_otp"] = "Your bank code: ".into();
    body["full_text_after_otp"] = ". Never share it.".into();
    body["compact_text_before_otp"] = "SMS only ".into();
    assert_eq!(cs.deliver(body).await.status, 200);
    let m = &smtp.wait_for(1)[0];
    assert_eq!(m.header("Subject").as_deref(), Some("Bank sign-in"));
    let text = m.body();
    assert!(
        text.starts_with("Your bank code: ") && text.trim_end().ends_with(". Never share it."),
        "{text}"
    );
    assert!(!text.contains("SMS only"));
}

#[tokio::test]
async fn a_silent_smtp_server_times_out_and_the_next_mechanism_delivers() {
    // Accepts connections and never says a word: lettre must give up after the 1 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).filter_map(Result::ok).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(conns);
    });
    let gw = SmsGateway::start().await;
    let profile =
        format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"1s\"\n");
    let cs = Countersign::start(&Setup {
        smtp: Some(profile),
        sms_url: Some(gw.url.clone()),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.json["delivery_mechanism"], "SMS", "{}", a.json);
    assert_eq!(gw.requests().len(), 1);
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    let reason = &audit[0].reason;
    assert!(
        reason.starts_with(
            "ok after failures: Email: delivery to alice@example.com failed: SMTP (smtp):"
        ),
        "{reason}"
    );
    assert!(reason.contains("timed out"), "{reason}");
    drop(held);
}

/// Three deliveries, each with its new code, over plain and STARTTLS with authentication.
async fn three_mails(smtp: &SmtpServer, profile: String) -> Vec<Mail> {
    let cs = Countersign::start(&Setup {
        smtp: Some(profile),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    for n in 1..=3 {
        let a = cs.deliver(deliver_alice()).await;
        assert_eq!(a.status, 200, "{}", a.json);
        assert_eq!(a.json["delivery_mechanism"], "Email");
        smtp.wait_for(n);
    }
    let mails = smtp.messages();
    // The last code is the one that verifies: each mail went out whole, in order.
    assert_eq!(cs.verify("u:alice", &mails[2].otp(6)).await.status, 200);
    mails
}

#[tokio::test]
async fn one_connection_carries_consecutive_mails() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let mails = three_mails(&smtp, Setup::smtp_plain(smtp.port)).await;
    let connections: Vec<u64> = mails.iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 0, 0], "the session is reused");
}

#[tokio::test]
async fn a_reused_starttls_session_stays_encrypted_and_authenticated() {
    let tmp = tempfile::TempDir::new().unwrap();
    let (smtp, profile) = starttls_with_auth(tmp.path());
    let mails = three_mails(&smtp, profile).await;
    assert!(
        mails
            .iter()
            .all(|m| m.tls && m.authenticated && m.connection == 0)
    );
}

#[tokio::test]
async fn without_kept_connections_each_mail_has_its_own() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let profile = Setup::smtp_plain(smtp.port) + "max_idle_connections = 0\n";
    let mails = three_mails(&smtp, profile).await;
    let connections: Vec<u64> = mails.iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 1, 2]);
}

#[tokio::test]
async fn a_kept_connection_past_its_idle_time_is_not_reused() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port) + "idle_timeout = \"1s\"\n"),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
    smtp.wait_for(1);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(cs.deliver(deliver_alice()).await.status, 200);
    let connections: Vec<u64> = smtp.wait_for(2).iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 1]);
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_falls_back_to_a_new_one() {
    let smtp = SmtpServer::start(SmtpOptions {
        drop_after_message: true,
        ..Default::default()
    });
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        // Email only: a failed reuse must not be hidden by a fallback to another mechanism.
        default_mechanisms: vec!["Email"],
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    for n in 1..=3 {
        // Let the server's close reach us, so the kept session is dead before it is tried.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let a = cs.deliver(deliver_alice()).await;
        assert_eq!(a.status, 200, "delivery {n}: {}", a.json);
        assert_eq!(a.json["delivery_mechanism"], "Email");
        smtp.wait_for(n);
    }
    let mails = smtp.messages();
    let connections: Vec<u64> = mails.iter().map(|m| m.connection).collect();
    assert_eq!(connections, [0, 1, 2]);
    assert_eq!(cs.verify("u:alice", &mails[2].otp(6)).await.status, 200);
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert!(
        audit.iter().all(|r| !r.reason.contains("failed")),
        "no attempt failed: {:?}",
        audit.iter().map(|r| &r.reason).collect::<Vec<_>>()
    );
}
