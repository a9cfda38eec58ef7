//! The handler on its own, without sockets: one request and a session in, the outcome out. The
//! service behind it is the real one over a SQLite file in a temporary folder, with alice in
//! the local directory and a File mechanism.

use countersign_core::model::{Dn, User};
use countersign_core::ports::LocalUser;
use ldap3_proto::proto::{LdapExtendedRequest, LdapMsg, LdapOp, LdapResultCode};

use super::*;
use crate::app::App;
use crate::ber;
use crate::config::Config;
use crate::ldap::exop;

const CONFIG: &str = r#"
[store]
url = "sqlite://state/countersign.db"

[[directory]]
name = "local"
type = "local"
base_dn = "ou=people,dc=example,dc=com"

[password_generator]
character_sets = { numeric = "0123456789" }
format = "numeric:6"

[[delivery_mechanism]]
name = "File"
type = "file"
directory = "outbox"
print = false

[deliver_otp]
identity_mapper = ["local"]
default_mechanisms = ["File"]
"#;

fn alice_dn() -> &'static str {
    "uid=alice,ou=people,dc=example,dc=com"
}

/// The service, with alice in the local directory; the folder lives as long as the service.
async fn service() -> (Arc<OtpService>, tempfile::TempDir) {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let app = App::build(Config::load(&path).unwrap_or_else(|e| panic!("{e}"))).unwrap();
    let user = User {
        mail: vec!["alice@example.com".into()],
        mobile: vec!["+15550100001".into()],
        ..User::new("local", Dn::new(alice_dn()), "alice")
    };
    let password_hash = crate::passwords::hash(&Secret::new("alice-password")).unwrap();
    app.store
        .insert_local_user(&LocalUser {
            user,
            password_hash,
        })
        .await
        .unwrap();
    (app.otp.clone(), dir)
}

fn handler(otp: &Arc<OtpService>, tls_available: bool) -> LdapHandler {
    LdapHandler::new(
        otp.clone(),
        LdapSettings {
            allow_deliver_otp_without_tls: false,
            bind_name_forms: Default::default(),
            reveal_recipients: false,
            tls_available,
            deliver_otp_enabled: true,
            naming_contexts: vec!["ou=people,dc=example,dc=com".into()],
        },
    )
}

fn exop_req(name: &str, value: Option<Vec<u8>>) -> LdapOp {
    LdapOp::ExtendedRequest(LdapExtendedRequest {
        name: name.into(),
        value,
    })
}

fn single(o: Outcome) -> LdapMsg {
    match o {
        Outcome::Respond(mut v) if v.len() == 1 => v.remove(0),
        other => panic!("{other:?}"),
    }
}

/// The result code of an extended response; a failure carries neither a name nor a value
/// (spec §3.3).
fn code(msg: &LdapMsg) -> LdapResultCode {
    match &msg.op {
        LdapOp::ExtendedResponse(r) => {
            if r.res.code != LdapResultCode::Success {
                assert!(
                    r.name.is_none() && r.value.is_none(),
                    "a failure must carry no name or value: {r:?}"
                );
            }
            r.res.code.clone()
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn starttls_rules() {
    let (otp, _dir) = service().await;
    let h = handler(&otp, true);
    let starttls = || LdapMsg::new(1, exop_req(exop::START_TLS, None));
    assert!(matches!(
        h.handle(starttls(), &Session::default()).await,
        Outcome::StartTls(_)
    ));
    let busy = Session {
        outstanding: 1,
        ..Session::default()
    };
    assert_eq!(
        code(&single(h.handle(starttls(), &busy).await)),
        LdapResultCode::OperationsError
    );
    let secure = Session {
        secure: true,
        ..Session::default()
    };
    assert_eq!(
        code(&single(h.handle(starttls(), &secure).await)),
        LdapResultCode::OperationsError
    );
    let no_cert = handler(&otp, false);
    assert_eq!(
        code(&single(
            no_cert.handle(starttls(), &Session::default()).await
        )),
        LdapResultCode::ProtocolError
    );
}

#[tokio::test]
async fn who_am_i_deliver_and_supported_follow_the_session() {
    let (otp, _dir) = service().await;
    let h = handler(&otp, true);
    let whoami = || LdapMsg::new(1, exop_req(exop::WHO_AM_I, None));
    let value = |m: LdapMsg| match m.op {
        LdapOp::ExtendedResponse(r) => r.value,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        value(single(h.handle(whoami(), &Session::default()).await)),
        Some(Vec::new())
    );
    let alice_key = countersign_core::UserKey {
        directory: "local".into(),
        dn: countersign_core::Dn::new(alice_dn()).normalized(),
    };
    let bound = Session {
        bound: Some(BoundUser {
            key: alice_key,
            dn: alice_dn().into(),
        }),
        secure: true,
        ..Session::default()
    };
    assert_eq!(
        value(single(h.handle(whoami(), &bound).await)),
        Some(format!("dn:{}", alice_dn()).into_bytes())
    );

    // Deliver OTP on an insecure session is refused before the value is even read.
    let deliver = |v: Vec<u8>| LdapMsg::new(2, exop_req(exop::DELIVER_OTP_REQUEST, Some(v)));
    let step_up = ber::constructed(ber::SEQUENCE, &[ber::tlv(ber::context(0), b"u:alice")]);
    assert_eq!(
        code(&single(
            h.handle(deliver(b"garbage".to_vec()), &Session::default())
                .await
        )),
        LdapResultCode::ConfidentialityRequired
    );
    // Step-up: no password, bound as alice, secure.
    let anonymous_secure = Session {
        secure: true,
        ..Session::default()
    };
    assert_eq!(
        code(&single(
            h.handle(deliver(step_up.clone()), &anonymous_secure).await
        )),
        LdapResultCode::InvalidCredentials
    );
    let r = single(h.handle(deliver(step_up), &bound).await);
    assert_eq!(code(&r), LdapResultCode::Success);

    // Get Supported: full addresses for alice herself, masked for anyone else.
    let supported = || {
        LdapMsg::new(
            3,
            exop_req(
                exop::GET_SUPPORTED_REQUEST,
                Some(exop::encode_get_supported(alice_dn())),
            ),
        )
    };
    let items = |m: LdapMsg| exop::decode_get_supported_result(&value(m).unwrap()).unwrap();
    // The File mechanism reaches e-mail addresses.
    assert_eq!(
        items(single(h.handle(supported(), &bound).await))[0]
            .recipient
            .as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        items(single(h.handle(supported(), &Session::default()).await))[0]
            .recipient
            .as_deref(),
        Some("a***@example.com")
    );
    let nobody = LdapMsg::new(
        4,
        exop_req(
            exop::GET_SUPPORTED_REQUEST,
            Some(exop::encode_get_supported("uid=x,dc=y")),
        ),
    );
    // To an anonymous caller, nobody looks like a user no mechanism reaches.
    let unknown = items(single(h.handle(nobody, &Session::default()).await));
    assert_eq!(unknown.len(), 1);
    assert!(!unknown[0].supported && unknown[0].recipient.is_none());
}
