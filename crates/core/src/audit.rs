//! The audit trail: one append-only record per attempt, with the real reason for a refusal.
//! Secrets (passwords, OTPs) never appear; addresses do, because operators need to know where
//! a code went.

use crate::model::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Deliver,
    Verify,
    /// A static-password check on its own (LDAP simple bind).
    Bind,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Deliver => "deliver",
            AuditAction::Verify => "verify",
            AuditAction::Bind => "bind",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deliver" => Some(AuditAction::Deliver),
            "verify" => Some(AuditAction::Verify),
            "bind" => Some(AuditAction::Bind),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    Failure,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(AuditOutcome::Success),
            "failure" => Some(AuditOutcome::Failure),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub at: Timestamp,
    pub action: AuditAction,
    /// The front the attempt came through: `http`, `ldap`.
    pub front: String,
    /// The identity as the client sent it.
    pub identity: String,
    /// The user it resolved to, when it did.
    pub user_dn: Option<String>,
    pub client: Option<String>,
    pub outcome: AuditOutcome,
    /// The real reason, including for uniform refusals.
    pub reason: String,
    pub mechanism: Option<String>,
    pub recipient: Option<String>,
}

/// Filters for reading the audit trail; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    pub outcome: Option<AuditOutcome>,
    /// Substring of the identity or the user DN, case-insensitive.
    pub user: Option<String>,
    pub client: Option<String>,
    pub since: Option<Timestamp>,
    pub limit: usize,
}
