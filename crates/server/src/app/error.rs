//! What can go wrong while wiring and serving: one typed error for the `app` module, which the
//! binary's edge (`main.rs`, the CLI) turns into a message.

use std::path::PathBuf;

use countersign_core::ports::StoreError;

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
    /// An LDAP directory that cannot be set up (its message names the directory).
    #[error("{0}")]
    Directory(String),
    /// A mail or SMS transport that cannot be set up (its message names the profile).
    #[error("{0}")]
    Courier(String),
    #[error("profile {0} missing")]
    MissingProfile(String),
    /// The LDAP front's certificate or key (the message names the key).
    #[error("{0}")]
    Tls(String),
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
