//! What every suite runs against: a `countersign serve` process (any binary, so two builds can
//! be measured with the same harness), its generated config, local users made with that
//! binary's own `user add`, the bench's slapd, an SMS gateway and an SMTP server inside the
//! bench process that hand each code to the client waiting for it; and the measuring loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Messages the SMTP server has received, all recipients together.
    pub mails: Arc<AtomicU64>,
    /// The slapd directory through countersign's own adapter (of the bench's build).
    pub corp: Arc<LdapDirectory>,
}

/// What a harness is made of beyond the common config: how many users, and what a suite adds
/// (the approval suites' profiles, policies and applications).
#[derive(Default)]
pub struct Setup {
    pub local_users: usize,
    pub dir_users: usize,
    /// Lines added to `[ldap]`.
    pub ldap: String,
    /// `[http] max_connections`, and the same per client (every bench client is 127.0.0.1);
    /// default 1024 and 4096.
    pub http_max_connections: Option<usize>,
    /// Sections appended to the config; `{HTTP_BASE}` and `{SMTP_PORT}` are replaced.
    pub tail: String,
    /// Arguments added to every local user's `user add`.
    pub user_args: Vec<String>,
    /// Files written beside the config (name, content), e.g. API keys.
    pub files: Vec<(String, String)>,
}

impl Harness {
    /// Starts everything for `users` local and directory users, with `bin` as the server.
    pub async fn start(bin: &Path, users: usize) -> anyhow::Result<Harness> {
        let setup = Setup {
            local_users: users,
            dir_users: users,
            ..Setup::default()
        };
        Harness::start_with(bin, &setup).await
    }

    /// Starts everything as `setup` says, with `bin` as the server.
    pub async fn start_with(bin: &Path, setup: &Setup) -> anyhow::Result<Harness> {
        let tmp = tempfile::TempDir::new()?;
        let inboxes: Inboxes = Arc::default();
        let mails = Arc::new(AtomicU64::new(0));
        let gw_addr = sms_gateway(inboxes.clone()).await?;
        let smtp_port = crate::smtp_sink::start(inboxes.clone(), mails.clone()).await?;
        let (http_port, ldap_port, slapd_port) = (free_port()?, free_port()?, free_port()?);
        let slapd = Slapd::start(tmp.path(), slapd_port, setup.dir_users)?;
        std::fs::write(tmp.path().join("service.pw"), "service-password\n")?;
        for (name, content) in &setup.files {
            std::fs::write(tmp.path().join(name), content)?;
        }
        let config_path = tmp.path().join("countersign.toml");
        let ports = Ports {
            http: http_port,
            ldap: ldap_port,
            slapd: slapd_port,
            smtp: smtp_port,
        };
        let base = config(&ports, &gw_addr, &setup.ldap);
        let tail = setup
            .tail
            .replace("{HTTP_BASE}", &format!("http://127.0.0.1:{http_port}"))
            .replace("{SMTP_PORT}", &smtp_port.to_string());
        // Keys newer binaries need so the bench measures them the same way (the connection
        // caps of the HTTP front, the per-user failure ceiling off); an older binary that does
        // not know them gets the config without them (unless the suite needs more).
        let newer = newer_keys(setup.http_max_connections);
        std::fs::write(&config_path, format!("{base}{newer}{tail}"))?;
        if !accepts_config(bin, &config_path).await? {
            if !tail.is_empty() || !setup.ldap.is_empty() {
                bail!(
                    "{} refuses the approval suites' config ({}); they need a build with \
                     Approved OTP",
                    bin.display(),
                    config_problems(bin, &config_path).await
                );
            }
            std::fs::write(&config_path, base)?;
        }
        add_local_users(bin, &config_path, setup.local_users, &setup.user_args).await?;
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
            mails,
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

    /// File descriptors the countersign process holds (its sockets among them).
    pub fn open_fds(&self) -> anyhow::Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid))?.count())
    }

    /// CPU time the countersign process has used.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time_of(self.pid)
    }

    /// Where the machine's CPU goes from now on; [`CpuMeter::usage`] tells.
    pub fn cpu_meter(&self) -> anyhow::Result<CpuMeter> {
        CpuMeter::start(self.pid, self.slapd.pid())
    }
}

/// CPU time a process has used (user + system), from /proc/PID/stat.
pub fn cpu_time_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of proc_pid_stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no field {i} in /proc/{pid}/stat"))
    };
    Ok(ticks_to_time(ticks(14)? + ticks(15)?))
}

/// Busy time of all the machine's cores together (everything but idle and iowait), from the
/// first line of /proc/stat.
fn machine_busy() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .ok_or_else(|| anyhow!("odd /proc/stat"))?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already)
    let busy: u64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    Ok(ticks_to_time(busy))
}

/// USER_HZ is 100 on Linux for every architecture the bench runs on.
fn ticks_to_time(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

/// CPU used over an interval by countersign, slapd, the bench itself, and everything else on
/// the machine (other users of a shared machine): what a rate measured meanwhile competed with.
pub struct CpuMeter {
    at: Instant,
    pids: [u32; 3],
    used: [Duration; 3],
    machine: Duration,
}

/// Cores used on average over the interval.
#[derive(Default, Clone, Copy)]
pub struct CpuUsage {
    pub countersign: f64,
    pub slapd: f64,
    pub bench: f64,
    pub others: f64,
}

impl CpuMeter {
    fn start(countersign: u32, slapd: u32) -> anyhow::Result<CpuMeter> {
        let pids = [countersign, slapd, std::process::id()];
        Ok(CpuMeter {
            at: Instant::now(),
            used: [
                cpu_time_of(pids[0])?,
                cpu_time_of(pids[1])?,
                cpu_time_of(pids[2])?,
            ],
            pids,
            machine: machine_busy()?,
        })
    }

    pub fn usage(&self) -> anyhow::Result<CpuUsage> {
        let wall = self.at.elapsed().as_secs_f64();
        let mut cores = [0.0; 3];
        for (i, c) in cores.iter_mut().enumerate() {
            *c = cpu_time_of(self.pids[i])?
                .saturating_sub(self.used[i])
                .as_secs_f64()
                / wall;
        }
        let machine = machine_busy()?.saturating_sub(self.machine).as_secs_f64() / wall;
        Ok(CpuUsage {
            countersign: cores[0],
            slapd: cores[1],
            bench: cores[2],
            others: (machine - cores.iter().sum::<f64>()).max(0.0),
        })
    }
}

/// Raises this process's open-file limit to its hard limit (the countersign it starts inherits
/// it); returns the limit now in force. Raising the hard limit itself needs CAP_SYS_RESOURCE.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current != Some(hard)
    {
        limit.current = Some(hard);
        if setrlimit(Resource::Nofile, limit).is_err() {
            return getrlimit(Resource::Nofile).current.unwrap_or(1024);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

struct Ports {
    http: u16,
    ldap: u16,
    slapd: u16,
    smtp: u16,
}

/// Only keys every countersign release since the LDAP front understands, so an older binary
/// runs the same harness. Rate limits are off (every client is 127.0.0.1); SQLite keeps its
/// `synchronous=FULL`; plain LDAP with Deliver OTP allowed, so no TLS handshakes are measured.
fn config(ports: &Ports, gw_addr: &str, ldap_extra: &str) -> String {
    let Ports {
        http: http_port,
        ldap: ldap_port,
        slapd: slapd_port,
        smtp: smtp_port,
    } = ports;
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
{ldap_extra}[[directory]]
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

/// Settings only binaries since issue 7 know; `max` raises `[http] max_connections` (and the
/// per-client cap with it).
fn newer_keys(max: Option<usize>) -> String {
    let caps = match max {
        Some(n) => format!("max_connections = {n}\nmax_connections_per_client = {n}\n"),
        None => "max_connections_per_client = 4096\n".to_owned(),
    };
    format!("failures_per_user = \"off\"\n[http]\n{caps}")
}

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

/// What `bin check-config` says about the file.
async fn config_problems(bin: &Path, config: &Path) -> String {
    let out = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .output()
        .await;
    match out {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
        .trim()
        .to_owned(),
        Err(e) => e.to_string(),
    }
}

/// `userN` with a mobile number, through the measured binary's own CLI, so the database is the
/// one that binary makes.
async fn add_local_users(
    bin: &Path,
    config: &Path,
    users: usize,
    extra: &[String],
) -> anyhow::Result<()> {
    for i in 0..users {
        let mut child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["user", "add", &format!("user{i}"), "--mobile", &phone(i)])
            .args(extra)
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
