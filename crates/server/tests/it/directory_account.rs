//! Account usability for directory users (the seed: "the account is not locked out, the user's
//! password is not expired, etc."), against a real slapd with the ppolicy overlay and a default
//! policy: OpenLDAP's permanent and timed lockouts, expiry by the governing policy's age,
//! `pwdReset`; Active Directory's and 389-DS's attributes on entries in the same slapd. Every
//! unusable account gets the answer a wrong password gets, on each front; the audit says why.

use std::time::Duration;

use countersign::config::Config;
use countersign::directory::LdapDirectory;
use countersign_core::error::Refusal;
use countersign_core::identity::Identity;
use countersign_core::model::Timestamp;
use countersign_core::password::account_refusal;
use countersign_core::ports::{Clock, Directory, Lookup};
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::proto::*;
use serde_json::json;

use crate::fixtures::slapd::{BASE, LOCKOUT, MAX_FAILURES, Slapd};
use crate::fixtures::*;

fn dn(uid: &str) -> String {
    format!("uid={uid},{BASE}")
}

fn password(uid: &str) -> String {
    format!("{uid}-password")
}

/// Users the directory says may not log in, why, and whether slapd itself refuses their bind
/// (ppolicy) or only their entry says so (AD and 389-DS attributes slapd does not act on).
const UNUSABLE: [(&str, Refusal, bool); 9] = [
    // ppolicy: locked until an administrator unlocks (000001010000Z).
    ("erin", Refusal::AccountLocked, true),
    // ppolicy: pwdChangedTime older than the default policy's pwdMaxAge.
    ("olga", Refusal::PasswordExpired, true),
    // ppolicy: two days old, but its own pwdPolicySubentry allows one day.
    ("stan", Refusal::PasswordExpired, true),
    // ppolicy: pwdReset.
    ("rita", Refusal::MustChangePassword, true),
    // AD: userAccountControl ACCOUNTDISABLE.
    ("adele", Refusal::AccountDisabled, false),
    // AD: lockoutTime set, no computed flags to say the lockout has ended.
    ("adrian", Refusal::AccountLocked, false),
    // AD: msDS-User-Account-Control-Computed UF_LOCKOUT.
    ("ada", Refusal::AccountLocked, false),
    // AD: msDS-User-Account-Control-Computed UF_PASSWORD_EXPIRED.
    ("abel", Refusal::PasswordExpired, false),
    // 389-DS: nsAccountLock: true.
    ("dora389", Refusal::AccountDisabled, false),
];

/// Users of each kind who may: plain; a ppolicy lock whose duration is over; an old password
/// under a policy without pwdMaxAge; AD flags all clear; 389-DS nsAccountLock FALSE.
const USABLE: [&str; 5] = ["alice", "hugo", "lara", "adam", "dino389"];

/// The adapter on its own, with more `[[directory]]` keys.
fn adapter(slapd: &Slapd, account_keys: &str) -> LdapDirectory {
    let directory = slapd.directory_config("corp", &format!("url = \"{}\"", slapd.url()));
    adapter_from(&format!("{directory}{account_keys}"))
}

fn adapter_from(directory: &str) -> LdapDirectory {
    let dir = tempfile::TempDir::new().unwrap();
    let text = format!(
        "[store]\nurl = \"sqlite://x.db\"\n{directory}\n[[delivery_mechanism]]\nname = \"F\"\ntype = \"file\"\ndirectory = \"o\"\n[deliver_otp]\nidentity_mapper = \"corp\"\ndefault_mechanisms = [\"F\"]\n",
    );
    let config = Config::parse(&text, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    LdapDirectory::new(config.ldap_directories().next().unwrap().clone()).unwrap()
}

async fn user(d: &LdapDirectory, uid: &str) -> countersign_core::User {
    match d
        .find_user(&Identity::parse(&format!("u:{uid}")).unwrap())
        .await
        .unwrap()
    {
        Lookup::Found(u) => *u,
        other => panic!("{uid}: {other:?}"),
    }
}

fn now() -> Timestamp {
    countersign::system::SystemClock.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_directory_kind_says_who_may_log_in() {
    let slapd = Slapd::start();
    let d = adapter(&slapd, "");
    for (uid, why, server_refuses) in UNUSABLE {
        let u = user(&d, uid).await;
        assert_eq!(
            account_refusal(&u, now()),
            Some(why),
            "{uid}: {:?}",
            u.account
        );
        let said = d.password_refusal(&u, &password(uid).into()).await.unwrap();
        if server_refuses {
            // slapd refuses (or, for pwdReset, restricts) the bind and says why.
            assert_eq!(said, Some(why), "{uid}");
        } else {
            // slapd knows nothing of AD or 389-DS flags: the password is right, the entry says no.
            assert_eq!(said, None, "{uid}");
        }
    }
    // A wrong password on a locked or disabled account: the account is why (servers look at
    // it first). On an expired or reset one: just a wrong password.
    for (uid, why) in [
        ("erin", Refusal::AccountLocked),
        ("dora389", Refusal::AccountDisabled),
        ("olga", Refusal::WrongPassword),
        ("rita", Refusal::WrongPassword),
    ] {
        let u = user(&d, uid).await;
        let said = d.password_refusal(&u, &"wrong".into()).await.unwrap();
        assert_eq!(said, Some(why), "{uid}");
    }
    for uid in USABLE {
        let u = user(&d, uid).await;
        assert_eq!(account_refusal(&u, now()), None, "{uid}: {:?}", u.account);
        let pw = password(uid);
        assert_eq!(
            d.password_refusal(&u, &pw.into()).await.unwrap(),
            None,
            "{uid}"
        );
        let wrong = d.password_refusal(&u, &"wrong".into()).await.unwrap();
        assert_eq!(wrong, Some(Refusal::WrongPassword), "{uid}");
    }
    // The per-user policy decides, not the default: stan's password expires after one day.
    let stan = user(&d, "stan").await.account.password_expires_at.unwrap();
    let one_day_after_change = now().minus(Duration::from_secs(86_400));
    assert!(stan.0.abs_diff(one_day_after_change.0) < 60_000, "{stan:?}");

    // Without password_policy_dn, olga's entry alone cannot say her password is too old
    // (no policy governs her that countersign knows of); slapd's answer to her bind, the
    // password policy response control, still does.
    let directory = slapd.directory_config("corp", &format!("url = \"{}\"", slapd.url()));
    let no_default = adapter_from(
        &directory
            .lines()
            .filter(|l| !l.starts_with("password_policy_dn"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let olga = user(&no_default, "olga").await;
    assert_eq!(olga.account.password_expires_at, None);
    let said = no_default
        .password_refusal(&olga, &password("olga").into())
        .await;
    assert_eq!(said.unwrap(), Some(Refusal::PasswordExpired));

    // account_policy limits what is read: as a plain OpenLDAP directory, AD and 389-DS flags
    // mean nothing; as Active Directory, ppolicy's do not.
    let openldap = adapter(&slapd, "account_policy = \"openldap\"\n");
    for uid in ["adele", "ada", "dora389"] {
        let u = user(&openldap, uid).await;
        assert_eq!(account_refusal(&u, now()), None, "{uid}");
    }
    let ad = adapter(&slapd, "account_policy = \"active_directory\"\n");
    assert_eq!(account_refusal(&user(&ad, "erin").await, now()), None);
    assert_eq!(
        account_refusal(&user(&ad, "adele").await, now()),
        Some(Refusal::AccountDisabled)
    );
    let ds = adapter(&slapd, "account_policy = \"389ds\"\n");
    assert_eq!(
        account_refusal(&user(&ds, "dora389").await, now()),
        Some(Refusal::AccountDisabled)
    );
    assert_eq!(account_refusal(&user(&ds, "adele").await, now()), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_lockout_ends_after_the_policy_duration() {
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = world(&slapd, &smtp).await;
    let d = adapter(&slapd, "");
    let deliver = |pw: &str| json!({"authentication_id": "u:gina", "static_password": pw});
    for _ in 0..MAX_FAILURES {
        assert_eq!(cs.deliver(deliver("wrong")).await.status, 401);
    }
    // Locked now, for the default policy's pwdLockoutDuration, even with the right password.
    let gina = user(&d, "gina").await;
    let until = gina.account.locked_until.expect("ppolicy locked gina");
    assert!(until > now() && until <= now().plus(LOCKOUT), "{until:?}");
    let a = cs.deliver(deliver("gina-password")).await;
    assert_eq!(a.status, 401, "{}", a.json);
    let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
    assert_eq!(audit[0].reason, "account locked");

    // Once the duration is over, the same password works again.
    let wait = u64::try_from(until.0 - now().0).unwrap() + 300;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(account_refusal(&user(&d, "gina").await, now()), None);
    let a = cs.deliver(deliver("gina-password")).await;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(smtp.wait_for(1)[0].rcpt_tos, ["gina@example.com"]);
}

async fn world(slapd: &Slapd, smtp: &SmtpServer) -> Countersign {
    let setup = Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        extra: slapd.directory_config("corp", &format!("url = \"{}\"", slapd.url())),
        identity_mapper: vec!["corp".into()],
        ldap: true,
        ldap_extra: "allow_deliver_otp_without_tls = true\n".into(),
        ..Setup::default()
    };
    Countersign::start(&setup).await
}

/// A simple bind through countersign's LDAP front: the whole result the client sees.
async fn front_bind(cs: &Countersign, uid: &str, pw: &str) -> LdapResult {
    let mut c = cs.ldap_connect().await;
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: dn(uid),
        cred: LdapBindCred::Simple(pw.into()),
    });
    c.send(LdapMsg::new(1, bind)).await.unwrap();
    match c.next().await.unwrap().unwrap().op {
        LdapOp::BindResponse(r) => r.res,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_accounts_get_the_answer_a_wrong_password_gets() {
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let cs = world(&slapd, &smtp).await;
    let last_reason = async || {
        let audit = cs.app.store.list_audit(&Default::default()).await.unwrap();
        audit[0].reason.clone()
    };
    let deliver = |uid: &str, pw: &str| json!({"authentication_id": format!("u:{uid}"), "static_password": pw});

    let wrong_http = cs.deliver(deliver("alice", "wrong")).await;
    assert_eq!(wrong_http.status, 401);
    let wrong_ldap = front_bind(&cs, "alice", "wrong").await;
    assert_eq!(wrong_ldap.code, LdapResultCode::InvalidCredentials);
    assert_eq!(last_reason().await, "wrong static password");
    let no_code = cs.verify("u:alice", "12345678").await;
    assert_eq!(no_code.status, 401);
    assert_eq!(last_reason().await, "no outstanding OTP");

    for (uid, why, _) in UNUSABLE {
        let a = cs.deliver(deliver(uid, &password(uid))).await;
        assert_eq!(
            (a.status, &a.json),
            (wrong_http.status, &wrong_http.json),
            "{uid}"
        );
        assert_eq!(last_reason().await, why.as_str(), "{uid} over HTTP");
        let r = front_bind(&cs, uid, &password(uid)).await;
        assert_eq!(
            (&r.code, &r.message, &r.matcheddn),
            (&wrong_ldap.code, &wrong_ldap.message, &wrong_ldap.matcheddn),
            "{uid}"
        );
        assert_eq!(last_reason().await, why.as_str(), "{uid} over LDAP");
        // Checking a code reads the account too, before anything about codes.
        let v = cs.verify(&format!("u:{uid}"), "12345678").await;
        assert_eq!(
            (v.status, &v.json),
            (no_code.status, &no_code.json),
            "{uid}"
        );
        assert_eq!(last_reason().await, why.as_str(), "{uid} verifying");
    }
    assert!(
        smtp.messages().is_empty(),
        "no code for an unusable account"
    );

    // Usable accounts of each kind still log in, on both fronts.
    for (n, uid) in USABLE.into_iter().enumerate() {
        let a = cs.deliver(deliver(uid, &password(uid))).await;
        assert_eq!(a.status, 200, "{uid}: {}", a.json);
        assert_eq!(
            smtp.wait_for(n + 1)[n].rcpt_tos,
            [format!("{uid}@example.com")]
        );
        let r = front_bind(&cs, uid, &password(uid)).await;
        assert_eq!(r.code, LdapResultCode::Success, "{uid}: {}", r.message);
    }
}

#[test]
fn account_policy_names_a_known_directory_kind() {
    let dir = tempfile::TempDir::new().unwrap();
    let with = |keys: &str| {
        format!(
            "[store]\nurl = \"sqlite://x.db\"\n[[directory]]\nname = \"corp\"\ntype = \"ldap\"\n\
             url = \"ldap://127.0.0.1:1\"\nuser_base_dns = [\"{BASE}\"]\n{keys}\n\
             [[directory]]\nname = \"local\"\ntype = \"local\"\nbase_dn = \"ou=local\"\n\
             [[delivery_mechanism]]\nname = \"F\"\ntype = \"file\"\ndirectory = \"o\"\n\
             [deliver_otp]\nidentity_mapper = \"corp\"\ndefault_mechanisms = [\"F\"]\n"
        )
    };
    for kind in ["auto", "openldap", "active_directory", "389ds"] {
        let text = with(&format!("account_policy = \"{kind}\""));
        assert!(Config::parse(&text, dir.path()).is_ok(), "{kind}");
    }
    let err = Config::parse(&with("account_policy = \"novell\""), dir.path()).unwrap_err();
    let err = err.to_string();
    assert!(err.contains("directory[0].account_policy"), "{err}");
    assert!(
        err.contains("expected auto, openldap, active_directory or 389ds"),
        "{err}"
    );
    // Only directory servers have account policies.
    let local = with("").replace(
        "base_dn = \"ou=local\"",
        "base_dn = \"ou=local\"\npassword_policy_dn = \"cn=default\"",
    );
    let err = Config::parse(&local, dir.path()).unwrap_err().to_string();
    assert!(err.contains("directory[1].password_policy_dn"), "{err}");
    assert!(err.contains("only for directories of type ldap"), "{err}");
}
