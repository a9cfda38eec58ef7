//! countersign-bench: load against a running `countersign serve`, at several concurrency levels:
//! Deliver OTP + verify round trips over HTTP; LDAP simple binds (a new connection per bind, and
//! persistent connections); Deliver OTP + UNBOUNDID-DELIVERED-OTP bind round trips over LDAP.
//! Codes go out by "SMS" to a gateway inside this process, which hands each one to the client
//! waiting for it. See bench/README.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use countersign::app::App;
use countersign::config::Config;
use countersign::directory::LdapDirectory;
use countersign::ldap::exop;
use countersign::passwords;
use countersign_core::Secret;
use countersign_core::identity::Identity;
use countersign_core::model::{AccountState, User};
use countersign_core::ports::Lookup;
use countersign_core::ports::{Directory, LocalUser};
use futures_util::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapExtendedRequest, LdapFilter, LdapMsg,
    LdapOp, LdapResultCode, LdapSearchRequest, LdapSearchScope, SaslCredentials,
};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

#[derive(Parser)]
struct Args {
    /// The countersign binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/countersign")]
    server: PathBuf,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    clients: Vec<usize>,
    /// Seconds measured per level (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Suites to run, comma-separated: http, ldap-bind-new, ldap-bind-persistent, ldap-otp.
    #[arg(
        long,
        default_value = "http,ldap-bind-new,ldap-bind-persistent,ldap-otp,dir-bind,dir-bind-direct,dir-deliver,dir-deliver-direct,dir-login,dir-login-direct",
        value_delimiter = ','
    )]
    suite: Vec<String>,
}

type Inboxes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<String>>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let users = args.clients.iter().copied().max().unwrap_or(1);
    let tmp = tempfile::TempDir::new()?;

    // The SMS gateway: takes {"to", "text"} and hands the code to whoever waits on that number.
    let inboxes: Inboxes = Arc::default();
    let gw = inboxes.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let gw = gw.clone();
        async move {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let to = v["to"].as_str().unwrap_or_default().to_owned();
            let text = v["text"].as_str().unwrap_or_default();
            let otp: String = text.chars().filter(char::is_ascii_digit).collect();
            if let Ok(map) = gw.lock()
                && let Some(tx) = map.get(&to)
            {
                let _ = tx.send(otp);
            }
            "queued"
        }
    });
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gw_addr = gw_listener.local_addr()?;
    tokio::spawn(async move { axum::serve(gw_listener, app).await });

    let free_port = || -> anyhow::Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let (http_port, ldap_port, slapd_port) = (free_port()?, free_port()?, free_port()?);
    let slapd = Slapd::start(tmp.path(), slapd_port, users)?;
    std::fs::write(tmp.path().join("service.pw"), "service-password\n")?;
    let config_path = tmp.path().join("countersign.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"[store]
url = "sqlite://countersign.db"
[listen]
http = "127.0.0.1:{http_port}"
ldap = "127.0.0.1:{ldap_port}"
[ldap]
allow_deliver_otp_without_tls = true
# Every bench client comes from 127.0.0.1.
max_connections_per_client = 4096
[http]
max_connections_per_client = 4096
[[directory]]
name = "local"
type = "local"
[[directory]]
name = "corp"
type = "ldap"
url = "ldap://127.0.0.1:{slapd_port}"
bind_dn = "cn=countersign,dc=example,dc=com"
bind_password_file = "service.pw"
user_base_dns = ["{DIR_BASE}"]
[[sms_profile]]
name = "gw"
url = "http://{gw_addr}/send"
body = {{ to = "{{to}}", text = "{{message}}" }}
[[delivery_mechanism]]
name = "SMS"
type = "sms"
sms_profile = "gw"
text_before_otp = ""
[deliver_otp]
identity_mapper = ["local", "corp"]
default_mechanisms = ["SMS"]
[rate_limits]
deliver_per_user = "off"
deliver_per_client = "off"
verify_per_user = "off"
verify_per_client = "off"
"#
        ),
    )?;

    // Users, written through the library before the server starts.
    {
        let config = Config::load(&config_path).map_err(|e| anyhow!("{e}"))?;
        let app = App::build(config).map_err(|e| anyhow!(e))?;
        let dir = app.local_directory(None).map_err(|e| anyhow!(e))?;
        let hash = passwords::hash(&Secret::new("bench-password")).map_err(|e| anyhow!(e))?;
        for i in 0..users {
            let username = format!("user{i}");
            let user = User {
                directory: dir.name().to_owned(),
                dn: dir.dn_for(&username),
                username,
                display_name: None,
                mail: vec![],
                mobile: vec![phone(i)],
                attributes: Default::default(),
                sponsor: None,
                preferred_mechanisms: vec![],
                account: AccountState::default(),
            };
            app.store
                .insert_local_user(&LocalUser {
                    user,
                    password_hash: hash.clone(),
                })
                .await
                .map_err(|e| anyhow!(e.to_string()))?;
        }
    }

    let argon2 = argon2_cost();
    let corp: Arc<LdapDirectory> = {
        let config = Config::load(&config_path).map_err(|e| anyhow!("{e}"))?;
        let c = config
            .ldap_directories()
            .next()
            .cloned()
            .ok_or_else(|| anyhow!("no ldap directory"))?;
        Arc::new(LdapDirectory::new(c).map_err(|e| anyhow!(e))?)
    };

    let mut server = tokio::process::Command::new(&args.server)
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.server.display()))?;
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    wait_ready(&client, &base).await?;

    println!(
        "argon2id verification (m=19456 KiB, t=2, p=1), one core: {:.1} ms",
        argon2.as_secs_f64() * 1e3
    );
    println!();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let measure = Duration::from_secs(args.seconds);
    let ldap_addr = format!("127.0.0.1:{ldap_port}");
    for suite in &args.suite {
        let (title, parts): (&str, &[&str]) = match suite.as_str() {
            "http" => ("HTTP: deliver + verify round trips", &["deliver", "verify"]),
            "ldap-bind-new" => (
                "LDAP: simple bind on a new connection each time",
                &["connect+bind"],
            ),
            "ldap-bind-persistent" => ("LDAP: simple binds on persistent connections", &["bind"]),
            "ldap-otp" => (
                "LDAP: Deliver OTP + UNBOUNDID-DELIVERED-OTP bind round trips",
                &["deliver", "sasl bind"],
            ),
            "dir-bind" => (
                "Directory users: simple bind through countersign's LDAP front (persistent connections)",
                &["bind"],
            ),
            "dir-bind-direct" => (
                "Directory users: the same directory work sent straight to slapd (DN read + bind on a new connection)",
                &["read+bind"],
            ),
            "dir-deliver" => (
                "Directory users: Deliver OTP over HTTP (until the SMS gateway has the code)",
                &["deliver"],
            ),
            "dir-login" => (
                "Directory users: a login through countersign's directory adapter (u: lookup, password bind, manager lookup), in process",
                &["login"],
            ),
            "dir-login-direct" => (
                "Directory users: the same directory work straight to slapd (uid search, bind on a new connection, manager entry read)",
                &["login"],
            ),
            "dir-deliver-direct" => (
                "Directory users: the same directory work sent straight to slapd (uid search + bind on a new connection)",
                &["search+bind"],
            ),
            other => bail!("unknown suite {other}"),
        };
        println!("### {title}\n");
        let mut head = String::from("| clients | per second |");
        let mut rule = String::from("| ---: | ---: |");
        for p in parts {
            head += &format!(" {p} p50 | {p} p99 |");
            rule += " ---: | ---: |";
        }
        head += &format!(" argon2 of all CPU ({cores} cores) |");
        rule += " ---: |";
        println!("{head}\n{rule}");
        for &c in &args.clients {
            let samples = match suite.as_str() {
                "http" => {
                    level(c, measure, |i, w| {
                        http_client(client.clone(), base.clone(), inbox(&inboxes, i), i, w)
                    })
                    .await?
                }
                "ldap-bind-new" => {
                    level(c, measure, |i, w| {
                        ldap_bind_client(ldap_addr.clone(), local_dn(i), w, false)
                    })
                    .await?
                }
                "ldap-bind-persistent" => {
                    level(c, measure, |i, w| {
                        ldap_bind_client(ldap_addr.clone(), local_dn(i), w, true)
                    })
                    .await?
                }
                "ldap-otp" => {
                    level(c, measure, |i, w| {
                        ldap_otp_client(ldap_addr.clone(), inbox(&inboxes, i), i, w)
                    })
                    .await?
                }
                "dir-bind" => {
                    level(c, measure, |i, w| {
                        ldap_bind_client(ldap_addr.clone(), dir_dn(i), w, true)
                    })
                    .await?
                }
                "dir-bind-direct" => {
                    level(c, measure, |i, w| {
                        direct_client(slapd.addr.clone(), i, w, false)
                    })
                    .await?
                }
                "dir-deliver" => {
                    level(c, measure, |i, w| {
                        dir_deliver_client(
                            client.clone(),
                            base.clone(),
                            inbox_for(&inboxes, dir_phone(i)),
                            i,
                            w,
                        )
                    })
                    .await?
                }
                "dir-login" => {
                    let dir = corp.clone();
                    level(c, measure, move |i, w| {
                        adapter_login_client(dir.clone(), i, w)
                    })
                    .await?
                }
                "dir-login-direct" => {
                    level(c, measure, |i, w| {
                        direct_login_client(slapd.addr.clone(), i, w)
                    })
                    .await?
                }
                _ => {
                    level(c, measure, |i, w| {
                        direct_client(slapd.addr.clone(), i, w, true)
                    })
                    .await?
                }
            };
            let rate = samples.len() as f64 / measure.as_secs_f64();
            let mut row = format!("| {c} | {rate:.1} |");
            for k in 0..parts.len() {
                let mut v: Vec<Duration> = samples.iter().map(|s| s[k]).collect();
                v.sort();
                row += &format!(" {} | {} |", ms(pct(&v, 0.50)), ms(pct(&v, 0.99)));
            }
            // Every iteration of the local-user suites checks one static password with argon2
            // (deliver, simple bind; verify and the OTP bind do not); directory users' passwords
            // are checked by the directory.
            if suite.starts_with("dir") {
                row += " - |";
            } else {
                row += &format!(
                    " {:.0}% |",
                    100.0 * rate * argon2.as_secs_f64() / cores as f64
                );
            }
            println!("{row}");
        }
        println!();
    }
    server.kill().await.ok();
    Ok(())
}

const DIR_BASE: &str = "ou=people,dc=example,dc=com";

fn dir_phone(i: usize) -> String {
    format!("+1666{i:07}")
}

fn local_dn(i: usize) -> String {
    format!("uid=user{i},ou=people,dc=countersign,dc=local")
}

fn dir_dn(i: usize) -> String {
    format!("uid=duser{i},{DIR_BASE}")
}

/// An OpenLDAP slapd of the bench's own with `users` directory users (plaintext passwords, so
/// the directory's own hashing is not what is measured), each managed by duser0.
struct Slapd {
    child: std::process::Child,
    addr: String,
}

impl Slapd {
    fn start(dir: &std::path::Path, port: u16, users: usize) -> anyhow::Result<Slapd> {
        let db = dir.join("slapd-db");
        std::fs::create_dir_all(&db)?;
        let conf = dir.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
                 pidfile {d}/slapd.pid\ndatabase mdb\nsuffix \"dc=example,dc=com\"\n\
                 rootdn \"cn=admin,dc=example,dc=com\"\nrootpw admin\ndirectory {db}\nindex uid eq\n",
                d = dir.display(),
                db = db.display()
            ),
        )?;
        let mut ldif = String::from(
            "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
             dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: cn=countersign,dc=example,dc=com\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: countersign\nuserPassword: service-password\n\n",
        );
        for i in 0..users {
            ldif += &format!(
                "dn: {}\nobjectClass: inetOrgPerson\nuid: duser{i}\ncn: Directory User {i}\nsn: U\nmail: duser{i}@example.com\nmobile: {}\nmanager: {}\nuserPassword: bench-password\n\n",
                dir_dn(i),
                dir_phone(i),
                dir_dn(0)
            );
        }
        std::fs::write(dir.join("seed.ldif"), ldif)?;
        let sbin = |t: &str| {
            let p = std::path::Path::new("/usr/sbin").join(t);
            if p.exists() { p } else { PathBuf::from(t) }
        };
        let out = std::process::Command::new(sbin("slapadd"))
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(dir.join("seed.ldif"))
            .output()?;
        if !out.status.success() {
            bail!("slapadd: {}", String::from_utf8_lossy(&out.stderr));
        }
        let child = std::process::Command::new(sbin("slapd"))
            .arg("-f")
            .arg(&conf)
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/"))
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting slapd (apt-get install slapd)")?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Slapd {
                    child,
                    addr: format!("127.0.0.1:{port}"),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        bail!("slapd did not start")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn dir_deliver_client(
    client: reqwest::Client,
    base: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    i: usize,
    w: Window,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let deliver = serde_json::json!({"authentication_id": format!("u:duser{i}"), "static_password": "bench-password"});
    while Instant::now() < w.until {
        let t0 = Instant::now();
        http_deliver(&client, &base, &deliver, &mut rx).await?;
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

/// A login as countersign does it for a directory user, through the adapter itself: find the
/// user by `u:` name, bind as them, look up their manager.
async fn adapter_login_client(
    dir: Arc<LdapDirectory>,
    i: usize,
    w: Window,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let identity = Identity::parse(&format!("u:duser{i}")).map_err(|e| anyhow!(e.to_string()))?;
    let password = Secret::new("bench-password");
    while Instant::now() < w.until {
        let t0 = Instant::now();
        let user = match dir
            .find_user(&identity)
            .await
            .map_err(|e| anyhow!(e.to_string()))?
        {
            Lookup::Found(u) => *u,
            other => bail!("lookup: {other:?}"),
        };
        if !dir
            .check_password(&user, &password)
            .await
            .map_err(|e| anyhow!(e.to_string()))?
        {
            bail!("password refused");
        }
        if dir
            .find_manager(&user)
            .await
            .map_err(|e| anyhow!(e.to_string()))?
            .is_none()
            && i != 0
        {
            bail!("no manager");
        }
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

/// The same login straight to slapd: uid search, bind on a new connection, manager entry read.
async fn direct_login_client(
    addr: String,
    i: usize,
    w: Window,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let mut service = service_connection(&addr).await?;
    while Instant::now() < w.until {
        let t0 = Instant::now();
        let filter = LdapFilter::Or(vec![LdapFilter::Equality(
            "uid".into(),
            format!("duser{i}"),
        )]);
        if service
            .search(DIR_BASE.to_owned(), LdapSearchScope::Subtree, filter)
            .await?
            != 1
        {
            bail!("user not found");
        }
        bind_on_new_connection(&addr, i).await?;
        if service
            .search(
                dir_dn(0),
                LdapSearchScope::Base,
                LdapFilter::Present("objectClass".into()),
            )
            .await?
            != 1
        {
            bail!("manager not found");
        }
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

/// A connection bound as countersign's service account.
async fn service_connection(addr: &str) -> anyhow::Result<LdapClient> {
    let mut service = LdapClient::connect(addr).await?;
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: "cn=countersign,dc=example,dc=com".into(),
        cred: LdapBindCred::Simple("service-password".into()),
    });
    if service.ask(bind).await? != LdapResultCode::Success {
        bail!("service bind refused");
    }
    Ok(service)
}

/// Binds as directory user `i` on a new connection, then unbinds.
async fn bind_on_new_connection(addr: &str, i: usize) -> anyhow::Result<()> {
    let mut user = LdapClient::connect(addr).await?;
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: dir_dn(i),
        cred: LdapBindCred::Simple("bench-password".into()),
    });
    if user.ask(bind).await? != LdapResultCode::Success {
        bail!("user bind refused");
    }
    let _ = user
        .framed
        .send(LdapMsg::new(99, LdapOp::UnbindRequest))
        .await;
    Ok(())
}

/// What countersign asks of the directory, straight to slapd: on a service connection, read the
/// user (by DN, or by uid over the base when `by_uid`), then bind as the user on a new one.
async fn direct_client(
    addr: String,
    i: usize,
    w: Window,
    by_uid: bool,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let mut service = service_connection(&addr).await?;
    while Instant::now() < w.until {
        let t0 = Instant::now();
        let (base, scope, filter) = if by_uid {
            (
                DIR_BASE.to_owned(),
                LdapSearchScope::Subtree,
                LdapFilter::Or(vec![LdapFilter::Equality(
                    "uid".into(),
                    format!("duser{i}"),
                )]),
            )
        } else {
            (
                dir_dn(i),
                LdapSearchScope::Base,
                LdapFilter::Present("objectClass".into()),
            )
        };
        let found = service.search(base, scope, filter).await?;
        if found != 1 {
            bail!("found {found} entries");
        }
        bind_on_new_connection(&addr, i).await?;
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn inbox(inboxes: &Inboxes, i: usize) -> mpsc::UnboundedReceiver<String> {
    inbox_for(inboxes, phone(i))
}

fn inbox_for(inboxes: &Inboxes, number: String) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    if let Ok(mut map) = inboxes.lock() {
        map.insert(number, tx);
    }
    rx
}

/// The measured window of a level.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    /// Whether an iteration that ran from `start` to now counts.
    fn counts(&self, start: Instant) -> bool {
        start >= self.from && Instant::now() <= self.until
    }
}

/// Runs `clients` clients for one second of warm-up and `measure`; returns every counted
/// iteration's component latencies.
async fn level<F, Fut>(
    clients: usize,
    measure: Duration,
    per_client: F,
) -> anyhow::Result<Vec<Vec<Duration>>>
where
    F: Fn(usize, Window) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Vec<Duration>>>> + Send + 'static,
{
    let start = Instant::now() + Duration::from_millis(50);
    let window = Window {
        from: start + Duration::from_secs(1),
        until: start + Duration::from_secs(1) + measure,
    };
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(per_client(i, window)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    if all.is_empty() {
        bail!("no iteration completed in the measured window");
    }
    Ok(all)
}

/// `POST /api/v1/otp/deliver`, then the code as the SMS gateway received it.
async fn http_deliver(
    client: &reqwest::Client,
    base: &str,
    body: &serde_json::Value,
    rx: &mut mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<String> {
    let r = client
        .post(format!("{base}/api/v1/otp/deliver"))
        .json(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("deliver: HTTP {}", r.status());
    }
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await?
        .ok_or_else(|| anyhow!("gateway closed"))
}

async fn http_client(
    client: reqwest::Client,
    base: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    i: usize,
    w: Window,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let deliver = serde_json::json!({"authentication_id": format!("u:user{i}"), "static_password": "bench-password"});
    while Instant::now() < w.until {
        let t0 = Instant::now();
        let otp = http_deliver(&client, &base, &deliver, &mut rx).await?;
        let t1 = Instant::now();
        let verify = serde_json::json!({"authentication_id": format!("u:user{i}"), "otp": otp});
        let r = client
            .post(format!("{base}/api/v1/otp/verify"))
            .json(&verify)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("verify: HTTP {}", r.status());
        }
        if w.counts(t0) {
            samples.push(vec![t1 - t0, t1.elapsed()]);
        }
    }
    Ok(samples)
}

/// A minimal LDAP client on ldap3_proto's codec.
struct LdapClient {
    framed: Framed<tokio::net::TcpStream, LdapCodec>,
    next_id: i32,
}

impl LdapClient {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            framed: Framed::new(stream, LdapCodec::default()),
            next_id: 1,
        })
    }

    /// Searches; returns the number of entries (the result must be success).
    async fn search(
        &mut self,
        base: String,
        scope: LdapSearchScope,
        filter: LdapFilter,
    ) -> anyhow::Result<usize> {
        self.next_id += 1;
        let req = LdapSearchRequest {
            base,
            scope,
            aliases: LdapDerefAliases::Never,
            sizelimit: 0,
            timelimit: 0,
            typesonly: false,
            filter,
            attrs: vec![
                "mail".into(),
                "mobile".into(),
                "cn".into(),
                "manager".into(),
            ],
        };
        self.framed
            .send(LdapMsg::new(self.next_id, LdapOp::SearchRequest(req)))
            .await?;
        let mut n = 0;
        loop {
            let msg = self
                .framed
                .next()
                .await
                .ok_or_else(|| anyhow!("connection closed"))??;
            match msg.op {
                LdapOp::SearchResultEntry(_) => n += 1,
                LdapOp::SearchResultDone(r) if r.code == LdapResultCode::Success => return Ok(n),
                other => bail!("search: {other:?}"),
            }
        }
    }

    /// Sends `op` and returns the result code of its response.
    async fn ask(&mut self, op: LdapOp) -> anyhow::Result<LdapResultCode> {
        self.next_id += 1;
        self.framed.send(LdapMsg::new(self.next_id, op)).await?;
        let msg = self
            .framed
            .next()
            .await
            .ok_or_else(|| anyhow!("connection closed"))??;
        Ok(match msg.op {
            LdapOp::BindResponse(r) => r.res.code,
            LdapOp::ExtendedResponse(r) => r.res.code,
            other => bail!("unexpected {other:?}"),
        })
    }
}

/// Simple binds as `dn`, on one persistent connection or a new connection each time.
async fn ldap_bind_client(
    addr: String,
    dn: String,
    w: Window,
    persistent: bool,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let mut conn = LdapClient::connect(&addr).await?;
    while Instant::now() < w.until {
        let t0 = Instant::now();
        if !persistent {
            conn = LdapClient::connect(&addr).await?;
        }
        let bind = LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn.clone(),
            cred: LdapBindCred::Simple("bench-password".into()),
        });
        let code = conn.ask(bind).await?;
        if code != LdapResultCode::Success {
            bail!("bind: {code:?}");
        }
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

async fn ldap_otp_client(
    addr: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    i: usize,
    w: Window,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    let mut conn = LdapClient::connect(&addr).await?;
    let value = exop::encode_deliver_otp(&exop::DeliverOtpRequest {
        authentication_id: format!("u:user{i}"),
        static_password: Some(Secret::new("bench-password")),
        ..Default::default()
    });
    while Instant::now() < w.until {
        let t0 = Instant::now();
        let deliver = LdapOp::ExtendedRequest(LdapExtendedRequest {
            name: exop::DELIVER_OTP_REQUEST.into(),
            value: Some(value.clone()),
        });
        let code = conn.ask(deliver).await?;
        if code != LdapResultCode::Success {
            bail!("deliver: {code:?}");
        }
        let otp = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .ok_or_else(|| anyhow!("gateway closed"))?;
        let t1 = Instant::now();
        let creds = exop::encode_sasl_credentials(&exop::DeliveredOtpCredentials {
            authentication_id: format!("u:user{i}"),
            authorization_id: None,
            otp: Secret::new(otp),
        });
        let bind = LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: String::new(),
            cred: LdapBindCred::SASL(SaslCredentials {
                mechanism: exop::SASL_DELIVERED_OTP.into(),
                credentials: creds,
            }),
        });
        let code = conn.ask(bind).await?;
        if code != LdapResultCode::Success {
            bail!("SASL bind: {code:?}");
        }
        if w.counts(t0) {
            samples.push(vec![t1 - t0, t1.elapsed()]);
        }
    }
    Ok(samples)
}

fn phone(i: usize) -> String {
    format!("+1555{i:07}")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Mean time of one argon2id verification with the parameters countersign uses.
fn argon2_cost() -> Duration {
    let pw = Secret::new("bench-password");
    let hash = passwords::hash(&pw).unwrap_or_default();
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        let _ = passwords::verify(&pw, &hash);
    }
    start.elapsed() / n
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become ready at {base}")
}
