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

mod decide;
#[cfg(test)]
mod tests;

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

/// Who is asked or told: an address of the profile's delivery kind and who it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub address: String,
    /// The manager's name or DN, or "default recipient".
    pub who: String,
    pub source: ApproverSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproverSource {
    /// The LDAP `manager` entry or the local user's sponsor.
    Manager,
    DefaultRecipient,
}

/// The approver and the notes on how it was found (for the audit and `policy test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverLookup {
    pub approver: Option<Approver>,
    pub notes: Vec<String>,
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

    /// Who the profile asks or tells about `user`: the manager's address of the profile's
    /// kind, unless it is the user's own; else the default recipient (unless that is the
    /// user's own); else nobody.
    pub async fn approver(
        &self,
        profile: &ApprovalProfile,
        user: &User,
    ) -> Result<ApproverLookup, AuthError> {
        let mut notes = Vec::new();
        let manager = match self.directories.directory_of(user) {
            Ok(dir) => dir.find_manager(user).await,
            Err(e) => Err(crate::ports::DirectoryError::Unavailable {
                directory: user.directory.clone(),
                reason: e.to_string(),
            }),
        };
        let manager = match manager {
            Ok(m) => m,
            // An approval must not fall back to someone else because a lookup failed.
            Err(e) if profile.kind == ProfileKind::Approval => {
                return Err(AuthError::Unavailable(e.to_string()));
            }
            Err(e) => {
                notes.push(format!("manager lookup failed: {e}"));
                None
            }
        };
        let delivery = profile.delivery;
        match &manager {
            None => notes.push("no manager found".to_owned()),
            Some(m) => match delivery.address_of(m) {
                None => notes.push(format!(
                    "manager {} has no {} address",
                    describe_manager(m),
                    delivery.as_str()
                )),
                Some(address) if delivery.belongs_to(&address, user) => {
                    notes.push("the manager's address is the user's own".to_owned());
                }
                Some(address) => {
                    return Ok(ApproverLookup {
                        approver: Some(Approver {
                            address,
                            who: describe_manager(m),
                            source: ApproverSource::Manager,
                        }),
                        notes,
                    });
                }
            },
        }
        let approver = match &profile.default_recipient {
            Some(address) if delivery.belongs_to(address, user) => {
                notes.push("the default recipient is the user's own address".to_owned());
                None
            }
            Some(address) => Some(Approver {
                address: address.clone(),
                who: "default recipient".to_owned(),
                source: ApproverSource::DefaultRecipient,
            }),
            None => {
                notes.push("no default recipient".to_owned());
                None
            }
        };
        Ok(ApproverLookup { approver, notes })
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

    /// Manager Information: queue the message in the outbox; the login does not wait for it.
    async fn inform(
        &self,
        app: &Application,
        profile: &ApprovalProfile,
        user: &User,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<(), AuthError> {
        let lookup = self.approver(profile, user).await?;
        for note in &lookup.notes {
            attempt.note(note.clone());
        }
        let Some(approver) = lookup.approver else {
            attempt.note("nobody could be informed");
            return Ok(());
        };
        let now = self.clock.now();
        if !profile.inform_interval.is_zero()
            && let Some(last) = self
                .outbox
                .latest_message_about(user.dn.as_str(), &app.name)
                .await
                .map_err(store_unavailable)?
            && now < last.created_at.plus(profile.inform_interval)
        {
            attempt.recipient(&last.recipient);
            attempt.note(format!(
                "{} was informed at {} (message {}); not repeated within the inform interval",
                approver.who,
                last.created_at.to_rfc3339(),
                last.id
            ));
            return Ok(());
        }
        let values = self.message_values(app, user, caller, now);
        let message = OutboxMessage {
            id: random_hex(self.random.as_ref(), 16),
            profile: profile.name.clone(),
            recipient: approver.address.clone(),
            subject: profile.email_subject.clone(),
            body: profile.message.render(&values),
            about_user: user.dn.to_string(),
            application: app.name.clone(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            state: OutboxState::Queued,
            last_error: None,
            sent_at: None,
        };
        self.outbox
            .enqueue_message(&message)
            .await
            .map_err(store_unavailable)?;
        (self.wake_outbox)();
        attempt.recipient(&approver.address);
        attempt.note(format!(
            "{} informed through the outbox (message {})",
            approver.who, message.id
        ));
        Ok(())
    }

    /// Approved Authentication: grace, join, or a new request with its link sent now.
    async fn ask_approval(
        &self,
        app: &Application,
        profile: &ApprovalProfile,
        user: User,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<LoginOutcome, AuthError> {
        let now = self.clock.now();
        if let Some(outcome) = self.grace_or_join(app, &user, caller, now, attempt).await? {
            return Ok(outcome);
        }
        let lookup = self.approver(profile, &user).await?;
        for note in &lookup.notes {
            attempt.note(note.clone());
        }
        let Some(approver) = lookup.approver else {
            return Err(AuthError::Denied(Denial::ApproverUnreachable));
        };
        let (token, token_hash) = new_link_token(self.random.as_ref());
        let request = ApprovalRequest {
            id: new_login_id(self.random.as_ref()),
            token_hash,
            user: user.key(),
            user_dn: user.dn.to_string(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            application: app.name.clone(),
            profile: profile.name.clone(),
            front: caller.front.as_str().to_owned(),
            client: caller.client.clone(),
            recipient: approver.address.clone(),
            approver: approver.who.clone(),
            created_at: now,
            expires_at: now.plus(profile.link_expiration),
            state: ApprovalState::Pending,
            decided_at: None,
            decided_by: None,
            sent_at: None,
        };
        attempt.recipient(&approver.address);
        let mut values = self.message_values(app, &user, caller, now);
        values.link = profile.link(&token);
        values.expires = request.expires_at;
        let message = OutboundMessage {
            to: approver.address.clone(),
            subject: profile.email_subject.clone(),
            // The link approves the login: as secret as a code.
            body: Secret::new(profile.message.render(&values)),
        };
        let mut tries = 0;
        loop {
            match self.create_and_send(&request, &message, profile).await {
                Created::Sent => break,
                // Another login of the same user and application created one meanwhile: join
                // it. Or the one pending in the store is past its expiry and the expiry job
                // has not marked it yet: mark it now and create ours.
                Created::Conflict if tries == 0 => {
                    tries += 1;
                    if let Some(outcome) =
                        self.grace_or_join(app, &user, caller, now, attempt).await?
                    {
                        return Ok(outcome);
                    }
                    self.expire_due().await?;
                }
                Created::Conflict => {
                    return Err(AuthError::Unavailable(
                        "a concurrent approval request could not be joined".to_owned(),
                    ));
                }
                Created::StoreFailed(e) => return Err(store_unavailable(e)),
                Created::NotSent(e) => {
                    attempt.login_facts().login = Some(request.id.clone());
                    attempt.note(format!(
                        "approval message to {} failed: {e}; request cancelled",
                        approver.address
                    ));
                    return Err(AuthError::Denied(Denial::ApprovalNotSent));
                }
            }
        }
        attempt.login_facts().login = Some(request.id.clone());
        attempt.note(format!(
            "approval requested from {} through {}, link valid until {}",
            approver.who,
            profile.courier_name,
            request.expires_at.to_rfc3339()
        ));
        Ok(LoginOutcome::Pending {
            login: request.id,
            expires_at: request.expires_at,
        })
    }

    /// Records the request and sends its message, as one piece of work that runs to the end
    /// even if the login's caller goes away meanwhile (an LDAP client that unbinds): a request
    /// must never be left pending with no message sent, since every retry would join it. A
    /// message that cannot be sent cancels the request.
    async fn create_and_send(
        &self,
        request: &ApprovalRequest,
        message: &OutboundMessage,
        profile: &ApprovalProfile,
    ) -> Created {
        let work = CreateAndSend {
            request: request.clone(),
            message: message.clone(),
            courier: profile.courier.clone(),
            approvals: self.approvals.clone(),
            signal: self.signal.clone(),
            clock: self.clock.clone(),
        };
        let slot: Arc<std::sync::Mutex<Option<Created>>> = Arc::default();
        let out = slot.clone();
        self.detach
            .detach(Box::pin(async move {
                let created = work.run().await;
                if let Ok(mut out) = out.lock() {
                    *out = Some(created);
                }
            }))
            .await;
        let created = slot.lock().ok().and_then(|mut s| s.take());
        created.unwrap_or_else(|| {
            Created::StoreFailed(StoreError::Unavailable(
                "the approval request task failed".to_owned(),
            ))
        })
    }

    /// Within the grace period after an approval: granted. A request pending: joined.
    async fn grace_or_join(
        &self,
        app: &Application,
        user: &User,
        caller: &Caller,
        now: Timestamp,
        attempt: &mut Attempt,
    ) -> Result<Option<LoginOutcome>, AuthError> {
        let Some(latest) = self
            .approvals
            .latest_approval(&user.key(), &app.name)
            .await
            .map_err(store_unavailable)?
        else {
            return Ok(None);
        };
        match latest.state_at(now) {
            // Only the client that waited for the approval: an approval is not a pass for
            // whoever else has the password.
            ApprovalState::Approved
                if latest
                    .decided_at
                    .is_some_and(|at| now < at.plus(self.rules.grace_period))
                    && same_client(latest.client.as_deref(), caller.client.as_deref()) =>
            {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note("admitted within the grace period after an approval");
                Ok(Some(LoginOutcome::Granted {
                    user: Box::new(user.clone()),
                    admitted: Admitted::WithinGrace,
                }))
            }
            ApprovalState::Pending
                if latest.sent_at.is_none() && now >= latest.created_at.plus(UNSENT_AFTER) =>
            {
                // Created, and its message never went out (the server stopped in between):
                // nobody was asked, so nobody will decide. Cancel it and ask anew.
                let cancel = Decision {
                    state: ApprovalState::Cancelled,
                    at: now,
                    by: DecidedBy {
                        channel: "server".to_owned(),
                        operator: Some("approval message never sent".to_owned()),
                        ..DecidedBy::default()
                    },
                };
                self.approvals
                    .decide_approval(&latest.id, &cancel)
                    .await
                    .map_err(store_unavailable)?;
                self.signal.notify(&latest.id);
                attempt.note(format!(
                    "cancelled approval request {} whose message was never sent",
                    latest.id
                ));
                Ok(None)
            }
            // Joining is for the client that is waiting: an approval the manager gives for the
            // sign-in shown on the page must not let in another one from elsewhere.
            ApprovalState::Pending
                if !same_client(latest.client.as_deref(), caller.client.as_deref()) =>
            {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note(format!(
                    "a sign-in from {} is already waiting for approval",
                    latest.client.as_deref().unwrap_or("an unknown address")
                ));
                Err(AuthError::Denied(Denial::PendingElsewhere))
            }
            ApprovalState::Rejected
                if latest
                    .decided_at
                    .is_some_and(|at| now < at.plus(self.rules.rejection_cooldown)) =>
            {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note(format!(
                    "rejected at {}; the approver is not asked again within the cooldown",
                    latest
                        .decided_at
                        .map(Timestamp::to_rfc3339)
                        .unwrap_or_default()
                ));
                Err(AuthError::Denied(Denial::Rejected))
            }
            ApprovalState::Pending => {
                attempt.login_facts().login = Some(latest.id.clone());
                attempt.note("joined the pending approval request");
                Ok(Some(LoginOutcome::Pending {
                    login: latest.id,
                    expires_at: latest.expires_at,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The login's state, for the application that created it; `UnknownLogin` otherwise.
    pub async fn status(&self, application: &str, login: &str) -> Result<LoginStatus, AuthError> {
        let request = self.request_of(application, login).await?;
        Ok(LoginStatus::of(&request, self.clock.now()))
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
                return Ok(status);
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

/// A pending request whose message has not gone out this long after it was created is taken
/// as never sent: longer than any courier takes to give up (SMTP and SMS timeouts are seconds).
pub const UNSENT_AFTER: Duration = Duration::from_secs(120);

/// What [`LoginService::create_and_send`] came to.
enum Created {
    Sent,
    /// A pending request of the same user and application exists.
    Conflict,
    StoreFailed(StoreError),
    /// The message could not be sent; the request is cancelled.
    NotSent(String),
}

/// The owned inputs of [`LoginService::create_and_send`]'s detached work.
struct CreateAndSend {
    request: ApprovalRequest,
    message: OutboundMessage,
    courier: Arc<dyn crate::ports::Courier>,
    approvals: Arc<dyn ApprovalStore>,
    signal: Arc<dyn DecisionSignal>,
    clock: Arc<dyn Clock>,
}

impl CreateAndSend {
    async fn run(self) -> Created {
        match self.approvals.insert_approval(&self.request).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Created::Conflict,
            Err(e) => return Created::StoreFailed(e),
        }
        let Err(e) = self.courier.send(&self.message).await else {
            if let Err(e) = self
                .approvals
                .mark_approval_sent(&self.request.id, self.clock.now())
                .await
            {
                // Joins wait out the unsent grace below; the message did go out.
                tracing::warn!(error = %e, "could not record that an approval message was sent");
            }
            return Created::Sent;
        };
        let cancel = Decision {
            state: ApprovalState::Cancelled,
            at: self.clock.now(),
            by: DecidedBy {
                channel: "server".to_owned(),
                operator: Some("approval message not delivered".to_owned()),
                ..DecidedBy::default()
            },
        };
        if let Err(e) = self
            .approvals
            .decide_approval(&self.request.id, &cancel)
            .await
        {
            tracing::warn!(error = %e, "could not cancel an approval request whose message failed");
        }
        self.signal.notify(&self.request.id);
        Created::NotSent(e.to_string())
    }
}

/// Whether two client addresses are the same client, as the rate limits count clients (an
/// IPv6 address by its /64).
fn same_client(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => crate::attempt::client_key(a) == crate::attempt::client_key(b),
        (None, None) => true,
        _ => false,
    }
}

fn describe_manager(m: &crate::model::Manager) -> String {
    match (&m.name, &m.dn) {
        (Some(name), Some(dn)) => format!("{name} ({dn})"),
        (Some(name), None) => name.clone(),
        (None, Some(dn)) => dn.to_string(),
        (None, None) => "manager".to_owned(),
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
