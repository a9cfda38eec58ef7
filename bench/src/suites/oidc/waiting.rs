//! `oidc-waiting-latency`: how long a manager's decision takes to reach the hosted waiting
//! page. One sample: a directory user (their own, so no grace period or join applies) signs
//! in through the client and lands on the waiting page; its event stream (`GET
//! /flow/{id}/events` with the flow's cookie, as `waiting.js`'s EventSource opens it) is
//! opened and its first `pending` event read; the approval link is taken from the mail the
//! bench's SMTP server received, the manager's page read for its CSRF field; the clock starts
//! just before the approving POST is written and stops when the stream's `granted` event is
//! in. Beside it: the POST's own answer, and the page's next step (`GET /flow/{id}` answered
//! by the 303 to the client with the code). Untimed, the code is then redeemed and its ID
//! token checked (acr = approval), so every sample is a whole sign-in.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use super::rp;
use crate::harness::{Harness, pct};
use crate::http_wire::{Conn, EventReader};
use crate::suites::approval::APPROVER;
use crate::suites::approval::latency::Manager;

const ACR_APPROVAL: &str = "urn:countersign:acr:approval";

/// From just before the approving POST is written: to the `granted` event, to the POST's
/// answer, and to the 303 with the code that the page's reload gets.
struct Sample {
    event: Duration,
    post: Duration,
    code: Duration,
}

pub async fn latency(h: &Harness, samples: usize) -> anyhow::Result<()> {
    if samples == 0 {
        bail!("oidc-waiting-latency needs --latency-samples of at least 1");
    }
    println!("### OpenID Connect: decision to waiting page latency ({samples} samples)\n");
    println!(
        "A directory user under the approval profile signs in through the client and waits on \
         the hosted page; from just before the manager's approving POST is written to the \
         `granted` event on the page's stream (`GET /flow/{{id}}/events`), to the POST's own \
         answer, and to the 303 with the code that the page's reload (`GET /flow/{{id}}`) gets \
         after the event.\n"
    );
    println!(
        "| samples | event p50 | event p90 | event p99 | event max | POST answer p50 | POST answer p99 | event before the POST's answer | event → code redirect p50 | … p99 | others' cores meanwhile |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let addr = h.http_base.trim_start_matches("http://").to_owned();
    let mut server = Conn::connect(&addr).await?;
    let provider = rp::Provider::discover(&mut server).await?;
    let mut inbox = h.inbox(APPROVER.to_owned());
    let meter = h.cpu_meter()?;
    let mut got = Vec::with_capacity(samples);
    for s in 0..samples {
        let sample = one(h, &provider, &mut server, 1 + s, &mut inbox)
            .await
            .with_context(|| format!("waiting page sample {s}"))?;
        got.push(sample);
    }
    let others = meter.usage()?.others;
    let sorted = |f: fn(&Sample) -> Duration| {
        let mut v: Vec<Duration> = got.iter().map(f).collect();
        v.sort();
        v
    };
    let event = sorted(|s| s.event);
    let post = sorted(|s| s.post);
    let code = sorted(|s| s.code);
    let first = got.iter().filter(|s| s.event <= s.post).count();
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {first} of {} | {} | {} | {others:.2} |",
        got.len(),
        ms3(pct(&event, 0.50)),
        ms3(pct(&event, 0.90)),
        ms3(pct(&event, 0.99)),
        ms3(event[event.len() - 1]),
        ms3(pct(&post, 0.50)),
        ms3(pct(&post, 0.99)),
        got.len(),
        ms3(pct(&code, 0.50)),
        ms3(pct(&code, 0.99)),
    );
    println!();
    Ok(())
}

/// One sign-in of directory user `user`, approved by the manager.
async fn one(
    h: &Harness,
    provider: &rp::Provider,
    server: &mut Conn,
    user: usize,
    inbox: &mut mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<Sample> {
    while inbox.try_recv().is_ok() {}
    let addr = h.http_base.trim_start_matches("http://").to_owned();
    let mut browser = Conn::connect(&addr).await?;
    let req = rp::Request::new()?;
    let mut flow = rp::authorize(&mut browser, &req).await?;
    let csrf = rp::csrf_of(&rp::page(&mut browser, &flow).await?)?;
    let username = format!("duser{user}");
    let r = rp::sign_in(&mut browser, &h.http_base, &flow, &csrf, &username).await?;
    let waiting = format!("/flow/{}", flow.id);
    if r.status != 303 || r.header("location") != Some(waiting.as_str()) {
        bail!(
            "the sign-in of {username}: HTTP {}, Location {:?}, not the waiting page",
            r.status,
            r.header("location")
        );
    }
    flow.update(&r);
    if !rp::page(&mut browser, &flow)
        .await?
        .contains("data-state=\"waiting\"")
    {
        bail!("{waiting} is not the waiting page");
    }
    let stream = open_events(&addr, &flow).await?;
    let mut manager = Manager::from_mail(&addr, inbox).await?;
    let (t0, t_post) = manager.approve().await?;
    let t_event = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .context("no event 10 s after the decision")???;
    // What waiting.js does next: load the flow's page, which sends the browser on.
    let r = rp::page_redirect(&mut browser, &flow).await?;
    let t_code = Instant::now();
    let code = rp::code_of(&r, &req, &provider.issuer)?;
    let claims = rp::redeem(server, provider, &req, &code).await?;
    if claims["acr"].as_str() != Some(ACR_APPROVAL) {
        bail!("{username}'s ID token has acr {}", claims["acr"]);
    }
    Ok(Sample {
        event: t_event.saturating_duration_since(t0),
        post: t_post - t0,
        code: t_code.saturating_duration_since(t_event),
    })
}

/// The waiting page's event stream, opened and its first event (`pending`) read; the task
/// returns when the next event, which must be `granted`, is in.
async fn open_events(
    addr: &str,
    flow: &rp::Flow,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Instant>>> {
    let mut conn = Conn::connect(addr).await?;
    let path = format!("/flow/{}/events", flow.id);
    let headers = [flow.cookie_header(), "Accept: text/event-stream".to_owned()];
    conn.send("GET", &path, &headers, b"").await?;
    let (status, _, _) = conn.head().await?;
    if status != 200 {
        bail!("{path}: HTTP {status}");
    }
    let mut events = EventReader::new();
    let first = events.next_status(&mut conn).await?;
    if !first.contains("\"pending\"") {
        bail!("{path}: first event {first}");
    }
    Ok(tokio::spawn(async move {
        let next = events.next_status(&mut conn).await?;
        let at = Instant::now();
        if !next.contains("\"granted\"") {
            bail!("the event after pending: {next}");
        }
        Ok(at)
    }))
}

fn ms3(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
