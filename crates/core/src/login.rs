//! The login use case: first factor → policy → profile → granted, informed or pending.
//!
//! A login is one attempt by a user through an application: a static password, or an OTP after
//! Deliver OTP. Once the first factor is right, the [`Policies`] pick the approval profile
//! (seed: first match top to bottom; none configured ⇒ the default profile; some configured ⇒
//! unmatched users are denied). An *information* profile lets the login through at once and
//! queues a message to the manager in the durable outbox; an *approval* profile creates an
//! approval request, sends the manager a link, and the login is pending until the manager
//! decides, the link expires or an operator cancels it. A retry while a request is pending joins
//! it; after an approval the same user and application get in without a new one for the grace
//! period (the first factor is still checked every time).
//!
//! Waiters subscribe to the [`DecisionSignal`] before they read the state, so a decision wakes
//! them at once.

use std::sync::Arc;
use std::time::Duration;

use crate::application::{Application, AuthMethod};
use crate::approval::request::{new_link_token, new_login_id};
use crate::approval::{
    ApprovalProfile, ApprovalRequest, ApprovalState, DecidedBy, Decision, MessageValues, Policies,
    PolicyChoice, ProfileKind,
};
use crate::attempt::{Attempt, Caller};
use crate::audit::AuditAction;
use crate::error::{AuthError, Denial};
use crate::identity::Identity;
use crate::identity_mapper::IdentityMapper;
use crate::model::{Timestamp, User};
use crate::otp::generator::random_hex;
use crate::otp::{OtpService, VerifyRequest};
use crate::outbox::{OutboxMessage, OutboxState};
use crate::password::PasswordAuthentication;
use crate::ports::{
    ApprovalStore, Clock, DecideOutcome, DecisionSignal, Detach, OutboundMessage, OutboxStore,
    Random, StoreError,
};
use crate::secret::Secret;

mod approver;
mod ask;
mod decide;
#[cfg(test)]
mod tests;

pub use approver::{Approver, ApproverLookup, ApproverSource};
pub use ask::UNSENT_AFTER;
pub use decide::{ApprovalView, DecisionResult};

/// The `[approval]` settings and the profiles and policies, as configured.
#[derive(Debug, Clone, Default)]
pub struct ApprovalRules {
    pub profiles: Vec<ApprovalProfile>,
    /// Used for everyone when there are no policies.
    pub default_profile: Option<String>,
    pub policies: Policies,
    /// After an approval, the same user and application get in without a new approval for
    /// this long (from the client that waited).
    pub grace_period: Duration,
    /// After a rejection, the same user and application are refused as rejected for this long,
    /// without asking the approver again.
    pub rejection_cooldown: Duration,
}

impl ApprovalRules {
    pub fn profile(&self, name: &str) -> Option<&ApprovalProfile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// What the policies choose for `user`: the policy's name (if one matched) and the profile,
    /// or the denial.
    pub fn choose(&self, user: &User) -> Result<(Option<&str>, &ApprovalProfile), Denial> {
        let (policy, profile) = match self.policies.choose(user) {
            PolicyChoice::Default => (None, self.default_profile.as_deref()),
            PolicyChoice::Matched(p) => (Some(p.name.as_str()), Some(p.profile.as_str())),
            PolicyChoice::NoMatch => return Err(Denial::NoMatchingPolicy),
        };
        let profile = profile
            .and_then(|name| self.profile(name))
            .ok_or(Denial::NoMatchingPolicy)?;
        // A profile authenticates only users of its fallback directories.
        if !profile.directories.contains(&user.directory) {
            return Err(Denial::NoMatchingPolicy);
        }
        Ok((policy, profile))
    }
}

/// How a granted login got through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// No approval profile applies (none configured, or the application is exempt).
    Directly,
    /// Information profile: the manager is (or could not be) informed.
    Informed,
    /// Within the grace period after an approval.
    WithinGrace,
}

/// What a login comes to, right away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Granted {
        user: Box<User>,
        admitted: Admitted,
    },
    /// Waiting for the approver; `login` is the id to wait on.
    Pending {
        login: String,
        expires_at: Timestamp,
    },
}

/// A login's state as its application may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStatus {
    Pending {
        expires_at: Timestamp,
    },
    Granted {
        user_dn: String,
        username: String,
        display_name: Option<String>,
    },
    Denied(Denial),
}

impl LoginStatus {
    fn of(request: &ApprovalRequest, now: Timestamp) -> Self {
        match request.state_at(now) {
            ApprovalState::Pending => LoginStatus::Pending {
                expires_at: request.expires_at,
            },
            ApprovalState::Approved => LoginStatus::Granted {
                user_dn: request.user_dn.clone(),
                username: request.username.clone(),
                display_name: request.display_name.clone(),
            },
            ApprovalState::Rejected => LoginStatus::Denied(Denial::Rejected),
            ApprovalState::Expired => LoginStatus::Denied(Denial::Expired),
            ApprovalState::Cancelled => LoginStatus::Denied(Denial::Cancelled),
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, LoginStatus::Pending { .. })
    }
}

/// Everything the login use case needs, wired once at start.
pub struct LoginService {
    /// The first factor of password logins, over the login chain (the fallback directories of
    /// the profiles); shares the rate limits and the audit trail with every use case.
    pub passwords: Arc<PasswordAuthentication>,
    /// The first factor of OTP logins.
    pub otp: Arc<OtpService>,
    /// Every configured directory, for manager lookups.
    pub directories: IdentityMapper,
    pub rules: ApprovalRules,
    pub approvals: Arc<dyn ApprovalStore>,
    pub outbox: Arc<dyn OutboxStore>,
    pub signal: Arc<dyn DecisionSignal>,
    /// Runs work that must finish even if the login's caller goes away.
    pub detach: Arc<dyn Detach>,
    /// Tells the outbox worker that a message is waiting, so it goes out now rather than at
    /// the worker's next look.
    pub wake_outbox: Arc<dyn Fn() + Send + Sync>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl LoginService {
    /// A password login by `app`. LDAP simple binds are audited as binds, others as logins.
    pub async fn login_password(
        &self,
        app: &Application,
        authentication_id: &str,
        password: &Secret,
        caller: &Caller,
    ) -> Result<LoginOutcome, AuthError> {
        let action = match caller.front {
            crate::attempt::Front::Ldap => AuditAction::Bind,
            _ => AuditAction::Login,
        };
        let mut attempt = Attempt::new(action, caller, authentication_id);
        attempt.login_facts().application = Some(app.name.clone());
        let admission = self.passwords.admit(&attempt, caller, authentication_id);
        let result = match &admission {
            Ok(_) => {
                self.password_steps(app, authentication_id, password, caller, &mut attempt)
                    .await
            }
            Err(e) => Err(e.clone()),
        };
        match (admission, &result) {
            // The password was right but the user is not in yet: a client waiting for its
            // approval is not "recently signed in" (that would exempt it from the per-user
            // failure ceiling).
            (Ok(admission), Ok(LoginOutcome::Pending { .. })) => {
                self.passwords.limits.settle_without_trust(admission);
                self.passwords.audit.record(attempt, &result).await;
            }
            (admission, _) => {
                self.passwords
                    .finish(attempt, admission, caller, &result)
                    .await;
            }
        }
        result
    }

    async fn password_steps(
        &self,
        app: &Application,
        authentication_id: &str,
        password: &Secret,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<LoginOutcome, AuthError> {
        let identity = Identity::parse(authentication_id)?;
        let user = self
            .passwords
            .first_factor(&identity, password, attempt)
            .await?;
        if !app.allows(AuthMethod::Password) {
            return Err(AuthError::Denied(Denial::MethodNotAllowed));
        }
        self.second_step(app, AuthMethod::Password, user, caller, attempt)
            .await
    }

    /// The password step of a sign-in that goes on with a delivered OTP (an application whose
    /// methods do not include the password alone): the first factor only, audited as a login
    /// of `app` under the password limits. Nothing is granted yet, so the client is not
    /// "recently signed in" on success.
    pub async fn password_step(
        &self,
        app: &Application,
        authentication_id: &str,
        password: &Secret,
        caller: &Caller,
    ) -> Result<User, AuthError> {
        let mut attempt = Attempt::new(AuditAction::Login, caller, authentication_id);
        attempt.login_facts().application = Some(app.name.clone());
        let admission = self.passwords.admit(&attempt, caller, authentication_id);
        let result = match &admission {
            Ok(_) => match Identity::parse(authentication_id) {
                Ok(identity) => {
                    self.passwords
                        .first_factor(&identity, password, &mut attempt)
                        .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e.clone()),
        };
        match (admission, &result) {
            (Ok(admission), Ok(_)) => {
                attempt.note("password right; a delivered OTP comes next");
                self.passwords.limits.settle_without_trust(admission);
                self.passwords.audit.record(attempt, &result).await;
            }
            (admission, _) => {
                self.passwords
                    .finish(attempt, admission, caller, &result)
                    .await;
            }
        }
        result
    }

    /// An OTP login by `app`: the OTP check (audited as a verify, under its limits), then the
    /// approval step (audited as a login).
    pub async fn login_otp(
        &self,
        app: &Application,
        request: VerifyRequest,
        caller: &Caller,
    ) -> Result<LoginOutcome, AuthError> {
        let authentication_id = request.authentication_id.clone();
        let user = self.otp.verify(request, caller).await?;
        if self.rules.profiles.is_empty() && app.allows(AuthMethod::DeliveredOtp) {
            // Nothing to add to the verify's own audit record.
            return Ok(LoginOutcome::Granted {
                user: Box::new(user),
                admitted: Admitted::Directly,
            });
        }
        let mut attempt = Attempt::new(AuditAction::Login, caller, &authentication_id);
        attempt.resolved(&user);
        attempt.login_facts().application = Some(app.name.clone());
        let result = if app.allows(AuthMethod::DeliveredOtp) {
            self.second_step(app, AuthMethod::DeliveredOtp, user, caller, &mut attempt)
                .await
        } else {
            Err(AuthError::Denied(Denial::MethodNotAllowed))
        };
        self.passwords.audit.record(attempt, &result).await;
        result
    }

    /// After the first factor: policy, profile, then inform or ask.
    async fn second_step(
        &self,
        app: &Application,
        method: AuthMethod,
        user: User,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<LoginOutcome, AuthError> {
        let granted = |user: User, admitted| LoginOutcome::Granted {
            user: Box::new(user),
            admitted,
        };
        if self.rules.profiles.is_empty() {
            return Ok(granted(user, Admitted::Directly));
        }
        if !app.approved_otp {
            attempt.note("Approved OTP does not apply to the application");
            return Ok(granted(user, Admitted::Directly));
        }
        let (policy, profile) = self.rules.choose(&user).map_err(AuthError::Denied)?;
        let facts = attempt.login_facts();
        facts.policy = policy.map(str::to_owned);
        facts.profile = Some(profile.name.clone());
        if !profile.governs(method) {
            // The seed: the methods that "can be used with this profile". Letting another
            // method through would skip the manager entirely.
            attempt.note(format!(
                "profile {} does not allow {}",
                profile.name,
                method.as_str()
            ));
            return Err(AuthError::Denied(Denial::MethodNotAllowed));
        }
        match profile.kind {
            ProfileKind::Information => {
                self.inform(app, profile, &user, caller, attempt).await?;
                Ok(granted(user, Admitted::Informed))
            }
            ProfileKind::Approval => self.ask_approval(app, profile, user, caller, attempt).await,
        }
    }

    fn message_values(
        &self,
        app: &Application,
        user: &User,
        caller: &Caller,
        now: Timestamp,
    ) -> MessageValues {
        MessageValues {
            user: user.username.clone(),
            display_name: user
                .display_name
                .clone()
                .unwrap_or_else(|| user.username.clone()),
            application: app.name.clone(),
            client_ip: caller
                .client
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
            time: now,
            link: String::new(),
            expires: now,
        }
    }

    /// The login's state, for the application that created it; `UnknownLogin` otherwise.
    pub async fn status(&self, application: &str, login: &str) -> Result<LoginStatus, AuthError> {
        let request = self.request_of(application, login).await?;
        self.checked(&request, LoginStatus::of(&request, self.clock.now()))
            .await
    }

    /// An approved login is let in only if the account may still authenticate: a link may be
    /// used long after the password was checked, and the account disabled or locked meanwhile.
    async fn checked(
        &self,
        request: &ApprovalRequest,
        status: LoginStatus,
    ) -> Result<LoginStatus, AuthError> {
        if !matches!(status, LoginStatus::Granted { .. }) {
            return Ok(status);
        }
        let identity = Identity::Dn(crate::model::Dn::new(request.user_dn.clone()));
        match self.directories.find_user(&identity).await? {
            Some(user) if user.key() == request.user => {
                crate::password::usable(&user, self.clock.now())?;
                Ok(status)
            }
            _ => Err(AuthError::InvalidCredentials(
                crate::error::Refusal::UnknownUser,
            )),
        }
    }

    async fn request_of(
        &self,
        application: &str,
        login: &str,
    ) -> Result<ApprovalRequest, AuthError> {
        if !crate::approval::request::is_login_id(login) {
            return Err(AuthError::UnknownLogin);
        }
        match self
            .approvals
            .approval(login)
            .await
            .map_err(store_unavailable)?
        {
            Some(r) if r.application == application => Ok(r),
            _ => Err(AuthError::UnknownLogin),
        }
    }

    /// Waits until the login is decided, expires, or `until`, and returns its state. A
    /// decision wakes the waiter at once.
    pub async fn wait(
        &self,
        application: &str,
        login: &str,
        until: Timestamp,
    ) -> Result<LoginStatus, AuthError> {
        let mut subscription = self.signal.subscribe(login);
        loop {
            let request = self.request_of(application, login).await?;
            let now = self.clock.now();
            let status = LoginStatus::of(&request, now);
            if !status.is_pending() || now >= until {
                return self.checked(&request, status).await;
            }
            subscription.wait(until.min(request.expires_at)).await;
        }
    }

    /// Marks the requests whose links expired undecided, wakes their waiters and audits each.
    /// Returns how many.
    pub async fn expire_due(&self) -> Result<usize, AuthError> {
        let expired = self
            .approvals
            .expire_approvals(self.clock.now())
            .await
            .map_err(store_unavailable)?;
        for request in &expired {
            self.signal.notify(&request.id);
            let mut attempt = decide::request_attempt(AuditAction::Expiry, request, None);
            attempt.note(format!(
                "link expired at {}",
                request.expires_at.to_rfc3339()
            ));
            self.passwords
                .audit
                .record(attempt, &Ok::<(), AuthError>(()))
                .await;
        }
        Ok(expired.len())
    }
}

pub(crate) fn store_unavailable(e: StoreError) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

/// The decision outcome for callers that only need to wake waiters.
pub(crate) fn decided_request(outcome: &DecideOutcome) -> Option<&ApprovalRequest> {
    match outcome {
        DecideOutcome::Decided(r) | DecideOutcome::AlreadyFinal(r) => Some(r),
        DecideOutcome::NotFound => None,
    }
}
