//! Suites over countersign's LDAP front: simple binds (new or persistent connections) and
//! Deliver OTP + UNBOUNDID-DELIVERED-OTP SASL binds.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use countersign::ldap::exop;
use countersign_core::Secret;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapExtendedRequest, LdapOp, LdapResultCode, SaslCredentials,
};
use tokio::sync::mpsc;

use crate::harness::{Samples, Window};
use crate::ldap_client::LdapClient;

/// Simple binds as `dn`, on one persistent connection or a new connection each time.
pub async fn bind_client(
    addr: String,
    dn: String,
    w: Window,
    persistent: bool,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    let mut conn = LdapClient::connect(&addr).await?;
    while w.more() {
        let t0 = Instant::now();
        if !persistent {
            conn = LdapClient::connect(&addr).await?;
        }
        let bind = LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: dn.clone(),
            cred: LdapBindCred::Simple("bench-password".into()),
        });
        let code = conn.ask(bind).await?;
        if code != LdapResultCode::Success {
            bail!("bind: {code:?}");
        }
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

/// Deliver OTP for local user `i`, then a SASL bind with the code, on one connection.
pub async fn otp_client(
    addr: String,
    mut rx: mpsc::UnboundedReceiver<String>,
    i: usize,
    w: Window,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    let mut conn = LdapClient::connect(&addr).await?;
    let value = exop::encode_deliver_otp(&exop::DeliverOtpRequest {
        authentication_id: format!("u:user{i}"),
        static_password: Some(Secret::new("bench-password")),
        ..Default::default()
    });
    while w.more() {
        let t0 = Instant::now();
        let deliver = LdapOp::ExtendedRequest(LdapExtendedRequest {
            name: exop::DELIVER_OTP_REQUEST.into(),
            value: Some(value.clone()),
        });
        let code = conn.ask(deliver).await?;
        if code != LdapResultCode::Success {
            bail!("deliver: {code:?}");
        }
        let otp = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .ok_or_else(|| anyhow!("gateway closed"))?;
        let t1 = Instant::now();
        let creds = exop::encode_sasl_credentials(&exop::DeliveredOtpCredentials {
            authentication_id: format!("u:user{i}"),
            authorization_id: None,
            otp: Secret::new(otp),
        });
        let bind = LdapOp::BindRequest(LdapBindRequest {
            version: 3,
            dn: String::new(),
            cred: LdapBindCred::SASL(SaslCredentials {
                mechanism: exop::SASL_DELIVERED_OTP.into(),
                credentials: creds,
            }),
        });
        let code = conn.ask(bind).await?;
        if code != LdapResultCode::Success {
            bail!("SASL bind: {code:?}");
        }
        if w.counts(t0) {
            samples.push(vec![t1 - t0, t1.elapsed()]);
        }
    }
    Ok(samples)
}
