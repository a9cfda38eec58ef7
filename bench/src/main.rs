//! countersign-bench: Deliver OTP + verify round trips over HTTP against a running `countersign
//! serve`, at several concurrency levels. Codes go out by "SMS" to a gateway inside this process,
//! which hands each one to the client waiting for it. See bench/README.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use countersign::app::App;
use countersign::config::Config;
use countersign::passwords;
use countersign_core::Secret;
use countersign_core::model::{AccountState, User};
use countersign_core::ports::{Directory, LocalUser, Store};
use tokio::sync::mpsc;

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

    let http_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config_path = tmp.path().join("countersign.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"[store]
url = "sqlite://countersign.db"
[listen]
http = "127.0.0.1:{http_port}"
[[directory]]
name = "local"
type = "local"
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
identity_mapper = "local"
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
    println!(
        "| clients | round trips/s | deliver p50 | deliver p99 | verify p50 | verify p99 | argon2 in deliver p50 | argon2 of all CPU ({cores} cores) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &c in &args.clients {
        let r = run_level(
            &client,
            &base,
            &inboxes,
            c,
            Duration::from_secs(args.seconds),
        )
        .await?;
        println!(
            "| {c} | {:.1} | {} | {} | {} | {} | {:.0}% | {:.0}% |",
            r.rate,
            ms(r.deliver_p50),
            ms(r.deliver_p99),
            ms(r.verify_p50),
            ms(r.verify_p99),
            100.0 * argon2.as_secs_f64() / r.deliver_p50.as_secs_f64(),
            100.0 * r.rate * argon2.as_secs_f64() / cores as f64,
        );
    }
    server.kill().await.ok();
    Ok(())
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

struct LevelResult {
    rate: f64,
    deliver_p50: Duration,
    deliver_p99: Duration,
    verify_p50: Duration,
    verify_p99: Duration,
}

async fn run_level(
    client: &reqwest::Client,
    base: &str,
    inboxes: &Inboxes,
    clients: usize,
    measure: Duration,
) -> anyhow::Result<LevelResult> {
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let (measure_from, until) = (start + warmup, start + warmup + measure);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (tx, mut rx) = mpsc::unbounded_channel();
        inboxes
            .lock()
            .map_err(|_| anyhow!("lock"))?
            .insert(phone(i), tx);
        let (client, base) = (client.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut samples: Vec<(Duration, Duration)> = Vec::new();
            let deliver = serde_json::json!({"authentication_id": format!("u:user{i}"), "static_password": "bench-password"});
            while Instant::now() < until {
                let t0 = Instant::now();
                let r = client.post(format!("{base}/api/v1/otp/deliver")).json(&deliver).send().await?;
                if !r.status().is_success() {
                    bail!("deliver: HTTP {}", r.status());
                }
                let otp = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await?
                    .ok_or_else(|| anyhow!("gateway closed"))?;
                let t1 = Instant::now();
                let verify = serde_json::json!({"authentication_id": format!("u:user{i}"), "otp": otp});
                let r = client.post(format!("{base}/api/v1/otp/verify")).json(&verify).send().await?;
                if !r.status().is_success() {
                    bail!("verify: HTTP {}", r.status());
                }
                let t2 = Instant::now();
                if t0 >= measure_from && t2 <= until {
                    samples.push((t1 - t0, t2 - t1));
                }
            }
            Ok(samples)
        }));
    }
    let mut deliver = Vec::new();
    let mut verify = Vec::new();
    for t in tasks {
        for (d, v) in t.await?? {
            deliver.push(d);
            verify.push(v);
        }
    }
    if deliver.is_empty() {
        bail!("no round trip completed in the measured window");
    }
    deliver.sort();
    verify.sort();
    let pct = |v: &[Duration], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    Ok(LevelResult {
        rate: deliver.len() as f64 / measure.as_secs_f64(),
        deliver_p50: pct(&deliver, 0.50),
        deliver_p99: pct(&deliver, 0.99),
        verify_p50: pct(&verify, 0.50),
        verify_p99: pct(&verify, 0.99),
    })
}
