//! The LDAP front, wire-compatible with PingDirectory's delivered-OTP operations
//! (`shared/spec/ldap-otp-protocol.md`): [`listener`] owns sockets, TLS and limits;
//! [`connection`] the operations of one connection (the bind among them); [`codec`] framing;
//! [`handler`] owns meaning; [`exop`] and [`ber`] encode and decode the operations' values.

mod approval;
pub mod codec;
mod connection;
pub mod exop;
pub mod handler;
pub mod listener;

pub use approval::LdapLogin;
pub use handler::{LdapHandler, LdapSettings};
pub use listener::{LdapServer, Limits};
