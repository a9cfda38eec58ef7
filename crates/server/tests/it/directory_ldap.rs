//! LDAP directories against a real OpenLDAP slapd: identity mapping, password checks,
//! ambiguity and filter injection, managers in every shape, preferred mechanisms, locked
//! accounts, Deliver OTP and verify over HTTP and the LDAP front, TLS to the directory, and
//! the directory going away and coming back.

use std::time::Duration;

use countersign::config::Config;
use countersign::directory::LdapDirectory;
use countersign_core::identity::Identity;
use countersign_core::model::Dn;
use countersign_core::ports::{Directory, Lookup};
use serde_json::json;

use crate::fixtures::slapd::{BASE, Slapd};
use crate::fixtures::*;

fn dn(uid: &str) -> String {
    format!("uid={uid},{BASE}")
}

/// The adapter on its own, configured from TOML as an operator would.
fn adapter(slapd: &Slapd, url_and_tls: &str) -> LdapDirectory {
    let dir = tempfile::TempDir::new().unwrap();
    let text = format!(
        "[store]\nurl = \"sqlite://x.db\"\n{}\n[[delivery_mechanism]]\nname = \"F\"\ntype = \"file\"\ndirectory = \"o\"\n[deliver_otp]\nidentity_mapper = \"corp\"\ndefault_mechanisms = [\"F\"]\n",
        slapd.directory_config("corp", url_and_tls)
    );
    let config = Config::parse(&text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    LdapDirectory::new(config.ldap_directories().next().unwrap().clone()).unwrap()
}

fn plain(slapd: &Slapd) -> String {
    format!("url = \"{}\"", slapd.url())
}

async fn lookup(d: &LdapDirectory, id: &str) -> Lookup {
    d.find_user(&Identity::parse(id).unwrap()).await.unwrap()
}

fn found(l: Lookup) -> countersign_core::User {
    match l {
        Lookup::Found(u) => *u,
        other => panic!("expected a user, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_mapped_checked_and_never_injected() {
    let slapd = Slapd::start();
    let d = adapter(&slapd, &plain(&slapd));

    let alice = found(lookup(&d, "u:alice").await);
    assert_eq!(
        Dn::new(alice.dn.as_str().to_owned()).normalized(),
        Dn::new(dn("alice")).normalized()
    );
    assert_eq!(
        (
            alice.username.as_str(),
            alice.mail.as_slice(),
            alice.mobile.as_slice()
        ),
        (
            "alice",
            &["alice@example.com".to_owned()][..],
            &["+15550100001".to_owned()][..]
        )
    );
    assert_eq!(alice.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(
        alice.preferred_mechanisms,
        ["SMS", "Email"],
        "preferred mechanisms from the directory, in order"
    );
    assert_eq!(
        alice.attributes.get("sn").map(Vec::as_slice),
        Some(&["Liddell".to_owned()][..])
    );
    assert_eq!(
        found(lookup(&d, &format!("dn:{}", dn("alice").to_uppercase())).await).username,
        "alice"
    );

    assert!(
        d.check_password(&alice, &"alice-password".into())
            .await
            .unwrap()
    );
    assert!(!d.check_password(&alice, &"wrong".into()).await.unwrap());
    assert!(
        !d.check_password(&alice, &"".into()).await.unwrap(),
        "an empty password is never right"
    );

    // Names that need escaping find exactly their owner.
    for (uid, pw) in [
        ("o'brien", "obrien-password"),
        ("a*b", "star-password"),
        ("x(y)", "paren-password"),
        ("ü", "umlaut-password"),
    ] {
        let u = found(lookup(&d, &format!("u:{uid}")).await);
        assert_eq!(u.username, uid);
        assert!(d.check_password(&u, &pw.into()).await.unwrap(), "{uid}");
    }
    // Injection attempts find nobody.
    for evil in [
        "u:*",
        "u:*)(uid=*",
        "u:alice)(|(uid=*",
        "u:a*",
        "u:*)",
        "u:\\2a",
    ] {
        assert_eq!(lookup(&d, evil).await, Lookup::NotFound, "{evil}");
    }
    // Two entries match one name: refused, not guessed.
    assert_eq!(lookup(&d, "u:twin").await, Lookup::Ambiguous);
    // DNs outside the base, or nobody's, are nobody.
    assert_eq!(
        lookup(&d, "dn:uid=boss,ou=others,dc=example,dc=com").await,
        Lookup::NotFound
    );
    assert_eq!(
        lookup(&d, &format!("dn:{}", dn("ghost"))).await,
        Lookup::NotFound
    );
    assert_eq!(lookup(&d, "dn:dc=example,dc=com").await, Lookup::NotFound);

    // ppolicy's lock is read, and only where it is set.
    let erin = found(lookup(&d, "u:erin").await);
    assert!(erin.account.locked_until.is_some());
    assert!(alice.account.locked_until.is_none());

    // A malformed DN, or a base itself, is nobody, not an outage.
    assert_eq!(
        lookup(&d, &format!("dn:uid=x,,{BASE}")).await,
        Lookup::NotFound
    );
    assert_eq!(
        lookup(&d, "dn:uid=x=y,ou=people,dc=example,dc=com").await,
        Lookup::NotFound
    );
    assert_eq!(lookup(&d, &format!("dn:{BASE}")).await, Lookup::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_carry_their_immutable_id() {
    let slapd = Slapd::start();
    let d = adapter(&slapd, &plain(&slapd));
    let by_name = |name: &str| countersign_core::identity::Identity::parse(&format!("u:{name}"));
    let alice = found(d.find_user(&by_name("alice").unwrap()).await.unwrap());
    let bob = found(d.find_user(&by_name("bob").unwrap()).await.unwrap());
    // OpenLDAP's entryUUID (RFC 4530), as text, lower-cased.
    let id = alice.id.clone().expect("an entryUUID");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id, id.to_ascii_lowercase());
    assert_ne!(bob.id, alice.id);
    let again = found(d.find_user(&by_name("alice").unwrap()).await.unwrap());
    assert_eq!(again.id, alice.id, "the same entry, the same id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_in_every_shape() {
    let slapd = Slapd::start();
    let d = adapter(&slapd, &plain(&slapd));
    let manager = |uid: &'static str| {
        let d = &d;
        async move {
            d.find_manager(&found(lookup(d, &format!("u:{uid}")).await))
                .await
                .unwrap()
        }
    };
    let m = manager("alice").await.expect("alice has a manager");
    assert_eq!(
        Dn::new(m.dn.unwrap().as_str().to_owned()).normalized(),
        Dn::new(dn("bob")).normalized()
    );
    assert_eq!(
        (m.name.as_deref(), m.mail.as_deref(), m.mobile.as_deref()),
        (
            Some("Bob Manager"),
            Some("bob@example.com"),
            Some("+15550100002")
        )
    );
    assert_eq!(manager("bob").await, None, "no manager attribute");
    assert_eq!(manager("carol").await, None, "dangling manager DN");
    assert_eq!(manager("dave").await, None, "managed by himself");
    assert_eq!(
        manager("frank").await,
        None,
        "manager outside the user base"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_ldaps_to_the_directory() {
    let slapd = Slapd::start();
    for url_and_tls in [
        format!("url = \"{}\"\nstarttls = true", slapd.url()),
        format!("url = \"{}\"", slapd.ldaps_url()),
    ] {
        let d = adapter(&slapd, &url_and_tls);
        let alice = found(lookup(&d, "u:alice").await);
        assert!(
            d.check_password(&alice, &"alice-password".into())
                .await
                .unwrap(),
            "{url_and_tls}"
        );
    }
    // Without the test CA, TLS to the directory fails: unavailable, not a wrong answer.
    let dir = tempfile::TempDir::new().unwrap();
    let text = format!(
        "[store]\nurl = \"sqlite://x.db\"\n[[directory]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"{}\"\nuser_base_dns = [\"{BASE}\"]\ntimeout = \"3s\"\n[[delivery_mechanism]]\nname = \"F\"\ntype = \"file\"\ndirectory = \"o\"\n[deliver_otp]\nidentity_mapper = \"corp\"\ndefault_mechanisms = [\"F\"]\n",
        slapd.ldaps_url()
    );
    let config = Config::parse(&text, dir.path()).unwrap();
    let untrusting = LdapDirectory::new(config.ldap_directories().next().unwrap().clone()).unwrap();
    assert!(
        untrusting
            .find_user(&Identity::parse("u:alice").unwrap())
            .await
            .is_err()
    );
}

async fn ldap_users_world(slapd: &Slapd, smtp: &SmtpServer, gw: &SmsGateway) -> Countersign {
    let setup = Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        sms_url: Some(gw.url.clone()),
        extra: slapd.directory_config("corp", &plain(slapd)),
        identity_mapper: vec!["corp".into(), "local".into()],
        ldap: true,
        ldap_extra: "allow_deliver_otp_without_tls = true\n".into(),
        ..Setup::default()
    };
    Countersign::start(&setup).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_and_verify_for_directory_users_over_http() {
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let gw = SmsGateway::start().await;
    let cs = ldap_users_world(&slapd, &smtp, &gw).await;

    // alice prefers SMS in her entry; asking for Email explicitly goes by e-mail.
    let a = cs.deliver(json!({"authentication_id": "u:alice", "static_password": "alice-password", "mechanisms": ["Email"]})).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["recipient_id"], "alice@example.com");
    let mail = &smtp.wait_for(1)[0];
    assert_eq!(mail.rcpt_tos, ["alice@example.com"]);
    let v = cs
        .verify(&format!("dn:{}", dn("alice")), &mail.otp(6))
        .await;
    assert_eq!(v.status, 200, "{}", v.json);
    assert_eq!(
        cs.verify("u:alice", &mail.otp(6)).await.status,
        401,
        "single use"
    );

    // Without a list, her preference (SMS) wins.
    let a = cs
        .deliver(json!({"authentication_id": "u:alice", "static_password": "alice-password"}))
        .await;
    assert_eq!(a.json["delivery_mechanism"], "SMS", "{}", a.json);
    assert_eq!(gw.requests().len(), 1);

    // Refusals: wrong password, ambiguous, locked, injection. One answer; real reasons audited.
    for (id, pw, reason) in [
        ("u:alice", "wrong-password", "wrong static password"),
        (
            "u:twin",
            "twin-password",
            "identity matches more than one user",
        ),
        ("u:erin", "erin-password", "account locked"),
        ("u:*)(uid=*", "x", "unknown user"),
    ] {
        let a = cs
            .deliver(json!({"authentication_id": id, "static_password": pw}))
            .await;
        assert_eq!(a.status, 401, "{id}: {}", a.json);
        let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
        assert_eq!(audit[0].reason, reason, "{id}");
    }
    // Nothing was written into the directory: the OTP lives in countersign's store.
    let key = countersign_core::UserKey {
        directory: "corp".into(),
        dn: Dn::new(dn("alice")).normalized(),
    };
    assert!(cs.app.store.get_otp(&key).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_users_over_the_ldap_front() {
    use futures_util::{SinkExt, StreamExt};
    use ldap3_proto::proto::*;
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let gw = SmsGateway::start().await;
    let cs = ldap_users_world(&slapd, &smtp, &gw).await;
    let mut c = cs.ldap_connect().await;
    let mut ask = async |op: LdapOp| {
        c.send(LdapMsg::new(3, op)).await.unwrap();
        match c.next().await.unwrap().unwrap().op {
            LdapOp::BindResponse(r) => r.res.code,
            LdapOp::ExtendedResponse(r) => r.res.code,
            other => panic!("{other:?}"),
        }
    };
    let bind = |dn: String, pw: &str| {
        LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn,
            cred: LdapBindCred::Simple(pw.into()),
        })
    };
    assert_eq!(
        ask(bind(dn("alice"), "alice-password")).await,
        LdapResultCode::Success
    );
    assert_eq!(
        ask(bind(dn("alice"), "nope")).await,
        LdapResultCode::InvalidCredentials
    );
    let value =
        countersign::ldap::exop::encode_deliver_otp(&countersign::ldap::exop::DeliverOtpRequest {
            authentication_id: "u:o'brien".into(),
            static_password: Some("obrien-password".into()),
            mechanisms: Some(vec![countersign_core::mechanism::MechanismChoice::named(
                "Email",
            )]),
            ..Default::default()
        });
    let deliver = LdapOp::ExtendedRequest(LdapExtendedRequest {
        name: countersign::ldap::exop::DELIVER_OTP_REQUEST.into(),
        value: Some(value),
    });
    assert_eq!(ask(deliver).await, LdapResultCode::Success);
    let otp = smtp.wait_for(1)[0].otp(6);
    let creds = countersign::ldap::exop::encode_sasl_credentials(
        &countersign::ldap::exop::DeliveredOtpCredentials {
            authentication_id: "u:o'brien".into(),
            authorization_id: None,
            otp: otp.into(),
        },
    );
    let sasl = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: String::new(),
        cred: LdapBindCred::SASL(SaslCredentials {
            mechanism: "UNBOUNDID-DELIVERED-OTP".into(),
            credentials: creds,
        }),
    });
    assert_eq!(ask(sasl).await, LdapResultCode::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_going_away_and_coming_back() {
    use futures_util::{SinkExt, StreamExt};
    use ldap3_proto::proto::*;
    let mut slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let gw = SmsGateway::start().await;
    let cs = ldap_users_world(&slapd, &smtp, &gw).await;
    let login = json!({"authentication_id": "u:alice", "static_password": "alice-password", "mechanisms": ["Email"]});
    assert_eq!(cs.deliver(login.clone()).await.status, 200);

    slapd.stop();
    // HTTP: 503 with a problem, not a credential refusal; the chain does not fall through to
    // the local directory.
    let a = cs.deliver(login.clone()).await;
    assert_eq!(a.status, 503, "{}", a.json);
    assert_eq!(a.json["title"], "Service unavailable");
    // LDAP front: unavailable (52) with a diagnostic.
    let mut c = cs.ldap_connect().await;
    c.send(LdapMsg::new(
        1,
        LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn("alice"),
            cred: LdapBindCred::Simple("alice-password".into()),
        }),
    ))
    .await
    .unwrap();
    match c.next().await.unwrap().unwrap().op {
        LdapOp::BindResponse(r) => {
            assert_eq!(r.res.code, LdapResultCode::Unavailable);
            assert!(!r.res.message.is_empty());
        }
        other => panic!("{other:?}"),
    }

    slapd.restart();
    // Service resumes without a restart of countersign (after the reconnect backoff).
    let mut status = 0;
    for _ in 0..80 {
        status = cs.deliver(login.clone()).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, 200, "logins work again once slapd is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_unavailable_next_falls_through_to_the_next_directory() {
    let mut slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let setup = Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        extra: format!(
            "{}on_unavailable = \"next\"\n",
            slapd.directory_config("corp", &plain(&slapd))
        ),
        identity_mapper: vec!["corp".into(), "local".into()],
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    // A local alice, with another password and address.
    cs.add_user(TestUser {
        mail: vec!["alice@local.example"],
        password: "local-alice-password",
        ..alice()
    })
    .await;
    let via = |pw: &'static str| json!({"authentication_id": "u:alice", "static_password": pw});
    // While corp answers, it decides: its alice, its password; the local password, wrong for
    // corp's alice, does not fall through to the local alice.
    assert_eq!(
        cs.deliver(via("alice-password")).await.json["recipient_id"],
        "alice@example.com"
    );
    assert_eq!(cs.deliver(via("local-alice-password")).await.status, 401);
    slapd.stop();
    // corp down and configured to let the next directory answer: the local alice.
    let a = cs.deliver(via("local-alice-password")).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["recipient_id"], "alice@local.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_base_that_does_not_exist_is_an_outage_not_an_empty_answer() {
    let slapd = Slapd::start();
    let dir = tempfile::TempDir::new().unwrap();
    let text = format!(
        "[store]\nurl = \"sqlite://x.db\"\n{}\n[[delivery_mechanism]]\nname = \"F\"\ntype = \"file\"\ndirectory = \"o\"\n[deliver_otp]\nidentity_mapper = \"corp\"\ndefault_mechanisms = [\"F\"]\n",
        slapd
            .directory_config("corp", &plain(&slapd))
            .replace(BASE, "ou=nowhere,dc=example,dc=com")
    );
    let config = Config::parse(&text, dir.path()).unwrap();
    let d = LdapDirectory::new(config.ldap_directories().next().unwrap().clone()).unwrap();
    // Otherwise a typo in user_base_dns would let a lower directory answer for these users.
    let e = d
        .find_user(&Identity::parse("u:alice").unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_command_finds_managers_end_to_end() {
    let slapd = Slapd::start();
    let dir = tempfile::TempDir::new().unwrap();
    let setup = Setup {
        extra: format!(
            "{}\n[[delivery_mechanism]]\nname = \"F\"\ntype = \"file\"\ndirectory = \"o\"\n",
            slapd.directory_config("corp", &plain(&slapd))
        ),
        default_mechanisms: vec!["F"],
        identity_mapper: vec!["corp".into(), "local".into()],
        ..Setup::default()
    };
    std::fs::write(dir.path().join("countersign.toml"), setup.config()).unwrap();
    let config = dir.path().join("countersign.toml");
    let run = |id: &str| run_countersign(&config, &["manager", id], "");
    let (ok, out, err) = run("u:alice");
    assert!(ok, "{err}");
    assert!(
        out.contains("name: Bob Manager")
            && out.contains("mail: bob@example.com")
            && out.contains("mobile: +15550100002"),
        "{out}"
    );
    for nobody in ["u:bob", "u:carol", "u:dave", "u:frank"] {
        let (ok, out, _) = run(nobody);
        assert!(!ok && out.contains("no manager"), "{nobody}: {out}");
    }
    // A local user's sponsor, through the same command.
    let add = [
        "user",
        "add",
        "lena",
        "--sponsor-name",
        "Sam Sponsor",
        "--sponsor-email",
        "sam@example.com",
    ];
    let (ok, _, err) = run_countersign(&config, &add, "lena-password\n");
    assert!(ok, "{err}");
    let (ok, out, err) = run("u:lena");
    assert!(ok, "{err}");
    assert!(
        out.contains("name: Sam Sponsor") && out.contains("mail: sam@example.com"),
        "{out}"
    );
}

#[test]
fn the_two_schema_files_define_the_same_things() {
    // slapd loads countersign.schema in every test above; the cn=config form must match it.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib");
    let defs = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        let mut words: Vec<String> = body
            .split_whitespace()
            .filter(|w| {
                w.starts_with("2.25.") || w.starts_with('\'') || w.starts_with("1.3.6.1.4.1.1466")
            })
            .map(str::to_owned)
            .collect();
        words.sort();
        words
    };
    let schema = defs("countersign.schema");
    assert!(
        schema
            .iter()
            .any(|w| w == "'ds-auth-preferred-otp-delivery-mechanism'"),
        "{schema:?}"
    );
    assert_eq!(schema, defs("countersign.ldif"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_binds_reuse_connections_and_survive_the_server_closing_them() {
    let mut slapd = Slapd::start();
    let d = adapter(&slapd, &plain(&slapd));
    let alice = found(lookup(&d, "u:alice").await);
    let bob = found(lookup(&d, "u:bob").await);
    // Right and wrong passwords of different users, one after another: each answer is the
    // answer for that bind alone, and one connection carries them all.
    for _ in 0..5 {
        assert!(
            d.check_password(&alice, &"alice-password".into())
                .await
                .unwrap()
        );
        assert!(
            !d.check_password(&bob, &"alice-password".into())
                .await
                .unwrap()
        );
        assert!(
            d.check_password(&bob, &"bob-password".into())
                .await
                .unwrap()
        );
        assert!(!d.check_password(&alice, &"wrong".into()).await.unwrap());
    }
    assert_eq!(d.bind_connections_opened(), 1);

    // Concurrent binds open at most one connection each, and are kept for the next ones. (The
    // refused ones name nobody: wrong passwords for alice in a row would have the fixture's
    // password policy lock her.)
    let mut ghost = alice.clone();
    ghost.dn = Dn::new(dn("ghost"));
    let checks = (0..12).map(|i| {
        let (d, alice, ghost) = (&d, &alice, &ghost);
        async move {
            if i % 2 == 0 {
                d.check_password(alice, &"alice-password".into())
                    .await
                    .unwrap()
            } else {
                !d.check_password(ghost, &"alice-password".into())
                    .await
                    .unwrap()
            }
        }
    });
    assert!(
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .all(|ok| ok)
    );
    let opened = d.bind_connections_opened();
    assert!(opened <= 13, "{opened}");
    // The same again: the connections kept by the first round carry it, none is opened.
    for _ in 0..3 {
        assert!(
            d.check_password(&alice, &"alice-password".into())
                .await
                .unwrap()
        );
        assert!(
            !d.check_password(&ghost, &"alice-password".into())
                .await
                .unwrap()
        );
    }
    assert_eq!(
        d.bind_connections_opened(),
        opened,
        "kept connections are reused"
    );

    // The server restarts: every kept connection is dead, and the next bind still works.
    slapd.restart();
    assert!(
        d.check_password(&alice, &"alice-password".into())
            .await
            .unwrap()
    );
    assert!(!d.check_password(&alice, &"wrong".into()).await.unwrap());
    assert!(d.bind_connections_opened() > opened);
}
