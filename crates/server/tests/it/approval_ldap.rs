//! Approved OTP over LDAP with real parts: OpenLDAP's `ldapwhoami` binding to countersign, the
//! manager's message arriving at a real SMTP server, decisions by the `countersign` binary as an
//! operator would take them, and restarts over the same database.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use countersign_core::Secret;
use countersign_core::approval::{ApprovalState, DecidedBy};
use countersign_core::model::{Dn, Sponsor, User};
use countersign_core::outbox::OutboxState;
use countersign_core::ports::{ApprovalQuery, LocalUser};

use crate::fixtures::harness::{Countersign, Setup, run_countersign};
use crate::fixtures::smtp::{Mail, SmtpOptions, SmtpServer, closed_port};

pub const API_KEY: &str = "vpn-portal-api-key-0123456789abcdef";

/// Two approval profiles chosen by policies on a local attribute: contractors need their
/// sponsor's approval, everyone else's sponsor is informed. Both send through the SMTP profile.
pub fn approval_config(key_file: &Path, approval_wait: &str) -> (String, String) {
    let extra = format!(
        r#"
[[approval_profile]]
name = "critical"
type = "approval"
server = "https://mfa.example.test"
delivery = "email"
mail_profile = "smtp"
default_recipient = "secops@example.com"
fallback_directories = ["local"]
link_expiration = 10

[[approval_profile]]
name = "inform"
type = "information"
delivery = "email"
mail_profile = "smtp"
fallback_directories = ["local"]

[[policy]]
name = "contractors"
profile = "critical"
directory = "local"
attribute = "employeeType"
values = ["contractor"]

[[policy]]
name = "everyone else"
profile = "inform"
directory = "local"
attribute = "uid"
values = ["*"]

[approval]
grace_period = "2m"

[outbox]
first_retry = "1s"
max_retry_delay = "1s"

[[application]]
name = "vpn"
api_key_file = "{}"
"#,
        key_file.display()
    );
    let ldap = format!("application = \"vpn\"\napproval_wait = \"{approval_wait}\"\n");
    (extra, ldap)
}

/// A local user with a password `NAME-password`, sponsored by Bob, with `employeeType`.
pub async fn add_user(cs: &Countersign, name: &str, employee_type: &str) {
    let mut user = User::new(
        "local",
        Dn::new(format!("uid={name},ou=people,dc=example,dc=com")),
        name,
    );
    user.display_name = Some(format!("{name} (test)"));
    user.mail = vec![format!("{name}@example.com")];
    user.attributes
        .insert("employeetype".into(), vec![employee_type.into()]);
    user.sponsor = Some(Sponsor {
        name: Some("Bob Sponsor".into()),
        email: Some("bob@example.com".into()),
        phone: None,
    });
    let password_hash =
        countersign::passwords::hash(&Secret::new(format!("{name}-password"))).unwrap();
    cs.app
        .store
        .insert_local_user(&LocalUser {
            user,
            password_hash,
        })
        .await
        .unwrap();
}

/// countersign with the approval configuration, an SMTP profile on `smtp_port`, and LDAP.
pub async fn start(smtp_port: u16, approval_wait: &str) -> (Countersign, tempfile::TempDir) {
    let keys = tempfile::TempDir::new().unwrap();
    let key_file = keys.path().join("vpn.key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let (extra, ldap_extra) = approval_config(&key_file, approval_wait);
    let cs = Countersign::start(&Setup {
        smtp: Some(Setup::smtp_plain(smtp_port)),
        ldap: true,
        extra,
        ldap_extra,
        ..Setup::default()
    })
    .await;
    add_user(&cs, "dora", "contractor").await;
    add_user(&cs, "ivan", "staff").await;
    (cs, keys)
}

/// The message body with quoted-printable soft breaks undone.
pub fn text_of(mail: &Mail) -> String {
    mail.body().replace("=\n", "").replace("=3D", "=")
}

/// The approval link's token in a manager's mail.
pub fn link_token(mail: &Mail) -> String {
    let body = text_of(mail);
    let start = body.find("/approve/").expect("an approval link") + "/approve/".len();
    body[start..start + 64].to_owned()
}

/// The manager's decision through the link, straight through the use case.
async fn decide(cs: &Countersign, token: &str, approve: bool) {
    let by = DecidedBy {
        channel: "link".into(),
        ..Default::default()
    };
    cs.app
        .login
        .decide_by_link(token, approve, by)
        .await
        .unwrap();
}

/// OpenLDAP's `ldapwhoami`, simple bind as `name` with `password`.
fn ldapwhoami_command(cs: &Countersign, name: &str, password: &str) -> Command {
    let mut command = Command::new("ldapwhoami");
    command.args([
        "-x",
        "-H",
        &format!("ldap://{}", cs.ldap_addr()),
        "-D",
        &format!("uid={name},ou=people,dc=example,dc=com"),
        "-w",
        password,
    ]);
    command
}

/// `ldapwhoami` as `name` with its right password, on a thread: (exit code, stdout + stderr).
fn ldapwhoami(cs: &Countersign, name: &str) -> std::thread::JoinHandle<(i32, String)> {
    let mut command = ldapwhoami_command(cs, name, &format!("{name}-password"));
    std::thread::spawn(move || {
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    })
}

/// Waits (at most 10 s) until the outbox holds a message in `state`.
async fn wait_for_message(cs: &Countersign, state: OutboxState, never: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cs
        .app
        .store
        .list_messages(Some(state), 10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "{never}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(handle: std::thread::JoinHandle<(i32, String)>) -> (i32, String) {
    tokio::task::spawn_blocking(move || handle.join().unwrap())
        .await
        .unwrap()
}

/// Moves the test clock on until the held bind gives up waiting (it reads the clock when its
/// wait starts, which may be after the mail arrived), and returns its result.
async fn outwait(cs: &Countersign, bind: std::thread::JoinHandle<(i32, String)>) -> (i32, String) {
    for _ in 0..100 {
        if bind.is_finished() {
            break;
        }
        cs.clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    join(bind).await
}

async fn pending_ids(cs: &Countersign) -> Vec<String> {
    cs.app
        .store
        .list_approvals(&ApprovalQuery {
            state: Some(ApprovalState::Pending),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ldapwhoami_is_held_until_an_operator_approves_from_the_command_line() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "30s").await;
    let bind = ldapwhoami(&cs, "dora");
    // The sponsor's mail arrives while the bind is held.
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    assert_eq!(mail.rcpt_tos, vec!["bob@example.com"]);
    let body = text_of(&mail);
    assert!(
        body.contains("dora (test) (dora) asks to sign in to vpn from 127.0.0.1"),
        "{body}"
    );
    assert!(body.contains("https://mfa.example.test/approve/"), "{body}");
    assert!(!bind.is_finished(), "the bind waits for the decision");
    let ids = pending_ids(&cs).await;
    assert_eq!(ids.len(), 1);

    // Another process decides (mail down, say): the held bind learns of it within seconds.
    let config = cs.dir.path().join("countersign.toml");
    let decided = Instant::now();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run_countersign(&config, &["approvals", "approve", &ids[0]], "")
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("approved"), "{out}");
    let (code, text) = join(bind).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("dn:uid=dora,ou=people,dc=example,dc=com"),
        "{text}"
    );
    assert!(decided.elapsed() < Duration::from_secs(10));
    // The decision names the operator and the channel.
    let records = cs
        .app
        .store
        .list_approvals(&ApprovalQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let by = records[0].decided_by.clone().unwrap();
    assert_eq!(by.channel, "cli");
    assert!(by.operator.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bind_held_too_long_fails_as_pending_and_a_retry_after_approval_gets_in() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "1s").await;
    let first = ldapwhoami(&cs, "dora");
    tokio::task::block_in_place(|| smtp.wait_for(1));
    // The held wait runs out (the test clock is moved past it).
    let (code, text) = outwait(&cs, first).await;
    assert_eq!(code, 49, "{text}");
    assert!(text.contains("login pending"), "{text}");

    // A retry while pending joins the request: no second message.
    let second = ldapwhoami(&cs, "dora");
    let (code, _) = outwait(&cs, second).await;
    assert_eq!(code, 49);
    assert_eq!(pending_ids(&cs).await.len(), 1);

    let token = link_token(&smtp.messages()[0]);
    decide(&cs, &token, true).await;
    // Within the grace period the retry gets in at once, and the password is still checked.
    let (code, text) = join(ldapwhoami(&cs, "dora")).await;
    assert_eq!(code, 0, "{text}");
    let wrong = ldapwhoami_command(&cs, "dora", "nope").output().unwrap();
    assert_eq!(wrong.status.code(), Some(49));
    assert_eq!(smtp.messages().len(), 1, "one message for all of it");
    // Past the grace period a new approval is needed.
    cs.clock.advance(Duration::from_secs(121));
    let held = ldapwhoami(&cs, "dora");
    tokio::task::block_in_place(|| smtp.wait_for(2));
    assert_eq!(outwait(&cs, held).await.0, 49);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_and_an_undeliverable_approval_message_refuse_the_bind_with_their_reason() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "30s").await;
    let bind = ldapwhoami(&cs, "dora");
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    decide(&cs, &link_token(&mail), false).await;
    let (code, text) = join(bind).await;
    assert_eq!(code, 49, "{text}");
    assert!(text.contains("rejected"), "{text}");
    drop(smtp);
    // Within the rejection cooldown the bind is refused as rejected without asking again.
    let (code, text) = join(ldapwhoami(&cs, "dora")).await;
    assert_eq!(code, 49, "{text}");
    assert!(text.contains("rejected"), "{text}");
    cs.clock.advance(Duration::from_secs(300));

    // The mail server is gone: the approval cannot be asked for, and the bind says so at once.
    let started = Instant::now();
    let (code, text) = join(ldapwhoami(&cs, "dora")).await;
    assert_eq!(code, 49, "{text}");
    assert!(text.contains("approval_not_sent"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let cancelled = cs
        .app
        .store
        .list_approvals(&ApprovalQuery {
            state: Some(ApprovalState::Cancelled),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn information_mode_does_not_wait_for_a_mail_outage_and_loses_nothing_across_a_restart() {
    let port = closed_port();
    let (cs, _keys) = start(port, "30s").await;
    // Ivan is informed about, not held: the bind succeeds at once although SMTP is down.
    let started = Instant::now();
    let (code, text) = join(ldapwhoami(&cs, "ivan")).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The worker tried and failed; the message waits in the outbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = cs.app.store.list_messages(None, 10).await.unwrap();
        assert_eq!(m.len(), 1);
        if m[0].attempts >= 1 {
            assert_eq!(m[0].state, OutboxState::Queued);
            assert!(m[0].last_error.is_some());
            break;
        }
        assert!(Instant::now() < deadline, "the worker never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stop countersign, bring the mail server up, start again over the same database.
    let (dir, clock) = (cs.dir.clone(), cs.clock.clone());
    drop(cs);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let smtp = SmtpServer::start(SmtpOptions {
        port: Some(port),
        ..Default::default()
    });
    clock.advance(Duration::from_secs(5));
    let again = Countersign::start_in(dir, clock).await;
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    assert_eq!(mail.rcpt_tos, vec!["bob@example.com"]);
    assert!(
        text_of(&mail).contains("ivan (test) (ivan) signed in to vpn"),
        "{}",
        text_of(&mail)
    );
    wait_for_message(&again, OutboxState::Sent, "never marked sent").await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pending_request_survives_a_restart_and_is_approved_afterwards() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "1s").await;
    let held = ldapwhoami(&cs, "dora");
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    assert_eq!(outwait(&cs, held).await.0, 49);
    let (dir, clock) = (cs.dir.clone(), cs.clock.clone());
    drop(cs);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = Countersign::start_in(dir, clock).await;
    let view = again
        .app
        .login
        .approval_view(&link_token(&mail))
        .await
        .unwrap();
    assert_eq!(view.state, ApprovalState::Pending);
    decide(&again, &link_token(&mail), true).await;
    let (code, text) = join(ldapwhoami(&again, "dora")).await;
    assert_eq!(code, 0, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_test_explains_without_sending_anything() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "30s").await;
    let config = cs.dir.path().join("countersign.toml");
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run_countersign(
            &config,
            &["policy", "test", "u:dora", "--application", "vpn"],
            "",
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    for want in [
        "policy: contractors",
        "profile: critical (approval",
        "would ask: Bob Sponsor <bob@example.com> by email",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert!(smtp.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_list_show_reject_and_cancel_requests_and_requeue_failed_messages() {
    let port = closed_port();
    let (cs, _keys) = start(port, "1s").await;
    let config = cs.dir.path().join("countersign.toml");
    let cli = |args: Vec<String>| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_countersign(&config, &args, "")
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();

    // SMTP is down: dora's approval cannot be asked for; ivan's information message waits.
    assert_eq!(join(ldapwhoami(&cs, "dora")).await.0, 49);
    assert_eq!(join(ldapwhoami(&cs, "ivan")).await.0, 0);
    let (ok, out, err) = cli(args(&["approvals", "list", "--json"])).await.unwrap();
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "cancelled");
    assert_eq!(listed[0]["username"], "dora");

    // A pending one, with the mail server back, decided by the operator.
    let smtp = SmtpServer::start(SmtpOptions {
        port: Some(port),
        ..Default::default()
    });
    let held = ldapwhoami(&cs, "dora");
    tokio::task::block_in_place(|| smtp.wait_for(1));
    let id = pending_ids(&cs).await.remove(0);
    let (ok, out, _) = cli(args(&["approvals", "show", &id])).await.unwrap();
    assert!(ok);
    for want in [
        "state: pending",
        "username: dora",
        "application: vpn",
        "profile: critical",
        "recipient: bob@example.com",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }
    let (ok, out, err) = cli(args(&["approvals", "reject", &id])).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("rejected"), "{out}");
    let (code, text) = join(held).await;
    assert_eq!(code, 49);
    assert!(text.contains("rejected"), "{text}");
    let (ok, _, err) = cli(args(&["approvals", "cancel", &id])).await.unwrap();
    assert!(!ok);
    assert!(err.contains("already rejected"), "{err}");
    let (ok, _, err) = cli(args(&["approvals", "approve", "no-such-id"]))
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("no such login"), "{err}");
    drop(smtp);

    // Ivan's message: given up after a day of failures, listed as failed, queued again.
    cs.clock.advance(Duration::from_secs(25 * 3600));
    wait_for_message(&cs, OutboxState::Failed, "never given up").await;
    let (ok, out, _) = cli(args(&["outbox", "list", "--state", "failed"]))
        .await
        .unwrap();
    assert!(ok);
    assert!(
        out.contains("bob@example.com") && out.contains("last error"),
        "{out}"
    );
    let (ok, out, err) = cli(args(&["outbox", "retry", "--all-failed"]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("1 message(s) queued again"), "{out}");
    let (ok, _, err) = cli(args(&["outbox", "retry"])).await.unwrap();
    assert!(!ok);
    assert!(err.contains("--all-failed"), "{err}");
}

/// Approves through the manager's page as a browser would: the page, its hidden field, the
/// form posted from the page's own origin.
async fn approve_on_page(cs: &Countersign, token: &str) {
    let url = format!("{}/approve/{token}", cs.base);
    let page = cs
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::http_approval::csrf_of(&page);
    let response = cs
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(format!("decision=approve&csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn ldapwhoami_blocks_until_the_emailed_link_is_approved_on_the_page() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "30s").await;
    let bind = ldapwhoami(&cs, "dora");
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    // Opening the link (as a mail scanner would) decides nothing.
    let url = format!("{}/approve/{}", cs.base, link_token(&mail));
    assert_eq!(
        cs.http.get(&url).send().await.unwrap().status().as_u16(),
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!bind.is_finished());
    approve_on_page(&cs, &link_token(&mail)).await;
    let (code, text) = join(bind).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("dn:uid=dora,ou=people,dc=example,dc=com"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_while_held_leaves_the_request_pending_for_its_next_try() {
    let smtp = SmtpServer::start(SmtpOptions::default());
    let (cs, _keys) = start(smtp.port, "30s").await;
    let mut client = ldapwhoami_command(&cs, "dora", "dora-password")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mail = tokio::task::block_in_place(|| smtp.wait_for(1)).remove(0);
    client.kill().unwrap();
    client.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pending_ids(&cs).await.len(), 1, "still pending");
    approve_on_page(&cs, &link_token(&mail)).await;
    // The next try from the same client gets in within the grace period, with no new message.
    let (code, text) = join(ldapwhoami(&cs, "dora")).await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(smtp.messages().len(), 1);
}
