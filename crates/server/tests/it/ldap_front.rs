//! The LDAP front against clients that are not ours: OpenLDAP's ldapsearch, ldapwhoami and
//! ldapexop, and Python's ldap3, over plain LDAP, StartTLS and LDAPS with a test CA; the full
//! delivered-OTP flow with a real SMTP server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use countersign::ber;
use countersign::ldap::exop;
use countersign_core::model::{AccountState, Timestamp};
use serde_json::Value;

use crate::fixtures::*;

/// Servers for one test: SMTP, countersign with LDAP (StartTLS) and LDAPS, and the CA files.
pub struct LdapWorld {
    pub smtp: SmtpServer,
    pub cs: Countersign,
    pub ca: PathBuf,
    _tls_dir: tempfile::TempDir,
}

pub async fn ldap_world(ldap_extra: &str) -> LdapWorld {
    let tls_dir = tempfile::TempDir::new().unwrap();
    let tls = tls_files(tls_dir.path());
    let smtp = SmtpServer::start(SmtpOptions::default());
    let setup = Setup {
        smtp: Some(Setup::smtp_plain(smtp.port)),
        ldap: true,
        ldap_tls: Some((tls.cert.clone(), tls.key.clone())),
        ldap_extra: ldap_extra.into(),
        ..Setup::default()
    };
    let cs = Countersign::start(&setup).await;
    cs.add_user(alice()).await;
    LdapWorld {
        smtp,
        cs,
        ca: tls.ca,
        _tls_dir: tls_dir,
    }
}

impl LdapWorld {
    pub fn ldap(&self) -> &str {
        self.cs.ldap_url.as_deref().unwrap()
    }

    pub fn ldaps(&self) -> &str {
        self.cs.ldaps_url.as_deref().unwrap()
    }

    /// Runs an OpenLDAP client tool with the test CA trusted; returns (exit code, stdout, stderr).
    pub fn tool(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
        let conf = self._tls_dir.path().join("ldap.conf");
        std::fs::write(
            &conf,
            format!("TLS_CACERT {}\nTLS_REQCERT demand\n", self.ca.display()),
        )
        .unwrap();
        let out = Command::new(tool)
            .args(args)
            .env("LDAPCONF", &conf)
            .env("LDAPRC", "/dev/null")
            .env("HOME", self._tls_dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e} (scripts/test installs ldap-utils)"));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `ldapsearch` of the root DSE over plain LDAP with `extra` arguments (attributes or a
    /// filter); returns (exit code, stdout).
    pub fn root_dse(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["-x", "-H", self.ldap(), "-b", "", "-s", "base"];
        args.extend_from_slice(extra);
        let (code, out, _) = self.tool("ldapsearch", &args);
        (code, out)
    }

    /// Runs the ldap3 client script; returns its JSON answer.
    pub fn ldap3(&self, url: &str, args: &[&str]) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ldap3_client.py");
        let ca = if url.starts_with("ldaps:") {
            self.ca.display().to_string()
        } else {
            "-".into()
        };
        let out = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(url)
            .arg(ca)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!(
                "ldap3 client: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    countersign_core::crypto::to_hex(bytes)
}

fn deliver_value(auth: &str, password: Option<&str>) -> Vec<u8> {
    let mut parts = vec![ber::tlv(ber::context(0), auth.as_bytes())];
    if let Some(p) = password {
        parts.push(ber::tlv(ber::context(1), p.as_bytes()));
    }
    ber::constructed(ber::SEQUENCE, &parts)
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_dse_with_ldapsearch() {
    let w = ldap_world("").await;
    let (code, out, err) = w.tool(
        "ldapsearch",
        &["-x", "-H", w.ldap(), "-b", "", "-s", "base", "*", "+"],
    );
    assert_eq!(code, 0, "{err}");
    for line in [
        "namingContexts: ou=people,dc=example,dc=com",
        "supportedLDAPVersion: 3",
        "supportedExtension: 1.3.6.1.4.1.30221.2.6.24",
        "supportedExtension: 1.3.6.1.4.1.30221.2.6.47",
        "supportedExtension: 1.3.6.1.4.1.4203.1.11.3",
        "supportedExtension: 1.3.6.1.4.1.1466.20037",
        "supportedSASLMechanisms: UNBOUNDID-DELIVERED-OTP",
        "ds-supported-otp-delivery-mechanism: Email",
        "vendorName: countersign",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
    // As the UnboundID SDK asks: *, + and the mechanism attribute by name.
    let (_, all) = w.root_dse(&["*", "+", "ds-supported-otp-delivery-mechanism"]);
    assert!(
        all.contains("ds-supported-otp-delivery-mechanism: Email")
            && all.contains("vendorVersion: countersign"),
        "{all}"
    );
    // Without a list (or with *) only the user attributes: the rest are operational (RFC 4512).
    let (_, user) = w.root_dse(&[]);
    assert!(
        user.contains("objectClass: top") && !user.contains("supportedExtension"),
        "{user}"
    );
    let (_, op) = w.root_dse(&["+"]);
    assert!(
        op.contains("supportedExtension") && !op.contains("objectClass"),
        "{op}"
    );
    // A filter the root DSE does not match: no entry.
    let (_, unmatched) = w.root_dse(&["(vendorName=other)"]);
    assert!(
        !unmatched.contains("# numEntries") && unmatched.contains("result: 0 Success"),
        "{unmatched}"
    );
    let (_, one) = w.root_dse(&["vendorName"]);
    assert!(
        one.contains("vendorName: countersign") && !one.contains("supportedExtension"),
        "{one}"
    );
    let (_, none) = w.root_dse(&["1.1"]);
    assert!(
        none.contains("dn:") && !none.contains("vendorName"),
        "{none}"
    );
    // Any other search is refused with a reason.
    let (code, out, _) = w.tool(
        "ldapsearch",
        &[
            "-x",
            "-H",
            w.ldap(),
            "-b",
            "dc=example,dc=com",
            "(uid=alice)",
        ],
    );
    assert_eq!(code, 53, "{out}");
    assert!(
        out.contains("result: 53 Server is unwilling to perform") && out.contains("root DSE only"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_bind_then_who_am_i_and_uniform_refusals() {
    let w = ldap_world("").await;
    w.cs.add_user(TestUser {
        username: "lena",
        password: "lena-password",
        account: AccountState {
            locked_until: Some(Timestamp(T0 + 60_000)),
            ..Default::default()
        },
        ..alice()
    })
    .await;
    let dn = alice_dn();
    let (code, out, err) = w.tool(
        "ldapwhoami",
        &["-x", "-H", w.ldap(), "-D", dn, "-w", "alice-password"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{dn}"));

    let mut refusals = Vec::new();
    for (who, pw) in [
        (dn, "wrong-password"),
        ("uid=nobody,ou=people,dc=example,dc=com", "alice-password"),
        ("uid=lena,ou=people,dc=example,dc=com", "lena-password"),
    ] {
        let (code, _, err) = w.tool("ldapwhoami", &["-x", "-H", w.ldap(), "-D", who, "-w", pw]);
        assert_eq!(code, 49, "{who}: {err}");
        refusals.push(err);
    }
    assert!(refusals.windows(2).all(|r| r[0] == r[1]), "{refusals:?}");
    // Anonymous.
    let (code, out, _) = w.tool("ldapwhoami", &["-x", "-H", w.ldap()]);
    assert_eq!((code, out.trim()), (0, "anonymous"));
    // A plain username is not a DN unless configured.
    let (code, _, _) = w.tool(
        "ldapwhoami",
        &["-x", "-H", w.ldap(), "-D", "alice", "-w", "alice-password"],
    );
    assert_eq!(code, 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_u_bind_names_when_configured() {
    let w = ldap_world("bind_name_forms = [\"dn\", \"u\", \"name\"]\n").await;
    for name in ["alice", "u:alice"] {
        let (code, out, err) = w.tool(
            "ldapwhoami",
            &["-x", "-H", w.ldap(), "-D", name, "-w", "alice-password"],
        );
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out.trim(), format!("dn:{}", alice_dn()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_ldaps_with_a_test_ca() {
    let w = ldap_world("").await;
    let (code, out, err) = w.tool(
        "ldapsearch",
        &[
            "-x",
            "-ZZ",
            "-H",
            w.ldap(),
            "-b",
            "",
            "-s",
            "base",
            "vendorName",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("vendorName: countersign"), "{out}");
    let (code, out, err) = w.tool(
        "ldapwhoami",
        &[
            "-x",
            "-ZZ",
            "-H",
            w.ldap(),
            "-D",
            alice_dn(),
            "-w",
            "alice-password",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{}", alice_dn()));
    let (code, out, err) = w.tool(
        "ldapwhoami",
        &[
            "-x",
            "-H",
            w.ldaps(),
            "-D",
            alice_dn(),
            "-w",
            "alice-password",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("dn:{}", alice_dn()));
    // StartTLS on LDAPS is refused: TLS is already there.
    let (code, _, err) = w.tool("ldapwhoami", &["-x", "-ZZ", "-H", w.ldaps()]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("Operations error (1)") && err.contains("TLS is already established"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_otp_with_ldapexop_needs_tls() {
    let w = ldap_world("").await;
    let value = deliver_value("u:alice", Some("alice-password"));
    let arg = format!("{}::{}", exop::DELIVER_OTP_REQUEST, b64(&value));
    // Plain LDAP: the password must not travel in clear.
    // (ldapexop exits 1 on any refusal and prints the result code.)
    let (code, _, err) = w.tool("ldapexop", &["-x", "-H", w.ldap(), &arg]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Confidentiality required (13)") && err.contains("use LDAPS or StartTLS"),
        "{err}"
    );
    assert!(w.smtp.messages().is_empty());

    // StartTLS: delivered, and the response carries name .25 and the SDK's value layout.
    let (code, out, err) = w.tool("ldapexop", &["-x", "-ZZ", "-H", w.ldap(), &arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("oid: 1.3.6.1.4.1.30221.2.6.25"), "{out}");
    let expected =
        exop::encode_deliver_otp_result("Email", alice_dn(), Some("alice@example.com"), None);
    let data: String = out
        .split("data::")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(data, b64(&expected));
    let mail = &w.smtp.wait_for(1)[0];
    assert_eq!(mail.rcpt_tos, ["alice@example.com"]);

    // Wrong password over LDAPS: invalidCredentials, no value.
    let bad = format!(
        "{}::{}",
        exop::DELIVER_OTP_REQUEST,
        b64(&deliver_value("u:alice", Some("nope")))
    );
    let (code, out, err) = w.tool("ldapexop", &["-x", "-H", w.ldaps(), &bad]);
    assert_ne!(code, 0);
    assert!(err.contains("Invalid credentials (49)"), "{err}");
    assert!(!out.contains("data::"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_deliver_otp_when_explicitly_allowed() {
    let w = ldap_world("allow_deliver_otp_without_tls = true\n").await;
    let arg = format!(
        "{}::{}",
        exop::DELIVER_OTP_REQUEST,
        b64(&deliver_value("u:alice", Some("alice-password")))
    );
    let (code, _, err) = w.tool("ldapexop", &["-x", "-H", w.ldap(), &arg]);
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_python_ldap3() {
    let w = ldap_world("").await;
    let url = w.ldaps().to_owned();

    // Get Supported: masked for an anonymous caller.
    let a = w.ldap3(
        &url,
        &[
            "exop",
            exop::GET_SUPPORTED_REQUEST,
            &hex(&exop::encode_get_supported(alice_dn())),
        ],
    );
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["name"], exop::GET_SUPPORTED_RESPONSE);
    let items = exop::decode_get_supported_result(
        &countersign_core::crypto::from_hex(a["value"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (
            items[0].mechanism.as_str(),
            items[0].supported,
            items[0].recipient.as_deref()
        ),
        ("Email", true, Some("a***@example.com"))
    );

    // Deliver OTP over LDAPS with the names-and-IDs form, the masked recipient selecting the address.
    let req = exop::DeliverOtpRequest {
        authentication_id: "u:alice".into(),
        static_password: Some("alice-password".into()),
        mechanisms: Some(vec![countersign_core::mechanism::MechanismChoice {
            name: "Email".into(),
            recipient: Some("a***@example.com".into()),
        }]),
        texts: countersign_core::mechanism::MessageTexts {
            subject: Some("LDAP code".into()),
            ..Default::default()
        },
    };
    let a = w.ldap3(
        &url,
        &[
            "exop",
            exop::DELIVER_OTP_REQUEST,
            &hex(&exop::encode_deliver_otp(&req)),
        ],
    );
    assert_eq!(a["result"], 0, "{a}");
    assert_eq!(a["name"], exop::DELIVER_OTP_RESPONSE);
    let mail = &w.smtp.wait_for(1)[0];
    assert_eq!(mail.header("Subject").as_deref(), Some("LDAP code"));
    let otp = mail.otp(6);

    // SASL bind with the OTP, then Who Am I; the same OTP a second time fails.
    let b = w.ldap3(&url, &["sasl", "u:alice", &otp]);
    assert_eq!(b["result"], 0, "{b}");
    assert_eq!(b["whoami"], format!("dn:{}", alice_dn()));
    let again = w.ldap3(&url, &["sasl", "u:alice", &otp]);
    assert_eq!(again["result"], 49, "{again}");

    // An expired OTP fails.
    let a = w.ldap3(
        &url,
        &[
            "exop",
            exop::DELIVER_OTP_REQUEST,
            &hex(&deliver_value("u:alice", Some("alice-password"))),
        ],
    );
    assert_eq!(a["result"], 0, "{a}");
    let otp = w.smtp.wait_for(2)[1].otp(6);
    w.cs.clock.advance(Duration::from_secs(301));
    let late = w.ldap3(&url, &["sasl", "u:alice", &otp]);
    assert_eq!(late["result"], 49, "{late}");

    // Another authorization identity is refused (no proxy rights), with its own code.
    w.cs.clock.advance(Duration::from_secs(1));
    w.ldap3(
        &url,
        &[
            "exop",
            exop::DELIVER_OTP_REQUEST,
            &hex(&deliver_value("u:alice", Some("alice-password"))),
        ],
    );
    let otp = w.smtp.wait_for(3)[2].otp(6);
    let proxy = w.ldap3(
        &url,
        &[
            "sasl",
            "u:alice",
            &otp,
            "dn:uid=bob,ou=people,dc=example,dc=com",
        ],
    );
    assert_eq!(proxy["result"], 50, "{proxy}");
    let own = w.ldap3(
        &url,
        &["sasl", "u:alice", &otp, &format!("dn:{}", alice_dn())],
    );
    assert_eq!(own["result"], 0, "{own}");

    // Audit: the LDAP attempts are there, from the ldap front.
    let audit =
        w.cs.app
            .store
            .list_audit(&Default::default())
            .await
            .unwrap();
    assert!(audit.iter().all(|r| r.front == "ldap"));
    assert_eq!(audit[0].reason, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_deliver_without_password_when_bound_as_that_user() {
    let w = ldap_world("").await;
    // ldapexop binds first (-D/-w), then sends Deliver OTP without a static password.
    let arg = format!(
        "{}::{}",
        exop::DELIVER_OTP_REQUEST,
        b64(&deliver_value("u:alice", None))
    );
    let (code, _, err) = w.tool(
        "ldapexop",
        &[
            "-x",
            "-H",
            w.ldaps(),
            "-D",
            alice_dn(),
            "-w",
            "alice-password",
            &arg,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(w.smtp.wait_for(1).len(), 1);
    // Anonymous: refused.
    let (code, _, err) = w.tool("ldapexop", &["-x", "-H", w.ldaps(), &arg]);
    assert_ne!(code, 0);
    assert!(err.contains("Invalid credentials (49)"), "{err}");
}
