//! The delivered-OTP use cases: Deliver OTP (Ping spec §7.1), Get Supported OTP Delivery
//! Mechanisms (§7.2) and the OTP check behind the UNBOUNDID-DELIVERED-OTP bind and the HTTP
//! verify call (§8). Every attempt is audited with its real reason; callers only ever see the
//! uniform [`OtpError::InvalidCredentials`] for credential problems.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditAction, AuditOutcome, AuditRecord};
use crate::crypto::{OtpHasher, random_hex};
use crate::error::{OtpError, Refusal, Undelivered};
use crate::generator::PasswordGenerator;
use crate::identity::Identity;
use crate::mechanism::{DeliveryMechanism, MechanismChoice, MessageTexts, plan};
use crate::model::{Dn, Timestamp, User, UserKey};
use crate::ports::{
    Clock, Directory, DirectoryError, IssuedOtp, Lookup, OutboundMessage, Random, Store, StoreError,
};
use crate::ratelimit::RateLimiter;
use crate::secret::Secret;

/// Validity and attempt limits for issued OTPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpSettings {
    /// How long an OTP may be used after it was issued (Ping's `otp-validity-duration`).
    pub validity: Duration,
    /// Wrong tries after which the outstanding OTP is voided.
    pub max_failed_attempts: u32,
}

impl Default for OtpSettings {
    fn default() -> Self {
        Self {
            validity: Duration::from_secs(300),
            max_failed_attempts: 5,
        }
    }
}

/// Optional limits; `None` means unlimited.
#[derive(Debug, Default)]
pub struct RateLimits {
    pub deliver_per_user: Option<RateLimiter>,
    pub deliver_per_client: Option<RateLimiter>,
    pub verify_per_user: Option<RateLimiter>,
    pub verify_per_client: Option<RateLimiter>,
}

/// Who is asking, as the front saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// `http`, `ldap`, ...
    pub front: String,
    /// Client address, for the audit log and per-client rate limits.
    pub client: Option<String>,
    /// The user this connection is already authenticated as (LDAP bind), which allows the
    /// step-up form of Deliver OTP without a static password (spec §7.1 step 3).
    pub bound_as: Option<UserKey>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliverRequest {
    pub authentication_id: String,
    pub static_password: Option<Secret>,
    /// `None`: no list in the request (preferred mechanisms, then defaults).
    pub mechanisms: Option<Vec<MechanismChoice>>,
    pub texts: MessageTexts,
}

/// A successful delivery (spec §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub mechanism: String,
    pub user_dn: Dn,
    pub recipient: String,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub authentication_id: String,
    /// `dn:...` / `u:...`; only the user's own identity is accepted for now.
    pub authorization_id: Option<String>,
    pub otp: Secret,
}

/// How recipient addresses are shown in a supported-mechanisms answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientView {
    /// As stored: for callers entitled to see the user's addresses.
    Full,
    /// [`crate::mechanism::Channel::mask`]ed; a masked ID still selects its address in Deliver.
    Masked,
}

/// One item of the Get Supported OTP Delivery Mechanisms answer (spec §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MechanismSupport {
    pub mechanism: String,
    pub supported: bool,
    pub recipient: Option<String>,
}

/// Everything the OTP use cases need, wired once at start.
pub struct OtpService {
    /// The identity mapper's directories, in fallback order.
    pub directories: Vec<Arc<dyn Directory>>,
    pub mechanisms: Vec<DeliveryMechanism>,
    pub default_mechanisms: Vec<String>,
    pub generator: PasswordGenerator,
    pub settings: OtpSettings,
    pub limits: RateLimits,
    pub hasher: OtpHasher,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

/// Audit fields gathered while a use case runs.
struct Attempt<'a> {
    action: AuditAction,
    caller: &'a Caller,
    identity: &'a str,
    user_dn: Option<String>,
    mechanism: Option<String>,
    recipient: Option<String>,
    /// Mechanisms that failed before the one that delivered.
    earlier_failures: Vec<String>,
}

const MAX_AUDITED_IDENTITY: usize = 256;

impl OtpService {
    /// Deliver OTP, spec §7.1.
    pub async fn deliver(
        &self,
        req: DeliverRequest,
        caller: &Caller,
    ) -> Result<Delivered, OtpError> {
        let mut attempt = Attempt::new(AuditAction::Deliver, caller, &req.authentication_id);
        let result = self.deliver_inner(&req, caller, &mut attempt).await;
        self.audit(&attempt, &result).await;
        result.map_err(|(e, _)| e)
    }

    async fn deliver_inner(
        &self,
        req: &DeliverRequest,
        caller: &Caller,
        attempt: &mut Attempt<'_>,
    ) -> Result<Delivered, (OtpError, String)> {
        let now = self.clock.now();
        let limits = (
            &self.limits.deliver_per_client,
            &self.limits.deliver_per_user,
        );
        check_limits(limits, caller, &req.authentication_id, now)?;
        check_deliver_request(req).map_err(with_reason)?;
        let identity = Identity::parse(&req.authentication_id).map_err(with_reason)?;
        let found = match self.find_user(&identity).await {
            Ok(found) => found,
            Err(OtpError::InvalidCredentials(refusal)) => {
                self.check_password_of_nobody(req.static_password.as_ref())
                    .await;
                return Err(refuse(refusal));
            }
            Err(e) => return Err(with_reason(e)),
        };

        // Step 3: the static password, checked even for unknown users so both take as long.
        let Some(user) = found else {
            self.check_password_of_nobody(req.static_password.as_ref())
                .await;
            return Err(refuse(Refusal::UnknownUser));
        };
        attempt.user_dn = Some(user.dn.to_string());
        // The identity can be spelt many ways (`u:` by name or mail, `dn:` with other spacing):
        // the per-user limit also counts the user it resolved to.
        check_user_limit(limits.1, &user, now)?;
        match &req.static_password {
            Some(pw) => {
                if let Some(refusal) = self
                    .directory_of(&user)?
                    .password_refusal(&user, pw)
                    .await
                    .map_err(unavailable)?
                {
                    return Err(refuse(refusal));
                }
            }
            None if caller.bound_as.as_ref() == Some(&user.key()) => {}
            None => return Err(refuse(Refusal::NoPassword)),
        }
        // Step 4: the account must be usable.
        if let Some(refusal) = account_refusal(&user, now) {
            return Err(refuse(refusal));
        }

        // Steps 5 and 6: generate, store the keyed hash with its timestamp (replacing any
        // outstanding OTP) before sending, so a code that arrives always verifies.
        let otp = self.generator.generate(self.random.as_ref());
        let issued = IssuedOtp {
            id: random_hex(self.random.as_ref(), 16),
            user: user.key(),
            hash: self.hasher.hash(&user.key(), otp.expose()),
            issued_at: now,
            failed_attempts: 0,
        };
        self.store
            .put_otp(&issued)
            .await
            .map_err(store_unavailable)?;

        // Step 7: try mechanisms in order until one delivers.
        let choices = plan(
            req.mechanisms.as_deref(),
            &user.preferred_mechanisms,
            &self.default_mechanisms,
        );
        let mut tried: Vec<(String, Undelivered)> = Vec::new();
        let mut detail: Vec<String> = Vec::new();
        for choice in &choices {
            match self.try_mechanism(choice, &user, &otp, &req.texts).await {
                Ok((mechanism, recipient)) => {
                    attempt.earlier_failures = detail;
                    attempt.mechanism = Some(mechanism.clone());
                    attempt.recipient = Some(recipient.clone());
                    return Ok(Delivered {
                        mechanism,
                        user_dn: user.dn.clone(),
                        recipient,
                    });
                }
                Err((public, private)) => {
                    detail.push(format!("{}: {private}", choice.name));
                    tried.push((choice.name.clone(), public));
                }
            }
        }
        // Nothing delivered: the stored OTP must not outlive the failed request.
        if let Err(e) = self.store.delete_otp(&user.key(), &issued.id).await {
            tracing::warn!(error = %e, "could not remove an undelivered OTP");
        }
        let reason = if detail.is_empty() {
            "no delivery mechanism to try".to_owned()
        } else {
            format!("not delivered: {}", detail.join("; "))
        };
        Err((OtpError::NotDelivered { tried }, reason))
    }

    /// One mechanism: `Ok((name, recipient))`, or a reason for the client (names no address)
    /// and one for the audit log.
    async fn try_mechanism(
        &self,
        choice: &MechanismChoice,
        user: &User,
        otp: &Secret,
        texts: &MessageTexts,
    ) -> Result<(String, String), (Undelivered, String)> {
        let plain = |why: Undelivered| (why, why.as_str().to_owned());
        let Some(mechanism) = self
            .mechanisms
            .iter()
            .find(|m| m.enabled && m.name.eq_ignore_ascii_case(&choice.name))
        else {
            return Err(plain(Undelivered::NoSuchMechanism));
        };
        let addresses = mechanism.channel.addresses(user);
        let recipient = match &choice.recipient {
            Some(wanted) => addresses
                .iter()
                .find(|a| mechanism.channel.same_address(a, wanted))
                .ok_or_else(|| {
                    let why = Undelivered::RecipientNotOwned;
                    (why, format!("{} ({wanted})", why.as_str()))
                })?,
            None => addresses
                .first()
                .ok_or_else(|| plain(Undelivered::NoAddress))?,
        };
        let (subject, before, after) = mechanism.compose(texts);
        let message = OutboundMessage {
            to: recipient.clone(),
            subject,
            body: Secret::new(format!("{before}{}{after}", otp.expose())),
        };
        match mechanism.courier.send(&message).await {
            Ok(()) => Ok((mechanism.name.clone(), recipient.clone())),
            Err(e) => Err((
                Undelivered::TransportFailed,
                format!("delivery to {recipient} failed: {e}"),
            )),
        }
    }

    /// Checks an OTP (spec §8): validity, constant-time comparison, wrong tries counted and the
    /// OTP voided after too many, single use consumed atomically. Returns the user.
    pub async fn authenticate(
        &self,
        req: VerifyRequest,
        caller: &Caller,
    ) -> Result<User, OtpError> {
        let mut attempt = Attempt::new(AuditAction::Verify, caller, &req.authentication_id);
        let result = self.authenticate_inner(&req, caller, &mut attempt).await;
        self.audit(&attempt, &result).await;
        result.map_err(|(e, _)| e)
    }

    async fn authenticate_inner(
        &self,
        req: &VerifyRequest,
        caller: &Caller,
        attempt: &mut Attempt<'_>,
    ) -> Result<User, (OtpError, String)> {
        let now = self.clock.now();
        let limits = (&self.limits.verify_per_client, &self.limits.verify_per_user);
        check_limits(limits, caller, &req.authentication_id, now)?;
        if req.otp.expose().len() > MAX_OTP_LEN {
            // Longer than any generator makes: wrong, without a store round trip.
            return Err(refuse(Refusal::WrongOtp));
        }
        let identity = Identity::parse(&req.authentication_id).map_err(with_reason)?;
        let user = self.find_user(&identity).await.map_err(with_reason)?;
        let Some(user) = user else {
            return Err(refuse(Refusal::UnknownUser));
        };
        attempt.user_dn = Some(user.dn.to_string());
        check_user_limit(limits.1, &user, now)?;
        if let Some(refusal) = account_refusal(&user, now) {
            return Err(refuse(refusal));
        }
        let key = user.key();
        let Some(stored) = self.store.get_otp(&key).await.map_err(store_unavailable)? else {
            return Err(refuse(Refusal::NoOtp));
        };
        if now > stored.issued_at.plus(self.settings.validity) {
            if let Err(e) = self.store.delete_otp(&key, &stored.id).await {
                tracing::warn!(error = %e, "could not remove an expired OTP");
            }
            return Err(refuse(Refusal::OtpExpired));
        }
        let max = self.settings.max_failed_attempts;
        if !self.hasher.verify(&key, req.otp.expose(), &stored.hash) {
            let failures = self
                .store
                .fail_otp(&key, &stored.id, max)
                .await
                .map_err(store_unavailable)?;
            return Err(refuse(if failures >= max {
                Refusal::OtpVoided
            } else {
                Refusal::WrongOtp
            }));
        }
        // The OTP is right; only its holder learns whether the authorization identity is
        // refused, and the OTP stays usable for a correct retry.
        if let Some(authz) = &req.authorization_id
            && !self.may_assume(&user, authz).await.map_err(with_reason)?
        {
            let e = OtpError::AuthorizationDenied(authz.chars().take(80).collect());
            return Err((e, format!("authorization identity {authz:?} refused")));
        }
        if !self
            .store
            .consume_otp(&key, &stored.id, max)
            .await
            .map_err(store_unavailable)?
        {
            return Err(refuse(Refusal::OtpAlreadyUsed));
        }
        Ok(user)
    }

    /// A static-password check on its own (LDAP simple bind): the same lookup, uniform refusals,
    /// timing and account checks as Deliver OTP steps 2 to 4, under the verify rate limits.
    pub async fn authenticate_password(
        &self,
        authentication_id: &str,
        password: &Secret,
        caller: &Caller,
    ) -> Result<User, OtpError> {
        let mut attempt = Attempt::new(AuditAction::Bind, caller, authentication_id);
        let result = self
            .authenticate_password_inner(authentication_id, password, caller, &mut attempt)
            .await;
        self.audit(&attempt, &result).await;
        result.map_err(|(e, _)| e)
    }

    async fn authenticate_password_inner(
        &self,
        authentication_id: &str,
        password: &Secret,
        caller: &Caller,
        attempt: &mut Attempt<'_>,
    ) -> Result<User, (OtpError, String)> {
        let now = self.clock.now();
        let limits = (&self.limits.verify_per_client, &self.limits.verify_per_user);
        check_limits(limits, caller, authentication_id, now)?;
        if authentication_id.len() > MAX_IDENTITY_LEN {
            self.check_password_of_nobody(Some(password)).await;
            return Err(refuse(Refusal::UnknownUser));
        }
        let identity = Identity::parse(authentication_id).map_err(with_reason)?;
        let user = match self.find_user(&identity).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                self.check_password_of_nobody(Some(password)).await;
                return Err(refuse(Refusal::UnknownUser));
            }
            Err(OtpError::InvalidCredentials(refusal)) => {
                self.check_password_of_nobody(Some(password)).await;
                return Err(refuse(refusal));
            }
            Err(e) => return Err(with_reason(e)),
        };
        attempt.user_dn = Some(user.dn.to_string());
        check_user_limit(limits.1, &user, now)?;
        let dir = self.directory_of(&user)?;
        if let Some(refusal) = dir
            .password_refusal(&user, password)
            .await
            .map_err(unavailable)?
        {
            return Err(refuse(refusal));
        }
        if let Some(refusal) = account_refusal(&user, now) {
            return Err(refuse(refusal));
        }
        Ok(user)
    }

    /// Get Supported OTP Delivery Mechanisms, spec §7.2: every enabled mechanism, whether it can
    /// reach the user, one item per recipient address.
    pub async fn supported_mechanisms(
        &self,
        user_dn: &str,
        caller: &Caller,
        view: RecipientView,
    ) -> Result<Vec<MechanismSupport>, OtpError> {
        // Lookups share the per-client budget of deliveries: both reveal addresses.
        if let (Some(limiter), Some(client)) = (&self.limits.deliver_per_client, &caller.client) {
            limiter
                .check(&client_key(client), self.clock.now())
                .map_err(|retry_after| OtpError::RateLimited { retry_after })?;
        }
        let user = match self
            .find_user(&Identity::Dn(Dn::new(user_dn.trim())))
            .await?
        {
            Some(user) => user,
            // Callers who may not see addresses may not learn who exists either: an unknown DN
            // looks like a user no mechanism can reach.
            None if view == RecipientView::Masked => {
                return Ok(self
                    .mechanisms
                    .iter()
                    .filter(|m| m.enabled)
                    .map(|m| MechanismSupport {
                        mechanism: m.name.clone(),
                        supported: false,
                        recipient: None,
                    })
                    .collect());
            }
            None => return Err(OtpError::NoSuchUser),
        };
        let mut out = Vec::new();
        for m in self.mechanisms.iter().filter(|m| m.enabled) {
            let addresses = m.channel.addresses(&user);
            if addresses.is_empty() {
                out.push(MechanismSupport {
                    mechanism: m.name.clone(),
                    supported: false,
                    recipient: None,
                });
            }
            for a in addresses {
                out.push(MechanismSupport {
                    mechanism: m.name.clone(),
                    supported: true,
                    recipient: Some(match view {
                        RecipientView::Full => a.clone(),
                        RecipientView::Masked => m.channel.mask(a),
                    }),
                });
            }
        }
        Ok(out)
    }

    /// The manager of the user an identity names, from the user's own directory (for approval
    /// profiles; `None` when there is no usable manager).
    pub async fn manager_of(
        &self,
        authentication_id: &str,
    ) -> Result<Option<crate::Manager>, OtpError> {
        let identity = Identity::parse(authentication_id)?;
        let user = self
            .find_user(&identity)
            .await?
            .ok_or(OtpError::NoSuchUser)?;
        let dir = self.directory_of(&user).map_err(|(e, _)| e)?;
        dir.find_manager(&user).await.map_err(unavailable)
    }

    /// Enabled mechanism names, for the root DSE's `ds-supported-otp-delivery-mechanism`.
    pub fn mechanism_names(&self) -> Vec<String> {
        self.mechanisms
            .iter()
            .filter(|m| m.enabled)
            .map(|m| m.name.clone())
            .collect()
    }

    /// The identity mapper over the fallback directories: the first directory that has the user
    /// decides; an unreachable directory stops the chain (no silent fall-through).
    async fn find_user(&self, identity: &Identity) -> Result<Option<User>, OtpError> {
        for dir in &self.directories {
            let found = match dir.find_user(identity).await {
                Ok(found) => found,
                Err(e) if dir.stops_chain_when_unavailable() => return Err(unavailable(e)),
                Err(e) => {
                    tracing::warn!(directory = dir.name(), error = %e, "directory unavailable; trying the next");
                    continue;
                }
            };
            match found {
                Lookup::Found(user) => return Ok(Some(*user)),
                Lookup::Ambiguous => {
                    return Err(OtpError::InvalidCredentials(Refusal::AmbiguousUser));
                }
                Lookup::NotFound => {}
            }
        }
        Ok(None)
    }

    async fn check_password_of_nobody(&self, password: Option<&Secret>) {
        if let (Some(pw), Some(dir)) = (password, self.directories.first()) {
            dir.check_password_of_nobody(pw).await;
        }
    }

    fn directory_of(&self, user: &User) -> Result<&Arc<dyn Directory>, (OtpError, String)> {
        self.directories
            .iter()
            .find(|d| d.name() == user.directory)
            .ok_or_else(|| {
                let e = OtpError::Unavailable(format!(
                    "directory {} is not configured",
                    user.directory
                ));
                let reason = e.to_string();
                (e, reason)
            })
    }

    async fn may_assume(&self, user: &User, authz: &str) -> Result<bool, OtpError> {
        let identity = match Identity::parse(authz) {
            Ok(identity) => identity,
            // `dn:` alone is the anonymous identity: not the user's own.
            Err(_) if authz.trim().eq_ignore_ascii_case("dn:") => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(match identity {
            Identity::Dn(dn) => dn.normalized() == user.dn.normalized(),
            Identity::Username(_) => match self.find_user(&identity).await? {
                Some(other) => other.key() == user.key(),
                None => false,
            },
        })
    }

    async fn audit<T>(&self, attempt: &Attempt<'_>, result: &Result<T, (OtpError, String)>) {
        let (outcome, reason) = match result {
            Ok(_) if attempt.earlier_failures.is_empty() => {
                (AuditOutcome::Success, "ok".to_owned())
            }
            Ok(_) => (
                AuditOutcome::Success,
                format!("ok after failures: {}", attempt.earlier_failures.join("; ")),
            ),
            Err((_, reason)) => (AuditOutcome::Failure, reason.clone()),
        };
        let record = AuditRecord {
            at: self.clock.now(),
            action: attempt.action,
            front: attempt.caller.front.clone(),
            identity: attempt
                .identity
                .chars()
                .take(MAX_AUDITED_IDENTITY)
                .collect(),
            user_dn: attempt.user_dn.clone(),
            client: attempt.caller.client.clone(),
            outcome,
            reason,
            mechanism: attempt.mechanism.clone(),
            recipient: attempt.recipient.clone(),
        };
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, action = attempt.action.as_str(), "audit record lost");
        }
    }
}

impl<'a> Attempt<'a> {
    fn new(action: AuditAction, caller: &'a Caller, identity: &'a str) -> Self {
        Self {
            action,
            caller,
            identity,
            user_dn: None,
            mechanism: None,
            recipient: None,
            earlier_failures: Vec::new(),
        }
    }
}

/// Whether the account may authenticate now; `None` when it may.
pub fn account_refusal(user: &User, now: Timestamp) -> Option<Refusal> {
    let a = &user.account;
    if a.disabled {
        Some(Refusal::AccountDisabled)
    } else if a.locked_until.is_some_and(|until| until > now) {
        Some(Refusal::AccountLocked)
    } else if a.password_expires_at.is_some_and(|at| at <= now) {
        Some(Refusal::PasswordExpired)
    } else if a.must_change_password {
        Some(Refusal::MustChangePassword)
    } else {
        None
    }
}

/// Limits on what one request may carry, so nobody can make a courier send a novel or try a
/// hundred mechanisms, each with its own timeout.
pub const MAX_MECHANISMS: usize = 16;
pub const MAX_TEXT_LEN: usize = 1024;
pub const MAX_IDENTITY_LEN: usize = 1024;
pub const MAX_OTP_LEN: usize = 256;

fn check_deliver_request(req: &DeliverRequest) -> Result<(), OtpError> {
    if req.authentication_id.len() > MAX_IDENTITY_LEN {
        return Err(OtpError::InvalidRequest(format!(
            "the authentication ID is longer than {MAX_IDENTITY_LEN} bytes"
        )));
    }
    if let Some(list) = &req.mechanisms
        && list.len() > MAX_MECHANISMS
    {
        return Err(OtpError::InvalidRequest(format!(
            "at most {MAX_MECHANISMS} delivery mechanisms may be requested"
        )));
    }
    let t = &req.texts;
    for (name, text) in [
        ("message subject", &t.subject),
        ("full text before the OTP", &t.full_before),
        ("full text after the OTP", &t.full_after),
        ("compact text before the OTP", &t.compact_before),
        ("compact text after the OTP", &t.compact_after),
    ] {
        if text
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TEXT_LEN)
        {
            return Err(OtpError::InvalidRequest(format!(
                "the {name} is longer than {MAX_TEXT_LEN} characters"
            )));
        }
    }
    Ok(())
}

/// The rate-limit key of a client address: IPv6 clients by their /64, since one host usually
/// owns a whole /64 and could otherwise rotate through it.
fn client_key(client: &str) -> String {
    match client.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or(client.to_owned(), |v4| v4.to_string()),
        _ => client.to_owned(),
    }
}

type Limiters<'a> = (&'a Option<RateLimiter>, &'a Option<RateLimiter>);

/// Per client, then per identity as sent (so unknown users are limited just like known ones).
fn check_limits(
    (per_client, per_user): Limiters<'_>,
    caller: &Caller,
    identity: &str,
    now: Timestamp,
) -> Result<(), (OtpError, String)> {
    if let (Some(limiter), Some(client)) = (per_client, &caller.client) {
        limiter.check(&client_key(client), now).map_err(limited)?;
    }
    if let Some(limiter) = per_user {
        let key: String = identity
            .trim()
            .to_lowercase()
            .chars()
            .take(MAX_AUDITED_IDENTITY)
            .collect();
        limiter.check(&format!("id:{key}"), now).map_err(limited)?;
    }
    Ok(())
}

/// Per resolved user, whatever spelling of the identity was sent.
fn check_user_limit(
    per_user: &Option<RateLimiter>,
    user: &User,
    now: Timestamp,
) -> Result<(), (OtpError, String)> {
    if let Some(limiter) = per_user {
        let key = user.key();
        limiter
            .check(&format!("user:{}:{}", key.directory, key.dn), now)
            .map_err(limited)?;
    }
    Ok(())
}

fn limited(retry_after: Duration) -> (OtpError, String) {
    (
        OtpError::RateLimited { retry_after },
        "rate limited".to_owned(),
    )
}

fn refuse(refusal: Refusal) -> (OtpError, String) {
    (
        OtpError::InvalidCredentials(refusal),
        refusal.as_str().to_owned(),
    )
}

fn with_reason(e: OtpError) -> (OtpError, String) {
    let reason = match &e {
        OtpError::InvalidCredentials(r) => r.as_str().to_owned(),
        other => other.to_string(),
    };
    (e, reason)
}

fn unavailable(e: DirectoryError) -> OtpError {
    OtpError::Unavailable(e.to_string())
}

fn store_unavailable(e: StoreError) -> (OtpError, String) {
    with_reason(OtpError::Unavailable(e.to_string()))
}

// `?` on a DirectoryError inside functions returning `(OtpError, String)`.
impl From<OtpError> for (OtpError, String) {
    fn from(e: OtpError) -> Self {
        with_reason(e)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicU8};

    use super::*;
    use crate::mechanism::Channel;
    use crate::model::AccountState;
    use crate::ratelimit::Rate;
    use crate::testkit::*;

    const T0: i64 = 1_700_000_000_000;

    fn alice() -> User {
        User {
            directory: "local".into(),
            dn: Dn::new("uid=alice,ou=people,dc=example,dc=com"),
            username: "alice".into(),
            display_name: Some("Alice".into()),
            mail: vec!["alice@example.com".into(), "alice@home.example".into()],
            mobile: vec!["+15550100001".into()],
            attributes: Default::default(),
            sponsor: None,
            preferred_mechanisms: vec![],
            account: AccountState::default(),
        }
    }

    struct World {
        svc: OtpService,
        store: Arc<MemStore>,
        clock: Arc<TestClock>,
        email: Arc<RecordingCourier>,
        sms: Arc<RecordingCourier>,
        dir: Arc<MemDirectory>,
    }

    fn world_with(users: Vec<User>, email_fails: bool, sms_fails: bool) -> World {
        let store = Arc::new(MemStore::default());
        let clock = Arc::new(TestClock(AtomicI64::new(T0)));
        let email = Arc::new(RecordingCourier {
            fail: email_fails,
            ..Default::default()
        });
        let sms = Arc::new(RecordingCourier {
            fail: sms_fails,
            ..Default::default()
        });
        let dir = Arc::new(MemDirectory {
            name: "local".into(),
            users: users
                .into_iter()
                .map(|u| (u, "secret".to_owned()))
                .collect(),
            nobody_checks: AtomicU8::new(0),
        });
        let mech = |name: &str, channel, courier: &Arc<RecordingCourier>| DeliveryMechanism {
            name: name.into(),
            channel,
            enabled: true,
            subject: Some("Configured subject".into()),
            text_before_otp: None,
            text_after_otp: Some(" (configured after)".into()),
            courier: courier.clone(),
        };
        let svc = OtpService {
            directories: vec![dir.clone()],
            mechanisms: vec![
                mech("Email", Channel::Email, &email),
                mech("SMS", Channel::Sms, &sms),
            ],
            default_mechanisms: vec!["Email".into(), "SMS".into()],
            generator: PasswordGenerator::numeric(6),
            settings: OtpSettings {
                validity: Duration::from_secs(300),
                max_failed_attempts: 3,
            },
            limits: RateLimits::default(),
            hasher: OtpHasher::new(&[9u8; 32]).unwrap(),
            store: store.clone(),
            clock: clock.clone(),
            random: Arc::new(SeqRandom::new()),
        };
        World {
            svc,
            store,
            clock,
            email,
            sms,
            dir,
        }
    }

    fn world() -> World {
        world_with(vec![alice()], false, false)
    }

    fn caller() -> Caller {
        Caller {
            front: "test".into(),
            client: Some("192.0.2.1".into()),
            bound_as: None,
        }
    }

    fn deliver_req(mechs: Option<Vec<MechanismChoice>>) -> DeliverRequest {
        DeliverRequest {
            authentication_id: "u:alice".into(),
            static_password: Some("secret".into()),
            mechanisms: mechs,
            texts: MessageTexts::default(),
        }
    }

    fn verify_req(otp: &str) -> VerifyRequest {
        VerifyRequest {
            authentication_id: "u:alice".into(),
            authorization_id: None,
            otp: otp.into(),
        }
    }

    fn last_otp(c: &RecordingCourier) -> String {
        let sent = c.sent.lock().unwrap();
        let body = sent.last().unwrap().body.expose().to_owned();
        body.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()[..6]
            .to_owned()
    }

    #[tokio::test]
    async fn delivered_otp_verifies_once() {
        let w = world();
        let d = w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        assert_eq!(d.mechanism, "Email");
        assert_eq!(d.recipient, "alice@example.com");
        assert_eq!(d.user_dn, alice().dn);
        let otp = last_otp(&w.email);
        let user = w
            .svc
            .authenticate(verify_req(&otp), &caller())
            .await
            .unwrap();
        assert_eq!(user.dn, alice().dn);
        let again = w.svc.authenticate(verify_req(&otp), &caller()).await;
        assert_eq!(
            again.unwrap_err(),
            OtpError::InvalidCredentials(Refusal::NoOtp)
        );
    }

    #[tokio::test]
    async fn request_texts_win_field_by_field() {
        let w = world();
        let mut req = deliver_req(None);
        req.texts.full_before = Some("Code: ".into());
        req.texts.compact_before = Some("ignored for email".into());
        w.svc.deliver(req, &caller()).await.unwrap();
        let sent = w.email.sent.lock().unwrap();
        assert_eq!(sent[0].subject, "Configured subject");
        let body = sent[0].body.expose();
        assert!(
            body.starts_with("Code: ") && body.ends_with(" (configured after)"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn request_list_is_the_only_list() {
        let w = world_with(vec![alice()], true, false);
        let req = deliver_req(Some(vec![MechanismChoice::named("Email")]));
        let err = w.svc.deliver(req, &caller()).await.unwrap_err();
        assert_eq!(
            err,
            OtpError::NotDelivered {
                tried: vec![("Email".into(), Undelivered::TransportFailed)]
            }
        );
        assert!(
            w.sms.sent.lock().unwrap().is_empty(),
            "no fallback beyond the request's list"
        );
        assert!(
            w.store.otps.lock().unwrap().is_empty(),
            "undelivered OTP removed"
        );
        let audit = w.store.audit.lock().unwrap();
        assert!(
            audit[0].reason.contains("alice@example.com"),
            "{}",
            audit[0].reason
        );
    }

    #[tokio::test]
    async fn failed_mechanism_falls_to_the_next_default() {
        let w = world_with(vec![alice()], true, false);
        let d = w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        assert_eq!(
            (d.mechanism.as_str(), d.recipient.as_str()),
            ("SMS", "+15550100001")
        );
        let reason = w.store.audit.lock().unwrap()[0].reason.clone();
        assert_eq!(
            reason,
            "ok after failures: Email: delivery to alice@example.com failed: connection refused"
        );
        let otp = last_otp(&w.sms);
        assert!(
            w.svc
                .authenticate(verify_req(&otp), &caller())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn preferred_mechanisms_come_first() {
        let mut a = alice();
        a.preferred_mechanisms = vec!["SMS".into()];
        let w = world_with(vec![a], false, false);
        let d = w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        assert_eq!(d.mechanism, "SMS");
        assert!(w.email.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn recipient_must_be_the_users_own() {
        let w = world();
        let req = deliver_req(Some(vec![
            MechanismChoice {
                name: "Email".into(),
                recipient: Some("mallory@evil.example".into()),
            },
            MechanismChoice {
                name: "Email".into(),
                recipient: Some("ALICE@home.example".into()),
            },
        ]));
        let d = w.svc.deliver(req, &caller()).await.unwrap();
        assert_eq!(d.recipient, "alice@home.example");
        let sent = w.email.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, "alice@home.example");
    }

    #[tokio::test]
    async fn unknown_mechanism_and_no_address_are_reported_without_addresses() {
        let mut a = alice();
        a.mobile.clear();
        let w = world_with(vec![a], false, false);
        let req = deliver_req(Some(vec![
            MechanismChoice::named("Pigeon"),
            MechanismChoice::named("SMS"),
        ]));
        let err = w.svc.deliver(req, &caller()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Pigeon: no such delivery mechanism"),
            "{text}"
        );
        assert!(text.contains("SMS: the user has no address"), "{text}");
    }

    #[tokio::test]
    async fn credential_problems_are_one_uniform_refusal() {
        let mut disabled = alice();
        disabled.account.disabled = true;
        let mut locked = alice();
        locked.account.locked_until = Some(Timestamp(T0 + 60_000));
        let mut expired = alice();
        expired.account.password_expires_at = Some(Timestamp(T0 - 1));
        let mut reset = alice();
        reset.account.must_change_password = true;
        let cases = [
            (vec![alice()], "u:alice", "wrong", Refusal::WrongPassword),
            (vec![alice()], "u:bob", "secret", Refusal::UnknownUser),
            (
                vec![disabled],
                "u:alice",
                "secret",
                Refusal::AccountDisabled,
            ),
            (vec![locked], "u:alice", "secret", Refusal::AccountLocked),
            (vec![expired], "u:alice", "secret", Refusal::PasswordExpired),
            (
                vec![reset],
                "u:alice",
                "secret",
                Refusal::MustChangePassword,
            ),
        ];
        for (users, id, pw, refusal) in cases {
            let w = world_with(users, false, false);
            let mut req = deliver_req(None);
            req.authentication_id = id.into();
            req.static_password = Some(pw.into());
            let err = w.svc.deliver(req, &caller()).await.unwrap_err();
            assert_eq!(err, OtpError::InvalidCredentials(refusal));
            assert_eq!(err.to_string(), "invalid credentials");
            assert!(w.email.sent.lock().unwrap().is_empty());
            assert_eq!(w.store.audit.lock().unwrap()[0].reason, refusal.as_str());
            if refusal == Refusal::UnknownUser {
                assert_eq!(
                    w.dir
                        .nobody_checks
                        .load(std::sync::atomic::Ordering::SeqCst),
                    1
                );
            }
        }
    }

    #[tokio::test]
    async fn step_up_needs_the_same_bound_user() {
        let w = world();
        let mut req = deliver_req(None);
        req.static_password = None;
        let err = w.svc.deliver(req.clone(), &caller()).await.unwrap_err();
        assert_eq!(err, OtpError::InvalidCredentials(Refusal::NoPassword));
        let bound = Caller {
            bound_as: Some(alice().key()),
            ..caller()
        };
        assert!(w.svc.deliver(req, &bound).await.is_ok());
    }

    #[tokio::test]
    async fn expired_otp_fails() {
        let w = world();
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        let otp = last_otp(&w.email);
        w.clock.advance(Duration::from_secs(301));
        let err = w
            .svc
            .authenticate(verify_req(&otp), &caller())
            .await
            .unwrap_err();
        assert_eq!(err, OtpError::InvalidCredentials(Refusal::OtpExpired));
    }

    #[tokio::test]
    async fn too_many_wrong_tries_void_the_otp() {
        let w = world();
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        let otp = last_otp(&w.email);
        let wrong = if otp == "000000" { "111111" } else { "000000" };
        for expected in [Refusal::WrongOtp, Refusal::WrongOtp, Refusal::OtpVoided] {
            let err = w
                .svc
                .authenticate(verify_req(wrong), &caller())
                .await
                .unwrap_err();
            assert_eq!(err, OtpError::InvalidCredentials(expected));
        }
        let err = w
            .svc
            .authenticate(verify_req(&otp), &caller())
            .await
            .unwrap_err();
        assert_eq!(err, OtpError::InvalidCredentials(Refusal::NoOtp));
    }

    #[tokio::test]
    async fn a_new_otp_replaces_the_old_one() {
        let w = world();
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        let first = last_otp(&w.email);
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        let second = last_otp(&w.email);
        assert_ne!(first, second);
        let err = w
            .svc
            .authenticate(verify_req(&first), &caller())
            .await
            .unwrap_err();
        assert_eq!(err, OtpError::InvalidCredentials(Refusal::WrongOtp));
        assert!(
            w.svc
                .authenticate(verify_req(&second), &caller())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn authorization_identity_must_be_the_users_own() {
        let w = world();
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        let otp = last_otp(&w.email);
        let mut req = verify_req(&otp);
        req.authorization_id = Some("dn:uid=bob,ou=people,dc=example,dc=com".into());
        let err = w
            .svc
            .authenticate(req.clone(), &caller())
            .await
            .unwrap_err();
        assert!(matches!(err, OtpError::AuthorizationDenied(_)));
        req.authorization_id = Some("dn:UID=alice, ou=people,dc=example,dc=com".into());
        assert!(
            w.svc.authenticate(req, &caller()).await.is_ok(),
            "OTP kept for a correct retry"
        );
    }

    #[tokio::test]
    async fn audit_never_holds_secrets() {
        let w = world();
        w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        let otp = last_otp(&w.email);
        w.svc
            .authenticate(verify_req(&otp), &caller())
            .await
            .unwrap();
        let audit = w.store.audit.lock().unwrap();
        assert_eq!(audit.len(), 2);
        for r in audit.iter() {
            let all = format!("{r:?}");
            assert!(!all.contains(&otp) && !all.contains("secret"), "{all}");
        }
        assert_eq!(audit[0].mechanism.as_deref(), Some("Email"));
        assert_eq!(audit[0].recipient.as_deref(), Some("alice@example.com"));
        assert_eq!(audit[0].client.as_deref(), Some("192.0.2.1"));
    }

    #[tokio::test]
    async fn rate_limit_per_user_refuses_before_any_work() {
        let mut w = world();
        w.svc.limits.deliver_per_user = Some(RateLimiter::new(Rate {
            burst: 2,
            period: Duration::from_secs(60),
        }));
        for _ in 0..2 {
            w.svc.deliver(deliver_req(None), &caller()).await.unwrap();
        }
        let err = w
            .svc
            .deliver(deliver_req(None), &caller())
            .await
            .unwrap_err();
        assert!(matches!(err, OtpError::RateLimited { .. }));
        assert_eq!(w.email.sent.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn per_user_limit_counts_the_user_whatever_the_spelling() {
        let mut w = world();
        w.svc.limits.deliver_per_user = Some(RateLimiter::new(Rate {
            burst: 2,
            period: Duration::from_secs(60),
        }));
        for id in ["u:alice", "dn:uid=alice,ou=people,dc=example,dc=com"] {
            let mut req = deliver_req(None);
            req.authentication_id = id.into();
            w.svc.deliver(req, &caller()).await.unwrap();
        }
        let mut req = deliver_req(None);
        req.authentication_id = "dn:UID=alice , ou=people,dc=example,dc=com".into();
        let err = w.svc.deliver(req, &caller()).await.unwrap_err();
        assert!(matches!(err, OtpError::RateLimited { .. }), "{err:?}");
        assert_eq!(w.email.sent.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn ipv6_clients_are_limited_by_their_64() {
        let mut w = world();
        w.svc.limits.verify_per_client = Some(RateLimiter::new(Rate {
            burst: 2,
            period: Duration::from_secs(60),
        }));
        for client in [
            "2001:db8:1:2::1",
            "2001:db8:1:2::ffff",
            "2001:db8:1:2:aa::7",
        ] {
            let c = Caller {
                client: Some(client.into()),
                ..caller()
            };
            let r = w.svc.authenticate(verify_req("123456"), &c).await;
            if client.ends_with("::7") {
                assert!(matches!(r, Err(OtpError::RateLimited { .. })), "{r:?}");
            }
        }
        let other = Caller {
            client: Some("2001:db8:1:3::1".into()),
            ..caller()
        };
        let r = w.svc.authenticate(verify_req("123456"), &other).await;
        assert!(
            matches!(r, Err(OtpError::InvalidCredentials(_))),
            "another /64"
        );
    }

    #[tokio::test]
    async fn ambiguous_identity_costs_a_password_check_too() {
        let mut twin = alice();
        twin.dn = Dn::new("uid=alice2,ou=people,dc=example,dc=com");
        let w = world_with(vec![alice(), twin], false, false);
        let err = w
            .svc
            .deliver(deliver_req(None), &caller())
            .await
            .unwrap_err();
        assert_eq!(err, OtpError::InvalidCredentials(Refusal::AmbiguousUser));
        assert_eq!(
            w.dir
                .nobody_checks
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
    }

    #[tokio::test]
    async fn oversized_requests_are_refused_before_any_work() {
        let w = world();
        let mut req = deliver_req(Some(vec![MechanismChoice::named("Email"); 17]));
        assert!(matches!(
            w.svc.deliver(req.clone(), &caller()).await,
            Err(OtpError::InvalidRequest(_))
        ));
        req.mechanisms = None;
        req.texts.full_before = Some("x".repeat(1025));
        let err = w.svc.deliver(req, &caller()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the full text before the OTP is longer than 1024 characters"
        );
        assert!(w.email.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn password_authentication_is_uniform_and_audited_as_bind() {
        let mut locked = alice();
        locked.account.locked_until = Some(Timestamp(T0 + 1));
        let w = world_with(vec![locked], false, false);
        for (id, pw, refusal) in [
            ("u:alice", "secret", Refusal::AccountLocked),
            ("u:alice", "nope", Refusal::WrongPassword),
            ("u:nobody", "secret", Refusal::UnknownUser),
        ] {
            let err = w
                .svc
                .authenticate_password(id, &pw.into(), &caller())
                .await
                .unwrap_err();
            assert_eq!(err, OtpError::InvalidCredentials(refusal));
        }
        w.clock.advance(Duration::from_millis(2));
        let user = w
            .svc
            .authenticate_password("u:alice", &"secret".into(), &caller())
            .await
            .unwrap();
        assert_eq!(user.username, "alice");
        let audit = w.store.audit.lock().unwrap();
        assert!(audit.iter().all(|r| r.action == AuditAction::Bind));
        assert_eq!(audit[3].outcome, AuditOutcome::Success);
    }

    #[tokio::test]
    async fn supported_mechanisms_lists_one_item_per_recipient() {
        let mut a = alice();
        a.mobile.clear();
        let w = world_with(vec![a], false, false);
        let list = w
            .svc
            .supported_mechanisms(
                "uid=alice,ou=people,dc=example,dc=com",
                &caller(),
                RecipientView::Full,
            )
            .await
            .unwrap();
        let items: Vec<(&str, bool, Option<&str>)> = list
            .iter()
            .map(|m| (m.mechanism.as_str(), m.supported, m.recipient.as_deref()))
            .collect();
        assert_eq!(
            items,
            [
                ("Email", true, Some("alice@example.com")),
                ("Email", true, Some("alice@home.example")),
                ("SMS", false, None)
            ]
        );
        assert_eq!(
            w.svc
                .supported_mechanisms("uid=nobody,dc=x", &caller(), RecipientView::Full)
                .await
                .unwrap_err(),
            OtpError::NoSuchUser
        );
    }
}
