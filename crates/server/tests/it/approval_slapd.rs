//! Approved OTP over a real OpenLDAP directory: policies on `departmentNumber` read from slapd
//! (first match wins, exact, `*` wildcard and `re:` values, a multi-valued attribute, an
//! unmatched user refused only after a right password), and the approver found through the
//! directory's `manager` DNs (a manager, a dangling DN, oneself, a manager outside the base,
//! nobody), checked with `countersign policy test` and with real logins whose messages reach a
//! real SMTP server.
//!
//! The directory (fixtures/slapd.rs) holds: alice (departmentNumber 4711 and 42, managed by
//! bob), bob (99, no manager), carol (7, manager DN pointing at nobody), dave (LAB-3, managed
//! by himself), frank (ext-2024, managed by an entry outside the user base), o'brien (98, no
//! manager) and ab (no departmentNumber).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::approval_ldap::{API_KEY, link_token, text_of};
use crate::fixtures::harness::{Answer, Countersign, Setup, run_countersign};
use crate::fixtures::slapd::{BASE, Slapd};
use crate::fixtures::smtp::{SmtpOptions, SmtpServer};

/// Profiles with and without a default recipient, and policies on `departmentNumber` in an
/// order that matters: alice's 4711 matches "four digits" too, but "finance" comes first.
fn approval_config(slapd: &Slapd, key_file: &Path) -> String {
    let directory = slapd.directory_config("corp", &format!("url = \"{}\"", slapd.url()));
    let profile = |name: &str, kind: &str, default_recipient: Option<&str>| {
        format!(
            "[[approval_profile]]\nname = \"{name}\"\ntype = \"{kind}\"\n\
             server = \"https://mfa.example.test\"\ndelivery = \"email\"\n\
             mail_profile = \"smtp\"\nfallback_directories = [\"corp\"]\n{}\n",
            default_recipient
                .map(|r| format!("default_recipient = \"{r}\"\n"))
                .unwrap_or_default()
        )
    };
    let policy = |name: &str, profile: &str, values: &[&str]| {
        format!(
            "[[policy]]\nname = \"{name}\"\nprofile = \"{profile}\"\ndirectory = \"corp\"\n\
             attribute = \"departmentNumber\"\nvalues = [{}]\n\n",
            values
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    [
        directory,
        profile("critical", "approval", Some("secops@example.com")),
        profile("inform", "information", Some("secops@example.com")),
        profile("lonely", "approval", None),
        profile("quiet", "information", None),
        policy("finance", "critical", &["42"]),
        policy("lab", "critical", &["lab-*"]),
        policy("external", "critical", &["re:ext-[0-9]{4}"]),
        policy("seven", "critical", &["7"]),
        policy("managers", "lonely", &["99"]),
        policy("quiet ones", "quiet", &["98"]),
        policy("four digits", "inform", &["re:[0-9]{4}"]),
        format!(
            "[[application]]\nname = \"vpn\"\napi_key_file = \"{}\"\n",
            key_file.display()
        ),
    ]
    .join("\n")
}

struct World {
    cs: Countersign,
    smtp: SmtpServer,
    _slapd: Slapd,
    _keys: tempfile::TempDir,
}

async fn world() -> World {
    let slapd = Slapd::start();
    let smtp = SmtpServer::start(SmtpOptions::default());
    let keys = tempfile::TempDir::new().unwrap();
    let key_file = keys.path().join("vpn.key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        extra: approval_config(&slapd, &key_file),
        ..Setup::default()
    })
    .await;
    World {
        cs,
        smtp,
        _slapd: slapd,
        _keys: keys,
    }
}

impl World {
    /// `POST /api/v1/logins` with the vpn key: `name`'s password login.
    async fn login(&self, name: &str, password: &str) -> Answer {
        let r = self
            .cs
            .http
            .post(format!("{}/api/v1/logins", self.cs.base))
            .bearer_auth(API_KEY)
            .json(&json!({"authentication_id": format!("u:{name}"), "password": password}))
            .send()
            .await
            .unwrap();
        Countersign::answer(r).await
    }

    /// `countersign <args>` on the running server's configuration.
    async fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.cs.dir.path().join("countersign.toml");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_countersign(&config, &args, "")
        })
        .await
        .unwrap()
    }

    /// The audit records of logins (`audit --action login --json`), newest first.
    async fn login_audit(&self) -> Vec<Value> {
        let (ok, out, err) = self
            .cli(&["audit", "--action", "login", "--json", "--limit", "0"])
            .await;
        assert!(ok, "{out}{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn assert_denied(a: &Answer, status: u16, reason: &str) {
    assert_eq!(a.status, status, "{}", a.json);
    assert_eq!(a.json["outcome"], "denied", "{}", a.json);
    assert_eq!(a.json["reason"], reason, "{}", a.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_test_picks_the_first_matching_policy_and_the_approver_from_the_directory() {
    let w = world().await;
    let bob = format!("Bob Manager (uid=bob,{BASE}) <bob@example.com>");
    let secops = "would ask: default recipient <secops@example.com> by email";
    // (identity, may log in, what the explanation must say)
    let cases: Vec<(&str, bool, Vec<String>)> = vec![
        // Multi-valued: 4711 matches only the later "four digits", 42 the earlier "finance".
        (
            "u:alice",
            true,
            vec![
                "policy: finance".into(),
                "profile: critical (approval".into(),
                format!("would ask: {bob} by email"),
            ],
        ),
        // A wildcard, in another case than written.
        (
            "u:dave",
            true,
            vec![
                "policy: lab".into(),
                "note: no manager found".into(),
                secops.into(),
            ],
        ),
        // An anchored regular expression.
        (
            "u:frank",
            true,
            vec![
                "policy: external".into(),
                "note: no manager found".into(),
                secops.into(),
            ],
        ),
        // The manager DN names no entry.
        (
            "u:carol",
            true,
            vec![
                "policy: seven".into(),
                "note: no manager found".into(),
                secops.into(),
            ],
        ),
        // Nobody to ask and no default recipient.
        (
            "u:bob",
            false,
            vec![
                "policy: managers".into(),
                "profile: lonely (approval".into(),
                "note: no default recipient".into(),
                "nobody can be asked: the login would be denied (approver_unreachable)".into(),
            ],
        ),
        // Nobody to tell: the login goes through anyway.
        (
            "u:o'brien",
            true,
            vec![
                "policy: quiet ones".into(),
                "profile: quiet (information".into(),
                "nobody can be informed: the login goes through, the audit says so".into(),
            ],
        ),
        // No policy matches.
        (
            "u:ab",
            false,
            vec!["denied: no approval policy matches the user (no_matching_policy)".into()],
        ),
    ];
    for (identity, may, wants) in cases {
        let (ok, out, err) = w
            .cli(&["policy", "test", identity, "--application", "vpn"])
            .await;
        assert_eq!(ok, may, "{identity}: {out}{err}");
        for want in &wants {
            assert!(
                out.contains(want.as_str()),
                "{identity}: {want}\n{out}{err}"
            );
        }
    }
    assert!(w.smtp.messages().is_empty(), "policy test sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_mail_goes_to_the_ldap_manager_or_else_the_default_recipient() {
    let w = world().await;
    // Alice: her manager's entry gives bob's mail; the real message carries the link.
    let r = w.login("alice", "alice-password").await;
    assert_eq!(r.status, 202, "{}", r.json);
    let alice_login = r.json["login"].as_str().unwrap().to_owned();
    let mail = tokio::task::block_in_place(|| w.smtp.wait_for(1)).remove(0);
    assert_eq!(mail.rcpt_tos, vec!["bob@example.com"]);
    let body = text_of(&mail);
    assert!(
        body.contains("Alice Liddell (alice) asks to sign in to vpn from 127.0.0.1"),
        "{body}"
    );
    assert!(body.contains("https://mfa.example.test/approve/"), "{body}");
    assert_eq!(link_token(&mail).len(), 64);

    // Carol (dangling DN), dave (himself) and frank (outside the base): the default recipient.
    for (n, name) in ["carol", "dave", "frank"].iter().enumerate() {
        let r = w.login(name, &format!("{name}-password")).await;
        assert_eq!(r.status, 202, "{name}: {}", r.json);
        let mail = tokio::task::block_in_place(|| w.smtp.wait_for(n + 2)).remove(n + 1);
        assert_eq!(mail.rcpt_tos, vec!["secops@example.com"], "{name}");
        assert!(text_of(&mail).contains(&format!("({name}) asks")), "{name}");
    }

    // The audit names the policy and profile of each; alice's request is the one pending.
    let audit = w.login_audit().await;
    let of = |name: &str| {
        audit
            .iter()
            .find(|r| r["identity"] == format!("u:{name}"))
            .unwrap_or_else(|| panic!("no login of {name}: {audit:?}"))
            .clone()
    };
    for (name, policy) in [
        ("alice", "finance"),
        ("carol", "seven"),
        ("dave", "lab"),
        ("frank", "external"),
    ] {
        let r = of(name);
        assert_eq!(
            (r["policy"].as_str(), r["profile"].as_str()),
            (Some(policy), Some("critical")),
            "{r}"
        );
    }
    assert_eq!(of("alice")["login"], alice_login.as_str());
    assert_eq!(of("alice")["recipient"], "bob@example.com");
    assert_eq!(of("dave")["recipient"], "secops@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_to_ask_refuses_an_approval_and_nobody_to_tell_lets_the_user_in() {
    let w = world().await;
    // Bob has no manager and his profile no default recipient: refused, with the reason.
    let r = w.login("bob", "bob-password").await;
    assert_denied(&r, 403, "approver_unreachable");

    // O'Brien's information profile has nobody to tell either: in at once all the same.
    let r = w.login("o'brien", "obrien-password").await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["status"], "granted");
    assert_eq!(r.json["user"]["username"], "o'brien");
    assert_eq!(r.json["user"]["display_name"], "Pat O'Brien");

    let audit = w.login_audit().await;
    let of = |name: &str| {
        audit
            .iter()
            .find(|r| r["identity"] == format!("u:{name}"))
            .unwrap_or_else(|| panic!("no login of {name}: {audit:?}"))
            .clone()
    };
    let bob = of("bob");
    assert_eq!(bob["outcome"], "failure");
    assert!(
        bob["reason"]
            .as_str()
            .unwrap()
            .contains("no default recipient"),
        "{bob}"
    );
    let obrien = of("o'brien");
    assert_eq!(obrien["outcome"], "success");
    assert_eq!(
        (obrien["policy"].as_str(), obrien["profile"].as_str()),
        (Some("quiet ones"), Some("quiet"))
    );
    assert!(
        obrien["reason"]
            .as_str()
            .unwrap()
            .contains("nobody could be informed"),
        "{obrien}"
    );
    // Nothing was sent or queued for either of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.smtp.messages().is_empty());
    assert!(
        w.cs.app
            .store
            .list_messages(None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_user_is_refused_only_after_a_right_password() {
    let w = world().await;
    // ab has no departmentNumber: no policy matches, said only to someone who knows the password.
    let r = w.login("ab", "ab-password").await;
    assert_denied(&r, 403, "no_matching_policy");

    // A wrong password, an unknown user, and a matched user with a wrong password: one answer.
    let wrong = w.login("ab", "nope").await;
    assert_denied(&wrong, 401, "invalid_credentials");
    for (name, password) in [("nobody", "nobody-password"), ("alice", "nope")] {
        let r = w.login(name, password).await;
        assert_eq!((r.status, &r.json), (401, &wrong.json), "{name}");
    }
    // A locked account is the same uniform refusal, not a policy answer.
    let r = w.login("erin", "erin-password").await;
    assert_eq!((r.status, &r.json), (401, &wrong.json), "erin");
    assert!(w.smtp.messages().is_empty());

    // The audit has the real reasons.
    let audit = w.login_audit().await;
    let mut ab: Vec<&str> = audit
        .iter()
        .filter(|r| r["identity"] == "u:ab")
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    ab.sort_unstable();
    assert_eq!(
        ab,
        [
            "login denied: no approval policy matches the user",
            "wrong static password"
        ]
    );
}
