//! The errors of the use cases. Each front maps them once to its protocol (LDAP result code with
//! a diagnostic, HTTP problem+json). [`Refusal`] carries the *real* reason for a credential
//! refusal: it goes to the audit log, never to the client, which sees one uniform refusal.

use std::time::Duration;
use thiserror::Error;

/// Why a login step was refused. Recorded in the audit log; never shown to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownUser,
    AmbiguousUser,
    WrongPassword,
    NoPassword,
    AccountDisabled,
    AccountLocked,
    PasswordExpired,
    MustChangePassword,
    NoOtp,
    OtpExpired,
    WrongOtp,
    OtpVoided,
    OtpAlreadyUsed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownUser => "unknown user",
            Refusal::AmbiguousUser => "identity matches more than one user",
            Refusal::WrongPassword => "wrong static password",
            Refusal::NoPassword => "no static password and not bound as that user",
            Refusal::AccountDisabled => "account disabled",
            Refusal::AccountLocked => "account locked",
            Refusal::PasswordExpired => "password expired",
            Refusal::MustChangePassword => "password must be changed first",
            Refusal::NoOtp => "no outstanding OTP",
            Refusal::OtpExpired => "OTP expired",
            Refusal::WrongOtp => "wrong OTP",
            Refusal::OtpVoided => "wrong OTP; OTP voided after too many failed attempts",
            Refusal::OtpAlreadyUsed => "OTP already used",
        }
    }
}

/// Why one delivery mechanism did not deliver. Shown to the caller: it names no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// No enabled mechanism has that name.
    NoSuchMechanism,
    /// The user has no address of the kind the mechanism needs.
    NoAddress,
    /// The request named a recipient that is not one of the user's addresses.
    RecipientNotOwned,
    /// The transport refused, failed or timed out.
    TransportFailed,
}

impl Undelivered {
    pub fn as_str(self) -> &'static str {
        match self {
            Undelivered::NoSuchMechanism => "no such delivery mechanism is enabled",
            Undelivered::NoAddress => "the user has no address for this mechanism",
            Undelivered::RecipientNotOwned => "the recipient ID is not one of the user's addresses",
            Undelivered::TransportFailed => "delivery failed",
        }
    }
}

/// Why a login whose first factor was right does not go through. Unlike a [`Refusal`] these
/// are told to the caller: only someone who proved to be the user gets this far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Policies exist and none matches the user (the seed: only matching users may log in).
    NoMatchingPolicy,
    /// The approval profile could reach nobody: no manager, no default recipient.
    ApproverUnreachable,
    /// The approval message could not be delivered.
    ApprovalNotSent,
    /// The application may not use this authentication method.
    MethodNotAllowed,
    /// A sign-in of this user to this application from another address is waiting for its
    /// approval.
    PendingElsewhere,
    Rejected,
    Expired,
    Cancelled,
}

impl Denial {
    /// The reason code fronts show (`denied` answers of the login API, LDAP diagnostics).
    pub fn code(self) -> &'static str {
        match self {
            Denial::NoMatchingPolicy => "no_matching_policy",
            Denial::ApproverUnreachable => "approver_unreachable",
            Denial::ApprovalNotSent => "approval_not_sent",
            Denial::MethodNotAllowed => "method_not_allowed",
            Denial::PendingElsewhere => "approval_pending_elsewhere",
            Denial::Rejected => "rejected",
            Denial::Expired => "expired",
            Denial::Cancelled => "cancelled",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Denial::NoMatchingPolicy => "no approval policy matches the user",
            Denial::ApproverUnreachable => {
                "nobody can be asked to approve: no manager address and no default recipient"
            }
            Denial::ApprovalNotSent => "the approval request could not be sent to the approver",
            Denial::MethodNotAllowed => {
                "the application or the approval profile does not allow this authentication method"
            }
            Denial::PendingElsewhere => {
                "a sign-in of this user from another address is waiting for approval"
            }
            Denial::Rejected => "the approver rejected the login",
            Denial::Expired => "the approval request expired undecided",
            Denial::Cancelled => "the approval request was cancelled",
        }
    }
}

/// What went wrong in a use case.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AuthError {
    /// The identity is neither `dn:<DN>` nor `u:<name>`.
    #[error("malformed identity {0:?}: expected dn:<DN> or u:<username>")]
    MalformedIdentity(String),
    /// The request breaks a limit or a rule of form (too long, too many mechanisms, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// Uniform refusal: unknown user, wrong password, unusable account, bad OTP.
    #[error("invalid credentials")]
    InvalidCredentials(Refusal),
    /// The OTP was right but the requested authorization identity is not the user's own.
    #[error("not authorized to assume the identity {0:?}")]
    AuthorizationDenied(String),
    /// No mechanism could deliver the OTP. Lists each mechanism tried and a reason that names no
    /// address.
    #[error("the one-time password could not be delivered: {}", format_tried(.tried))]
    NotDelivered { tried: Vec<(String, Undelivered)> },
    /// The first factor was right but the login does not go through.
    #[error("login denied: {}", .0.as_str())]
    Denied(Denial),
    /// No login with that id for this application (or no approval link with that token).
    #[error("no such login")]
    UnknownLogin,
    /// Nobody with that DN (only for lookups that are not credential checks).
    #[error("no such user")]
    NoSuchUser,
    /// Too many attempts for this user or client.
    #[error("too many attempts; retry after {} s", .retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// A directory or the store cannot be reached. Not a refusal: try again later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

fn format_tried(tried: &[(String, Undelivered)]) -> String {
    if tried.is_empty() {
        return "no delivery mechanism was available".to_owned();
    }
    tried
        .iter()
        .map(|(m, why)| format!("{m}: {}", why.as_str()))
        .collect::<Vec<_>>()
        .join("; ")
}
