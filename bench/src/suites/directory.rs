//! Directory suites that do not go through a countersign process: a login through
//! countersign's directory adapter in the bench process, and the same directory work sent
//! straight to slapd (the figures countersign's are compared with).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use countersign::directory::LdapDirectory;
use countersign_core::Secret;
use countersign_core::identity::Identity;
use countersign_core::ports::{Directory, Lookup};
use futures_util::SinkExt;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapFilter, LdapMsg, LdapOp, LdapResultCode, LdapSearchScope,
};

use crate::harness::{Samples, Window};
use crate::ldap_client::LdapClient;
use crate::slapd::{DIR_BASE, dir_dn};

/// A login as countersign does it for a directory user, through the adapter itself: find the
/// user by `u:` name, bind as them, look up their manager.
pub async fn adapter_login_client(
    dir: Arc<LdapDirectory>,
    i: usize,
    w: Window,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    let identity = Identity::parse(&format!("u:duser{i}")).map_err(|e| anyhow!(e.to_string()))?;
    let password = Secret::new("bench-password");
    while w.more() {
        let t0 = Instant::now();
        let user = match dir
            .find_user(&identity)
            .await
            .map_err(|e| anyhow!(e.to_string()))?
        {
            Lookup::Found(u) => *u,
            other => bail!("lookup: {other:?}"),
        };
        if !dir
            .check_password(&user, &password)
            .await
            .map_err(|e| anyhow!(e.to_string()))?
        {
            bail!("password refused");
        }
        if dir
            .find_manager(&user)
            .await
            .map_err(|e| anyhow!(e.to_string()))?
            .is_none()
            && i != 0
        {
            bail!("no manager");
        }
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

/// The same login straight to slapd: uid search, bind on a new connection, manager entry read.
pub async fn direct_login_client(addr: String, i: usize, w: Window) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    let mut service = service_connection(&addr).await?;
    while w.more() {
        let t0 = Instant::now();
        let filter = LdapFilter::Or(vec![LdapFilter::Equality(
            "uid".into(),
            format!("duser{i}"),
        )]);
        if service
            .search(DIR_BASE.to_owned(), LdapSearchScope::Subtree, filter)
            .await?
            != 1
        {
            bail!("user not found");
        }
        bind_on_new_connection(&addr, i).await?;
        if service
            .search(
                dir_dn(0),
                LdapSearchScope::Base,
                LdapFilter::Present("objectClass".into()),
            )
            .await?
            != 1
        {
            bail!("manager not found");
        }
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}

/// A connection bound as countersign's service account.
async fn service_connection(addr: &str) -> anyhow::Result<LdapClient> {
    let mut service = LdapClient::connect(addr).await?;
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: "cn=countersign,dc=example,dc=com".into(),
        cred: LdapBindCred::Simple("service-password".into()),
    });
    if service.ask(bind).await? != LdapResultCode::Success {
        bail!("service bind refused");
    }
    Ok(service)
}

/// Binds as directory user `i` on a new connection, then unbinds.
async fn bind_on_new_connection(addr: &str, i: usize) -> anyhow::Result<()> {
    let mut user = LdapClient::connect(addr).await?;
    let bind = LdapOp::BindRequest(LdapBindRequest {
        version: 3,
        dn: dir_dn(i),
        cred: LdapBindCred::Simple("bench-password".into()),
    });
    if user.ask(bind).await? != LdapResultCode::Success {
        bail!("user bind refused");
    }
    let _ = user
        .framed
        .send(LdapMsg::new(99, LdapOp::UnbindRequest))
        .await;
    Ok(())
}

/// What countersign asks of the directory, straight to slapd: on a service connection, read the
/// user (by DN, or by uid over the base when `by_uid`), then bind as the user on a new one.
pub async fn direct_client(
    addr: String,
    i: usize,
    w: Window,
    by_uid: bool,
) -> anyhow::Result<Samples> {
    let mut samples = Vec::new();
    let mut service = service_connection(&addr).await?;
    while w.more() {
        let t0 = Instant::now();
        let (base, scope, filter) = if by_uid {
            (
                DIR_BASE.to_owned(),
                LdapSearchScope::Subtree,
                LdapFilter::Or(vec![LdapFilter::Equality(
                    "uid".into(),
                    format!("duser{i}"),
                )]),
            )
        } else {
            (
                dir_dn(i),
                LdapSearchScope::Base,
                LdapFilter::Present("objectClass".into()),
            )
        };
        let found = service.search(base, scope, filter).await?;
        if found != 1 {
            bail!("found {found} entries");
        }
        bind_on_new_connection(&addr, i).await?;
        if w.counts(t0) {
            samples.push(vec![t0.elapsed()]);
        }
    }
    Ok(samples)
}
