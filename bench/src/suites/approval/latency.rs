//! `decision-latency`: how long a manager's decision takes to reach the waiting login. One
//! sample: a pending login (directory user, its own user and application, so no grace period
//! or join applies), its waiter started (a long-poll, an event stream, or an LDAP simple bind
//! held by the LDAP front), the link taken from the mail the SMTP server received, the
//! manager's page read for its CSRF field; then the clock starts just before the approving
//! POST is written and stops when the waiter has its granted answer. The POST's own answer is
//! timed from the same start, beside it.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use ldap3_proto::proto::{LdapBindCred, LdapBindRequest, LdapOp, LdapResultCode};
use tokio::sync::{mpsc, oneshot};

use super::{APPROVER, api_key, bearer, create_with};
use crate::harness::{Harness, pct};
use crate::http_wire::{Conn, EventReader};
use crate::ldap_client::LdapClient;
use crate::slapd::dir_dn;

/// Time given to a waiter, once its request is written, to be waiting in the server (the
/// store read and the subscription) before the decision is posted.
const SETTLE: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
enum Via {
    Poll,
    Sse,
    Ldap,
}

impl Via {
    fn describe(self) -> &'static str {
        match self {
            Via::Poll => "HTTP long-poll (`GET /api/v1/logins/{id}?wait=60`)",
            Via::Sse => "SSE (`GET /api/v1/logins/{id}/events`, the granted event)",
            Via::Ldap => "LDAP simple bind held by the LDAP front",
        }
    }
}

/// One sample: from just before the POST to the waiter's answer, and to the POST's answer.
struct Sample {
    waiter: Duration,
    post: Duration,
}

pub async fn decision_latency(h: &Harness, samples: usize) -> anyhow::Result<()> {
    println!("### Approved OTP: decision to waiter latency ({samples} samples each)\n");
    println!(
        "From just before the manager's approving POST is written to the waiter's granted \
         answer (and, beside it, to the POST's own answer).\n"
    );
    println!(
        "| waiter | samples | waiter p50 | waiter p90 | waiter p99 | waiter max | POST answer p50 | POST answer p99 | waiter before the POST's answer | others' cores meanwhile |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut inbox = h.inbox(APPROVER.to_owned());
    for (k, via) in [Via::Poll, Via::Sse, Via::Ldap].into_iter().enumerate() {
        let mut got = Vec::with_capacity(samples);
        let meter = h.cpu_meter()?;
        for s in 0..samples {
            let sample = one(h, via, 1 + s, k, &mut inbox)
                .await
                .with_context(|| format!("{} sample {s}", via.describe()))?;
            got.push(sample);
        }
        let others = meter.usage()?.others;
        let mut waiter: Vec<Duration> = got.iter().map(|s| s.waiter).collect();
        let mut post: Vec<Duration> = got.iter().map(|s| s.post).collect();
        let first = got.iter().filter(|s| s.waiter <= s.post).count();
        waiter.sort();
        post.sort();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {first} of {} | {others:.2} |",
            via.describe(),
            got.len(),
            ms3(pct(&waiter, 0.50)),
            ms3(pct(&waiter, 0.90)),
            ms3(pct(&waiter, 0.99)),
            ms3(waiter[waiter.len() - 1]),
            ms3(pct(&post, 0.50)),
            ms3(pct(&post, 0.99)),
            got.len()
        );
    }
    println!();
    Ok(())
}

/// One decision: the login of directory user `user` through `app{app}` (HTTP) or the LDAP
/// front's application.
async fn one(
    h: &Harness,
    via: Via,
    user: usize,
    app: usize,
    inbox: &mut mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<Sample> {
    while inbox.try_recv().is_ok() {}
    let addr = h.http_base.trim_start_matches("http://").to_owned();
    let (ready_tx, ready) = oneshot::channel();
    let waiter = match via {
        Via::Poll | Via::Sse => {
            let id = create_with(&h.client, &h.http_base, user, app).await?;
            let auth = bearer(&api_key(app));
            tokio::spawn(http_waiter(addr.clone(), id, auth, via, ready_tx))
        }
        Via::Ldap => tokio::spawn(ldap_waiter(h.ldap_addr.clone(), dir_dn(user), ready_tx)),
    };
    ready
        .await
        .map_err(|_| anyhow!("the waiter did not start"))??;
    // The link in the manager's mail (for a bind, sent once the password was checked).
    let mut manager = Manager::from_mail(&addr, inbox).await?;
    let (t0, t_post) = manager.approve().await?;
    let t_waiter = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .context("the waiter had no answer 10 s after the decision")???;
    Ok(Sample {
        waiter: t_waiter.saturating_duration_since(t0),
        post: t_post - t0,
    })
}

/// A long-poll or an event stream on the login; `ready` once the request is written (the
/// first, pending, event read); returns when the granted answer is in.
async fn http_waiter(
    addr: String,
    id: String,
    auth: String,
    via: Via,
    ready: oneshot::Sender<anyhow::Result<()>>,
) -> anyhow::Result<Instant> {
    let mut conn = Conn::connect(&addr).await?;
    if let Via::Poll = via {
        let path = format!("/api/v1/logins/{id}?wait=60");
        conn.send("GET", &path, &[auth], b"").await?;
        let _ = ready.send(Ok(()));
        let r = conn.response().await?;
        let at = Instant::now();
        let body = String::from_utf8_lossy(&r.body);
        if r.status != 200 || !body.contains("\"granted\"") {
            bail!("long-poll answered HTTP {}: {body}", r.status);
        }
        return Ok(at);
    }
    conn.send("GET", &format!("/api/v1/logins/{id}/events"), &[auth], b"")
        .await?;
    let (status, _, _) = conn.head().await?;
    let mut events = EventReader::new();
    let first = events.next_status(&mut conn).await?;
    if status != 200 || !first.contains("\"pending\"") {
        let problem = anyhow!("events answered HTTP {status}, first event {first}");
        let _ = ready.send(Err(anyhow!("{problem}")));
        return Err(problem);
    }
    let _ = ready.send(Ok(()));
    let next = events.next_status(&mut conn).await?;
    let at = Instant::now();
    if !next.contains("\"granted\"") {
        bail!("the event after pending: {next}");
    }
    Ok(at)
}

/// A simple bind as `dn`, held by countersign until the decision; `ready` once it is written.
async fn ldap_waiter(
    addr: String,
    dn: String,
    ready: oneshot::Sender<anyhow::Result<()>>,
) -> anyhow::Result<Instant> {
    let mut conn = LdapClient::connect(&addr).await?;
    let _ = ready.send(Ok(()));
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn,
        cred: LdapBindCred::Simple("bench-password".into()),
    });
    let code = conn.ask(bind).await?;
    let at = Instant::now();
    if code != LdapResultCode::Success {
        bail!("the held bind ended with {code:?}");
    }
    Ok(at)
}

/// The manager about to approve: the link from the mail, its page read for the hidden `csrf`
/// field, then [`SETTLE`] so the waiter is surely waiting.
pub(crate) struct Manager {
    conn: Conn,
    path: String,
    form: String,
}

impl Manager {
    pub(crate) async fn from_mail(
        addr: &str,
        inbox: &mut mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<Self> {
        let link = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .context("no approval mail within 10 s")?
            .ok_or_else(|| anyhow!("the SMTP server closed"))?;
        let path = link
            .find("/approve/")
            .map(|at| link[at..].to_owned())
            .ok_or_else(|| anyhow!("no approval link in {link:?}"))?;
        tokio::time::sleep(SETTLE).await;
        let mut conn = Conn::connect(addr).await?;
        conn.send("GET", &path, &[], b"").await?;
        let page = conn.response().await?;
        if page.status != 200 {
            bail!("the approval page: HTTP {}", page.status);
        }
        let csrf = crate::suites::oidc::rp::csrf_of(&String::from_utf8_lossy(&page.body))?;
        let form = format!("decision=approve&csrf={csrf}");
        Ok(Self { conn, path, form })
    }

    /// The approving POST: when it was about to be written, and when its answer was in.
    pub(crate) async fn approve(&mut self) -> anyhow::Result<(Instant, Instant)> {
        let headers = ["Content-Type: application/x-www-form-urlencoded".to_owned()];
        let t0 = Instant::now();
        self.conn
            .send("POST", &self.path, &headers, self.form.as_bytes())
            .await?;
        let decided = self.conn.response().await?;
        let t_post = Instant::now();
        if decided.status != 200 {
            bail!("the decision: HTTP {}", decided.status);
        }
        Ok((t0, t_post))
    }
}

fn ms3(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
