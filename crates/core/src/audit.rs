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
    /// A login through an application (HTTP login API, OTP verify or bind under approval
    /// profiles): first factor, policy, profile, manager.
    Login,
    /// A manager's (or an operator's) decision on an approval request.
    Decision,
    /// An approval request that expired undecided.
    Expiry,
    /// An outbox message sent, retried or given up.
    Message,
    /// An OpenID Connect authorization code presented at the token endpoint: exchanged,
    /// refused on its bindings, or replayed (with the tokens it gave revoked).
    Token,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Deliver => "deliver",
            AuditAction::Verify => "verify",
            AuditAction::Bind => "bind",
            AuditAction::Login => "login",
            AuditAction::Decision => "decision",
            AuditAction::Expiry => "expiry",
            AuditAction::Message => "message",
            AuditAction::Token => "token",
        }
    }

    pub const ALL: [AuditAction; 8] = [
        AuditAction::Deliver,
        AuditAction::Verify,
        AuditAction::Bind,
        AuditAction::Login,
        AuditAction::Decision,
        AuditAction::Expiry,
        AuditAction::Message,
        AuditAction::Token,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
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
    /// For logins and approvals: application, policy, profile, login id.
    pub login: LoginFacts,
}

/// What the audit keeps about a login under Approved OTP (all empty for other records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFacts {
    pub application: Option<String>,
    /// The policy that matched (`None`: no policies, or none matched).
    pub policy: Option<String>,
    pub profile: Option<String>,
    /// The approval request (login id) this record is about.
    pub login: Option<String>,
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
    pub application: Option<String>,
    pub profile: Option<String>,
    pub policy: Option<String>,
    pub login: Option<String>,
    pub limit: usize,
}
