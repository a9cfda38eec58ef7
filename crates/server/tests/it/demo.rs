//! `countersign demo` as a newcomer meets it: start it, then run the walkthrough it prints,
//! literally, in one bash shell, and check each step does what it says: Deliver OTP over HTTP,
//! over LDAP with StartTLS and LDAPS verified against the demo's own CA, and Approved OTP (an
//! information login, an approval login through the manager's link, an LDAP bind held until
//! approved).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `countersign demo` in `dir`, on free ports, its stdout piped.
pub(crate) fn start_demo(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "demo",
            "--http",
            "127.0.0.1:0",
            "--ldap",
            "127.0.0.1:0",
            "--ldaps",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads the demo's standard output up to the end of its walkthrough.
pub(crate) fn banner(demo: &mut Child) -> (String, BufReader<std::process::ChildStdout>) {
    let mut text = String::new();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    while !text.contains("Press Ctrl-C") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo stopped early:\n{text}"
        );
        text += &line;
    }
    (text, out)
}

/// The word after `prefix` in `text` (an address, a key).
pub(crate) fn after(text: &str, prefix: &str) -> String {
    let start = text.find(prefix).unwrap() + prefix.len();
    text[start..]
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

/// Each numbered step's indented lines, with `\` continuations kept for bash.
fn steps_of(text: &str) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.chars().next().is_some_and(|c| c.is_ascii_digit()) && line.contains(". ") {
            steps.push(String::new());
        } else if let (Some(step), true) = (steps.last_mut(), line.starts_with("  ")) {
            step.push_str(line.trim_start());
            step.push('\n');
        }
    }
    steps
}

/// Runs `script` in bash; a step that hangs fails the test instead of blocking it.
fn run_bash(script: &str) -> String {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(150) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        start.elapsed() <= std::time::Duration::from_secs(150),
        "the walkthrough hung:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_walkthrough_works_as_printed() {
    let dir = tempfile::TempDir::new().unwrap();
    let home = dir.path().join("demo");
    let mut demo = start_demo(&home);
    let (text, _out) = banner(&mut demo);
    // Its folder (database, keys, messages with codes) is its owner's only, and so are the API
    // key and the TLS files in it.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home), 0o700);
        for f in ["demo-portal.key", "ca.pem", "server.pem", "server.key"] {
            assert_eq!(mode(&home.join(f)), 0o600, "{f}");
        }
    }
    let api_key = after(&text, "API key: ");
    assert_eq!(api_key.len(), 64, "{text}");

    let steps = steps_of(&text);
    assert_eq!(steps.len(), 16, "{text}");
    let script: String = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("echo '=== step {}'\n{s}echo\n", i + 1))
        .collect();
    let output = run_bash(&script);

    // Deliver OTP with TLS required: over the plain LDAP port it is refused.
    let ldap = after(&text, "ldap://");
    let value = after(&text, "'1.3.6.1.4.1.30221.2.6.24::");
    let plain = Command::new("ldapexop")
        .args(["-x", "-H", &format!("ldap://{ldap}")])
        .arg(format!(
            "1.3.6.1.4.1.30221.2.6.24::{}",
            value.trim_end_matches('\'')
        ))
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&plain.stderr).into_owned();
    let _ = demo.kill();
    let _ = demo.wait();
    let step = |n: usize| -> &str {
        let start = output.find(&format!("=== step {n}\n")).unwrap();
        let end = output
            .find(&format!("=== step {}\n", n + 1))
            .unwrap_or(output.len());
        &output[start..end]
    };
    check_otp_steps(&step, &output);
    assert!(refused.contains("Confidentiality required"), "{refused}");
    check_approved_otp_steps(&step, &output);
    // Bob's notice of step 9 (the walkthrough shows it after a second; it is sent in the
    // background, so it is checked here, where it has surely been written).
    let notices: String = std::fs::read_dir(home.join("outbox"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .filter(|m| m.contains("Mechanism: ManagerMail\nTo: bob@example.com\n"))
        .collect();
    assert!(
        notices.contains("Alice Example (alice) signed in to demo-portal from 127.0.0.1"),
        "{notices}"
    );
    check_a_restart_keeps_keys_and_certificates(&home, &api_key);
}

fn check_otp_steps<'a>(step: &impl Fn(usize) -> &'a str, output: &str) {
    assert!(
        step(1).contains(r#""delivery_mechanism":"Email""#),
        "{output}"
    );
    assert!(
        step(2).contains(r#""user_dn":"uid=alice,ou=people,dc=example,dc=com""#),
        "{output}"
    );
    assert!(step(3).contains("invalid-credentials"), "{output}");
    assert!(
        step(4).contains(r#""delivery_mechanism":"SMS""#),
        "{output}"
    );
    assert!(
        step(4).contains(r#""recipient_id":"a***@example.com""#),
        "{output}"
    );
    let rootdse = step(5);
    assert!(
        rootdse.contains("supportedSASLMechanisms: UNBOUNDID-DELIVERED-OTP"),
        "{output}"
    );
    assert!(
        rootdse.contains("ds-supported-otp-delivery-mechanism: SMS"),
        "{output}"
    );
    // The managers' mechanism is not offered for codes.
    assert!(!rootdse.contains("ManagerMail"), "{output}");
    // StartTLS (-ZZ) and LDAPS, each verified against the demo's CA.
    assert!(
        step(6).contains("dn:uid=alice,ou=people,dc=example,dc=com"),
        "{output}"
    );
    assert!(
        step(7).contains("oid: 1.3.6.1.4.1.30221.2.6.25"),
        "{output}"
    );
    assert!(
        step(8).contains("success dn:uid=alice,ou=people,dc=example,dc=com"),
        "{output}"
    );
}

fn check_approved_otp_steps<'a>(step: &impl Fn(usize) -> &'a str, output: &str) {
    // Information: granted at once, and Bob's message is in outbox/.
    assert!(
        step(9).contains(r#"{"status":"granted","user":{"dn":"uid=alice,"#),
        "{output}"
    );
    // Approval: pending, the link, approved through the page, the long-poll says granted.
    assert!(
        step(10).contains(r#"{"status":"pending","login":""#),
        "{output}"
    );
    assert!(step(11).contains("/approve/"), "{output}");
    assert!(step(12).contains("Sign-in approved"), "{output}");
    assert!(
        step(13).contains(r#"{"status":"granted","user":{"dn":"uid=dave,"#),
        "{output}"
    );
    // The LDAP bind over StartTLS, held until the second approval, then answered.
    assert!(step(14).contains("Sign-in approved"), "{output}");
    assert!(
        step(14).contains("dn:uid=dave,ou=people,dc=example,dc=com"),
        "{output}"
    );
    let approvals = step(15);
    assert_eq!(approvals.matches("  approved  ").count(), 2, "{output}");
    assert!(
        approvals.contains("ldap-clients critical") && approvals.contains("demo-portal  critical"),
        "{output}"
    );
    let audit = step(16);
    assert!(
        audit.contains("verify   success") && audit.contains("via SMS to +15550100001"),
        "{output}"
    );
    assert!(audit.contains("no outstanding OTP"), "{output}");
    assert!(
        audit.contains("[application demo-portal, policy contractors, profile critical, login "),
        "{output}"
    );
    assert!(
        audit.contains("[application demo-portal, policy everyone else, profile inform]"),
        "{output}"
    );
    assert!(
        audit.contains("approved via link from 127.0.0.1"),
        "{output}"
    );
}

/// A second start in the same folder keeps the API key and the certificates (clients keep
/// trusting `ca.pem`), and the config it writes passes `check-config`.
fn check_a_restart_keeps_keys_and_certificates(home: &std::path::Path, api_key: &str) {
    let ca = std::fs::read(home.join("ca.pem")).unwrap();
    let mut demo = start_demo(home);
    let (text, _out) = banner(&mut demo);
    let check = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("check-config")
        .arg(home.join("countersign.toml"))
        .output()
        .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    assert_eq!(after(&text, "API key: "), api_key);
    assert_eq!(std::fs::read(home.join("ca.pem")).unwrap(), ca);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn sigterm_lets_requests_in_progress_finish_then_every_front_stops() {
    use std::io::{Read, Write};
    let dir = tempfile::TempDir::new().unwrap();
    let mut demo = start_demo(&dir.path().join("demo"));
    let (text, mut out) = banner(&mut demo);
    let (http, ldap, ldaps) = (
        after(&text, "http://"),
        after(&text, "ldap://"),
        after(&text, "ldaps://"),
    );

    // A request whose body is still on its way when the signal comes.
    let body = r#"{"authentication_id":"u:alice","otp":"000000"}"#;
    let mut conn = std::net::TcpStream::connect(&http).unwrap();
    write!(
        conn,
        "POST /api/v1/otp/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    conn.write_all(&body.as_bytes()[10..]).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");

    // Then the process ends on its own, cleanly, with every listener closed.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "still running"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    assert!(rest.contains("countersign demo stopped"), "{rest}");
    assert!(std::net::TcpStream::connect(&http).is_err());
    assert!(std::net::TcpStream::connect(&ldap).is_err());
    assert!(std::net::TcpStream::connect(&ldaps).is_err());
}
