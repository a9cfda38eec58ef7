//! Suites over the HTTP API: local users' deliver + verify, directory users' deliver, and
//! directory users' full e-mail login (deliver by e-mail, the code read from the mail the SMTP
//! server received, verify).

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use tokio::sync::mpsc;

use crate::harness::{Samples, Window};

/// `POST /api/v1/otp/deliver`, then the code as the gateway or SMTP server received it.
async fn deliver(
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
        .ok_or_else(|| anyhow!("the inbox closed"))
}

/// `POST /api/v1/otp/verify`, which must succeed.
async fn verify(
    client: &reqwest::Client,
    base: &str,
    authentication_id: &str,
    otp: String,
) -> anyhow::Result<()> {
    let body = serde_json::json!({"authentication_id": authentication_id, "otp": otp});
    let r = client
        .post(format!("{base}/api/v1/otp/verify"))
        .json(&body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("verify: HTTP {}", r.status());
    }
    Ok(())
}

/// Deliver (with `mechanisms`, when given) until the code arrives, then verify when `verify`
/// is set; one sample per part.
pub async fn login_client(
    client: reqwest::Client,
    base: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    authentication_id: String,
    mechanisms: Option<&'static [&'static str]>,
    with_verify: bool,
    w: Window,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    let mut body = serde_json::json!({"authentication_id": authentication_id, "static_password": "bench-password"});
    if let Some(m) = mechanisms {
        body["mechanisms"] = serde_json::json!(m);
    }
    while w.more() {
        let t0 = Instant::now();
        let otp = deliver(&client, &base, &body, &mut rx).await?;
        let t1 = Instant::now();
        if with_verify {
            verify(&client, &base, &authentication_id, otp).await?;
        }
        if w.counts(t0) {
            let mut s = vec![t1 - t0];
            if with_verify {
                s.push(t1.elapsed());
            }
            samples.push(s);
        }
    }
    Ok(samples)
}
