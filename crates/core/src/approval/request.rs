//! Approval requests and their state machine:
//!
//! ```text
//! pending ──approve──▶ approved
//!    │ ────reject───▶ rejected
//!    │ ────cancel───▶ cancelled   (an operator, or the message could not be sent)
//!    └──link expiry─▶ expired
//! ```
//!
//! Only a pending request changes, and only once: the first decision wins. The request is known
//! to its application by a random id (the login id it waits on) and to the manager by a link
//! token; the store keeps only the token's SHA-256, so a copy of the database approves nothing.

use sha2::{Digest, Sha256};

use crate::model::{Timestamp, UserKey};
use crate::otp::generator::random_hex;
use crate::ports::Random;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl ApprovalState {
    pub const ALL: [ApprovalState; 5] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Rejected,
        ApprovalState::Expired,
        ApprovalState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        self != ApprovalState::Pending
    }
}

/// Who decided, from where: the link's page (address and user agent) or an operator at the
/// command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecidedBy {
    /// `link` or `cli`.
    pub channel: String,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    /// For `cli`: the operator's account name.
    pub operator: Option<String>,
}

impl DecidedBy {
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("via {}", self.channel)];
        if let Some(op) = &self.operator {
            parts.push(format!("by {op}"));
        }
        if let Some(a) = &self.address {
            parts.push(format!("from {a}"));
        }
        if let Some(ua) = &self.user_agent {
            parts.push(format!("user agent {ua:?}"));
        }
        parts.join(" ")
    }
}

/// A final state and who set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Approved, rejected or cancelled (expiry is the server's, see `expire_approvals`).
    pub state: ApprovalState,
    pub at: Timestamp,
    pub by: DecidedBy,
}

/// One login waiting for (or decided by) a manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The login id its application waits on: 128 random bits, hex.
    pub id: String,
    /// SHA-256 of the link token.
    pub token_hash: Vec<u8>,
    pub user: UserKey,
    pub user_dn: String,
    pub username: String,
    pub display_name: Option<String>,
    pub application: String,
    pub profile: String,
    /// The front the login came through (`http`, `ldap`).
    pub front: String,
    pub client: Option<String>,
    /// Where the link went.
    pub recipient: String,
    /// Who that is: the manager's name or DN, or "default recipient".
    pub approver: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub state: ApprovalState,
    pub decided_at: Option<Timestamp>,
    pub decided_by: Option<DecidedBy>,
    /// When the courier took the approval message; `None` until then. A pending request whose
    /// message was never sent (the server died in between) is not joined: it would hold the
    /// user until it expired with nobody asked.
    pub sent_at: Option<Timestamp>,
}

impl ApprovalRequest {
    /// The state as of `now`: a pending request past its expiry is expired, whether or not the
    /// store was told yet.
    pub fn state_at(&self, now: Timestamp) -> ApprovalState {
        if self.state == ApprovalState::Pending && now >= self.expires_at {
            ApprovalState::Expired
        } else {
            self.state
        }
    }
}

/// A fresh link token (256 random bits, hex) and the hash the store keeps.
pub fn new_link_token(random: &dyn Random) -> (String, Vec<u8>) {
    let token = random_hex(random, 32);
    let hash = hash_link_token(&token);
    (token, hash)
}

/// A fresh login id (128 random bits, hex).
pub fn new_login_id(random: &dyn Random) -> String {
    random_hex(random, 16)
}

pub fn hash_link_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` has the shape of a link token: anything else is refused before the store
/// is asked.
pub fn is_link_token(token: &str) -> bool {
    crate::crypto::is_hex_of(token, 32)
}

/// Whether `id` has the shape of a login id.
pub fn is_login_id(id: &str) -> bool {
    crate::crypto::is_hex_of(id, 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::SeqRandom;

    #[test]
    fn tokens_are_256_bits_and_only_their_hash_is_kept() {
        let random = SeqRandom::new();
        let (token, hash) = new_link_token(&random);
        assert_eq!(token.len(), 64);
        assert!(is_link_token(&token));
        assert_eq!(hash, hash_link_token(&token));
        assert_ne!(hash, token.as_bytes());
        assert!(!is_link_token(&token.to_uppercase()));
        assert!(!is_link_token(&token[1..]));
        assert!(is_login_id(&new_login_id(&random)));
    }

    #[test]
    fn a_pending_request_past_its_expiry_reads_as_expired() {
        let r = ApprovalRequest {
            id: "0".repeat(32),
            token_hash: vec![],
            user: UserKey {
                directory: "d".into(),
                dn: "uid=a".into(),
            },
            user_dn: "uid=a".into(),
            username: "a".into(),
            display_name: None,
            application: "app".into(),
            profile: "p".into(),
            front: "http".into(),
            client: None,
            recipient: "m@x".into(),
            approver: "m".into(),
            created_at: Timestamp(0),
            expires_at: Timestamp(10),
            state: ApprovalState::Pending,
            decided_at: None,
            decided_by: None,
            sent_at: None,
        };
        assert_eq!(r.state_at(Timestamp(9)), ApprovalState::Pending);
        assert_eq!(r.state_at(Timestamp(10)), ApprovalState::Expired);
        let approved = ApprovalRequest {
            state: ApprovalState::Approved,
            ..r
        };
        assert_eq!(approved.state_at(Timestamp(99)), ApprovalState::Approved);
    }
}
