//! countersign's one integration-test binary: a module per area, each against real parts (an
//! SMTP server process, an HTTP SMS gateway, SQLite files, the `countersign` binary itself).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod approval_crash;
mod approval_http;
mod approval_ldap;
mod approval_slapd;
mod approval_waiters;
mod browser_manager;
mod browser_signin;
mod cli;
mod config;
mod deliver_otp_handler;
mod delivery_email;
mod delivery_sms;
mod demo;
mod demo_oidc;
mod directory_account;
mod directory_ldap;
mod fixtures;
mod http_api;
mod http_approval;
mod http_hardening;
mod identity_edge;
mod ldap_binds;
mod ldap_front;
mod ldap_wire;
mod mechanism_order;
mod oidc_flow_http;
mod oidc_rp;
mod otp_lifecycle;
mod rate_limits;
mod store_contract;
mod store_contract_approvals;
mod store_contract_oidc;
mod store_sqlite;
