//! Approved OTP suites, each on a countersign of its own whose config adds approval profiles,
//! policies and applications (`setup`): memory held by pending logins with a waiter each
//! (`pending-memory`), how fast a manager's decision reaches the waiting login
//! (`decision-latency`: long-poll, event stream, held LDAP bind), and what an information
//! profile's outbox costs a password login (`login-information` beside `login-plain`).
//!
//! Directory users (slapd checks their plaintext passwords) are the pending logins' users: a
//! local user's argon2id check would make 100,000 logins take half an hour on two cores, and
//! what a pending login holds does not depend on who checked the password. Their manager is
//! duser0, whose address gets every approval mail. Local users (`userN`, sponsor
//! boss@example.com) are the password logins' users, since argon2 is what those cost.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::harness::{Harness, Setup};
use crate::http_wire::{Conn, EventReader};
use crate::suites::Report;

pub(crate) mod latency;
mod logins;

pub use latency::decision_latency;
use logins::login_rates;

/// The suites of this module, as `--suite` names them.
pub const NAMES: &[&str] = &[
    "pending-memory",
    "decision-latency",
    "login-information",
    "login-plain",
];

/// Applications `appN` with an API key each: one pending request per user and application, so
/// N pending logins take N ÷ 100 directory users.
pub const APPS: usize = 100;

/// Clients creating the pending logins.
const CREATORS: usize = 64;

/// Where the approval mails of directory users go: their manager, duser0.
pub const APPROVER: &str = "duser0@example.com";

/// The API key of `appN` (at least 32 characters, all distinct).
pub fn api_key(app: usize) -> String {
    format!("bench-application-key-{app:020}")
}

pub const PLAIN_KEY: &str = "bench-application-key-without-approvals";

/// How each waiter waits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WaiterKind {
    /// `GET /api/v1/logins/{id}?wait=60`, asked again as it returns.
    Poll,
    /// `GET /api/v1/logins/{id}/events`, held open.
    Sse,
}

impl WaiterKind {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s {
            "poll" => Ok(WaiterKind::Poll),
            "sse" => Ok(WaiterKind::Sse),
            other => bail!("--pending-waiter {other}: poll or sse"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            WaiterKind::Poll => "an HTTP long-poll (wait=60, asked again as it returns)",
            WaiterKind::Sse => "an SSE stream (GET …/events, held open)",
        }
    }
}

/// The harness for the approval suites: `local_users` local users with a sponsor, `dir_users`
/// directory users, [`APPS`] applications with keys, one without Approved OTP (`plain`) and
/// the LDAP front's (`ldap-clients`); `max_connections` for the HTTP front when raised.
pub fn setup(local_users: usize, dir_users: usize, max_connections: Option<usize>) -> Setup {
    let mut tail = String::from(
        r#"[server]
public_url = "{HTTP_BASE}"
[[mail_profile]]
name = "approvals"
host = "127.0.0.1"
port = {SMTP_PORT}
tls = "none"
from = "approvals@example.com"
# As many kept connections as logins run at once: no connection is opened per message.
max_idle_connections = 64
[[approval_profile]]
name = "inform"
type = "information"
delivery = "email"
mail_profile = "approvals"
default_recipient = "secops@example.com"
fallback_directories = ["local"]
[[approval_profile]]
name = "hold"
type = "approval"
delivery = "email"
mail_profile = "approvals"
message = "{display_name} ({user}) asks to sign in to {application}.\nApprove or reject: {link}\n"
link_expiration = "24h"
default_recipient = "approvers@example.com"
fallback_directories = ["corp"]
[[policy]]
name = "local users"
profile = "inform"
directory = "local"
attribute = "uid"
values = ["*"]
[[policy]]
name = "directory users"
profile = "hold"
directory = "corp"
attribute = "uid"
values = ["*"]
[[application]]
name = "plain"
api_key_file = "plain.key"
approved_otp = false
[[application]]
name = "ldap-clients"
"#,
    );
    let mut files = vec![("plain.key".to_owned(), format!("{PLAIN_KEY}\n"))];
    for i in 0..APPS {
        tail += &format!("[[application]]\nname = \"app{i}\"\napi_key_file = \"app{i}.key\"\n");
        files.push((format!("app{i}.key"), format!("{}\n", api_key(i))));
    }
    Setup {
        local_users,
        dir_users,
        ldap: "application = \"ldap-clients\"\napproval_wait = \"60s\"\n".to_owned(),
        http_max_connections: max_connections,
        tail,
        user_args: vec!["--sponsor-email".into(), "boss@example.com".into()],
        files,
    }
}

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}")
}

/// The command line's settings for these suites.
pub struct Options<'a> {
    /// Pending logins of `pending-memory`, one fresh countersign per count.
    pub pending: &'a [usize],
    pub waiter: WaiterKind,
    /// This process's open-file limit (countersign's too: it inherits it).
    pub fd_limit: u64,
    /// Decisions per kind of waiter.
    pub samples: usize,
    /// Levels of the login suites.
    pub clients: &'a [usize],
    pub measure: Duration,
}

/// Runs the suites of this module that `names` selects, each on its own countersign.
pub async fn run(
    bin: &Path,
    names: &[&str],
    o: &Options<'_>,
    report: &Report,
) -> anyhow::Result<()> {
    if names.contains(&"pending-memory") {
        pending_memory(bin, o.pending, o.waiter, o.fd_limit).await?;
    }
    let (samples, clients, measure) = (o.samples, o.clients, o.measure);
    let logins: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("login-"))
        .collect();
    if names.contains(&"decision-latency") || !logins.is_empty() {
        let users = clients.iter().copied().max().unwrap_or(1);
        let h = Harness::start_with(bin, &setup(users, samples + 1, None)).await?;
        if names.contains(&"decision-latency") {
            decision_latency(&h, samples).await?;
        }
        if !logins.is_empty() {
            login_rates(&h, &logins, clients, measure, report).await?;
        }
        h.stop().await;
    }
    Ok(())
}

/// RSS of a fresh countersign, after `n` pending logins, and with a waiter on each (or on as
/// many as the open-file limit lets one process hold).
async fn pending_memory(
    bin: &Path,
    counts: &[usize],
    kind: WaiterKind,
    fd_limit: u64,
) -> anyhow::Result<()> {
    // Both processes hold one socket per waiter; leave room for everything else.
    let most = usize::try_from(fd_limit.saturating_sub(1000)).unwrap_or(usize::MAX);
    println!(
        "### Approved OTP: memory of pending logins, each waited on by {}\n",
        kind.describe()
    );
    println!(
        "Open-file limit of the bench and of countersign: {fd_limit} (so at most {most} waiters).\n"
    );
    println!(
        "| pending | waiters | RSS fresh | RSS with the pending logins | RSS with the waiters | \
         … after 65 s | peak (VmHWM) | per pending login | per waiter | per pending login with a waiter | created per second |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut notes = Vec::new();
    for &n in counts {
        let waiters = n.min(most);
        let users = n.div_ceil(APPS);
        let h = Harness::start_with(bin, &setup(1, users + 1, Some(waiters + 200))).await?;
        let row = pending_level(&h, n, waiters, kind).await;
        h.stop().await;
        let m = row?;
        let per_pending = m.rss_pending.saturating_sub(m.rss_fresh) as f64 * 1024.0 / n as f64;
        let per_waiter =
            m.rss_waiting.saturating_sub(m.rss_pending) as f64 * 1024.0 / waiters as f64;
        println!(
            "| {n} | {waiters} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            mb(m.rss_fresh),
            mb(m.rss_pending),
            mb(m.rss_waiting_at_start),
            mb(m.rss_after_cycle),
            mb(m.hwm),
            bytes(per_pending),
            bytes(per_waiter),
            bytes(per_pending + per_waiter),
            m.created_per_second
        );
        notes.push(m.note(n, waiters, per_pending, per_waiter));
    }
    println!();
    for n in notes {
        println!("{n}\n");
    }
    Ok(())
}

/// One level's figures, in KiB.
struct PendingFigures {
    rss_fresh: u64,
    rss_pending: u64,
    rss_waiting_at_start: u64,
    rss_after_cycle: u64,
    /// The larger of the two readings with waiters.
    rss_waiting: u64,
    hwm: u64,
    created_per_second: f64,
    fds: usize,
    answers: usize,
    kind: WaiterKind,
}

impl PendingFigures {
    fn note(&self, n: usize, waiters: usize, per_pending: f64, per_waiter: f64) -> String {
        let mut s = format!(
            "{n} pending: countersign held {} open files with the waiters attached",
            self.fds
        );
        s += &if self.kind == WaiterKind::Poll {
            format!(
                "; {} long-poll answers (pending, asked again) came back during the 65 s.",
                self.answers
            )
        } else {
            "; every stream stayed open through the 65 s.".to_owned()
        };
        if waiters < n {
            let projected = self.rss_pending as f64 * 1024.0 + per_waiter * n as f64;
            s += &format!(
                " Only {waiters} of the {n} logins had a waiter (the open-file limit); with one \
                 on each, RSS extrapolates (RSS with the pending logins + {n} × {} per waiter) to \
                 {:.1} MB, {} the 1 GiB goal.",
                bytes(per_waiter),
                projected / 1e6,
                if projected < 1024.0 * 1024.0 * 1024.0 {
                    "under"
                } else {
                    "OVER"
                }
            );
        } else {
            let held = self.rss_waiting as f64 * 1024.0;
            s += &format!(
                " Measured with a waiter on every login: {:.1} MB, {} the 1 GiB goal \
                 ({} per pending login).",
                held / 1e6,
                if held < 1024.0 * 1024.0 * 1024.0 {
                    "under"
                } else {
                    "OVER"
                },
                bytes(per_pending + per_waiter)
            );
        }
        s
    }
}

async fn pending_level(
    h: &Harness,
    n: usize,
    waiters: usize,
    kind: WaiterKind,
) -> anyhow::Result<PendingFigures> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_fresh, _) = h.memory_kib()?;
    let start = Instant::now();
    let logins = create_many(h, n).await?;
    let created_per_second = n as f64 / start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_pending, _) = h.memory_kib()?;
    eprintln!("pending-memory: {n} pending, attaching {waiters} waiters");
    let mut held = attach(h, &logins[..waiters], kind).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    held.check()?;
    let (rss_waiting_at_start, _) = h.memory_kib()?;
    let fds = h.open_fds()?;
    // Past the 60 s of the first long-polls: every one answered and was asked again.
    tokio::time::sleep(Duration::from_secs(60)).await;
    held.check()?;
    let (rss_after_cycle, hwm) = h.memory_kib()?;
    let answers = held.answers.load(Ordering::Relaxed);
    held.stop().await;
    Ok(PendingFigures {
        rss_fresh,
        rss_pending,
        rss_waiting_at_start,
        rss_after_cycle,
        rss_waiting: rss_waiting_at_start.max(rss_after_cycle),
        hwm,
        created_per_second,
        fds,
        answers,
        kind,
    })
}

/// Creates `n` pending logins: directory user 1 + k ÷ [`APPS`] through application k mod
/// [`APPS`], by [`CREATORS`] clients. Returns (application, login id) in order.
async fn create_many(h: &Harness, n: usize) -> anyhow::Result<Vec<(usize, String)>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..CREATORS {
        let (next, client, base) = (next.clone(), h.client.clone(), h.http_base.clone());
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return Ok::<_, anyhow::Error>(made);
                }
                let (user, app) = (1 + k / APPS, k % APPS);
                let id = create_with(&client, &base, user, app).await?;
                made.push((k, app, id));
                if (k + 1) % 10_000 == 0 {
                    eprintln!("pending-memory: {} logins created", k + 1);
                }
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    all.sort_by_key(|(k, _, _)| *k);
    Ok(all.into_iter().map(|(_, app, id)| (app, id)).collect())
}

/// `POST /api/v1/logins` as directory user `user` through `appN`; the pending login's id.
pub async fn create_with(
    client: &reqwest::Client,
    base: &str,
    user: usize,
    app: usize,
) -> anyhow::Result<String> {
    let body = serde_json::json!({"authentication_id": format!("u:duser{user}"), "password": "bench-password"});
    let r = client
        .post(format!("{base}/api/v1/logins"))
        .bearer_auth(api_key(app))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let answer: serde_json::Value = r.json().await.unwrap_or_default();
    if status.as_u16() != 202 {
        bail!("login of duser{user} through app{app}: HTTP {status} {answer}");
    }
    answer["login"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no login id in {answer}"))
}

/// The waiters held open: their tasks and what they counted.
struct Held {
    tasks: JoinSet<anyhow::Result<()>>,
    /// Long-poll answers that came back pending (and were asked again).
    answers: Arc<AtomicUsize>,
}

impl Held {
    /// Fails if any waiter ended (an error, a connection closed, a login no longer pending):
    /// none ends while its login is pending.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(done) = self.tasks.try_join_next() {
            done?.context("a waiter failed")?;
            bail!("a waiter ended");
        }
        Ok(())
    }

    async fn stop(mut self) {
        self.tasks.shutdown().await;
    }
}

/// One waiter per login, connected a few hundred at a time; returns once every request is
/// written (the first event read, for a stream).
async fn attach(h: &Harness, logins: &[(usize, String)], kind: WaiterKind) -> anyhow::Result<Held> {
    let addr = h.http_base.trim_start_matches("http://").to_owned();
    let gate = Arc::new(Semaphore::new(256));
    let started = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for (app, id) in logins {
        let permit = gate.clone().acquire_owned().await?;
        let (addr, started, answers) = (addr.clone(), started.clone(), answers.clone());
        let (auth, id) = (bearer(&api_key(*app)), id.clone());
        tasks.spawn(async move {
            let mut conn = Conn::connect(&addr).await?;
            match kind {
                WaiterKind::Poll => {
                    let path = format!("/api/v1/logins/{id}?wait=60");
                    conn.send("GET", &path, std::slice::from_ref(&auth), b"")
                        .await?;
                    started.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    loop {
                        let r = conn.response().await?;
                        if r.status != 202 {
                            bail!("long-poll of {id}: HTTP {}", r.status);
                        }
                        answers.fetch_add(1, Ordering::Relaxed);
                        conn.send("GET", &path, std::slice::from_ref(&auth), b"")
                            .await?;
                    }
                }
                WaiterKind::Sse => {
                    let path = format!("/api/v1/logins/{id}/events");
                    conn.send("GET", &path, &[auth], b"").await?;
                    let (status, _, _) = conn.head().await?;
                    if status != 200 {
                        bail!("events of {id}: HTTP {status}");
                    }
                    let mut events = EventReader::new();
                    let first = events.next_status(&mut conn).await?;
                    started.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    let next = events.next_status(&mut conn).await?;
                    bail!("events of {id}: {first} then {next}")
                }
            }
        });
        // A waiter that failed at once: say why now, not after the whole level.
        if let Some(done) = tasks.try_join_next() {
            done?.context("a waiter failed")?;
        }
    }
    let all = logins.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while started.load(Ordering::Relaxed) < all {
        if let Some(done) = tasks.try_join_next() {
            done?.context("a waiter failed")?;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {all} waiters started",
                started.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Held { tasks, answers })
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn bytes(b: f64) -> String {
    if b >= 10_000.0 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{b:.0} B")
    }
}
