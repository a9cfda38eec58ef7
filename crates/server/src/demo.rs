//! `countersign demo`: everything a newcomer needs in one command. A folder with its own SQLite
//! file, key and config; three local users; `file` mechanisms that print each code on this
//! terminal; the HTTP API and the LDAP front on loopback; and a walkthrough of commands that
//! work as printed.

use std::path::Path;

use countersign_core::Secret;
use countersign_core::model::{AccountState, Sponsor, Timestamp, User};
use countersign_core::ports::{Directory, LocalUser};

use crate::app::{App, Listeners, shutdown_signal};
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::passwords;

/// The demo's configuration; `{http}` and `{ldap}` are replaced by the listen addresses,
/// `{allow_insecure}` by whether the LDAP address is a loopback one.
pub const DEMO_CONFIG: &str = r#"# Written by `countersign demo`; rewritten each time the demo starts.
[store]
url = "sqlite://countersign.db"

[listen]
http = "{http}"
ldap = "{ldap}"

[ldap]
# Deliver OTP carries the static password, so a real deployment serves it over LDAPS or StartTLS
# (the default refuses it otherwise). The demo allows it in clear only on a loopback address.
allow_deliver_otp_without_tls = {allow_insecure}

[[directory]]
name = "local"
type = "local"
base_dn = "ou=people,dc=example,dc=com"
match_attributes = ["uid", "mail"]

[password_generator]
character_sets = { numeric = "0123456789" }
format = "numeric:6"

# No SMTP server or SMS gateway needed: these write each message to outbox/ and this terminal.
[[delivery_mechanism]]
name = "Email"
type = "file"
channel = "email"
directory = "outbox"
subject = "Your countersign demo code"
text_after_otp = "\n\nIt is valid for 5 minutes."

[[delivery_mechanism]]
name = "SMS"
type = "file"
channel = "sms"
directory = "outbox"

[deliver_otp]
identity_mapper = "local"
default_mechanisms = ["Email", "SMS"]
otp_validity = "5m"
max_failed_attempts = 5
"#;

struct DemoUser {
    username: &'static str,
    password: &'static str,
    display_name: &'static str,
    mail: &'static str,
    mobile: &'static str,
    sponsor: Option<(&'static str, &'static str, &'static str)>,
    locked: bool,
}

const USERS: [DemoUser; 3] = [
    DemoUser {
        username: "alice",
        password: "alice-demo-password",
        display_name: "Alice Example",
        mail: "alice@example.com",
        mobile: "+15550100001",
        sponsor: Some(("Bob Manager", "bob@example.com", "+15550100002")),
        locked: false,
    },
    DemoUser {
        username: "bob",
        password: "bob-demo-password",
        display_name: "Bob Manager",
        mail: "bob@example.com",
        mobile: "+15550100002",
        sponsor: None,
        locked: false,
    },
    DemoUser {
        username: "carol",
        password: "carol-demo-password",
        display_name: "Carol Locked",
        mail: "carol@example.com",
        mobile: "+15550100003",
        sponsor: Some(("Bob Manager", "bob@example.com", "+15550100002")),
        locked: true,
    },
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    // The demo's folder holds its database, key and messages with codes: its owner's only.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let dir = std::fs::canonicalize(&args.dir)?;
    let bind = |addr: String, flag: &'static str| async move {
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {addr}: {e} (pick another with --{flag} 127.0.0.1:PORT)"
            )
        })
    };
    let http = bind(args.http.clone(), "http").await?;
    let ldap = bind(args.ldap.clone(), "ldap").await?;
    let (http_addr, ldap_addr) = (http.local_addr()?, ldap.local_addr()?);
    let config_path = dir.join("countersign.toml");
    let text = DEMO_CONFIG
        .replace("{http}", &http_addr.to_string())
        .replace("{ldap}", &ldap_addr.to_string())
        .replace(
            "{allow_insecure}",
            &ldap_addr.ip().is_loopback().to_string(),
        );
    std::fs::write(&config_path, text)?;
    let config =
        Config::load(&config_path).map_err(|e| anyhow::anyhow!("built-in demo config: {e}"))?;
    let app = App::build(config)?;
    seed_users(&app).await?;

    println!(
        "{}",
        walkthrough(&http_addr.to_string(), &ldap_addr.to_string(), &dir)
    );
    let listeners = Listeners {
        http: Some(http),
        ldap: Some(ldap),
        ldaps: None,
    };
    app.serve(listeners, shutdown_signal()).await?;
    println!(
        "countersign demo stopped; its state stays in {}",
        dir.display()
    );
    Ok(())
}

async fn seed_users(app: &App) -> anyhow::Result<()> {
    let dir = app.local_directory(None)?;
    for d in &USERS {
        if app
            .store
            .local_user(dir.name(), d.username)
            .await
            .map_err(|e| anyhow::anyhow!(e.to_string()))?
            .is_some()
        {
            continue;
        }
        let user = User {
            directory: dir.name().to_owned(),
            dn: dir.dn_for(d.username),
            username: d.username.to_owned(),
            display_name: Some(d.display_name.to_owned()),
            mail: vec![d.mail.to_owned()],
            mobile: vec![d.mobile.to_owned()],
            attributes: [("department".to_owned(), vec!["finance".to_owned()])].into(),
            sponsor: d.sponsor.map(|(name, email, phone)| Sponsor {
                name: Some(name.to_owned()),
                email: Some(email.to_owned()),
                phone: Some(phone.to_owned()),
            }),
            preferred_mechanisms: vec![],
            account: AccountState {
                locked_until: d.locked.then_some(Timestamp(i64::MAX)),
                ..Default::default()
            },
        };
        let password_hash = passwords::hash(&Secret::new(d.password))?;
        app.store
            .insert_local_user(&LocalUser {
                user,
                password_hash,
            })
            .await
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    }
    Ok(())
}

/// The Deliver OTP request value for alice, base64 for ldapexop (spec §3.1: `[0]` and `[1]`).
fn alice_deliver_value() -> String {
    let value = crate::ldap::exop::encode_deliver_otp(&crate::ldap::exop::DeliverOtpRequest {
        authentication_id: "u:alice".into(),
        static_password: Some(Secret::new("alice-demo-password")),
        ..Default::default()
    });
    base64(&value)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn walkthrough(http: &str, ldap: &str, dir: &Path) -> String {
    let outbox = dir.join("outbox");
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "countersign".to_owned());
    let newest_code = format!(
        r#"OTP=$(sed -n 's/.*password is: \([0-9]*\).*/\1/p' "$(ls -t {}/*.txt | head -n1)")"#,
        outbox.display()
    );
    format!(
        r#"
countersign demo: HTTP API on http://{http}, LDAP on ldap://{ldap}
  state: {dir}  (SQLite database, OTP key, config, outbox/)
  users: alice / alice-demo-password   (sponsor: Bob Manager)
         bob   / bob-demo-password
         carol / carol-demo-password   (locked: always refused)

In another terminal, in one shell (later steps use $OTP from earlier ones):

Over HTTP

1. Ask for a one-time password for alice (it is "sent" by e-mail: printed here, saved in outbox/):

  curl -s http://{http}/api/v1/otp/deliver -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","static_password":"alice-demo-password"}}'

2. Log in with it (this reads the code from the newest message in outbox/; or paste it by hand):

  {newest_code}
  curl -s http://{http}/api/v1/otp/verify -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","otp":"'$OTP'"}}'

3. The same code a second time is refused (single use):

  curl -s http://{http}/api/v1/otp/verify -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","otp":"'$OTP'"}}'

4. By SMS instead, and what can reach alice (addresses masked for callers who did not log in):

  curl -s http://{http}/api/v1/otp/deliver -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","static_password":"alice-demo-password","mechanisms":["SMS"]}}'
  curl -s 'http://{http}/api/v1/otp/mechanisms?dn=uid=alice,ou=people,dc=example,dc=com'

Over LDAP, as PingDirectory clients do (needs: apt-get install ldap-utils python3-ldap3)

5. The root DSE: extensions, the SASL mechanism, the delivery mechanisms:

  ldapsearch -x -H ldap://{ldap} -b "" -s base '*' '+'

6. A simple bind, then Who Am I:

  ldapwhoami -x -H ldap://{ldap} -D uid=alice,ou=people,dc=example,dc=com -w alice-demo-password

7. The Deliver OTP extended operation (1.3.6.1.4.1.30221.2.6.24; its value is the BER of
u:alice and her password), answered with the mechanism, her DN and the address used:

  ldapexop -x -H ldap://{ldap} '1.3.6.1.4.1.30221.2.6.24::{value}'

8. Bind with that code through the UNBOUNDID-DELIVERED-OTP SASL mechanism (Python's ldap3;
the credentials are the BER of u:alice and the code), then Who Am I on the same connection:

  {newest_code}
  /usr/bin/python3 -c 'import sys; from ldap3 import Connection, Server; \
    from ldap3.protocol.sasl.sasl import send_sasl_negotiation as sasl_bind; \
    ber = lambda tag, value: bytes([tag, len(value)]) + value; \
    conn = Connection(Server("ldap://{ldap}")); conn.open(); \
    conn.sasl_mechanism = "UNBOUNDID-DELIVERED-OTP"; \
    result = sasl_bind(conn, None, ber(0x30, ber(0x80, b"u:alice") + ber(0x82, sys.argv[1].encode()))); \
    print(result["description"], conn.extend.standard.who_am_i())' $OTP

9. What happened, newest first (the real reason of every refusal):

  {exe} --config {dir}/countersign.toml audit

Press Ctrl-C to stop.
"#,
        dir = dir.display(),
        value = alice_deliver_value(),
    )
}
