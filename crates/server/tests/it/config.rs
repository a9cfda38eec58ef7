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

// ---- Approved OTP: [[approval_profile]], [[policy]], [approval], [outbox], [[application]] ----

/// The policies of [`approved`]: the first for DBAs of `local`, then everyone of `corp`.
const POLICIES: &str = r#"
[[policy]]
profile = "critical"
directory = "local"
attribute = "memberOf"
values = ["cn=dba,ou=groups,dc=example,dc=com"]

[[policy]]
name = "the rest"
profile = "notice"
directory = "corp"
attribute = "uid"
values = ["*"]
"#;

/// [`valid`] with an SMS gateway, a second directory, an approval profile (e-mail) and an
/// information profile (SMS), two policies, `[approval]`, `[outbox]` and an application that
/// `[ldap]` names.
fn approved() -> String {
    let base = Setup {
        smtp: Some(Setup::smtp_plain(2525)),
        sms_url: Some("https://sms.example.com/send".into()),
        default_mechanisms: vec!["Email"],
        ldap_extra: "application = \"vpn\"\n".into(),
        ..Setup::default()
    }
    .config();
    format!(
        r#"{base}
[server]
public_url = "https://mfa.example.com"

[[directory]]
name = "corp"
type = "local"
base_dn = "ou=corp,dc=example,dc=com"

[[approval_profile]]
name = "critical"
type = "approval"
delivery = "email"
mail_profile = "smtp"
default_recipient = "secops@example.com"
fallback_directories = ["local"]

[[approval_profile]]
name = "notice"
type = "information"
delivery = "sms"
sms_profile = "gateway"
default_recipient = "+90 555 010 0000"
fallback_directories = ["local", "corp"]
{POLICIES}
[approval]
grace_period = "2m"

[outbox]
first_retry = "5s"

[[application]]
name = "vpn"
methods = ["password"]
approved_otp = true
"#
    )
}

/// `text` with each `(from, to)` replaced once; a `from` that is not there fails the test, so
/// no case silently checks the unchanged file.
fn edit(text: &str, edits: &[(&str, &str)]) -> String {
    let mut t = text.to_owned();
    for (from, to) in edits {
        assert!(t.contains(from), "{from:?} is not in the config");
        t = t.replacen(from, to, 1);
    }
    t
}

#[test]
fn an_approved_otp_file_passes() {
    let (ok, out) = check(&approved());
    assert!(ok, "{out}");
    // Without policies, a default profile makes a valid file.
    let text = edit(
        &approved(),
        &[
            (POLICIES, ""),
            ("[approval]\n", "[approval]\ndefault_profile = \"notice\"\n"),
        ],
    );
    let (ok, out) = check(&text);
    assert!(ok, "{out}");
    // An information profile needs no server; nor does anything else without approval links.
    let text = edit(
        &approved(),
        &[
            ("public_url = \"https://mfa.example.com\"\n", ""),
            ("type = \"approval\"", "type = \"information\""),
        ],
    );
    let (ok, out) = check(&text);
    assert!(ok, "{out}");
}

/// What is wrong, the edits that make it so, the error expected, and the text on the line the
/// error must name (when it names a key's line).
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, Option<&'a str>);

#[test]
fn approved_otp_mistakes_are_named_with_their_key_and_line() {
    let secrets = tempfile::tempdir().unwrap();
    let spaced = secrets.path().join("spaced.secret");
    std::fs::write(&spaced, "a client secret with spaces in it, long enough\n").unwrap();
    let spaced_client = format!(
        "name = \"vpn\"\nredirect_uris = [\"https://vpn.example.com/cb\"]\nclient_secret_file = \"{}\"\n",
        spaced.display()
    );
    let critical = "name = \"critical\"\n";
    let notice = "name = \"notice\"\n";
    let first_policy = "directory = \"local\"\nattribute = \"memberOf\"\n";
    let table: Vec<Case> = vec![
        (
            "unknown key in a profile",
            vec![(critical, "name = \"critical\"\ncolour = \"red\"\n")],
            "approval_profile[0]: unknown field `colour`",
            Some("colour ="),
        ),
        (
            "unknown key in a policy",
            vec![(
                "profile = \"critical\"\n",
                "profile = \"critical\"\npriority = 1\n",
            )],
            "policy[0]: unknown field `priority`",
            Some("priority ="),
        ),
        (
            "unknown key in [approval]",
            vec![("[approval]\n", "[approval]\ndefault = \"notice\"\n")],
            "approval: unknown field `default`",
            Some("default ="),
        ),
        (
            "unknown key in [outbox]",
            vec![("[outbox]\n", "[outbox]\nretries = 3\n")],
            "outbox: unknown field `retries`",
            Some("retries ="),
        ),
        (
            "an OpenID Connect client without a secret or public_client",
            vec![(
                "name = \"vpn\"\n",
                "name = \"vpn\"\nredirect_uris = [\"https://vpn.example.com/cb\"]\n",
            )],
            "application[0].client_secret_file: missing: set client_secret_file (or client_secret_env), or public_client = true",
            Some("redirect_uris ="),
        ),
        (
            "an OpenID Connect issuer with a path",
            vec![
                (
                    "public_url = \"https://mfa.example.com\"\n",
                    "public_url = \"https://mfa.example.com/sso\"\n",
                ),
                (
                    "name = \"vpn\"\n",
                    "name = \"vpn\"\nredirect_uris = [\"https://vpn.example.com/cb\"]\npublic_client = true\n",
                ),
            ],
            "server.public_url: \"https://mfa.example.com/sso\": serve countersign at the root of its host name (no path)",
            Some("[server]"),
        ),
        (
            "an OpenID Connect issuer with a user name in it",
            vec![
                (
                    "public_url = \"https://mfa.example.com\"\n",
                    "public_url = \"https://u:p@mfa.example.com\"\n",
                ),
                (
                    "name = \"vpn\"\n",
                    "name = \"vpn\"\nredirect_uris = [\"https://vpn.example.com/cb\"]\npublic_client = true\n",
                ),
            ],
            "server.public_url: \"https://u:p@mfa.example.com\": an issuer has no user name or password in it",
            Some("[server]"),
        ),
        (
            "an OpenID Connect issuer over plain http to another host",
            vec![
                (
                    "public_url = \"https://mfa.example.com\"\n",
                    "public_url = \"http://mfa.example.com\"\n",
                ),
                (
                    "name = \"vpn\"\n",
                    "name = \"vpn\"\nredirect_uris = [\"https://vpn.example.com/cb\"]\npublic_client = true\n",
                ),
            ],
            "server.public_url: \"http://mfa.example.com\": an OpenID Connect issuer must be https",
            Some("[server]"),
        ),
        (
            "a client secret with a space",
            vec![("name = \"vpn\"\n", spaced_client.as_str())],
            "application[0].client_secret_file: the client secret must be printable ASCII without spaces, '+' or '%'",
            Some("client_secret_file ="),
        ),
        (
            "a redirect URI over plain http to another host",
            vec![(
                "name = \"vpn\"\n",
                "name = \"vpn\"\nredirect_uris = [\"http://vpn.example.com/cb\"]\npublic_client = true\n",
            )],
            "application[0].redirect_uris: \"http://vpn.example.com/cb\": http is allowed only to a loopback host; use https",
            Some("redirect_uris ="),
        ),
        (
            "policy directory outside its profile's fallback list",
            vec![(
                first_policy,
                "directory = \"corp\"\nattribute = \"memberOf\"\n",
            )],
            "policy[0].directory: directory \"corp\" is not one of approval profile \"critical\"'s fallback_directories",
            Some("directory = \"corp\""),
        ),
        (
            "policy names an unknown profile",
            vec![("profile = \"critical\"", "profile = \"critcal\"")],
            "policy[0].profile: \"critcal\" names no [[approval_profile]]",
            Some("profile = \"critcal\""),
        ),
        (
            "policy names an unknown directory",
            vec![(
                first_policy,
                "directory = \"nowhere\"\nattribute = \"memberOf\"\n",
            )],
            "policy[0].directory: \"nowhere\" names no [[directory]]",
            Some("directory = \"nowhere\""),
        ),
        (
            "profile names an unknown directory",
            vec![(
                "fallback_directories = [\"local\"]",
                "fallback_directories = [\"local\", \"nowhere\"]",
            )],
            "approval_profile[0].fallback_directories: \"nowhere\" names no [[directory]]",
            Some("\"nowhere\""),
        ),
        (
            "profile lists a directory twice",
            vec![(
                "fallback_directories = [\"local\"]",
                "fallback_directories = [\"local\", \"local\"]",
            )],
            "approval_profile[0].fallback_directories: \"local\" is listed twice",
            Some("[\"local\", \"local\"]"),
        ),
        (
            "profile without directories",
            vec![(
                "fallback_directories = [\"local\"]",
                "fallback_directories = []",
            )],
            "approval_profile[0].fallback_directories: must name at least one [[directory]]",
            Some("fallback_directories = []"),
        ),
        (
            "unknown mail profile",
            vec![(
                "mail_profile = \"smtp\"\ndefault_recipient",
                "mail_profile = \"smtpp\"\ndefault_recipient",
            )],
            "approval_profile[0].mail_profile: \"smtpp\" names no [[mail_profile]]",
            Some("\"smtpp\""),
        ),
        (
            "unknown SMS profile",
            vec![(
                "sms_profile = \"gateway\"\ndefault_recipient",
                "sms_profile = \"gw\"\ndefault_recipient",
            )],
            "approval_profile[1].sms_profile: \"gw\" names no [[sms_profile]]",
            Some("sms_profile = \"gw\""),
        ),
        (
            "e-mail profile without its mail profile",
            vec![(
                "mail_profile = \"smtp\"\ndefault_recipient",
                "default_recipient",
            )],
            "approval_profile[0].mail_profile: missing: delivery = \"email\" needs mail_profile",
            Some("[[approval_profile]]"),
        ),
        (
            "e-mail profile with an SMS profile",
            vec![(
                critical,
                "name = \"critical\"\nsms_profile = \"gateway\" # here\n",
            )],
            "approval_profile[0].sms_profile: only for delivery = \"sms\"",
            Some("# here"),
        ),
        (
            "SMS profile with a mail profile",
            vec![(notice, "name = \"notice\"\nmail_profile = \"smtp\"\n")],
            "approval_profile[1].mail_profile: only for delivery = \"email\"",
            None,
        ),
        (
            "SMS profile with an e-mail subject",
            vec![(notice, "name = \"notice\"\nemail_subject = \"Hi\"\n")],
            "approval_profile[1].email_subject: only for delivery = \"email\"",
            Some("email_subject"),
        ),
        (
            "[ldap] names an unknown application",
            vec![("application = \"vpn\"", "application = \"vpm\"")],
            "ldap.application: \"vpm\" names no [[application]]",
            Some("application = \"vpm\""),
        ),
        (
            "default profile that does not exist",
            vec![("[approval]\n", "[approval]\ndefault_profile = \"nope\"\n")],
            "approval.default_profile: \"nope\" names no [[approval_profile]]",
            Some("default_profile"),
        ),
        (
            "approval profile without server or public_url",
            vec![("public_url = \"https://mfa.example.com\"\n", "")],
            "approval_profile[0].server: missing: an approval profile needs server (or [server] public_url)",
            Some("[[approval_profile]]"),
        ),
        (
            "server that is not a URL",
            vec![(
                critical,
                "name = \"critical\"\nserver = \"mfa.example.com\"\n",
            )],
            "approval_profile[0].server: \"mfa.example.com\" is not an http(s) URL",
            Some("server ="),
        ),
        (
            "approval message without {link}",
            vec![(
                critical,
                "name = \"critical\"\nmessage = \"{user} wants in\"\n",
            )],
            "approval_profile[0].message: an approval message must contain {link}",
            Some("message ="),
        ),
        (
            "unknown placeholder",
            vec![(
                critical,
                "name = \"critical\"\nmessage = \"{usr}: {link}\"\n",
            )],
            "approval_profile[0].message: unknown placeholder {usr}; known: {user},",
            Some("message ="),
        ),
        (
            "a lone brace",
            vec![(critical, "name = \"critical\"\nmessage = \"{link} }\"\n")],
            "approval_profile[0].message: a lone `}`",
            Some("message ="),
        ),
        (
            "information message with {link}",
            vec![(notice, "name = \"notice\"\nmessage = \"{user}: {link}\"\n")],
            "approval_profile[1].message: an information profile sends no link",
            Some("message = \"{user}: {link}\""),
        ),
        (
            "bad regular expression",
            vec![("values = [\"cn=dba", "values = [\"re:(unclosed\", \"cn=dba")],
            "policy[0].values[0]: invalid pattern \"re:(unclosed\"",
            Some("re:(unclosed"),
        ),
        (
            "empty values",
            vec![(
                "values = [\"cn=dba,ou=groups,dc=example,dc=com\"]",
                "values = []",
            )],
            "policy[0].values: must hold at least one value",
            Some("values = []"),
        ),
        (
            "empty attribute",
            vec![("attribute = \"memberOf\"", "attribute = \" \"")],
            "policy[0].attribute: must name an attribute",
            Some("attribute = \" \""),
        ),
        (
            "duplicate policy names",
            vec![("name = \"the rest\"", "name = \"policy 1\"")],
            "policy[1].name: policy \"policy 1\" is defined twice",
            Some("name = \"policy 1\""),
        ),
        (
            "profiles but neither policies nor a default profile",
            vec![(POLICIES, "")],
            "approval.default_profile: missing: with approval profiles and no [[policy]]",
            Some("[approval]"),
        ),
        (
            "link expiration of zero minutes",
            vec![(critical, "name = \"critical\"\nlink_expiration = 0\n")],
            "approval_profile[0].link_expiration: must be longer than zero and at most 7 days",
            Some("link_expiration"),
        ),
        (
            "link expiration of minus five minutes",
            vec![(critical, "name = \"critical\"\nlink_expiration = -5\n")],
            "approval_profile[0].link_expiration: must be longer than zero and at most 7 days",
            Some("link_expiration"),
        ),
        (
            "link expiration over a week",
            vec![(critical, "name = \"critical\"\nlink_expiration = \"8d\"\n")],
            "approval_profile[0].link_expiration: must be longer than zero and at most 7 days",
            Some("link_expiration"),
        ),
        (
            "link expiration as a fraction",
            vec![(critical, "name = \"critical\"\nlink_expiration = 1.5\n")],
            "approval_profile[0].link_expiration: expected minutes (60) or a duration (\"60m\")",
            Some("link_expiration"),
        ),
        (
            "link expiration that is no duration",
            vec![(
                critical,
                "name = \"critical\"\nlink_expiration = \"soon\"\n",
            )],
            "approval_profile[0].link_expiration: \"soon\" is not a duration",
            Some("link_expiration"),
        ),
        (
            "e-mail default recipient without @",
            vec![(
                "default_recipient = \"secops@example.com\"",
                "default_recipient = \"secops\"",
            )],
            "approval_profile[0].default_recipient: \"secops\" is not an e-mail address such as x@y (delivery = \"email\")",
            Some("default_recipient = \"secops\""),
        ),
        (
            "e-mail default recipient written as a header",
            vec![(
                "default_recipient = \"secops@example.com\"",
                "default_recipient = \"Sec <secops@example.com>\"",
            )],
            "approval_profile[0].default_recipient: \"Sec <secops@example.com>\" is not an e-mail address",
            Some("Sec <"),
        ),
        (
            "SMS default recipient without +",
            vec![("\"+90 555 010 0000\"", "\"0555 010 0000\"")],
            "approval_profile[1].default_recipient: \"0555 010 0000\" is not a phone number",
            Some("\"0555 010 0000\""),
        ),
        (
            "SMS default recipient that is an e-mail address",
            vec![("\"+90 555 010 0000\"", "\"secops@example.com\"")],
            "approval_profile[1].default_recipient: \"secops@example.com\" is not a phone number such as +90 555 010 0000 (delivery = \"sms\")",
            None,
        ),
        (
            "duplicate profile names",
            vec![(notice, critical)],
            "approval_profile[1].name: approval profile \"critical\" is defined twice",
            None,
        ),
        (
            "unknown profile type",
            vec![("type = \"approval\"", "type = \"manual\"")],
            "approval_profile[0].type: \"manual\": expected \"information\" or \"approval\"",
            Some("type = \"manual\""),
        ),
        (
            "unknown delivery",
            vec![("delivery = \"email\"", "delivery = \"pigeon\"")],
            "approval_profile[0].delivery: \"pigeon\": expected \"email\" or \"sms\"",
            Some("delivery = \"pigeon\""),
        ),
        (
            "unknown method in a profile",
            vec![(
                critical,
                "name = \"critical\"\nmethods = [\"password\", \"otp\"]\n",
            )],
            "approval_profile[0].methods: \"otp\": expected password or delivered_otp",
            Some("methods ="),
        ),
        (
            "application without methods",
            vec![("methods = [\"password\"]", "methods = []")],
            "application[0].methods: must name at least one method",
            Some("methods = []"),
        ),
        (
            "application name with a space",
            vec![("name = \"vpn\"", "name = \"vpn portal\"")],
            "application[0].name: \"vpn portal\": only letters, digits, '.', '_' and '-'",
            Some("name = \"vpn portal\""),
        ),
        (
            "an application named like an implicit one",
            vec![("name = \"vpn\"", "name = \"HTTP\"")],
            "application[0].name: \"HTTP\" is reserved: it names the application of LDAP binds without [ldap] application and of HTTP callers without an API key",
            Some("name = \"HTTP\""),
        ),
        (
            "duplicate application names",
            vec![(
                "approved_otp = true\n",
                "approved_otp = true\n\n[[application]]\nname = \"vpn\"\n",
            )],
            "application[1].name: application \"vpn\" is defined twice",
            None,
        ),
        (
            "API key in a file and the environment",
            vec![(
                "name = \"vpn\"\n",
                "name = \"vpn\"\napi_key_file = \"vpn.key\"\napi_key_env = \"VPN_KEY\"\n",
            )],
            "application[0].api_key_file: set api_key_file or api_key_env, not both",
            Some("api_key_file"),
        ),
        (
            "API key file that is not there",
            vec![(
                "name = \"vpn\"\n",
                "name = \"vpn\"\napi_key_file = \"/nonexistent/vpn.key\"\n",
            )],
            "application[0].api_key_file: cannot read /nonexistent/vpn.key",
            None,
        ),
        (
            "grace period over an hour",
            vec![("grace_period = \"2m\"", "grace_period = \"2h\"")],
            "approval.grace_period: at most 1h",
            Some("grace_period"),
        ),
        (
            "approval wait of zero",
            vec![(
                "application = \"vpn\"",
                "application = \"vpn\"\napproval_wait = \"0s\"",
            )],
            "ldap.approval_wait: must be from 1s to 10m",
            Some("approval_wait"),
        ),
        (
            "approval wait over ten minutes",
            vec![(
                "application = \"vpn\"",
                "application = \"vpn\"\napproval_wait = \"11m\"",
            )],
            "ldap.approval_wait: must be from 1s to 10m",
            Some("approval_wait"),
        ),
        (
            "retries that shrink",
            vec![(
                "first_retry = \"5s\"",
                "first_retry = \"5m\"\nmax_retry_delay = \"1m\"",
            )],
            "outbox.max_retry_delay: must not be shorter than first_retry",
            Some("max_retry_delay"),
        ),
        (
            "giving up at once",
            vec![(
                "first_retry = \"5s\"",
                "first_retry = \"5s\"\ngive_up_after = \"0s\"",
            )],
            "outbox.give_up_after: must be longer than zero",
            Some("give_up_after"),
        ),
    ];
    let mut failures = Vec::new();
    for (case, edits, expect, line_of_text) in table {
        let text = edit(&approved(), &edits);
        let (ok, out) = check(&text);
        let expect = match line_of_text {
            Some(needle) => format!("line {}: {expect}", line_of(&text, needle)),
            None => expect.to_owned(),
        };
        if ok || !out.contains(&expect) {
            failures.push(format!("{case}: expected {expect:?} in\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn an_approval_profile_without_a_server_is_the_only_problem() {
    // The information profile sends no link, so only the approval profile is told about.
    let text = edit(
        &approved(),
        &[("public_url = \"https://mfa.example.com\"\n", "")],
    );
    let (ok, out) = check(&text);
    assert!(!ok);
    assert!(out.contains("approval_profile[0].server: missing"), "{out}");
    assert!(out.contains("1 problem(s) found"), "{out}");
}

/// Writes each `(name, content)` into a fresh folder, returning it.
fn key_files(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::TempDir::new().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[test]
fn api_keys_must_be_long_and_distinct() {
    let keys = key_files(&[
        ("short.key", "0123456789abcdef0123456789abcde\n"),
        // 31 characters between spaces: long enough only with them.
        ("padded.key", "   0123456789abcdef0123456789abcde   \n"),
        ("good.key", "0123456789abcdef0123456789abcdef\n"),
    ]);
    let with_key = |file: &str| {
        edit(
            &approved(),
            &[(
                "name = \"vpn\"\n",
                &format!(
                    "name = \"vpn\"\napi_key_file = \"{}\"\n",
                    keys.path().join(file).display()
                ),
            )],
        )
    };
    for file in ["short.key", "padded.key"] {
        let text = with_key(file);
        let (ok, out) = check(&text);
        assert!(!ok, "{file}");
        let expect = format!(
            "line {}: application[0].api_key_file: the API key is shorter than 32 characters",
            line_of(&text, "api_key_file")
        );
        assert!(out.contains(&expect), "{file}: {out}");
    }
    let (ok, out) = check(&with_key("good.key"));
    assert!(ok, "{out}");

    let twin = format!(
        "approved_otp = true\n\n[[application]]\nname = \"portal\"\napi_key_file = \"{}\"\n",
        keys.path().join("good.key").display()
    );
    let text = edit(&with_key("good.key"), &[("approved_otp = true\n", &twin)]);
    let (ok, out) = check(&text);
    assert!(!ok);
    assert!(
        out.contains("application[1].api_key_file: the same API key as application \"vpn\""),
        "{out}"
    );
}

#[test]
fn link_expiration_is_minutes_or_a_duration() {
    for (written, shown) in [
        ("30", "30m"),
        ("\"90m\"", "1h 30m"),
        ("\"2h\"", "2h"),
        ("10080", "7d"),
    ] {
        let dir = tempfile::TempDir::new().unwrap();
        let text = edit(
            &approved(),
            &[(
                "name = \"critical\"\n",
                &format!("name = \"critical\"\nlink_expiration = {written}\n"),
            )],
        );
        let (ok, out, err) = show(dir.path(), &text, &["approval_profile"], &[]);
        assert!(ok, "{written}: {err}");
        assert!(
            out.contains(
                "name = \"critical\"\ntype = \"approval\"\nserver = \"https://mfa.example.com\"\nmessage = "
            ) && out.contains(&format!("link_expiration = \"{shown}\"\ndelivery = \"email\"")),
            "{written}: {out}"
        );
    }
}

#[test]
fn config_show_renders_approved_otp_with_defaults_and_no_api_key() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("vpn.key"),
        "vpn-FILE-SECRET-0123456789abcdef0123456789\n",
    )
    .unwrap();
    let env = [(
        "CS_TEST_PORTAL_KEY",
        "portal-ENV-SECRET-0123456789abcdef0123",
    )];
    let text = edit(
        &approved(),
        &[(
            "name = \"vpn\"\n",
            "name = \"vpn\"\napi_key_file = \"vpn.key\"\n",
        )],
    ) + "\n[[application]]\nname = \"portal\"\napi_key_env = \"CS_TEST_PORTAL_KEY\"\napproved_otp = false\n";
    let (ok, out, err) = show(dir.path(), &text, &[], &env);
    assert!(ok, "{err}");
    for secret in ["FILE-SECRET", "ENV-SECRET"] {
        assert!(!out.contains(secret), "an API key in the output:\n{out}");
    }
    let key = dir.path().join("vpn.key");
    for expect in [
        "[[approval_profile]]\nname = \"critical\"\ntype = \"approval\"\nserver = \"https://mfa.example.com\"\nmessage = \"{display_name} ({user}) asks to sign in to {application} from {client_ip} at {time}.\\nApprove or reject: {link}\\nThe link is valid until {expires}.\"\nlink_expiration = \"1h\"\ndelivery = \"email\"\nmail_profile = \"smtp\"\nemail_subject = \"Sign-in approval needed\"\ndefault_recipient = \"secops@example.com\"\nfallback_directories = [\"local\"]\nmethods = [\"password\", \"delivered_otp\"]\n",
        "name = \"notice\"\ntype = \"information\"\nserver = \"https://mfa.example.com\"\nmessage = \"{display_name} ({user}) signed in to {application} from {client_ip} at {time}.\"\nlink_expiration = \"1h\"\ndelivery = \"sms\"\nsms_profile = \"gateway\"\ndefault_recipient = \"+90 555 010 0000\"\nfallback_directories = [\"local\", \"corp\"]\n",
        "[[policy]]\nname = \"policy 1\"\nprofile = \"critical\"\ndirectory = \"local\"\nattribute = \"memberof\"\nvalues = [\"cn=dba,ou=groups,dc=example,dc=com\"]\n",
        "[[policy]]\nname = \"the rest\"\n",
        "[approval]\n# default_profile = (not set)\ngrace_period = \"2m\"\n",
        "[outbox]\nfirst_retry = \"5s\"\nmax_retry_delay = \"5m\"\ngive_up_after = \"1d\"\n",
        &format!(
            "[[application]]\nname = \"vpn\"\napi_key_file = \"{}\"  # secret set (value not shown)\nmethods = [\"password\"]\napproved_otp = true\n",
            key.display()
        ),
        "[[application]]\nname = \"portal\"\napi_key_env = \"CS_TEST_PORTAL_KEY\"  # secret set from the environment (value not shown)\nmethods = [\"password\", \"delivered_otp\"]\napproved_otp = false\n",
        "application = \"vpn\"\napproval_wait = \"1m\"\n",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in\n{out}");
    }

    // What it prints is itself a configuration that means the same.
    let again = tempfile::TempDir::new().unwrap();
    let (ok, out2, err) = show(again.path(), &out, &[], &env);
    assert!(ok, "{err}\n{out}");
    assert_eq!(out2, out);

    // One section alone.
    let (ok, out, err) = show(dir.path(), &text, &["outbox"], &env);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "[outbox]\nfirst_retry = \"5s\"\nmax_retry_delay = \"5m\"\ngive_up_after = \"1d\"\n"
    );
}
