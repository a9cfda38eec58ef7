//! Identities at the edge: one with a control character (which could forge lines in logs and
//! the audit output) or longer than the limit gets the same answer as any malformed identity,
//! on every front and in every operation.

use countersign::ldap::exop;
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::*;
use serde_json::json;

use crate::fixtures::*;

async fn world() -> Countersign {
    let cs = Countersign::start(&Setup {
        extra: "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n".into(),
        default_mechanisms: vec!["File"],
        ldap: true,
        ldap_extra: "allow_deliver_otp_without_tls = true\n".into(),
        ..Setup::default()
    })
    .await;
    cs.add_user(alice()).await;
    cs
}

fn bad_identities() -> Vec<String> {
    vec![
        "u:alice\nforged audit line".into(),
        "dn:uid=alice,ou=people,dc=example,dc=com\r".into(),
        "u:\u{1b}[2Jalice".into(),
        format!("u:{}", "a".repeat(1100)),
        format!("dn:uid={},dc=example,dc=com", "a".repeat(1100)),
    ]
}

/// Status and problem type of an HTTP answer.
fn kind(a: &Answer) -> (u16, String) {
    (
        a.status,
        a.json["type"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn over_http_every_operation_answers_them_as_malformed() {
    let cs = world().await;
    let malformed = (400, "urn:countersign:problem:malformed-identity".to_owned());
    let plain = cs
        .deliver(json!({"authentication_id": "alice", "static_password": "x"}))
        .await;
    assert_eq!(kind(&plain), malformed);
    for id in bad_identities() {
        let d = cs
            .deliver(json!({"authentication_id": id, "static_password": "alice-password"}))
            .await;
        let v = cs.verify(&id, "123456").await;
        assert_eq!(kind(&d), malformed, "deliver {id:?}: {}", d.json);
        assert_eq!(kind(&v), malformed, "verify {id:?}: {}", v.json);
        assert_eq!(d.json, v.json, "the same answer for the same identity");
        assert_eq!(
            cs.deliver(json!({"authentication_id": id, "static_password": "alice-password"}))
                .await
                .json,
            d.json,
            "and every time"
        );
        let dn = id.trim_start_matches("dn:");
        if dn != id {
            let m = cs
                .get(&format!(
                    "/api/v1/otp/mechanisms?dn={}",
                    dn.replace('\r', "%0D")
                        .replace(',', "%2C")
                        .replace('=', "%3D")
                ))
                .await;
            assert_eq!(kind(&m), malformed, "mechanisms {dn:?}: {}", m.json);
        }
    }
    // Nothing was delivered, and the audit trail names no user for them.
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert!(!audit.is_empty(), "the refusals are audited");
    assert!(audit.iter().all(|r| r.user_dn.is_none()));
    assert!(
        audit
            .iter()
            .all(|r| r.outcome != countersign_core::audit::AuditOutcome::Success),
        "{audit:?}"
    );
}

async fn ask(conn: &mut LdapConn, op: LdapOp) -> (LdapResultCode, String) {
    conn.send(LdapMsg::new(3, op)).await.unwrap();
    let msg = conn.next().await.unwrap().unwrap();
    match msg.op {
        LdapOp::BindResponse(r) => (r.res.code, r.res.message),
        LdapOp::ExtendedResponse(r) => (r.res.code, r.res.message),
        other => panic!("unexpected {other:?}"),
    }
}

fn simple_bind(dn: &str) -> LdapOp {
    LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: dn.into(),
        cred: LdapBindCred::Simple("alice-password".into()),
    })
}

fn otp_bind(id: &str) -> LdapOp {
    let creds = exop::DeliveredOtpCredentials {
        authentication_id: id.into(),
        authorization_id: None,
        otp: "123456".into(),
    };
    LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: String::new(),
        cred: LdapBindCred::SASL(SaslCredentials {
            mechanism: exop::SASL_DELIVERED_OTP.into(),
            credentials: exop::encode_sasl_credentials(&creds),
        }),
    })
}

fn deliver_otp(id: &str) -> LdapOp {
    let req = exop::DeliverOtpRequest {
        authentication_id: id.into(),
        static_password: Some("alice-password".into()),
        mechanisms: None,
        texts: Default::default(),
    };
    LdapOp::ExtendedRequest(LdapExtendedRequest {
        name: exop::DELIVER_OTP_REQUEST.into(),
        value: Some(exop::encode_deliver_otp(&req)),
    })
}

#[tokio::test]
async fn over_ldap_every_operation_answers_them_as_malformed() {
    let cs = world().await;
    let mut conn = cs.ldap_connect().await;
    // What a plainly malformed identity gets, operation by operation.
    let (bind_code, _) = ask(&mut conn, otp_bind("alice")).await;
    let (deliver_code, _) = ask(&mut conn, deliver_otp("alice")).await;
    assert_eq!(bind_code, LdapResultCode::InvalidCredentials);
    assert_eq!(deliver_code, LdapResultCode::ProtocolError);
    for id in bad_identities() {
        let d = ask(&mut conn, deliver_otp(&id)).await;
        assert_eq!(d.0, deliver_code, "deliver {id:?}: {}", d.1);
        assert_eq!(
            ask(&mut conn, deliver_otp(&id)).await,
            d,
            "the same answer every time"
        );
        let b = ask(&mut conn, otp_bind(&id)).await;
        assert_eq!(b.0, bind_code, "OTP bind {id:?}: {}", b.1);
        let dn = id.trim_start_matches("dn:").trim_start_matches("u:");
        let s = ask(&mut conn, simple_bind(dn)).await;
        assert_eq!(s, b, "simple bind {dn:?}");
    }
    // The connection still works for a well-formed bind.
    let ok = ask(&mut conn, simple_bind(alice_dn())).await;
    assert_eq!(ok.0, LdapResultCode::Success, "{}", ok.1);
}
