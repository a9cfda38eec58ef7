//! Web sign-in (OpenID Connect) suites, on a countersign of their own: the approval suites'
//! config (an `inform` information profile for local users, a `hold` approval profile for
//! directory users, the SMTP server) plus one confidential client, `bench-rp`, whose redirect
//! URI nobody serves. `oidc-flow`: whole code flows per second (authorize → sign-in page →
//! password POST → code → token → ID token verified) for local users, whose password costs an
//! argon2id check. `oidc-waiting-latency` ([`waiting`]): from a manager's approving POST to
//! the `granted` event on the waiting page's stream.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::harness::{Harness, Samples, Setup, Window, level, ms, pct, timed};
use crate::http_wire::Conn;
use crate::suites::Report;
use crate::suites::approval;

pub(crate) mod rp;
mod waiting;

/// The suites of this module, as `--suite` names them.
pub const NAMES: &[&str] = &["oidc-flow", "oidc-waiting-latency"];

/// What every sign-in of local users must end with: the information profile applied.
const ACR_INFORMATION: &str = "urn:countersign:acr:information";

/// The approval suites' config with the bench's OpenID Connect client added.
fn setup(local_users: usize, dir_users: usize) -> Setup {
    let mut s = approval::setup(local_users, dir_users, None);
    s.tail += &format!(
        "[[application]]\nname = \"{}\"\nredirect_uris = [\"{}\"]\nclient_secret_file = \"rp.secret\"\nmethods = [\"password\"]\n",
        rp::CLIENT_ID,
        rp::REDIRECT_URI
    );
    s.files
        .push(("rp.secret".to_owned(), format!("{}\n", rp::CLIENT_SECRET)));
    s
}

/// Runs the suites of this module that `names` selects, on one countersign.
pub async fn run(
    bin: &Path,
    names: &[&str],
    clients: &[usize],
    measure: Duration,
    samples: usize,
    report: &Report,
) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let users = clients.iter().copied().max().unwrap_or(1);
    let h = Harness::start_with(bin, &setup(users, samples + 1)).await?;
    let result = async {
        if names.contains(&"oidc-flow") {
            flow_rates(&h, clients, measure, report).await?;
        }
        if names.contains(&"oidc-waiting-latency") {
            waiting::latency(&h, samples).await?;
        }
        anyhow::Ok(())
    }
    .await;
    h.stop().await;
    result
}

/// `oidc-flow` at each level of clients, with the argon2 limit and where the CPU went.
async fn flow_rates(
    h: &Harness,
    clients: &[usize],
    measure: Duration,
    report: &Report,
) -> anyhow::Result<()> {
    let limit = report.argon2_limit();
    println!("### OpenID Connect: whole code flows, local users under the information profile\n");
    println!(
        "One flow: `GET /authorize` (state, nonce, PKCE S256) → `GET /flow/{{id}}` with the \
         cookie → `POST /flow/{{id}}/password` (one argon2id check; the sponsor's message \
         queued) → 303 to the redirect URI with the code (state and iss checked) → `POST \
         /token` (client_secret_basic + verifier) → the ID token verified (RS256 under the \
         JWK Set fetched once per client; iss, aud, exp, nonce; acr = information).\n"
    );
    println!(
        "| clients | flows per second | flow p50 | flow p99 | authorize + page p50 | sign-in POST p50 | sign-in POST p99 | token + ID token p50 | token + ID token p99 | ÷ argon2 limit ({limit:.1}/s) | countersign CPU per flow | cores: countersign / bench / slapd / others | messages sent ÷ flows |"
    );
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    );
    for &c in clients {
        let total = Arc::new(AtomicUsize::new(0));
        let (mails0, cpu0) = (h.mails.load(Ordering::Relaxed), h.cpu_time()?);
        let meter = h.cpu_meter()?;
        let samples = level(c, timed(measure), |i, w| {
            flow_client(
                h.http_base.trim_start_matches("http://").to_owned(),
                h.http_base.clone(),
                i,
                total.clone(),
                w,
            )
        })
        .await
        .with_context(|| format!("oidc-flow at {c} clients"))?;
        let u = meter.usage()?;
        let cpu = h.cpu_time()?.saturating_sub(cpu0);
        let flows = total.load(Ordering::Relaxed);
        let sent = messages_after(h, mails0, flows).await;
        let rate = samples.len() as f64 / measure.as_secs_f64();
        let part = |k: usize| {
            let mut v: Vec<Duration> = samples.iter().map(|s| s[k]).collect();
            v.sort();
            v
        };
        let (all, page, post, token) = (part(0), part(1), part(2), part(3));
        println!(
            "| {c} | {rate:.1} | {} | {} | {} | {} | {} | {} | {} | {:.2}× | {} | {:.2} / {:.2} / {:.2} / {:.2} | {sent} ÷ {flows} |",
            ms(pct(&all, 0.50)),
            ms(pct(&all, 0.99)),
            ms(pct(&page, 0.50)),
            ms(pct(&post, 0.50)),
            ms(pct(&post, 0.99)),
            ms(pct(&token, 0.50)),
            ms(pct(&token, 0.99)),
            rate / limit,
            ms(cpu / u32::try_from(flows.max(1)).unwrap_or(u32::MAX)),
            u.countersign,
            u.bench,
            u.slapd,
            u.others,
        );
    }
    println!();
    Ok(())
}

/// The information messages the SMTP server received since `before`, given up to 10 s for
/// the outbox to send one per flow.
async fn messages_after(h: &Harness, before: u64, flows: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = h.mails.load(Ordering::Relaxed) - before;
        if sent as usize >= flows || Instant::now() > deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Local user `i` signs in through the client again and again until the window closes: a
/// browser connection and the relying party's, each kept alive, the provider discovered once.
/// Each sample: the whole flow, authorize + sign-in page, the sign-in POST, token + ID token.
async fn flow_client(
    addr: String,
    origin: String,
    i: usize,
    total: Arc<AtomicUsize>,
    w: Window,
) -> anyhow::Result<Samples> {
    let mut browser = Conn::connect(&addr).await?;
    let mut server = Conn::connect(&addr).await?;
    let provider = rp::Provider::discover(&mut server).await?;
    let username = format!("user{i}");
    let mut samples = Vec::new();
    while w.more() {
        let t0 = Instant::now();
        let req = rp::Request::new()?;
        let flow = rp::authorize(&mut browser, &req).await?;
        let csrf = rp::csrf_of(&rp::page(&mut browser, &flow).await?)?;
        let t1 = Instant::now();
        let r = rp::sign_in(&mut browser, &origin, &flow, &csrf, &username).await?;
        let code = rp::code_of(&r, &req, &provider.issuer)
            .with_context(|| format!("the sign-in of {username}"))?;
        let t2 = Instant::now();
        let claims = rp::redeem(&mut server, &provider, &req, &code).await?;
        let t3 = Instant::now();
        if claims["acr"].as_str() != Some(ACR_INFORMATION) {
            bail!("{username}'s ID token has acr {}", claims["acr"]);
        }
        total.fetch_add(1, Ordering::Relaxed);
        if w.counts(t0) {
            samples.push(vec![t3 - t0, t1 - t0, t2 - t1, t3 - t2]);
        }
    }
    Ok(samples)
}
