//! `countersign demo`: everything a newcomer needs in one command. A folder with its own SQLite
//! file, key and config; four local users; `file` mechanisms that print each code and each
//! message to a manager on this terminal; the two kinds of Approved OTP profile chosen by
//! policy; an application with an API key; an OpenID Connect client whose relying party is
//! countersign's own `/demo` page (`http::demo_rp`), so the sign-in, the wait for the manager
//! and the verified ID token can be clicked through in a browser; a test CA and certificate so
//! LDAP runs StartTLS and LDAPS; the HTTP API and the LDAP fronts on loopback; and a
//! walkthrough of commands that work as printed (`walkthrough.rs`).

mod tls;
mod walkthrough;

use std::path::Path;
use std::sync::Arc;

use countersign_core::Secret;
use countersign_core::crypto::to_hex;
use countersign_core::model::{AccountState, Sponsor, Timestamp, User};
use countersign_core::ports::{Directory, LocalUser};

use crate::app::{App, Listeners, shutdown_signal};
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::http::demo_rp::DemoRp;
use crate::passwords;
use walkthrough::{DEMO_APP, PORTAL, Places};

/// The demo's configuration; `{http}`, `{ldap}` and `{ldaps}` are replaced by the listen
/// addresses. The files it names (`demo-portal.key`, `demo-app.secret`, `server.pem`,
/// `server.key`) are made by [`run`] before it is read.
pub const DEMO_CONFIG: &str = r#"# Written by `countersign demo`; rewritten each time the demo starts.
[server]
# Base URL of the approval links in the managers' messages, and the OpenID Connect issuer.
public_url = "http://{http}"

[store]
url = "sqlite://countersign.db"

[listen]
http = "{http}"
ldap = "{ldap}"
ldaps = "{ldaps}"

[ldap]
# Made by the demo: a certificate for 127.0.0.1 and localhost, signed by its test CA (ca.pem).
# StartTLS on the LDAP port, TLS from the first byte on the LDAPS port.
tls_certificate_file = "server.pem"
tls_key_file = "server.key"
# Deliver OTP carries the static password: refused on connections without TLS.
allow_deliver_otp_without_tls = false
# LDAP binds are logins of this application; one that needs the manager's approval is held
# until the manager decides, at most this long.
application = "ldap-clients"
approval_wait = "120s"

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

# The managers' e-mail, the same way. Not offered for one-time passwords: only the approval
# profiles below send through it.
[[delivery_mechanism]]
name = "ManagerMail"
type = "file"
channel = "email"
directory = "outbox"
enabled = false

[deliver_otp]
identity_mapper = "local"
default_mechanisms = ["Email", "SMS"]
otp_validity = "5m"
max_failed_attempts = 5

# Approved OTP. The manager (a local user's sponsor) is told of each login...
[[approval_profile]]
name = "inform"
type = "information"
delivery = "email"
delivery_mechanism = "ManagerMail"
default_recipient = "security@example.com"
fallback_directories = ["local"]

# ... or must approve it through a link first.
[[approval_profile]]
name = "critical"
type = "approval"
delivery = "email"
delivery_mechanism = "ManagerMail"
link_expiration = "15m"
default_recipient = "security@example.com"
fallback_directories = ["local"]

# Tried top to bottom, the first match wins.
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

# The HTTP application of the walkthrough; the demo made its key at random.
[[application]]
name = "demo-portal"
api_key_file = "demo-portal.key"

# The OpenID Connect client of the browser walkthrough: countersign's own demo relying party
# (open /demo). Its secret is made anew, at random, each time the demo starts.
[[application]]
name = "demo-app"
redirect_uris = ["http://{http}/demo/callback"]
client_secret_file = "demo-app.secret"
methods = ["password"]
approved_otp = true

# The application LDAP binds are logins of ([ldap] application).
[[application]]
name = "ldap-clients"
"#;

struct DemoUser {
    username: &'static str,
    password: &'static str,
    display_name: &'static str,
    mail: &'static str,
    mobile: &'static str,
    sponsor: Option<(&'static str, &'static str, &'static str)>,
    locked: bool,
    /// The attribute the "contractors" policy reads.
    employee_type: &'static str,
}

const BOB: Option<(&str, &str, &str)> = Some(("Bob Manager", "bob@example.com", "+15550100002"));

const USERS: [DemoUser; 4] = [
    DemoUser {
        username: "alice",
        password: "alice-demo-password",
        display_name: "Alice Example",
        mail: "alice@example.com",
        mobile: "+15550100001",
        sponsor: BOB,
        locked: false,
        employee_type: "employee",
    },
    DemoUser {
        username: "bob",
        password: "bob-demo-password",
        display_name: "Bob Manager",
        mail: "bob@example.com",
        mobile: "+15550100002",
        sponsor: None,
        locked: false,
        employee_type: "employee",
    },
    DemoUser {
        username: "carol",
        password: "carol-demo-password",
        display_name: "Carol Locked",
        mail: "carol@example.com",
        mobile: "+15550100003",
        sponsor: BOB,
        locked: true,
        employee_type: "employee",
    },
    DemoUser {
        username: "dave",
        password: "dave-demo-password",
        display_name: "Dave Contractor",
        mail: "dave@example.com",
        mobile: "+15550100004",
        sponsor: BOB,
        locked: false,
        employee_type: "contractor",
    },
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    // The demo's folder holds its database, keys and messages with codes: its owner's only.
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
    let ldaps = bind(args.ldaps.clone(), "ldaps").await?;
    let addrs =
        [http.local_addr()?, ldap.local_addr()?, ldaps.local_addr()?].map(|a| a.to_string());
    tls::ensure(&dir)?;
    let api_key = api_key(&dir.join(format!("{PORTAL}.key")))?;
    let client_secret = new_secret(&dir.join(format!("{DEMO_APP}.secret")))?;
    let config_path = dir.join("countersign.toml");
    let text = DEMO_CONFIG
        .replace("{http}", &addrs[0])
        .replace("{ldap}", &addrs[1])
        .replace("{ldaps}", &addrs[2]);
    std::fs::write(&config_path, text)?;
    let config =
        Config::load(&config_path).map_err(|e| anyhow::anyhow!("built-in demo config: {e}"))?;
    let mut app = App::build(config)?;
    seed_users(&app).await?;
    let issuer = format!("http://{}", addrs[0]);
    let rp = DemoRp::new(&issuer, DEMO_APP, Secret::new(client_secret))
        .map_err(|e| anyhow::anyhow!("the demo relying party: {e}"))?;
    app.demo_rp = Some(Arc::new(rp));

    let places = Places {
        http: &addrs[0],
        ldap: &addrs[1],
        ldaps: &addrs[2],
        dir: &dir,
        api_key: &api_key,
    };
    println!("{}", walkthrough::walkthrough(&places));
    let listeners = Listeners {
        http: Some(http),
        ldap: Some(ldap),
        ldaps: Some(ldaps),
    };
    app.serve(listeners, shutdown_signal()).await?;
    println!(
        "countersign demo stopped; its state stays in {}",
        dir.display()
    );
    Ok(())
}

/// The demo application's API key: the one in `path` from an earlier start, else a
/// [`new_secret`].
fn api_key(path: &Path) -> anyhow::Result<String> {
    if let Ok(key) = std::fs::read_to_string(path) {
        let key = key.trim();
        if key.len() >= 32 {
            return Ok(key.to_owned());
        }
    }
    new_secret(path)
}

/// 32 fresh bytes from the operating system's CSPRNG, hex, written to `path` (replacing what
/// was there) readable by the owner only.
fn new_secret(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = to_hex(&crate::system::random_bytes(32));
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writeln!(f, "{key}")?;
    Ok(key)
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
            id: None,
            username: d.username.to_owned(),
            display_name: Some(d.display_name.to_owned()),
            mail: vec![d.mail.to_owned()],
            mobile: vec![d.mobile.to_owned()],
            attributes: [
                ("department".to_owned(), vec!["finance".to_owned()]),
                // Attribute names are kept lower-cased (policies match any case).
                ("employeetype".to_owned(), vec![d.employee_type.to_owned()]),
            ]
            .into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_the_applications_the_walkthrough_uses() {
        assert!(DEMO_CONFIG.contains(&format!(
            "name = \"{PORTAL}\"\napi_key_file = \"{PORTAL}.key\""
        )));
        let ldap = format!("application = \"{}\"", walkthrough::LDAP_CLIENTS);
        assert!(DEMO_CONFIG.contains(&ldap));
        assert!(DEMO_CONFIG.contains(&format!(
            "name = \"{DEMO_APP}\"\nredirect_uris = [\"http://{{http}}/demo/callback\"]\n\
             client_secret_file = \"{DEMO_APP}.secret\""
        )));
    }

    #[test]
    fn the_client_secret_is_new_at_each_start_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.secret");
        let first = new_secret(&path).unwrap();
        assert_eq!(first.len(), 64);
        let second = new_secret(&path).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), second);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_api_key_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = api_key(&path).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(api_key(&path).unwrap(), key);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A file too short to be a key is replaced.
        std::fs::write(&path, "short").unwrap();
        assert_ne!(api_key(&path).unwrap(), key);
    }
}
