//! countersign-bench: load against `countersign serve` processes, at several concurrency
//! levels. Each countersign binary given runs the same harness (see [`harness`]) and the same
//! suites ([`suites`]): HTTP and LDAP logins of local users, directory users' binds, delivers
//! and e-mail logins beside the same work sent straight to slapd, memory under password
//! checks, and Approved OTP (pending logins' memory, decision latency, the information
//! profile's cost; [`suites::approval`]), and web sign-in (OpenID Connect code flows per
//! second, decision to waiting page latency; [`suites::oidc`]). See bench/README.md.

mod harness;
mod http_wire;
mod ldap_client;
mod slapd;
mod smtp_sink;
mod suites;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::harness::{Harness, argon2_cost, describe, ms, raise_fd_limit};
use crate::suites::Report;
use crate::suites::approval::{self, WaiterKind};
use crate::suites::oidc;

#[derive(Parser)]
struct Args {
    /// The countersign binaries to measure (built with --release), comma-separated or repeated:
    /// each runs the whole harness in turn, e.g. a build of main before a change and one after.
    #[arg(
        long = "countersign-bin",
        alias = "server",
        default_value = "target/release/countersign",
        value_delimiter = ','
    )]
    countersign_bin: Vec<PathBuf>,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    clients: Vec<usize>,
    /// Seconds measured per level (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Suites to run, comma-separated (`memory` measures RSS around --memory-checks). The
    /// Approved OTP suites (`pending-memory`, `decision-latency`, `login-information`,
    /// `login-plain`) and the OpenID Connect ones (`oidc-flow`, `oidc-waiting-latency`) run
    /// only when named, each group on a countersign configured for it.
    #[arg(
        long,
        default_value = "http,ldap-bind-new,ldap-bind-persistent,ldap-otp,dir-bind,dir-bind-direct,dir-deliver,dir-deliver-direct,dir-email-login,dir-login,dir-login-direct,memory",
        value_delimiter = ','
    )]
    suite: Vec<String>,
    /// Password checks the memory suite makes.
    #[arg(long, default_value_t = 2000)]
    memory_checks: usize,
    /// Concurrent clients of the memory suite.
    #[arg(long, default_value_t = 16)]
    memory_clients: usize,
    /// Pending logins held by `pending-memory`, comma-separated: one fresh countersign each.
    #[arg(long, default_value = "10000,100000", value_delimiter = ',')]
    pending: Vec<usize>,
    /// How each pending login is waited on: `poll` (long-polls, wait=60) or `sse`.
    #[arg(long, default_value = "poll")]
    pending_waiter: String,
    /// Decisions timed per kind of waiter by `decision-latency`, and by `oidc-waiting-latency`.
    #[arg(long, default_value_t = 300)]
    latency_samples: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // reqwest is built without a TLS provider of its own; countersign's (ring) serves it too.
    countersign::app::install_crypto_provider();
    let approval_suites: Vec<&str> = args
        .suite
        .iter()
        .map(String::as_str)
        .filter(|s| approval::NAMES.contains(s))
        .collect();
    let oidc_suites: Vec<&str> = args
        .suite
        .iter()
        .map(String::as_str)
        .filter(|s| oidc::NAMES.contains(s))
        .collect();
    let waiter = WaiterKind::parse(&args.pending_waiter)?;
    let suites = args
        .suite
        .iter()
        .filter(|s| {
            *s != "memory"
                && !approval::NAMES.contains(&s.as_str())
                && !oidc::NAMES.contains(&s.as_str())
        })
        .map(|s| suites::find(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fd_limit = raise_fd_limit();
    if let Some(missing) = args.countersign_bin.iter().find(|b| !b.is_file()) {
        anyhow::bail!(
            "no countersign binary at {} (cargo build --release -p countersign)",
            missing.display()
        );
    }
    let users = args
        .clients
        .iter()
        .copied()
        .chain([args.memory_clients])
        .max()
        .unwrap_or(1);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let argon2 = argon2_cost();
    println!(
        "argon2id verification (m=19456 KiB, t=2, p=1), one core: {}; the machine's limit: {cores} cores ÷ {} = {:.1} checks/s",
        ms(argon2),
        ms(argon2),
        cores as f64 / argon2.as_secs_f64()
    );
    println!();
    let measure = Duration::from_secs(args.seconds);
    for bin in &args.countersign_bin {
        println!("## {}\n", describe(bin));
        let mut report = Report {
            cores,
            argon2,
            rates: Default::default(),
        };
        let memory = args.suite.iter().any(|s| s == "memory");
        if memory || !suites.is_empty() {
            let h = Harness::start(bin, users).await?;
            // First, on a process that has served nothing yet, so its figures are its own.
            if memory {
                suites::memory::run(&h, args.memory_checks, args.memory_clients).await?;
            }
            for suite in &suites {
                suites::table(&h, suite, &args.clients, measure, &mut report).await?;
            }
            suites::comparison(&report, &args.clients);
            h.stop().await;
        }
        let options = approval::Options {
            pending: &args.pending,
            waiter,
            fd_limit,
            samples: args.latency_samples,
            clients: &args.clients,
            measure,
        };
        approval::run(bin, &approval_suites, &options, &report).await?;
        oidc::run(
            bin,
            &oidc_suites,
            &args.clients,
            measure,
            args.latency_samples,
            &report,
        )
        .await?;
    }
    Ok(())
}
