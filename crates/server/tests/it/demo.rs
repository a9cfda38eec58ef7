//! `countersign demo` as a newcomer meets it: start it, then run the walkthrough it prints,
//! literally, in one bash shell, and check each step does what it says.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `countersign demo` in `dir`, on free ports, its stdout piped.
fn start_demo(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "demo",
            "--http",
            "127.0.0.1:0",
            "--ldap",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn the_walkthrough_works_as_printed() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut demo = start_demo(&dir.path().join("demo"));
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
    // Its folder (database, key, messages with codes) is its owner's only.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    // Each numbered step's indented lines, with `\` continuations joined.
    let mut steps: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.chars().next().is_some_and(|c| c.is_ascii_digit()) && line.contains(". ") {
            steps.push(String::new());
        } else if let (Some(step), true) = (steps.last_mut(), line.starts_with("  ")) {
            step.push_str(line.trim_start());
            step.push('\n');
        }
    }
    assert_eq!(steps.len(), 9, "{text}");
    let script: String = steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("echo '=== step {}'\n{s}echo\n", i + 1))
        .collect();
    let run = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let _ = demo.kill();
    let _ = demo.wait();
    let output = String::from_utf8_lossy(&run.stdout).into_owned();
    let step = |n: usize| -> &str {
        let start = output.find(&format!("=== step {n}")).unwrap();
        let end = output
            .find(&format!("=== step {}", n + 1))
            .unwrap_or(output.len());
        &output[start..end]
    };
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
    let audit = step(9);
    assert!(
        audit.contains("verify   success") && audit.contains("via SMS to +15550100001"),
        "{output}"
    );
    assert!(audit.contains("no outstanding OTP"), "{output}");
}

#[test]
fn sigterm_lets_requests_in_progress_finish_then_every_front_stops() {
    use std::io::{Read, Write};
    let dir = tempfile::TempDir::new().unwrap();
    let mut demo = start_demo(&dir.path().join("demo"));
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut text = String::new();
    while !text.contains("Press Ctrl-C") {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "{text}");
        text += &line;
    }
    let addr_after = |prefix: &str| -> String {
        let start = text.find(prefix).unwrap() + prefix.len();
        text[start..]
            .split(|c: char| c == ',' || c.is_whitespace())
            .next()
            .unwrap()
            .to_owned()
    };
    let (http, ldap) = (addr_after("http://"), addr_after("ldap://"));

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
}
