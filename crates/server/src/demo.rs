//! `countersign demo`: everything a newcomer needs in one command. A folder with its own SQLite
//! file, key and config; three local users; `file` mechanisms that print each code on this
//! terminal; the HTTP API on loopback; and a walkthrough of commands that work as printed.

use std::path::Path;

use countersign_core::Secret;
use countersign_core::model::{AccountState, Sponsor, Timestamp, User};
use countersign_core::ports::{Directory, LocalUser, Store};

use crate::app::App;
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::passwords;

/// The demo's configuration; `{http}` is replaced by the listen address.
pub const DEMO_CONFIG: &str = r#"# Written by `countersign demo`; rewritten each time the demo starts.
[store]
url = "sqlite://countersign.db"

[listen]
http = "{http}"

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
    let dir = std::fs::canonicalize(&args.dir)?;
    let listener = tokio::net::TcpListener::bind(&args.http)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (pick another with --http 127.0.0.1:PORT)",
                args.http
            )
        })?;
    let addr = listener.local_addr()?;
    let config_path = dir.join("countersign.toml");
    std::fs::write(
        &config_path,
        DEMO_CONFIG.replace("{http}", &addr.to_string()),
    )?;
    let config =
        Config::load(&config_path).map_err(|e| anyhow::anyhow!("built-in demo config: {e}"))?;
    let app = App::build(config).map_err(|e| anyhow::anyhow!(e))?;
    seed_users(&app).await?;

    println!("{}", walkthrough(&addr.to_string(), &dir));
    crate::http::serve(
        listener,
        crate::http::ApiState::new(&app),
        shutdown_signal(),
    )
    .await?;
    println!(
        "countersign demo stopped; its state stays in {}",
        dir.display()
    );
    Ok(())
}

async fn seed_users(app: &App) -> anyhow::Result<()> {
    let dir = app.local_directory(None).map_err(|e| anyhow::anyhow!(e))?;
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
        let password_hash =
            passwords::hash(&Secret::new(d.password)).map_err(|e| anyhow::anyhow!(e))?;
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

fn walkthrough(addr: &str, dir: &Path) -> String {
    let outbox = dir.join("outbox");
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "countersign".to_owned());
    format!(
        r#"
countersign demo: HTTP API on http://{addr}
  state: {dir}  (SQLite database, OTP key, config, outbox/)
  users: alice / alice-demo-password   (sponsor: Bob Manager)
         bob   / bob-demo-password
         carol / carol-demo-password   (locked: always refused)

In another terminal (run the steps in one shell: 2 and 3 share $OTP):

1. Ask for a one-time password for alice (it is "sent" by e-mail: printed here, saved in outbox/):

  curl -s http://{addr}/api/v1/otp/deliver -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","static_password":"alice-demo-password"}}'

2. Log in with it (this reads the code from the newest message in outbox/; or paste it by hand):

  OTP=$(sed -n 's/.*password is: \([0-9]*\).*/\1/p' "$(ls -t {outbox}/*.txt | head -n1)")
  curl -s http://{addr}/api/v1/otp/verify -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","otp":"'$OTP'"}}'

3. The same code a second time is refused (single use):

  curl -s http://{addr}/api/v1/otp/verify -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","otp":"'$OTP'"}}'

4. By SMS instead, and what can reach alice:

  curl -s http://{addr}/api/v1/otp/deliver -H 'content-type: application/json' \
    -d '{{"authentication_id":"u:alice","static_password":"alice-demo-password","mechanisms":["SMS"]}}'
  curl -s 'http://{addr}/api/v1/otp/mechanisms?dn=uid=alice,ou=people,dc=example,dc=com'

5. What happened, newest first (the real reason of every refusal):

  {exe} --config {dir}/countersign.toml audit

Press Ctrl-C to stop.
"#,
        dir = dir.display(),
        outbox = outbox.display(),
    )
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
