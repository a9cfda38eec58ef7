//! `[deliver_otp] enabled = false`: the Deliver OTP operation is neither advertised nor served,
//! on either front, and looks to clients exactly like an operation the server never had. The
//! other handlers (Get Supported, the DELIVERED-OTP SASL mechanism, verify) stay.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::{LdapExtendedRequest, LdapMsg, LdapOp, LdapResultCode};

use countersign::ldap::exop;
use countersign_core::Secret;

use crate::fixtures::*;

/// countersign with Deliver OTP switched off (and allowed without TLS, so nothing but the
/// switch stands in the way), a local user and a file mechanism.
async fn disabled() -> Countersign {
    let setup = Setup {
        ldap: true,
        ldap_extra: "allow_deliver_otp_without_tls = true\n".into(),
        extra: "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n".into(),
        default_mechanisms: vec!["File"],
        ..Setup::default()
    };
    let config = setup.config().replace(
        "[deliver_otp]\n",
        "[deliver_otp]\nenabled = false\ndescription = \"Deliver OTP, off while codes come from elsewhere\"\n",
    );
    assert!(config.contains("enabled = false"));
    let dir = Arc::new(tempfile::TempDir::new().unwrap());
    std::fs::write(dir.path().join("countersign.toml"), config).unwrap();
    let cs = Countersign::start_in(dir, Arc::new(TestClock(AtomicI64::new(T0)))).await;
    cs.add_user(alice()).await;
    cs
}

fn outbox_is_empty(cs: &Countersign) -> bool {
    std::fs::read_dir(cs.dir.path().join("outbox")).map_or(true, |mut d| d.next().is_none())
}

fn tool(args: &[&str]) -> (i32, String) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("LDAPNOINIT", "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_dse_no_longer_names_deliver_otp_but_keeps_the_other_handlers() {
    let cs = disabled().await;
    let url = cs.ldap_url.clone().unwrap();
    let (code, out) = tokio::task::spawn_blocking(move || {
        tool(&[
            "ldapsearch",
            "-x",
            "-H",
            &url,
            "-b",
            "",
            "-s",
            "base",
            "*",
            "+",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains(exop::DELIVER_OTP_REQUEST),
        "Deliver OTP advertised:\n{out}"
    );
    for line in [
        "supportedExtension: 1.3.6.1.4.1.30221.2.6.47",
        "supportedExtension: 1.3.6.1.4.1.4203.1.11.3",
        "supportedSASLMechanisms: UNBOUNDID-DELIVERED-OTP",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldapexop_gets_the_answer_of_an_operation_the_server_never_had() {
    let cs = disabled().await;
    let url = cs.ldap_url.clone().unwrap();
    let (deliver, unknown) = tokio::task::spawn_blocking(move || {
        (
            tool(&["ldapexop", "-x", "-H", &url, exop::DELIVER_OTP_REQUEST]),
            tool(&["ldapexop", "-x", "-H", &url, "1.3.6.1.4.1.99999.1"]),
        )
    })
    .await
    .unwrap();
    assert_ne!(deliver.0, 0, "{}", deliver.1);
    assert!(deliver.1.contains("Protocol error (2)"), "{}", deliver.1);
    assert_eq!(
        deliver,
        (
            unknown.0,
            unknown
                .1
                .replace("1.3.6.1.4.1.99999.1", exop::DELIVER_OTP_REQUEST)
        ),
        "Deliver OTP answered unlike an unknown operation"
    );
}

#[tokio::test]
async fn a_valid_deliver_request_is_refused_as_unsupported_and_delivers_nothing() {
    let cs = disabled().await;
    let value = exop::encode_deliver_otp(&exop::DeliverOtpRequest {
        authentication_id: "u:alice".into(),
        static_password: Some(Secret::new("alice-password")),
        ..Default::default()
    });
    let mut conn = cs.ldap_connect().await;
    let mut answers = Vec::new();
    for (id, name) in [(1, exop::DELIVER_OTP_REQUEST), (2, "1.3.6.1.4.1.99999.1")] {
        let op = LdapOp::ExtendedRequest(LdapExtendedRequest {
            name: name.into(),
            value: Some(value.clone()),
        });
        conn.send(LdapMsg::new(id, op)).await.unwrap();
        let msg = tokio::time::timeout(Duration::from_secs(20), conn.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let LdapOp::ExtendedResponse(r) = msg.op else {
            panic!("{msg:?}")
        };
        assert_eq!(r.res.code, LdapResultCode::ProtocolError);
        assert_eq!(
            r.res.message,
            format!("unsupported extended operation {name}")
        );
        answers.push((r.name, r.value));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], (None, None));
    assert!(outbox_is_empty(&cs), "a code was delivered");
}

#[tokio::test]
async fn the_http_deliver_endpoint_is_gone_but_verify_stays() {
    let cs = disabled().await;
    let a = cs.deliver(deliver_alice()).await;
    assert_eq!(a.status, 404, "{}", a.json);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    assert_eq!(a.headers["cache-control"], "no-store");
    // Exactly what an unknown path gets.
    let unknown = cs.get("/no/such/thing").await;
    assert_eq!(
        (&a.json["type"], &a.json["title"]),
        (&unknown.json["type"], &unknown.json["title"])
    );
    assert_eq!(a.json["status"], 404);
    assert!(outbox_is_empty(&cs), "a code was delivered");
    // Verify is another handler: it still answers (here: no code outstanding).
    let v = cs.verify("u:alice", "123456").await;
    assert_eq!(v.status, 401, "{}", v.json);
    assert_eq!(v.headers["content-type"], "application/problem+json");
}
