//! Wiring of Approved OTP: the configured approval profiles become the core's profiles with
//! their couriers, the policies and `[approval]` become the rules, the login chain is chosen,
//! and the `LoginService`, the applications and the outbox worker are built. Fronts get what
//! they need from here (the LDAP front its application, the HTTP front the applications and
//! the CSRF key).

use std::collections::HashMap;
use std::sync::Arc;

use countersign_core::application::{Application, Applications, AuthMethod, OidcClient};
use countersign_core::approval::ApprovalProfile;
use countersign_core::attempt::AuditTrail;
use countersign_core::identity_mapper::IdentityMapper;
use countersign_core::login::{ApprovalRules, LoginService};
use countersign_core::otp::OtpService;
use countersign_core::password::PasswordAuthentication;
use countersign_core::ports::{Clock, Courier, Directory, Store};
use tokio::sync::Notify;

use super::AppError;
use crate::config::{ApprovalProfileConfig, Config};
use crate::delivery::outbox::MIN_LEASE;
use crate::delivery::{OutboxWorker, SmsCourier, SmtpCourier};
use crate::signal::WaitingRoom;
use crate::system::{OsRandom, SpawnDetach};

/// The name of the application of LDAP binds when `[ldap] application` is not set: Approved
/// OTP applies to them too (no front bypasses it).
pub const IMPLICIT_LDAP_APPLICATION: &str = "ldap";
/// The application of HTTP callers without an API key (the OTP verify), for the same reason.
pub const IMPLICIT_HTTP_APPLICATION: &str = "http";

/// What the approval wiring hands back to the app.
pub(super) struct ApprovalParts {
    pub login: Arc<LoginService>,
    pub applications: Applications,
    pub waiting: Arc<WaitingRoom>,
    pub outbox_wake: Arc<Notify>,
    /// The courier of each approval profile, for the outbox worker.
    pub couriers: HashMap<String, Arc<dyn Courier>>,
}

/// The directory named `name` among `all`.
fn directory(all: &[Arc<dyn Directory>], name: &str) -> Option<Arc<dyn Directory>> {
    all.iter().find(|d| d.name() == name).cloned()
}

/// The courier an approval profile sends through: its mail or SMS profile, or (for the demo and
/// development) a file delivery mechanism's courier.
fn profile_courier(
    config: &Config,
    profile: &ApprovalProfileConfig,
    mechanisms: &[countersign_core::mechanism::DeliveryMechanism],
) -> Result<Arc<dyn Courier>, AppError> {
    let name = &profile.transport;
    let missing = || AppError::MissingProfile(name.clone());
    Ok(match profile.transport_key {
        "mail_profile" => {
            let p = config
                .mail_profiles
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(missing)?;
            Arc::new(SmtpCourier::new(p)?)
        }
        "sms_profile" => {
            let p = config
                .sms_profiles
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(missing)?;
            Arc::new(SmsCourier::new(p)?)
        }
        _ => mechanisms
            .iter()
            .find(|m| &m.name == name)
            .map(|m| m.courier.clone())
            .ok_or_else(missing)?,
    })
}

/// The directories that authenticate password logins: with no profiles, the `[deliver_otp]`
/// chain; with no policies, the default profile's fallback directories; otherwise the fallback
/// directories of the profiles the policies name, in policy order, each once. Policies are
/// evaluated on the user this chain finds, and a profile only takes users of its own fallback
/// directories.
fn login_chain(config: &Config, rules: &ApprovalRules) -> Vec<String> {
    if rules.profiles.is_empty() {
        return config.deliver_otp.directories.clone();
    }
    let profiles: Vec<&ApprovalProfile> = if rules.policies.is_empty() {
        rules
            .default_profile
            .as_deref()
            .and_then(|name| rules.profile(name))
            .into_iter()
            .collect()
    } else {
        rules
            .policies
            .iter()
            .filter_map(|p| rules.profile(&p.profile))
            .collect()
    };
    let mut chain: Vec<String> = Vec::new();
    for name in profiles.iter().flat_map(|p| p.directories.iter()) {
        if !chain.contains(name) {
            chain.push(name.clone());
        }
    }
    chain
}

pub(super) fn build(
    config: &Config,
    otp: &Arc<OtpService>,
    store: &Arc<dyn Store>,
    all_directories: &[Arc<dyn Directory>],
    clock: &Arc<dyn Clock>,
) -> Result<ApprovalParts, AppError> {
    let mut profiles = Vec::new();
    let mut couriers = HashMap::new();
    for p in &config.approval.profiles {
        let courier = profile_courier(config, p, &otp.mechanisms)?;
        couriers.insert(p.name.clone(), courier.clone());
        profiles.push(ApprovalProfile {
            name: p.name.clone(),
            kind: p.kind,
            server: p.server.clone(),
            message: p.message.clone(),
            link_expiration: p.link_expiration,
            delivery: p.delivery,
            courier,
            courier_name: p.transport.clone(),
            email_subject: p.email_subject.clone(),
            default_recipient: p.default_recipient.clone(),
            directories: p.directories.clone(),
            methods: p.methods.clone(),
            inform_interval: p.inform_interval,
        });
    }
    let rules = ApprovalRules {
        profiles,
        default_profile: config.approval.default_profile.clone(),
        policies: countersign_core::approval::Policies::new(config.approval.policies.clone()),
        grace_period: config.approval.grace_period,
        rejection_cooldown: config.approval.rejection_cooldown,
    };
    let chain: Vec<Arc<dyn Directory>> = login_chain(config, &rules)
        .iter()
        .filter_map(|name| directory(all_directories, name))
        .collect();
    let shared = &otp.passwords;
    let passwords = Arc::new(PasswordAuthentication {
        mapper: IdentityMapper::new(chain),
        limits: shared.limits.clone(),
        audit: AuditTrail::clone(&shared.audit),
        clock: clock.clone(),
    });
    let waiting = Arc::new(WaitingRoom::new(clock.clone()));
    let outbox_wake = Arc::new(Notify::new());
    let wake = outbox_wake.clone();
    let login = Arc::new(LoginService {
        passwords,
        otp: otp.clone(),
        directories: IdentityMapper::new(all_directories.to_vec()),
        rules,
        approvals: store.clone(),
        outbox: store.clone(),
        signal: waiting.clone(),
        detach: Arc::new(SpawnDetach),
        wake_outbox: Arc::new(move || wake.notify_one()),
        clock: clock.clone(),
        random: Arc::new(OsRandom),
    });
    let applications = Applications::new(
        config
            .applications
            .iter()
            .map(|a| {
                let app = Application::new(
                    a.name.clone(),
                    a.api_key.as_ref().map(|k| k.expose()),
                    a.methods.clone(),
                    a.approved_otp,
                );
                match &a.oidc {
                    Some(c) => app.with_oidc(OidcClient::new(
                        c.redirect_uris.clone(),
                        c.secret.as_ref().map(|s| s.expose()),
                    )),
                    None => app,
                }
            })
            .collect(),
    );
    Ok(ApprovalParts {
        login,
        applications,
        waiting,
        outbox_wake,
        couriers,
    })
}

/// The application LDAP binds log in as.
pub(super) fn ldap_application(config: &Config, applications: &Applications) -> Application {
    config
        .ldap
        .application
        .as_deref()
        .and_then(|name| applications.by_name(name))
        .cloned()
        .unwrap_or_else(|| implicit(IMPLICIT_LDAP_APPLICATION))
}

/// The outbox worker's claim: four times the longest transport timeout (an SMTP send is a few
/// commands, each under the timeout), and never under [`MIN_LEASE`].
fn outbox_lease(config: &Config) -> std::time::Duration {
    let longest = config
        .mail_profiles
        .iter()
        .map(|p| p.timeout)
        .chain(config.sms_profiles.iter().map(|p| p.timeout))
        .max()
        .unwrap_or_default();
    longest.saturating_mul(4).max(MIN_LEASE)
}

/// An application of a front's own, with every method and Approved OTP applying.
pub(super) fn implicit(name: &str) -> Application {
    Application::new(name, None, AuthMethod::ALL.to_vec(), true)
}

impl super::App {
    /// The outbox worker over this app's store and the approval profiles' couriers.
    pub fn outbox_worker(&self) -> OutboxWorker {
        OutboxWorker {
            store: self.store.clone(),
            couriers: self.approval_couriers.clone(),
            schedule: self.config.approval.retry,
            clock: self.clock.clone(),
            audit: AuditTrail::clone(&self.otp.passwords.audit),
            wake: self.outbox_wake.clone(),
            lease: outbox_lease(&self.config),
        }
    }
}
