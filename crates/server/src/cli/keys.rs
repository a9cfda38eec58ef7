//! `countersign keys`: the OpenID Connect signing keys. `list` shows each key, whether it signs,
//! and until when a retired one stays published; `rotate` makes a new signing key (the old one
//! is retired and still published until the ID tokens it signed have expired). A running
//! server signs with the new key and publishes it from its next token on.

use std::io::Write;

use clap::Subcommand;

use crate::app::App;
use crate::oidc::keys;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys, newest first.
    List,
    /// Make a new signing key; the current one is retired (still published until its tokens
    /// expire).
    Rotate,
}

pub async fn run_keys(app: &App, cmd: KeysCommand) -> anyhow::Result<()> {
    let Some(oidc) = app.oidc.as_ref() else {
        anyhow::bail!(
            "no OpenID Connect client is configured (an [[application]] with redirect_uris)"
        );
    };
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::List => {
            let publish = app.config.oidc.id_token_lifetime;
            let mut records = app.store.signing_keys().await?;
            records.reverse();
            if records.is_empty() {
                writeln!(out, "no signing key yet: one is made at the first sign-in")?;
            }
            for r in records {
                let state = match r.retired_at {
                    None => "signing".to_owned(),
                    Some(at) => format!(
                        "retired {}, published until {}",
                        at.to_rfc3339(),
                        at.plus(publish).to_rfc3339()
                    ),
                };
                writeln!(
                    out,
                    "{}  created {}  {state}",
                    r.kid,
                    r.created_at.to_rfc3339()
                )?;
            }
        }
        KeysCommand::Rotate => {
            let store: &dyn countersign_core::ports::oidc::OidcStore = app.store.as_ref();
            let kid = keys::rotate(store, oidc.seal(), app.clock.as_ref()).await?;
            writeln!(out, "new signing key {kid}")?;
        }
    }
    Ok(())
}
