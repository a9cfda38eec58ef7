//! The manager's side of an approval request: what the link's page shows, and the decision
//! (only ever made by a POST on that page, or by an operator at the command line). The first
//! decision wins; every waiter on the login is woken the moment it is recorded.

use crate::approval::request::{hash_link_token, is_link_token};
use crate::approval::{ApprovalRequest, ApprovalState, DecidedBy, Decision};
use crate::attempt::{Attempt, Caller, Front};
use crate::audit::AuditAction;
use crate::error::AuthError;
use crate::ports::DecideOutcome;

use super::{LoginService, decided_request, store_unavailable};

/// An approval request as the manager's page shows it: `state` is as of now (a pending request
/// past its expiry shows as expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalView {
    pub request: ApprovalRequest,
    pub state: ApprovalState,
}

/// What became of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionResult {
    /// Recorded: the request in its new state.
    Decided(ApprovalRequest),
    /// Too late: the request was decided, expired or cancelled before; as it is.
    AlreadyFinal(ApprovalRequest),
}

/// The audit attempt of an event on `request` (decision, expiry, message), attributed to the
/// user it is about.
pub(crate) fn request_attempt(
    action: AuditAction,
    request: &ApprovalRequest,
    decided_by: Option<&DecidedBy>,
) -> Attempt {
    let caller = Caller {
        front: if request.front == "ldap" {
            Front::Ldap
        } else {
            Front::Http
        },
        client: decided_by.and_then(|by| by.address.clone()),
        bound_as: None,
    };
    let mut attempt = Attempt::new(action, &caller, &format!("u:{}", request.username));
    attempt.resolved_dn(&request.user, &request.user_dn);
    let facts = attempt.login_facts();
    facts.application = Some(request.application.clone());
    facts.profile = Some(request.profile.clone());
    facts.login = Some(request.id.clone());
    attempt.recipient(&request.recipient);
    attempt
}

impl LoginService {
    /// The request behind a link token, for the manager's page. Unknown and malformed tokens
    /// are both `UnknownLogin`.
    pub async fn approval_view(&self, token: &str) -> Result<ApprovalView, AuthError> {
        let request = self.request_by_token(token).await?;
        let state = request.state_at(self.clock.now());
        Ok(ApprovalView { request, state })
    }

    async fn request_by_token(&self, token: &str) -> Result<ApprovalRequest, AuthError> {
        if !is_link_token(token) {
            return Err(AuthError::UnknownLogin);
        }
        self.approvals
            .approval_by_token(&hash_link_token(token))
            .await
            .map_err(store_unavailable)?
            .ok_or(AuthError::UnknownLogin)
    }

    /// The manager's decision through the link (`approve`: approved, else rejected).
    pub async fn decide_by_link(
        &self,
        token: &str,
        approve: bool,
        by: DecidedBy,
    ) -> Result<DecisionResult, AuthError> {
        let request = self.request_by_token(token).await?;
        let state = if approve {
            ApprovalState::Approved
        } else {
            ApprovalState::Rejected
        };
        self.decide(&request.id, state, by).await
    }

    /// A decision on request `id`: approved, rejected or cancelled. Recorded only if the
    /// request is still pending and unexpired; waiters are woken and the audit says who
    /// decided from where.
    pub async fn decide(
        &self,
        id: &str,
        state: ApprovalState,
        by: DecidedBy,
    ) -> Result<DecisionResult, AuthError> {
        if !matches!(
            state,
            ApprovalState::Approved | ApprovalState::Rejected | ApprovalState::Cancelled
        ) {
            return Err(AuthError::InvalidRequest(format!(
                "a decision approves, rejects or cancels, not {}",
                state.as_str()
            )));
        }
        let decision = Decision {
            state,
            at: self.clock.now(),
            by,
        };
        // Whether the store still held it as pending: if this decision finds it expired, it is
        // the one that marks it so, and the expiry is audited here (the job will not see it).
        let was_pending = matches!(
            self.approvals.approval(id).await.map_err(store_unavailable)?,
            Some(ref r) if r.state == ApprovalState::Pending
        );
        let outcome = self
            .approvals
            .decide_approval(id, &decision)
            .await
            .map_err(store_unavailable)?;
        if let Some(request) = decided_request(&outcome) {
            // An expiry found by this decision also ends the waits.
            self.signal.notify(&request.id);
        }
        match outcome {
            DecideOutcome::Decided(request) => {
                if request.state == ApprovalState::Approved
                    && let Some(client) = &request.client
                {
                    // The approver vouched for that client: it counts as signed in.
                    let identities = [
                        format!("u:{}", request.username),
                        format!("dn:{}", request.user_dn),
                    ];
                    self.passwords.limits.trust_approved(
                        &request.user,
                        &identities,
                        client,
                        decision.at,
                    );
                }
                self.audit_decision(&request, &decision).await;
                Ok(DecisionResult::Decided(request))
            }
            DecideOutcome::AlreadyFinal(request) => {
                if was_pending && request.state == ApprovalState::Expired {
                    let mut attempt = request_attempt(AuditAction::Expiry, &request, None);
                    attempt.note(format!(
                        "link expired at {}; found so by a late decision ({})",
                        request.expires_at.to_rfc3339(),
                        decision.by.describe()
                    ));
                    self.passwords
                        .audit
                        .record(attempt, &Ok::<(), AuthError>(()))
                        .await;
                }
                Ok(DecisionResult::AlreadyFinal(request))
            }
            DecideOutcome::NotFound => Err(AuthError::UnknownLogin),
        }
    }

    async fn audit_decision(&self, request: &ApprovalRequest, decision: &Decision) {
        let mut attempt = request_attempt(AuditAction::Decision, request, Some(&decision.by));
        attempt.note(format!(
            "{} {}",
            decision.state.as_str(),
            decision.by.describe()
        ));
        self.passwords
            .audit
            .record(attempt, &Ok::<(), AuthError>(()))
            .await;
    }

    /// The logins decided (or expired) after position `after` of the store's decision log, by
    /// this node or another process such as the command line, so their waiters can be woken;
    /// and the position to read from next (`None`: nothing yet, the current end).
    pub async fn decided_after(&self, after: Option<u64>) -> Result<(Vec<String>, u64), AuthError> {
        self.approvals
            .decisions_after(after, 10_000)
            .await
            .map_err(store_unavailable)
    }
}
