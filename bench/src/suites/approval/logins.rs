//! `login-information` and `login-plain`: password logins of local users (one argon2id check
//! each) through an application whose logins get the information profile (a message to the
//! user's sponsor queued in the outbox, sent by the outbox worker to the SMTP server) beside
//! the same logins through an application without Approved OTP, and what the outbox adds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::{PLAIN_KEY, api_key};
use crate::harness::{CpuUsage, Harness, Samples, Window, level, ms, pct, timed};
use crate::suites::Report;

/// Password logins of local users through `plain` (no approval profile applies) and `app0`
/// (the information profile: a message to the sponsor through the outbox), side by side: at
/// each level plain, information, information, plain (so a load that drifts meanwhile weighs
/// on both alike), each for the measured time.
pub async fn login_rates(
    h: &Harness,
    names: &[&str],
    clients: &[usize],
    measure: Duration,
    report: &Report,
) -> anyhow::Result<()> {
    let limit = report.argon2_limit();
    println!("### Approved OTP: password logins (`POST /api/v1/logins`, local users)\n");
    println!(
        "| clients | profile | per second | login p50 | login p99 | ÷ argon2 limit ({limit:.1}/s) | \
         countersign CPU per login | cores: countersign / bench / slapd / others | messages sent ÷ logins |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
    let mut ratios = Vec::new();
    for &c in clients {
        let mut runs: [LoginLevel; 2] = Default::default();
        for which in [0, 1, 1, 0] {
            let name = ["login-plain", "login-information"][which];
            if !names.contains(&name) {
                continue;
            }
            let key = if which == 0 {
                PLAIN_KEY.to_owned()
            } else {
                api_key(0)
            };
            runs[which].add(login_level(h, &key, c, measure).await?);
        }
        for (which, m) in runs.iter_mut().enumerate() {
            if m.runs == 0 {
                continue;
            }
            let label = ["none (`approved_otp = false`)", "information"][which];
            m.latencies.sort();
            let u = m.cores();
            println!(
                "| {c} | {label} | {:.1} | {} | {} | {:.2}× | {} | {:.2} / {:.2} / {:.2} / {:.2} | {} ÷ {} |",
                m.rate(measure),
                ms(pct(&m.latencies, 0.50)),
                ms(pct(&m.latencies, 0.99)),
                m.rate(measure) / limit,
                ms(m.cpu_per_login()),
                u.countersign,
                u.bench,
                u.slapd,
                u.others,
                m.mails,
                m.logins
            );
        }
        if runs.iter().all(|m| m.runs > 0) {
            let (plain, info) = (runs[0].rate(measure), runs[1].rate(measure));
            let cpu = runs[1].cpu_per_login().as_secs_f64() / runs[0].cpu_per_login().as_secs_f64();
            ratios.push(format!(
                "| {c} | {plain:.1} | {info:.1} | {:.3}× | {:.3}× |",
                info / plain,
                cpu
            ));
        }
    }
    println!();
    if !ratios.is_empty() {
        println!(
            "### Approved OTP: information profile beside no profile (goal: the outbox costs under 10%)\n"
        );
        println!(
            "| clients | plain per second | information per second | information ÷ plain | CPU per login, information ÷ plain |"
        );
        println!("| ---: | ---: | ---: | ---: | ---: |");
        for r in ratios {
            println!("{r}");
        }
        println!();
    }
    Ok(())
}

/// One profile's runs at one level, added up.
#[derive(Default)]
struct LoginLevel {
    runs: u32,
    /// Counted logins' latencies (the measured windows).
    latencies: Vec<Duration>,
    /// Every login, warm-up included, and the countersign CPU and messages over the same time.
    logins: usize,
    cpu: Duration,
    /// Messages the SMTP server received, counted after the outbox had up to 10 s to drain.
    mails: u64,
    /// Cores used, summed over the runs (divided by `runs` when shown).
    usage: CpuUsage,
}

impl LoginLevel {
    fn add(&mut self, other: LoginLevel) {
        self.runs += other.runs;
        self.latencies.extend(other.latencies);
        self.logins += other.logins;
        self.cpu += other.cpu;
        self.mails += other.mails;
        let (a, b) = (&mut self.usage, other.usage);
        a.countersign += b.countersign;
        a.bench += b.bench;
        a.slapd += b.slapd;
        a.others += b.others;
    }

    fn rate(&self, measure: Duration) -> f64 {
        self.latencies.len() as f64 / (measure.as_secs_f64() * f64::from(self.runs.max(1)))
    }

    fn cpu_per_login(&self) -> Duration {
        self.cpu / u32::try_from(self.logins.max(1)).unwrap_or(u32::MAX)
    }

    fn cores(&self) -> CpuUsage {
        let n = f64::from(self.runs.max(1));
        let u = self.usage;
        CpuUsage {
            countersign: u.countersign / n,
            slapd: u.slapd / n,
            bench: u.bench / n,
            others: u.others / n,
        }
    }
}

/// One run of `clients` clients logging in with `key` for the measured time.
async fn login_level(
    h: &Harness,
    key: &str,
    clients: usize,
    measure: Duration,
) -> anyhow::Result<LoginLevel> {
    let total = Arc::new(AtomicUsize::new(0));
    let (mails0, cpu0) = (h.mails.load(Ordering::Relaxed), h.cpu_time()?);
    let meter = h.cpu_meter()?;
    let samples = level(clients, timed(measure), |i, w| {
        login_client(
            h.client.clone(),
            h.http_base.clone(),
            key.to_owned(),
            i,
            total.clone(),
            w,
        )
    })
    .await?;
    let usage = meter.usage()?;
    let cpu = h.cpu_time()?.saturating_sub(cpu0);
    let logins = total.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = h.mails.load(Ordering::Relaxed) - mails0;
    while key != PLAIN_KEY && (sent as usize) < logins && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sent = h.mails.load(Ordering::Relaxed) - mails0;
    }
    Ok(LoginLevel {
        runs: 1,
        latencies: samples.iter().map(|s| s[0]).collect(),
        logins,
        cpu,
        mails: sent,
        usage,
    })
}

/// Password logins as local user `i` until the window closes; each must be granted.
async fn login_client(
    client: reqwest::Client,
    base: String,
    key: String,
    i: usize,
    total: Arc<AtomicUsize>,
    w: Window,
) -> anyhow::Result<Samples> {
    let body = serde_json::json!({"authentication_id": format!("u:user{i}"), "password": "bench-password"});
    let mut samples = Vec::new();
    while w.more() {
        let t0 = Instant::now();
        let r = client
            .post(format!("{base}/api/v1/logins"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let answer = r.bytes().await?;
        if status.as_u16() != 200 {
            bail!(
                "login of user{i}: HTTP {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        total.fetch_add(1, Ordering::Relaxed);
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}
