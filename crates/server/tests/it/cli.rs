//! The `countersign` binary's user and audit commands, run as an operator would.

use crate::fixtures::{Setup, run_countersign};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::TempDir::new().unwrap();
        let extra = "[[delivery_mechanism]]\nname = \"File\"\ntype = \"file\"\ndirectory = \"outbox\"\nprint = false\n";
        let setup = Setup {
            extra: extra.into(),
            default_mechanisms: vec!["File"],
            ..Setup::default()
        };
        std::fs::write(dir.path().join("countersign.toml"), setup.config()).unwrap();
        Cli { dir }
    }

    /// Runs countersign with `args`, feeding `stdin`; returns (success, stdout, stderr).
    fn run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        run_countersign(&self.dir.path().join("countersign.toml"), args, stdin)
    }
}

#[test]
fn users_are_managed_from_the_command_line() {
    let cli = Cli::new();
    let (ok, out, err) = cli.run(
        &[
            "user",
            "add",
            "alice",
            "--mail",
            "alice@example.com",
            "--mobile",
            "+15550100001",
            "--display-name",
            "Alice",
            "--attr",
            "memberOf=cn=dba,ou=groups,dc=example,dc=com",
            "--attr",
            "memberOf=cn=ops,ou=groups,dc=example,dc=com",
            "--sponsor-name",
            "Bob",
            "--sponsor-email",
            "bob@example.com",
            "--preferred-mechanism",
            "File",
        ],
        "alice-password\n",
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "added alice (uid=alice,ou=people,dc=example,dc=com)"
    );

    let (ok, _, err) = cli.run(&["user", "add", "alice"], "another-password\n");
    assert!(!ok);
    assert!(err.contains("exists already"), "{err}");
    let (ok, _, err) = cli.run(&["user", "add", "bob"], "short\n");
    assert!(!ok);
    assert!(err.contains("at least 8 characters"), "{err}");

    let (_, out, _) = cli.run(&["user", "show", "alice"], "");
    for expect in [
        "dn: uid=alice,ou=people,dc=example,dc=com",
        "mail: alice@example.com",
        "memberof: cn=dba,ou=groups,dc=example,dc=com, cn=ops,ou=groups,dc=example,dc=com",
        "sponsor: Bob <bob@example.com>\n",
        "preferred mechanisms: File",
        "state: active",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in\n{out}");
    }

    let (ok, _, err) = cli.run(&["user", "lock", "alice", "--for", "10000y"], "");
    assert!(!ok && err.contains("at most 100 years"), "{err}");
    let (ok, out, _) = cli.run(&["user", "lock", "alice", "--for", "1h"], "");
    assert!(ok && out.contains("locked until"), "{out}");
    let (_, out, _) = cli.run(&["user", "list"], "");
    assert!(
        out.contains("alice") && out.contains("locked until"),
        "{out}"
    );
    let (ok, out, _) = cli.run(&["user", "unlock", "alice"], "");
    assert!(ok && out.contains("active"), "{out}");
    let (ok, _, _) = cli.run(&["user", "set", "alice", "--disable"], "");
    assert!(ok);
    let (_, out, _) = cli.run(&["user", "show", "alice"], "");
    assert!(out.contains("state: disabled"), "{out}");
    // A value with a line break and an escape sequence cannot forge a line or repaint.
    let (ok, _, _) = cli.run(
        &[
            "user",
            "set",
            "alice",
            "--display-name",
            "Al\nstate: active\u{1b}[2J",
        ],
        "",
    );
    assert!(ok);
    let (_, out, _) = cli.run(&["user", "show", "alice"], "");
    assert!(
        out.contains("display name: Al\\nstate: active\\u{1B}[2J"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'));
    let (ok, _, _) = cli.run(
        &[
            "user",
            "set",
            "alice",
            "--enable",
            "--mail",
            "a2@example.com",
        ],
        "",
    );
    assert!(ok);
    let (ok, out, _) = cli.run(&["user", "set-password", "alice"], "new-alice-password\n");
    assert!(ok, "{out}");
    let (ok, out, _) = cli.run(&["user", "delete", "alice"], "");
    assert!(ok && out.contains("deleted alice"));
    let (ok, _, err) = cli.run(&["user", "show", "alice"], "");
    assert!(!ok && err.contains("no user named \"alice\""), "{err}");
}

#[tokio::test]
async fn audit_shows_attempts_newest_first_with_filters_and_no_secrets() {
    let cli = Cli::new();
    let (ok, _, err) = cli.run(
        &["user", "add", "alice", "--mail", "alice@example.com"],
        "alice-password\n",
    );
    assert!(ok, "{err}");

    // Serve from the same files and make a few attempts.
    let config =
        countersign::config::Config::load(&cli.dir.path().join("countersign.toml")).unwrap();
    let app = countersign::app::App::build(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = countersign::app::Shutdown::new();
    let server = tokio::spawn(app.http_server().serve(listener, stop.subscribe()));
    let http = reqwest::Client::new();
    let post =
        |path: &str, body: serde_json::Value| http.post(format!("{base}{path}")).json(&body).send();
    post(
        "/api/v1/otp/deliver",
        serde_json::json!({"authentication_id": "u:alice", "static_password": "wrong-password"}),
    )
    .await
    .unwrap();
    let ok = post(
        "/api/v1/otp/deliver",
        serde_json::json!({"authentication_id": "u:alice", "static_password": "alice-password"}),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let outbox = cli.dir.path().join("outbox");
    let file = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let otp = crate::fixtures::find_digits(&std::fs::read_to_string(file).unwrap(), 6).unwrap();
    let v = post(
        "/api/v1/otp/verify",
        serde_json::json!({"authentication_id": "u:alice", "otp": otp}),
    )
    .await
    .unwrap();
    assert_eq!(v.status(), 200);
    server.abort();

    let (ok, out, err) = cli.run(&["audit"], "");
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("verify") && lines[0].contains("success"),
        "{out}"
    );
    assert!(
        lines[1].contains("deliver") && lines[1].contains("via File to alice@example.com"),
        "{out}"
    );
    assert!(
        lines[2].contains("deliver")
            && lines[2].contains("failure")
            && lines[2].contains("wrong static password"),
        "{out}"
    );
    assert!(
        !out.contains(&otp) && !out.contains("alice-password"),
        "secrets in the audit output:\n{out}"
    );

    let (_, out, _) = cli.run(&["audit", "--outcome", "failure"], "");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (_, out, _) = cli.run(&["audit", "--action", "verify", "--json"], "");
    let rec: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(rec["user_dn"], "uid=alice,ou=people,dc=example,dc=com");
    assert_eq!(rec["client"], "127.0.0.1");
    let (_, out, _) = cli.run(&["audit", "--user", "nobody"], "");
    assert!(out.is_empty(), "{out}");
    let (ok, _, err) = cli.run(&["audit", "--action", "dance"], "");
    assert!(!ok && err.contains("--action"), "{err}");
}

/// Writes audit records straight into the configured store.
async fn append_audit(cli: &Cli, records: &[countersign_core::audit::AuditRecord]) {
    let config =
        countersign::config::Config::load(&cli.dir.path().join("countersign.toml")).unwrap();
    let app = countersign::app::App::build(config).unwrap();
    for r in records {
        app.store.append_audit(r).await.unwrap();
    }
}

fn record(identity: &str, reason: &str) -> countersign_core::audit::AuditRecord {
    use countersign_core::audit::{AuditAction, AuditOutcome, AuditRecord};
    AuditRecord {
        at: countersign_core::model::Timestamp(1_800_000_000_000),
        action: AuditAction::Deliver,
        front: "http".into(),
        identity: identity.into(),
        user_dn: None,
        client: Some("192.0.2.7".into()),
        outcome: AuditOutcome::Failure,
        reason: reason.into(),
        mechanism: None,
        recipient: None,
        login: Default::default(),
    }
}

#[tokio::test]
async fn audit_output_cannot_be_forged_by_control_characters() {
    let cli = Cli::new();
    // An identity that tries to end its line and print a record of its own, clear the screen
    // and reverse the text after it; a reason with a C1 CSI and DEL.
    let forged = "u:mallory\n2027-01-15T08:00:00Z  verify  success http 10.0.0.1        u:alice  ok\u{1b}[2J\u{202e}\\";
    append_audit(&cli, &[record(forged, "unknown user\u{9b}31m\u{7f}\r")]).await;
    let (ok, out, err) = cli.run(&["audit"], "");
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "one record, one line:\n{out}");
    assert!(
        !out.trim_end_matches('\n')
            .chars()
            .any(|c| c.is_control() || c == '\u{202e}'),
        "raw control characters in {out:?}"
    );
    assert!(
        out.contains("u:mallory\\n2027-01-15T08:00:00Z  verify  success http 10.0.0.1        u:alice  ok\\u{1B}[2J\\u{202E}\\\\"),
        "{out}"
    );
    assert!(out.contains("unknown user\\u{9B}31m\\u{7F}\\r"), "{out}");
    // JSON output keeps the identity exactly, escaped by JSON itself.
    let (ok, out, _) = cli.run(&["audit", "--json"], "");
    assert!(ok);
    let rec: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(rec["identity"], forged);
}

#[tokio::test]
async fn audit_into_a_closed_pipe_exits_quietly() {
    let cli = Cli::new();
    // More than a pipe holds (64 KiB on Linux), so the writer meets the closed pipe.
    let long = "u:".to_owned() + &"x".repeat(1000);
    let records: Vec<_> = (0..300).map(|_| record(&long, "unknown user")).collect();
    append_audit(&cli, &records).await;
    let out = std::process::Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            "\"$0\" --config \"$1\" audit --limit 0 | head -1",
            env!("CARGO_BIN_EXE_countersign"),
        ])
        .arg(cli.dir.path().join("countersign.toml"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert_eq!(stderr, "", "nothing on standard error");
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.contains(&long), "{stdout}");
}
