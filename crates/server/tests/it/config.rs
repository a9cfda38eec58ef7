//! `countersign check-config`, run as a user would: every problem listed, each naming its key
//! and line, and a non-zero exit.

use std::process::Command;

use crate::fixtures::Setup;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("countersign.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn valid() -> String {
    Setup {
        smtp: Some(Setup::smtp_plain(2525)),
        default_mechanisms: vec!["Email"],
        ..Setup::default()
    }
    .config()
}

#[test]
fn a_valid_file_passes() {
    let (ok, out) = check(&valid());
    assert!(ok, "{out}");
    assert!(
        out.contains("ok (1 directories, 1 delivery mechanisms)"),
        "{out}"
    );
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = valid().replace(
        "subject = \"Your sign-in code\"",
        "subject = \"Your sign-in code\"\nsubjetc = \"typo\"",
    );
    let (ok, out) = check(&text);
    assert!(!ok);
    let line = line_of(&text, "subjetc");
    assert!(
        out.contains(&format!(
            "line {line}: delivery_mechanism[0]: unknown field `subjetc`"
        )),
        "{out}"
    );
}

#[test]
fn unknown_section_is_named() {
    let text = format!("{}\n[serverr]\npublic_url = \"https://x\"\n", valid());
    let (ok, out) = check(&text);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "line {}: serverr: unknown key",
            line_of(&text, "[serverr]")
        )),
        "{out}"
    );
}

#[test]
fn dangling_references_are_named() {
    let text = valid()
        .replace("mail_profile = \"smtp\"", "mail_profile = \"smtpp\"")
        .replace(
            "default_mechanisms = [\"Email\"]",
            "default_mechanisms = [\"Email\", \"Pigeon\"]",
        )
        .replace(
            "identity_mapper = [\"local\"]",
            "identity_mapper = [\"corp-ldap\"]",
        );
    let (ok, out) = check(&text);
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "line {}: delivery_mechanism[0].mail_profile: \"smtpp\" names no [[mail_profile]]",
            line_of(&text, "\"smtpp\"")
        )),
        "{out}"
    );
    assert!(
        out.contains("deliver_otp.default_mechanisms: \"Pigeon\" names no [[delivery_mechanism]]"),
        "{out}"
    );
    assert!(
        out.contains("deliver_otp.identity_mapper: \"corp-ldap\" names no [[directory]]"),
        "{out}"
    );
    assert!(
        out.contains("3 problem(s) found"),
        "all problems listed at once: {out}"
    );
}

#[test]
fn bad_generator_formats_are_named() {
    for (format, expect) in [
        ("numeric6", "format group \"numeric6\" is not name:count"),
        (
            "hex:6",
            "format group \"hex:6\" names no configured character set",
        ),
        (
            "numeric:0",
            "format group \"numeric:0\" needs a count from 1 to 64",
        ),
        ("", "format is empty"),
    ] {
        let text = valid().replace("format = \"numeric:6\"", &format!("format = \"{format}\""));
        let (ok, out) = check(&text);
        assert!(!ok);
        let line = line_of(&text, "format = ");
        assert!(
            out.contains(&format!("line {line}: password_generator.format: {expect}")),
            "{format}: {out}"
        );
    }
}

#[test]
fn bad_values_and_missing_secrets_are_named() {
    let text = valid()
        .replace("otp_validity = \"5m\"", "otp_validity = \"five minutes\"")
        .replace(
            "tls = \"none\"",
            "tls = \"sometimes\"\nusername = \"mfa\"\npassword_file = \"/nonexistent/pw\"",
        )
        .replace("verify_per_user = \"off\"", "verify_per_user = \"lots\"");
    let (ok, out) = check(&text);
    assert!(!ok);
    for expect in [
        "deliver_otp.otp_validity: \"five minutes\" is not a duration",
        "mail_profile[0].tls: \"sometimes\": expected none, starttls or tls",
        "mail_profile[0].password_file: cannot read /nonexistent/pw",
        "rate_limits.verify_per_user: \"lots\": expected N/DURATION",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in {out}");
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let (ok, out) = check("[store]\nurl = \"sqlite://x.db\"\n[deliver_otp\n");
    assert!(!ok);
    assert!(out.contains("line 3"), "{out}");
}

#[test]
fn the_documented_example_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/countersign.example.toml");
    let (ok, out) = check(&std::fs::read_to_string(example).unwrap());
    assert!(ok, "docs/countersign.example.toml: {out}");
}

#[test]
fn the_demo_config_is_valid() {
    let (ok, out) = check(
        &countersign::demo::DEMO_CONFIG
            .replace("{http}", "127.0.0.1:8080")
            .replace("{ldap}", "127.0.0.1:3389")
            .replace("{allow_insecure}", "true"),
    );
    assert!(ok, "{out}");
}

#[test]
fn ldap_directory_mistakes_are_named() {
    let local = "[[directory]]\nname = \"local\"\ntype = \"local\"\n";
    let text = valid().replace(
        local,
        &format!("{local}url = \"ldap://x\"\n\n[[directory]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"http://x\"\nstarttls = true\nbind_dn = \"cn=x\"\non_unavailable = \"maybe\"\nmatch_filter = \"uid=*\"\n\n[[directory]]\nname = \"nourl\"\ntype = \"ldap\"\n\n[[directory]]\nname = \"x\"\ntype = \"local\"\n"),
    );
    assert_ne!(text, valid());
    let (ok, out) = check(&text);
    assert!(!ok);
    for expect in [
        "directory[0].url: only for directories of type ldap",
        "directory[1].url: \"http://x\": expected ldap://HOST:PORT or ldaps://HOST:PORT",
        "directory[1].bind_dn: bind_dn and bind_password_file (or _env) go together",
        "directory[1].user_base_dns: missing",
        "directory[1].on_unavailable: \"maybe\": expected stop or next",
        "directory[1].match_filter: \"uid=*\": a filter is written in parentheses",
        "directory[2].url: missing",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in\n{out}");
    }
    let text = valid().replace(
        local,
        &format!("{local}\n[[directory]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://x\"\nuser_base_dns = [\"dc=x\"]\nmatch_attributes = []\nmatch_filter = \"(uid=x)(cn=y)\"\n"),
    );
    let (ok, out) = check(&text);
    assert!(!ok);
    for expect in [
        "directory[1].match_filter: \"(uid=x)(cn=y)\" is not an LDAP filter",
        "directory[1].match_attributes: must name at least one attribute",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in\n{out}");
    }
}

/// Runs `countersign config show ARGS` on `text` (in its own folder, with `env` set); returns
/// (success, stdout, stderr).
fn show(
    dir: &std::path::Path,
    text: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let path = dir.join("countersign.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--config")
        .arg(&path)
        .args(["config", "show"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The valid file plus an LDAP directory whose service password is in a file and an SMTP
/// password and SMS token from the environment and a file.
fn with_secrets(dir: &std::path::Path) -> String {
    std::fs::write(dir.join("ldap.pw"), "ldap-pw-FILE-SECRET\n").unwrap();
    std::fs::write(dir.join("sms.token"), "Bearer SMS-FILE-SECRET\n").unwrap();
    let local = "[[directory]]\nname = \"local\"\ntype = \"local\"\n";
    valid()
        .replace(
            local,
            &format!("[[directory]]\nname = \"corp\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=countersign,dc=example,dc=com\"\nbind_password_file = \"ldap.pw\"\nuser_base_dns = [\"ou=people,dc=example,dc=com\"]\n\n{local}"),
        )
        .replace(
            "tls = \"none\"",
            "tls = \"none\"\nusername = \"mfa\"\npassword_env = \"CS_TEST_SMTP_PASSWORD\"",
        )
        .replace(
            "\n[deliver_otp]",
            "[[sms_profile]]\nname = \"gw\"\nurl = \"https://sms.example.com/send\"\nheaders = { X-Client = \"countersign\" }\nheader_files = { Authorization = \"sms.token\" }\nbody = { to = \"{to}\", text = \"{message}\" }\n\n[deliver_otp]",
        )
}

#[test]
fn config_show_fills_in_every_default_and_never_shows_a_secret() {
    let dir = tempfile::TempDir::new().unwrap();
    let env = [("CS_TEST_SMTP_PASSWORD", "smtp-ENV-SECRET")];
    let (ok, out, err) = show(dir.path(), &with_secrets(dir.path()), &[], &env);
    assert!(ok, "{err}");
    for secret in ["FILE-SECRET", "ENV-SECRET"] {
        assert!(!out.contains(secret), "a secret in the output:\n{out}");
    }
    let pw = dir.path().join("ldap.pw");
    let token = dir.path().join("sms.token");
    for expect in [
        // Defaults the file does not write.
        "[deliver_otp]\nenabled = true\n# description = (not set)\n",
        "max_failed_attempts = 3\n",
        "[http]\nreveal_recipients = false\nheader_read_timeout = \"10s\"\n",
        "idle_timeout = \"5m\"\nmax_connections = 1024\nmax_connections_per_client = 64\n",
        "[audit]\nretention = \"off\"\n",
        "mail_attribute = \"mail\"\n",
        "on_unavailable = \"stop\"\n",
        "timeout = \"10s\"\n",
        "method = \"POST\"\n",
        "# success_status = (any 2xx)\n",
        // Secrets: where they come from, never what they are.
        &format!(
            "bind_password_file = \"{}\"  # secret set (value not shown)\n",
            pw.display()
        ),
        "username = \"mfa\"\npassword_env = \"CS_TEST_SMTP_PASSWORD\"  # secret set from the environment (value not shown)\n",
        &format!(
            "header_files = {{ \"Authorization\" = \"{}\" }}\n",
            token.display()
        ),
        "headers = { \"X-Client\" = \"countersign\" }\n",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in\n{out}");
    }

    // What it prints is itself a configuration that means the same.
    let again = tempfile::TempDir::new().unwrap();
    let (ok, out2, err) = show(again.path(), &out, &[], &env);
    assert!(ok, "{err}\n{out}");
    assert_eq!(out2, out);
}

#[test]
fn config_show_prints_one_section_and_names_its_settings() {
    let dir = tempfile::TempDir::new().unwrap();
    let text = valid().replace(
        "[deliver_otp]\n",
        "[deliver_otp]\nenabled = false\ndescription = \"Deliver OTP for the VPN\"\n",
    );
    let (ok, out, err) = show(dir.path(), &text, &["deliver_otp"], &[]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "[deliver_otp]\nenabled = false\ndescription = \"Deliver OTP for the VPN\"\nidentity_mapper = [\"local\"]\ndefault_mechanisms = [\"Email\"]\notp_validity = \"5m\"\nmax_failed_attempts = 3\n"
    );
    let (ok, out, err) = show(dir.path(), &text, &["rate_limits"], &[]);
    assert!(ok, "{err}");
    assert!(out.starts_with("[rate_limits]\n"), "{out}");
    assert!(!out.contains("[deliver_otp]"), "{out}");
}

#[test]
fn config_show_refuses_an_unknown_section_and_an_invalid_file() {
    let dir = tempfile::TempDir::new().unwrap();
    let (ok, out, err) = show(dir.path(), &valid(), &["deliver"], &[]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("unknown section \"deliver\"; expected one of audit, server, store,"),
        "{err}"
    );
    let (ok, out, err) = show(
        dir.path(),
        &valid().replace("otp_validity = \"5m\"", "otp_validity = \"five\""),
        &[],
        &[],
    );
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("deliver_otp.otp_validity: \"five\" is not a duration"),
        "{err}"
    );
}
