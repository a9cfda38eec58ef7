//! What can go wrong while wiring and serving: one typed error for the `app` module, which the
//! binary's edge (`main.rs`, the CLI) turns into a message.

use std::path::PathBuf;

use countersign_core::ports::StoreError;

use crate::setup::SetupError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{}: not a hex key", .0.display())]
    KeyNotHex(PathBuf),
    #[error("{}: key shorter than {min} bytes", path.display())]
    KeyShorterThan { path: PathBuf, min: usize },
    #[error("secret key too short")]
    KeyTooShort,
    #[error("cannot {doing} {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    /// A directory, courier or the LDAP front's TLS that cannot be set up (the message names
    /// the component and the key).
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("profile {0} missing")]
    MissingProfile(String),
    #[error("{}", match .0 {
        Some(n) => format!("no local [[directory]] named {n:?} in the configuration"),
        None => "the configuration has no [[directory]] of type local".to_owned(),
    })]
    NoLocalDirectory(Option<String>),
    #[error("cannot listen on {addr} (listen.{front}): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        front: &'static str,
        source: std::io::Error,
    },
}
