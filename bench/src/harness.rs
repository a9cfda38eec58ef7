//! What every suite runs against: a `countersign serve` process (any binary, so two builds can
//! be measured with the same harness), its generated config, local users made with that
//! binary's own `user add`, the bench's slapd, an SMS gateway and an SMTP server inside the
//! bench process that hand each code to the client waiting for it; and the measuring loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use countersign::config::Config;
use countersign::directory::LdapDirectory;
use countersign::passwords;
use countersign_core::Secret;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::slapd::{DIR_BASE, Slapd, phone};

/// Who waits for a code, by recipient (a phone number or an e-mail address).
pub type Inboxes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<String>>>>;

/// Component latencies of each counted iteration.
pub type Samples = Vec<Vec<Duration>>;

pub struct Harness {
    _tmp: tempfile::TempDir,
    pub slapd: Slapd,
    server: tokio::process::Child,
    /// The countersign process, for its memory figures.
    pub pid: u32,
    pub http_base: String,
    pub ldap_addr: String,
    pub client: reqwest::Client,
    pub inboxes: Inboxes,
    /// The slapd directory through countersign's own adapter (of the bench's build).
    pub corp: Arc<LdapDirectory>,
}

impl Harness {
    /// Starts everything for `users` local and directory users, with `bin` as the server.
    pub async fn start(bin: &Path, users: usize) -> anyhow::Result<Harness> {
        let tmp = tempfile::TempDir::new()?;
        let inboxes: Inboxes = Arc::default();
        let gw_addr = sms_gateway(inboxes.clone()).await?;
        let smtp_port = crate::smtp_sink::start(inboxes.clone()).await?;
        let (http_port, ldap_port, slapd_port) = (free_port()?, free_port()?, free_port()?);
        let slapd = Slapd::start(tmp.path(), slapd_port, users)?;
        std::fs::write(tmp.path().join("service.pw"), "service-password\n")?;
        let config_path = tmp.path().join("countersign.toml");
        let base = config(http_port, ldap_port, slapd_port, &gw_addr, smtp_port);
        // Keys newer binaries need so the bench measures them the same way (the connection
        // caps of the HTTP front, the per-user failure ceiling off); an older binary that does
        // not know them gets the config without them.
        std::fs::write(&config_path, format!("{base}{NEWER_KEYS}"))?;
        if !accepts_config(bin, &config_path).await? {
            std::fs::write(&config_path, base)?;
        }
        add_local_users(bin, &config_path, users).await?;
        let corp = {
            let config = Config::load(&config_path).map_err(|e| anyhow!("{e}"))?;
            let c = config
                .ldap_directories()
                .next()
                .cloned()
                .ok_or_else(|| anyhow!("no ldap directory"))?;
            Arc::new(LdapDirectory::new(c).map_err(|e| anyhow!(e))?)
        };
        let server = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = server.id().ok_or_else(|| anyhow!("the server exited"))?;
        let http_base = format!("http://127.0.0.1:{http_port}");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        wait_ready(&client, &http_base).await?;
        Ok(Harness {
            _tmp: tmp,
            slapd,
            server,
            pid,
            http_base,
            ldap_addr: format!("127.0.0.1:{ldap_port}"),
            client,
            inboxes,
            corp,
        })
    }

    pub async fn stop(mut self) {
        self.server.kill().await.ok();
    }

    /// A new inbox for `recipient`'s codes (replacing any earlier one).
    pub fn inbox(&self, recipient: String) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut map) = self.inboxes.lock() {
            map.insert(recipient, tx);
        }
        rx
    }

    /// `VmRSS` and `VmHWM` (peak) of the countersign process, in KiB, from /proc.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc/{}/status", self.pid))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

/// Only keys every countersign release since the LDAP front understands, so an older binary
/// runs the same harness. Rate limits are off (every client is 127.0.0.1); SQLite keeps its
/// `synchronous=FULL`; plain LDAP with Deliver OTP allowed, so no TLS handshakes are measured.
fn config(
    http_port: u16,
    ldap_port: u16,
    slapd_port: u16,
    gw_addr: &str,
    smtp_port: u16,
) -> String {
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
[[mail_profile]]
name = "sink"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "mfa@example.com"
[[delivery_mechanism]]
name = "SMS"
type = "sms"
sms_profile = "gw"
text_before_otp = ""
[[delivery_mechanism]]
name = "Email"
type = "email"
mail_profile = "sink"
text_before_otp = ""
text_after_otp = ""
[deliver_otp]
identity_mapper = ["local", "corp"]
default_mechanisms = ["SMS"]
[rate_limits]
deliver_per_user = "off"
deliver_per_client = "off"
verify_per_user = "off"
verify_per_client = "off"
"#
    )
}

/// Settings only binaries since issue 7 know.
const NEWER_KEYS: &str = r#"failures_per_user = "off"
[http]
max_connections_per_client = 4096
"#;

/// Whether `bin check-config` accepts the file.
async fn accepts_config(bin: &Path, config: &Path) -> anyhow::Result<bool> {
    let status = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(status.success())
}

/// `userN` with a mobile number, through the measured binary's own CLI, so the database is the
/// one that binary makes.
async fn add_local_users(bin: &Path, config: &Path, users: usize) -> anyhow::Result<()> {
    for i in 0..users {
        let mut child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["user", "add", &format!("user{i}"), "--mobile", &phone(i)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"bench-password\n").await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!("user add user{i}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// Takes {"to", "text"} and hands the code to whoever waits on that number.
async fn sms_gateway(inboxes: Inboxes) -> anyhow::Result<String> {
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let inboxes = inboxes.clone();
        async move {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let to = v["to"].as_str().unwrap_or_default().to_owned();
            let text = v["text"].as_str().unwrap_or_default();
            let otp: String = text.chars().filter(char::is_ascii_digit).collect();
            if let Ok(map) = inboxes.lock()
                && let Some(tx) = map.get(&to)
            {
                let _ = tx.send(otp);
            }
            "queued"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr.to_string())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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

/// When a client's iterations count.
#[derive(Clone)]
pub enum Window {
    /// Timed: iterations that start after the warm-up and end before `until`.
    Timed { from: Instant, until: Instant },
    /// Counted: the clients together run exactly this many iterations, all counted.
    Counted { left: Arc<AtomicUsize> },
}

impl Window {
    /// Whether a client should start another iteration.
    pub fn more(&self) -> bool {
        match self {
            Window::Timed { until, .. } => Instant::now() < *until,
            Window::Counted { left } => left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Whether an iteration that ran from `start` to now counts.
    pub fn counts(&self, start: Instant) -> bool {
        match self {
            Window::Timed { from, until } => start >= *from && Instant::now() <= *until,
            Window::Counted { .. } => true,
        }
    }
}

/// Runs `clients` clients, each with its own user number, in `window`; returns every counted
/// iteration's component latencies.
pub async fn level<F, Fut>(clients: usize, window: Window, per_client: F) -> anyhow::Result<Samples>
where
    F: Fn(usize, Window) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Samples>> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(per_client(i, window.clone())))
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

/// One second of warm-up, then `measure`.
pub fn timed(measure: Duration) -> Window {
    let start = Instant::now() + Duration::from_millis(50);
    Window::Timed {
        from: start + Duration::from_secs(1),
        until: start + Duration::from_secs(1) + measure,
    }
}

pub fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Mean time of one argon2id verification with the parameters countersign uses, on one core.
pub fn argon2_cost() -> Duration {
    let pw = Secret::new("bench-password");
    let hash = passwords::hash(&pw).unwrap_or_default();
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        let _ = passwords::verify(&pw, &hash);
    }
    start.elapsed() / n
}

/// The measured binary, for the report.
pub fn describe(bin: &Path) -> String {
    let abs = std::fs::canonicalize(bin).unwrap_or_else(|_| PathBuf::from(bin));
    abs.display().to_string()
}
