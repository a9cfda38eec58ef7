//! The delivered-OTP use cases: Deliver OTP (Ping spec §7.1), Get Supported OTP Delivery
//! Mechanisms (§7.2) and the OTP check behind the UNBOUNDID-DELIVERED-OTP bind and the HTTP
//! verify call (§8), with the [`generator`] that makes codes and the [`mechanism`] order beside
//! them. Users are found through the [`IdentityMapper`] and the static password is checked by
//! [`PasswordAuthentication`]; every attempt is audited with its real reason, and callers only
//! ever see the uniform [`AuthError::InvalidCredentials`] for credential problems.

pub mod generator;
pub mod mechanism;

use std::sync::Arc;
use std::time::Duration;

use crate::attempt::{Attempt, Caller};
use crate::audit::AuditAction;
use crate::crypto::OtpHasher;
use crate::error::{AuthError, Refusal, Undelivered};
use crate::identity::Identity;
use crate::identity_mapper::IdentityMapper;
use crate::model::{Dn, User};
use crate::password::{PasswordAuthentication, usable};
use crate::ports::{Clock, IssuedOtp, OutboundMessage, Random, Store, StoreError};
use crate::ratelimit::RateLimits;
use crate::secret::Secret;
use generator::{PasswordGenerator, random_hex};
use mechanism::{DeliveryMechanism, MechanismChoice, MessageTexts, plan};

/// Validity and attempt limits for issued OTPs. Its `Default` is the one place the defaults
/// are written; the server's configuration falls back to it.
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
    /// [`mechanism::Channel::mask`]ed; a masked ID still selects its address in Deliver.
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
    /// The first factor of Deliver OTP; also owns the identity mapper, the rate limits and
    /// the audit trail that every use case shares.
    pub passwords: Arc<PasswordAuthentication>,
    pub mechanisms: Vec<DeliveryMechanism>,
    pub default_mechanisms: Vec<String>,
    pub generator: PasswordGenerator,
    pub settings: OtpSettings,
    pub hasher: OtpHasher,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

/// Limits on what one request may carry, so nobody can make a courier send a novel or try a
/// hundred mechanisms, each with its own timeout.
pub const MAX_MECHANISMS: usize = 16;
pub const MAX_TEXT_LEN: usize = 1024;
pub const MAX_OTP_LEN: usize = 256;
pub use crate::identity::MAX_IDENTITY_LEN;

impl OtpService {
    pub fn mapper(&self) -> &IdentityMapper {
        &self.passwords.mapper
    }

    fn limits(&self) -> &RateLimits {
        &self.passwords.limits
    }

    /// Deliver OTP, spec §7.1.
    pub async fn deliver(
        &self,
        req: DeliverRequest,
        caller: &Caller,
    ) -> Result<Delivered, AuthError> {
        let mut attempt = Attempt::new(AuditAction::Deliver, caller, &req.authentication_id);
        let admission = self
            .passwords
            .admit(&attempt, caller, &req.authentication_id);
        let result = match &admission {
            Ok(_) => self.deliver_steps(&req, caller, &mut attempt).await,
            Err(e) => Err(e.clone()),
        };
        self.passwords
            .finish(attempt, admission, caller, &result)
            .await;
        result
    }

    async fn deliver_steps(
        &self,
        req: &DeliverRequest,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<Delivered, AuthError> {
        let now = self.clock.now();
        check_deliver_request(req)?;
        let identity = Identity::parse(&req.authentication_id)?;
        // Steps 2 to 4: the user, the static password (or a connection already bound as that
        // user), a usable account.
        let user = match &req.static_password {
            Some(pw) => self.passwords.first_factor(&identity, pw, attempt).await?,
            None => {
                let user = self
                    .mapper()
                    .find_user(&identity)
                    .await?
                    .ok_or(AuthError::InvalidCredentials(Refusal::UnknownUser))?;
                attempt.resolved(&user);
                if caller.bound_as.as_ref() != Some(&user.key()) {
                    return Err(AuthError::InvalidCredentials(Refusal::NoPassword));
                }
                usable(&user, now)?;
                user
            }
        };
        // Only someone who proved to be the user gets here, so this limit reveals nothing.
        self.limits().reserve_delivery(&user.key(), now)?;

        // Steps 5 to 7: generate, then try mechanisms in order until one delivers. The new
        // code is stored only once it was delivered, so a request that delivers nothing leaves
        // the user's outstanding code (from an earlier request) valid.
        let otp = self.generator.generate(self.random.as_ref());
        let choices = plan(
            req.mechanisms.as_deref(),
            &user.preferred_mechanisms,
            &self.default_mechanisms,
        );
        let mut tried: Vec<(String, Undelivered)> = Vec::new();
        for choice in &choices {
            match self.try_mechanism(choice, &user, &otp, &req.texts).await {
                Ok((mechanism, recipient)) => {
                    self.store_delivered(&user, &otp, now).await?;
                    attempt.delivered(&mechanism, &recipient);
                    return Ok(Delivered {
                        mechanism,
                        user_dn: user.dn.clone(),
                        recipient,
                    });
                }
                Err((public, private)) => {
                    attempt.mechanism_failed(&choice.name, &private);
                    tried.push((choice.name.clone(), public));
                }
            }
        }
        self.limits().refund_delivery(&user.key());
        Err(AuthError::NotDelivered { tried })
    }

    /// Step 6: the keyed hash with its issue time, replacing any outstanding OTP (one per
    /// user). It runs right after the courier took the message, long before a person can
    /// type the code; if the store fails here the caller is told the service is unavailable.
    async fn store_delivered(
        &self,
        user: &User,
        otp: &Secret,
        issued_at: crate::model::Timestamp,
    ) -> Result<(), AuthError> {
        let issued = IssuedOtp {
            id: random_hex(self.random.as_ref(), 16),
            user: user.key(),
            hash: self.hasher.hash(&user.key(), otp.expose()),
            issued_at,
            failed_attempts: 0,
        };
        self.store.put_otp(&issued).await.map_err(store_unavailable)
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
    pub async fn verify(&self, req: VerifyRequest, caller: &Caller) -> Result<User, AuthError> {
        let mut attempt = Attempt::new(AuditAction::Verify, caller, &req.authentication_id);
        let admission = self
            .passwords
            .admit(&attempt, caller, &req.authentication_id);
        let result = match &admission {
            Ok(_) => self.verify_steps(&req, caller, &mut attempt).await,
            Err(e) => Err(e.clone()),
        };
        self.passwords
            .finish(attempt, admission, caller, &result)
            .await;
        result
    }

    async fn verify_steps(
        &self,
        req: &VerifyRequest,
        caller: &Caller,
        attempt: &mut Attempt,
    ) -> Result<User, AuthError> {
        let now = self.clock.now();
        let identity = Identity::parse(&req.authentication_id)?;
        // A malformed authorization identity is refused like a malformed authentication one,
        // whatever the code: the answer must not depend on whether the code was right.
        // (`dn:` alone is the anonymous identity, well-formed, refused later as not the user's.)
        if let Some(authz) = &req.authorization_id
            && !authz.trim().eq_ignore_ascii_case("dn:")
        {
            Identity::parse(authz)?;
        }
        if req.otp.expose().len() > MAX_OTP_LEN {
            // Longer than any generator makes: wrong, without a store round trip.
            return Err(AuthError::InvalidCredentials(Refusal::WrongOtp));
        }
        let Some(user) = self.mapper().find_user(&identity).await? else {
            // The store read a known user costs, so the refusal takes as long.
            let nobody = crate::model::UserKey {
                directory: String::new(),
                dn: String::new(),
            };
            let _ = self.store.get_otp(&nobody).await;
            return Err(AuthError::InvalidCredentials(Refusal::UnknownUser));
        };
        attempt.resolved(&user);
        usable(&user, now)?;
        let key = user.key();
        let Some(stored) = self.store.get_otp(&key).await.map_err(store_unavailable)? else {
            return Err(AuthError::InvalidCredentials(Refusal::NoOtp));
        };
        if now > stored.issued_at.plus(self.settings.validity) {
            if let Err(e) = self.store.delete_otp(&key, &stored.id).await {
                tracing::warn!(error = %e, "could not remove an expired OTP");
            }
            return Err(AuthError::InvalidCredentials(Refusal::OtpExpired));
        }
        let max = self.settings.max_failed_attempts;
        if !self.hasher.verify(&key, req.otp.expose(), &stored.hash) {
            // Only wrong tries from a client that recently authenticated as the user count
            // against the code: anyone else who knows the username could otherwise void the
            // user's code at will. Their guesses are bounded by the failure limits instead.
            if !self.limits().trusts(&key, caller, now) {
                if !self.limits().stranger_guessed(&stored.id, max) {
                    return Err(AuthError::InvalidCredentials(Refusal::WrongOtp));
                }
                // The backstop: strangers have guessed too often at this one code.
                self.store
                    .delete_otp(&key, &stored.id)
                    .await
                    .map_err(store_unavailable)?;
                return Err(AuthError::InvalidCredentials(Refusal::OtpVoided));
            }
            let failures = self
                .store
                .fail_otp(&key, &stored.id, max)
                .await
                .map_err(store_unavailable)?;
            return Err(AuthError::InvalidCredentials(if failures >= max {
                Refusal::OtpVoided
            } else {
                Refusal::WrongOtp
            }));
        }
        // The OTP is right; only its holder learns whether the authorization identity is
        // refused, and the OTP stays usable for a correct retry.
        if let Some(authz) = &req.authorization_id
            && !self.mapper().may_assume(&user, authz).await?
        {
            return Err(AuthError::AuthorizationDenied(
                authz.chars().take(80).collect(),
            ));
        }
        if !self
            .store
            .consume_otp(&key, &stored.id, max)
            .await
            .map_err(store_unavailable)?
        {
            return Err(AuthError::InvalidCredentials(Refusal::OtpAlreadyUsed));
        }
        self.limits().forget_code(&stored.id);
        Ok(user)
    }

    /// Get Supported OTP Delivery Mechanisms, spec §7.2: every enabled mechanism, whether it can
    /// reach the user, one item per recipient address.
    pub async fn supported_mechanisms(
        &self,
        user_dn: &str,
        caller: &Caller,
        view: RecipientView,
    ) -> Result<Vec<MechanismSupport>, AuthError> {
        self.limits().admit_lookup(caller, self.clock.now())?;
        let identity = Identity::parse_dn(user_dn)?;
        let user = match self.mapper().find_user(&identity).await? {
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
            None => return Err(AuthError::NoSuchUser),
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

    /// Enabled mechanism names, for the root DSE's `ds-supported-otp-delivery-mechanism`.
    pub fn mechanism_names(&self) -> Vec<String> {
        self.mechanisms
            .iter()
            .filter(|m| m.enabled)
            .map(|m| m.name.clone())
            .collect()
    }
}

fn check_deliver_request(req: &DeliverRequest) -> Result<(), AuthError> {
    if let Some(list) = &req.mechanisms
        && list.len() > MAX_MECHANISMS
    {
        return Err(AuthError::InvalidRequest(format!(
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
            return Err(AuthError::InvalidRequest(format!(
                "the {name} is longer than {MAX_TEXT_LEN} characters"
            )));
        }
    }
    Ok(())
}

fn store_unavailable(e: StoreError) -> AuthError {
    AuthError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests;
