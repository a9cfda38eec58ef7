//! The LDAP front at the byte level: the spec's full PDUs, malformed and unknown input answered
//! with clear result codes, oversized frames and garbage closing only their own connection,
//! message IDs out of range, and the connection limits. (The handler on its own, without
//! sockets, is tested beside it: `src/ldap/handler_tests.rs`.)

use std::time::Duration;

use countersign::ber;
use countersign::ldap::exop;
use countersign_core::audit::{AuditAction, AuditOutcome};
use countersign_core::model::Dn;
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

use crate::fixtures::*;

fn hex(s: &str) -> Vec<u8> {
    countersign_core::crypto::from_hex(s).unwrap()
}

async fn world(ldap_extra: &str) -> Countersign {
    let extra = "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n";
    let setup = Setup {
        extra: extra.into(),
        default_mechanisms: vec!["File"],
        ldap: true,
        ldap_extra: format!("allow_deliver_otp_without_tls = true\n{ldap_extra}"),
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    cs.add_user(alice()).await;
    cs
}

type Conn = LdapConn;

async fn connect(cs: &Countersign) -> Conn {
    cs.ldap_connect().await
}

/// `op` carrying a critical control nobody knows (RFC 4511 §4.1.11).
fn with_unknown_critical_control(id: i32, op: LdapOp) -> LdapMsg {
    LdapMsg::new_with_ctrls(
        id,
        op,
        vec![ldap3_proto::control::LdapControl::Unknown {
            oid: "1.2.3.9".into(),
            criticality: true,
            value: None,
        }],
    )
}

/// Sends one request; returns the responses up to the final one.
async fn ask(conn: &mut Conn, op: LdapOp) -> Vec<LdapMsg> {
    conn.send(LdapMsg::new(7, op)).await.unwrap();
    let mut out = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), conn.next())
            .await
            .expect("an answer")
            .expect("open")
            .unwrap();
        let done = !matches!(msg.op, LdapOp::SearchResultEntry(_));
        out.push(msg);
        if done {
            return out;
        }
    }
}

fn exop_req(name: &str, value: Option<Vec<u8>>) -> LdapOp {
    LdapOp::ExtendedRequest(LdapExtendedRequest {
        name: name.into(),
        value,
    })
}

/// Deliver OTP for alice with her password, by the default mechanisms.
fn deliver_alice_request() -> LdapOp {
    let value = exop::encode_deliver_otp(&exop::DeliverOtpRequest {
        authentication_id: "u:alice".into(),
        static_password: Some("alice-password".into()),
        ..Default::default()
    });
    exop_req(exop::DELIVER_OTP_REQUEST, Some(value))
}

fn sasl(creds: Vec<u8>) -> LdapOp {
    LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: String::new(),
        cred: LdapBindCred::SASL(SaslCredentials {
            mechanism: exop::SASL_DELIVERED_OTP.into(),
            credentials: creds,
        }),
    })
}

/// The single response's result code and diagnostic; for extended responses also checks that a
/// failure carries neither a name nor a value (spec §3.3).
fn outcome(msgs: &[LdapMsg]) -> (LdapResultCode, String) {
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    match &msgs[0].op {
        LdapOp::ExtendedResponse(r) => {
            if r.res.code != LdapResultCode::Success {
                assert!(
                    r.name.is_none() && r.value.is_none(),
                    "a failure must carry no name or value: {r:?}"
                );
            }
            (r.res.code.clone(), r.res.message.clone())
        }
        LdapOp::BindResponse(r) => (r.res.code.clone(), r.res.message.clone()),
        LdapOp::SearchResultDone(r)
        | LdapOp::AddResponse(r)
        | LdapOp::ModifyResponse(r)
        | LdapOp::DelResponse(r)
        | LdapOp::ModifyDNResponse(r)
        | LdapOp::CompareResult(r) => (r.code.clone(), r.message.clone()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_spec_pdus_decode_and_our_response_matches_byte_for_byte() {
    let mut codec = LdapCodec::default();
    // V1, as the SDK sent it on a socket.
    let mut buf = bytes::BytesMut::from(
        &hex(
            "304802010177438018312e332e362e312e342e312e33303232312e322e362e323481273025800b753a746573742e75736572810870617373776f7264a20c0403534d530405456d61696c",
        )[..],
    );
    let msg = codec.decode(&mut buf).unwrap().unwrap();
    let LdapOp::ExtendedRequest(req) = msg.op else {
        panic!("{msg:?}")
    };
    assert_eq!(req.name, exop::DELIVER_OTP_REQUEST);
    let d = exop::decode_deliver_otp(&req.value.unwrap()).unwrap();
    assert_eq!(d.authentication_id, "u:test.user");
    // V6, the SASL bind.
    let mut buf = bytes::BytesMut::from(
        &hex(
            "303e02010260390201030400a3320417554e424f554e4449442d44454c4956455245442d4f545004173015800b753a746573742e757365728206313233343536",
        )[..],
    );
    let msg = codec.decode(&mut buf).unwrap().unwrap();
    let LdapOp::BindRequest(LdapBindRequest {
        cred: LdapBindCred::SASL(s),
        dn,
        ..
    }) = msg.op
    else {
        panic!()
    };
    assert_eq!(
        (s.mechanism.as_str(), dn.as_str()),
        (exop::SASL_DELIVERED_OTP, "")
    );
    assert_eq!(
        exop::decode_sasl_credentials(&s.credentials)
            .unwrap()
            .otp
            .expose(),
        "123456"
    );
    // V8 on the wire.
    let v8 = "302b80297569643d746573742e757365722c6f753d50656f706c652c64633d6578616d706c652c64633d636f6d";
    let mut buf = bytes::BytesMut::from(
        &hex(&format!(
            "304e02010177498018312e332e362e312e342e312e33303232312e322e362e3437812d{v8}"
        ))[..],
    );
    let LdapOp::ExtendedRequest(req) = codec.decode(&mut buf).unwrap().unwrap().op else {
        panic!()
    };
    assert_eq!(
        exop::decode_get_supported(&req.value.unwrap()).unwrap(),
        "uid=test.user,ou=People,dc=example,dc=com"
    );
    // V10: our full ExtendedResponse, byte for byte.
    let v10 = "30498005456d61696c81297569643d746573742e757365722c6f753d50656f706c652c64633d6578616d706c652c64633d636f6d8215746573742e75736572406578616d706c652e636f6d";
    let value = exop::encode_deliver_otp_result(
        "Email",
        "uid=test.user,ou=People,dc=example,dc=com",
        Some("test.user@example.com"),
        None,
    );
    assert_eq!(value, hex(v10));
    let resp = LdapMsg::new(
        1,
        LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: LdapResult {
                code: LdapResultCode::Success,
                matcheddn: String::new(),
                message: String::new(),
                referral: vec![],
            },
            name: Some(exop::DELIVER_OTP_RESPONSE.into()),
            value: Some(value),
        }),
    );
    let mut out = bytes::BytesMut::new();
    codec.encode(resp, &mut out).unwrap();
    assert_eq!(
        out.to_vec(),
        hex(&format!(
            "3073020101786e0a0100040004008a18312e332e362e312e342e312e33303232312e322e362e32358b4b{v10}"
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_values_get_a_result_code_and_the_connection_carries_on() {
    let cs = world("").await;
    let mut c = connect(&cs).await;
    let deliver_cases: [(Option<&str>, &str); 7] = [
        (None, "the request value is missing"),
        (Some(""), "truncated BER element"),
        (Some("3005800175"), "truncated BER element"),
        (Some("3003810178"), "authenticationID [0] is missing"),
        (Some("3006800175890100"), "unknown element tag 0x89"),
        (Some("0403800175"), "expected tag 0x30"),
        (Some("3010800175a2050403534d53a30430020400"), "both present"),
    ];
    for (value, expect) in deliver_cases {
        let r = ask(&mut c, exop_req(exop::DELIVER_OTP_REQUEST, value.map(hex))).await;
        let (code, msg) = outcome(&r);
        assert_eq!(code, LdapResultCode::ProtocolError, "{value:?}: {msg}");
        assert!(msg.contains(expect), "{value:?}: {msg}");
    }
    for (value, expect) in [
        (None, "the request value is missing"),
        (Some("3000"), "userDN [0] is missing"),
        (Some("30058003"), "truncated"),
    ] {
        let r = ask(
            &mut c,
            exop_req(exop::GET_SUPPORTED_REQUEST, value.map(hex)),
        )
        .await;
        let (code, msg) = outcome(&r);
        assert_eq!(code, LdapResultCode::ProtocolError, "{value:?}: {msg}");
        assert!(msg.contains(expect), "{value:?}: {msg}");
    }
    for (creds, expect) in [
        ("", "truncated BER element"),
        ("3003800175", "oneTimePassword [2] is missing"),
        ("3003820131", "authenticationID [0] is missing"),
        ("3006800175830131", "unknown element tag 0x83"),
        ("30098001758201", "truncated"),
    ] {
        let r = ask(&mut c, sasl(hex(creds))).await;
        let (code, msg) = outcome(&r);
        assert_eq!(code, LdapResultCode::ProtocolError, "{creds}: {msg}");
        assert!(msg.contains(expect), "{creds}: {msg}");
    }
    // A malformed identity inside a well-formed value.
    let r = ask(
        &mut c,
        exop_req(
            exop::DELIVER_OTP_REQUEST,
            Some(exop::encode_deliver_otp(&exop::DeliverOtpRequest {
                authentication_id: "alice".into(),
                static_password: Some("x".into()),
                ..Default::default()
            })),
        ),
    )
    .await;
    assert_eq!(outcome(&r).0, LdapResultCode::ProtocolError);
    // The same connection still works.
    let r = ask(&mut c, exop_req(exop::WHO_AM_I, None)).await;
    assert_eq!(outcome(&r).0, LdapResultCode::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_else_is_answered_never_dropped() {
    let cs = world("").await;
    let mut c = connect(&cs).await;
    let cases: Vec<(LdapOp, LdapResultCode)> = vec![
        (exop_req("1.2.3.4.5", None), LdapResultCode::ProtocolError),
        (
            LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: String::new(),
                cred: LdapBindCred::SASL(SaslCredentials {
                    mechanism: "PLAIN".into(),
                    credentials: b"\0a\0b".to_vec(),
                }),
            }),
            LdapResultCode::AuthMethodNotSupported,
        ),
        (
            LdapOp::BindRequest(LdapBindRequest {
                version: 2,
                dn: alice_dn().into(),
                cred: LdapBindCred::Simple("alice-password".into()),
            }),
            LdapResultCode::ProtocolError,
        ),
        (
            LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: alice_dn().into(),
                cred: LdapBindCred::Simple(String::new()),
            }),
            LdapResultCode::UnwillingToPerform,
        ),
        (
            LdapOp::AddRequest(LdapAddRequest {
                dn: "cn=x,dc=example,dc=com".into(),
                attributes: vec![],
            }),
            LdapResultCode::UnwillingToPerform,
        ),
        (
            LdapOp::DelRequest("cn=x,dc=example,dc=com".into()),
            LdapResultCode::UnwillingToPerform,
        ),
        (
            LdapOp::ModifyRequest(LdapModifyRequest {
                dn: alice_dn().into(),
                changes: vec![],
            }),
            LdapResultCode::UnwillingToPerform,
        ),
        (
            LdapOp::CompareRequest(LdapCompareRequest {
                dn: alice_dn().into(),
                atype: "uid".into(),
                val: b"alice".to_vec(),
            }),
            LdapResultCode::UnwillingToPerform,
        ),
        (
            LdapOp::SearchRequest(LdapSearchRequest {
                base: "dc=example,dc=com".into(),
                scope: LdapSearchScope::Subtree,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: LdapFilter::Present("objectClass".into()),
                attrs: vec![],
            }),
            LdapResultCode::UnwillingToPerform,
        ),
    ];
    for (op, want) in cases {
        let label = format!("{op:?}");
        let r = ask(&mut c, op).await;
        let (code, msg) = outcome(&r);
        assert_eq!(code, want, "{label}: {msg}");
        assert!(!msg.is_empty(), "{label}: a diagnostic is expected");
    }
    // A critical control we do not know fails the operation (RFC 4511 §4.1.11).
    let msg = with_unknown_critical_control(9, exop_req(exop::WHO_AM_I, None));
    c.send(msg).await.unwrap();
    let r = c.next().await.unwrap().unwrap();
    assert_eq!(
        outcome(&[r]).0,
        LdapResultCode::UnavailableCriticalExtension
    );
}

async fn read_to_end(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection");
    out
}

fn is_notice_of_disconnection(bytes: &[u8]) -> bool {
    let mut buf = bytes::BytesMut::from(bytes);
    match LdapCodec::default().decode(&mut buf) {
        Ok(Some(LdapMsg {
            msgid: 0,
            op: LdapOp::ExtendedResponse(r),
            ..
        })) => {
            r.name.as_deref() == Some(exop::NOTICE_OF_DISCONNECTION)
                && r.res.code == LdapResultCode::ProtocolError
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_frame_or_garbage_closes_only_that_connection() {
    let cs = world("").await;
    let mut bystander = connect(&cs).await;
    let addr = cs.ldap_addr();

    // 10 MB in one LDAP message: SEQUENCE with a 4-byte length.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let len: u32 = 10 * 1024 * 1024;
    let mut frame = vec![0x30, 0x84];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend(std::iter::repeat_n(0x04u8, len as usize));
    let (mut rd, mut wr) = s.split();
    let writer = async {
        let _ = wr.write_all(&frame).await;
    };
    let mut got = Vec::new();
    let reader = async {
        let _ = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut got)).await;
    };
    tokio::join!(writer, reader);
    assert!(
        is_notice_of_disconnection(&got),
        "expected a notice of disconnection, got {} bytes",
        got.len()
    );

    // Garbage.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0xff, 0x01, 0x00, 0x30]).await.unwrap();
    assert!(is_notice_of_disconnection(&read_to_end(s).await));

    // The bystander and a new client are served.
    assert_eq!(
        outcome(&ask(&mut bystander, exop_req(exop::WHO_AM_I, None)).await).0,
        LdapResultCode::Success
    );
    let mut fresh = connect(&cs).await;
    assert_eq!(
        outcome(&ask(&mut fresh, exop_req(exop::WHO_AM_I, None)).await).0,
        LdapResultCode::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_announcing_more_than_the_limit_is_refused_before_its_body() {
    let cs = world("").await;
    // After a served request, only the header of a 2 GiB message: refused at once, not after
    // an idle timeout.
    let mut s = TcpStream::connect(cs.ldap_addr()).await.unwrap();
    s.write_all(&whoami_with_raw_id(&[0x01])).await.unwrap();
    s.write_all(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let got = read_to_end(s).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut buf = bytes::BytesMut::from(&got[..]);
    let whoami = LdapCodec::default().decode(&mut buf).unwrap().unwrap();
    assert_eq!(whoami.msgid, 1);
    assert!(is_notice_of_disconnection(&buf), "{} bytes left", buf.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliver_whose_client_unbinds_and_hangs_up_still_finishes_and_is_audited() {
    let cs = world("").await;
    let mut c = connect(&cs).await;
    c.send(LdapMsg::new(1, deliver_alice_request()))
        .await
        .unwrap();
    // Gone before the answer (the password check alone takes longer than this): an Unbind,
    // then the socket closed.
    c.send(LdapMsg::new(2, LdapOp::UnbindRequest))
        .await
        .unwrap();
    drop(c);
    let key = countersign_core::UserKey {
        directory: "local".into(),
        dn: Dn::new(alice_dn().to_owned()).normalized(),
    };
    let started = std::time::Instant::now();
    loop {
        let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
        if audit.iter().any(|r| r.action == AuditAction::Deliver) {
            assert_eq!(audit[0].outcome, AuditOutcome::Success, "{audit:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no audit record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cs.app.store.get_otp(&key).await.unwrap().is_some(),
        "the code that went out is stored"
    );
}

/// A Who Am I request whose messageID is the BER INTEGER with contents `id` (two's complement).
fn whoami_with_raw_id(id: &[u8]) -> Vec<u8> {
    let name = exop::WHO_AM_I.as_bytes();
    let mut op = vec![0x77, (name.len() + 2) as u8, 0x80, name.len() as u8];
    op.extend_from_slice(name);
    let mut msg = vec![0x30, (2 + id.len() + op.len()) as u8, 0x02, id.len() as u8];
    msg.extend_from_slice(id);
    msg.extend_from_slice(&op);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_ids_outside_1_to_2_31_minus_1_close_the_connection() {
    // RFC 4511 §4.1.1.1: MessageID ::= INTEGER (0 .. maxInt), 0 only for unsolicited
    // notifications; a request outside the range is a protocol error (§4.4.1 notice, close).
    let cs = world("").await;
    let addr = cs.ldap_addr();
    for id in [
        &[0xfb][..],                     // -5 (once answered as 251)
        &[0x00],                         // 0
        &[0x80, 0x00, 0x00, 0x00],       // -2^31
        &[0x00, 0x80, 0x00, 0x00, 0x00], // 2^31
        &[0x01, 0x00, 0x00, 0x00, 0x01], // 2^32 + 1 (once answered as 1)
    ] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&whoami_with_raw_id(id)).await.unwrap();
        let got = read_to_end(s).await;
        assert!(
            is_notice_of_disconnection(&got),
            "message ID {id:02x?}: expected a notice of disconnection, got {got:02x?}"
        );
    }
    // The ends of the range are served, with the ID they came with.
    for (id, expect) in [(&[0x01][..], 1), (&[0x7f, 0xff, 0xff, 0xff], i32::MAX)] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&whoami_with_raw_id(id)).await.unwrap();
        let mut conn = tokio_util::codec::Framed::new(s, LdapCodec::default());
        let answer = tokio::time::timeout(Duration::from_secs(20), conn.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(answer.msgid, expect);
        assert_eq!(outcome(&[answer]).0, LdapResultCode::Success);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_unanswered() {
    let cs = world("max_connections = 2\n").await;
    let addr = cs.ldap_addr();
    let mut a = connect(&cs).await;
    let mut b = connect(&cs).await;
    // Both are being served before the third arrives.
    assert_eq!(
        outcome(&ask(&mut a, exop_req(exop::WHO_AM_I, None)).await).0,
        LdapResultCode::Success
    );
    assert_eq!(
        outcome(&ask(&mut b, exop_req(exop::WHO_AM_I, None)).await).0,
        LdapResultCode::Success
    );
    let mut third = TcpStream::connect(&addr).await.unwrap();
    let mut whoami = bytes::BytesMut::new();
    LdapCodec::default()
        .encode(LdapMsg::new(1, exop_req(exop::WHO_AM_I, None)), &mut whoami)
        .unwrap();
    let _ = third.write_all(&whoami).await;
    assert!(
        read_to_end(third).await.is_empty(),
        "the third connection must get no answer"
    );
    // When one goes, there is room again.
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut d = connect(&cs).await;
    assert_eq!(
        outcome(&ask(&mut d, exop_req(exop::WHO_AM_I, None)).await).0,
        LdapResultCode::Success
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let cs = world("idle_timeout = \"1s\"\n").await;
    let mut a = connect(&cs).await;
    assert_eq!(
        outcome(&ask(&mut a, exop_req(exop::WHO_AM_I, None)).await).0,
        LdapResultCode::Success
    );
    let end = tokio::time::timeout(Duration::from_secs(20), a.next())
        .await
        .expect("closed by the idle timeout");
    assert!(end.is_none());
}

fn simple(dn: &str, pw: &str) -> LdapOp {
    LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: dn.into(),
        cred: LdapBindCred::Simple(pw.into()),
    })
}

fn whoami_value(msgs: &[LdapMsg]) -> String {
    match &msgs[0].op {
        LdapOp::ExtendedResponse(r) => {
            String::from_utf8(r.value.clone().unwrap_or_default()).unwrap()
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bind_leaves_the_connection_anonymous() {
    let cs = world("").await;
    let mut c = connect(&cs).await;
    assert_eq!(
        outcome(&ask(&mut c, simple(alice_dn(), "alice-password")).await).0,
        LdapResultCode::Success
    );
    assert_eq!(
        whoami_value(&ask(&mut c, exop_req(exop::WHO_AM_I, None)).await),
        format!("dn:{}", alice_dn())
    );
    assert_eq!(
        outcome(&ask(&mut c, simple(alice_dn(), "wrong")).await).0,
        LdapResultCode::InvalidCredentials
    );
    assert_eq!(
        whoami_value(&ask(&mut c, exop_req(exop::WHO_AM_I, None)).await),
        ""
    );

    // A bind refused for a critical control too.
    assert_eq!(
        outcome(&ask(&mut c, simple(alice_dn(), "alice-password")).await).0,
        LdapResultCode::Success
    );
    let msg = with_unknown_critical_control(8, simple(alice_dn(), "alice-password"));
    c.send(msg).await.unwrap();
    let r = c.next().await.unwrap().unwrap();
    assert_eq!(
        outcome(&[r]).0,
        LdapResultCode::UnavailableCriticalExtension
    );
    assert_eq!(
        whoami_value(&ask(&mut c, exop_req(exop::WHO_AM_I, None)).await),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_as_another_user_is_refused() {
    let cs = world("").await;
    cs.add_user(TestUser {
        username: "bob",
        password: "bob-password",
        ..alice()
    })
    .await;
    let mut c = connect(&cs).await;
    let bob = simple("uid=bob,ou=people,dc=example,dc=com", "bob-password");
    assert_eq!(outcome(&ask(&mut c, bob).await).0, LdapResultCode::Success);
    let step_up = ber::constructed(ber::SEQUENCE, &[ber::tlv(ber::context(0), b"u:alice")]);
    let r = ask(&mut c, exop_req(exop::DELIVER_OTP_REQUEST, Some(step_up))).await;
    assert_eq!(outcome(&r).0, LdapResultCode::InvalidCredentials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_after_starttls_before_the_handshake_close_the_connection() {
    let w = crate::ldap_front::ldap_world("").await;
    let addr = w.ldap().trim_start_matches("ldap://").to_owned();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut out = bytes::BytesMut::new();
    let mut codec = LdapCodec::default();
    codec
        .encode(LdapMsg::new(1, exop_req(exop::START_TLS, None)), &mut out)
        .unwrap();
    // A bind pipelined in clear right behind StartTLS must never be read as if under TLS.
    codec
        .encode(
            LdapMsg::new(2, simple(alice_dn(), "alice-password")),
            &mut out,
        )
        .unwrap();
    s.write_all(&out).await.unwrap();
    let got = read_to_end(s).await;
    let mut buf = bytes::BytesMut::from(&got[..]);
    let first = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        outcome(&[first]).0,
        LdapResultCode::Success,
        "the StartTLS response"
    );
    assert!(
        codec.decode(&mut buf).unwrap().is_none(),
        "nothing answers the pipelined bind"
    );
}

/// Message IDs in the order their final responses arrive, for a slow Deliver OTP (its SMTP
/// server never answers; 1 s timeout) sent before a root DSE search on one connection.
async fn arrival_order(max_ops: usize) -> Vec<i32> {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _hold = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(10));
        drop(conns);
    });
    let setup = Setup {
        smtp: Some(format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"1s\"\n"
        )),
        ldap: true,
        ldap_extra: format!(
            "allow_deliver_otp_without_tls = true\nmax_operations_per_connection = {max_ops}\n"
        ),
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    cs.add_user(alice()).await;
    let mut c = connect(&cs).await;
    c.send(LdapMsg::new(1, deliver_alice_request()))
        .await
        .unwrap();
    let search = root_dse_request(&["1.1"]);
    c.send(LdapMsg::new(2, search)).await.unwrap();
    let mut order = Vec::new();
    while order.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(20), c.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match m.op {
            LdapOp::SearchResultEntry(_) => {}
            LdapOp::ExtendedResponse(r) => {
                assert_eq!(r.res.code, LdapResultCode::UnwillingToPerform, "{r:?}");
                order.push(m.msgid);
            }
            _ => order.push(m.msgid),
        }
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_run_beside_each_other_up_to_the_per_connection_bound() {
    // Room for two: the search overtakes the slow delivery.
    assert_eq!(arrival_order(16).await, [2, 1]);
    // Room for one: the search is not even read until the delivery is done.
    assert_eq!(arrival_order(1).await, [1, 2]);
}
