//! Approved OTP: `[[approval_profile]]` (the seed's "Approved OTP profiles": what happens after a
//! user proved who they are, and how the manager is reached), `[[policy]]` (which profile a user
//! gets: the seed's rules, first match top to bottom), `[approval]` (the default profile and the
//! grace period after an approval) and `[outbox]` (how messages to managers are retried).
//!
//! The wiring turns each [`ApprovalProfileConfig`] into a core `ApprovalProfile` by adding the
//! courier of its mail or SMS profile; everything else is checked here, so a profile that starts
//! is one that can send.

use std::collections::BTreeSet;
use std::time::Duration;

use countersign_core::application::AuthMethod;
use countersign_core::approval::profile::{
    DEFAULT_APPROVAL_MESSAGE, DEFAULT_INFORMATION_MESSAGE, Placeholder,
};
use countersign_core::approval::{ApprovalDelivery, MessageTemplate, Policy, ProfileKind};
use countersign_core::outbox::RetrySchedule;
use serde::Deserialize;

use super::delivery::{MailProfile, SmsProfile};
use super::directories::DirectoryConfig;
use super::validator::{Span, Validator};

/// `[[approval_profile]]`: the seed's profile fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalProfileSection {
    pub(super) name: String,
    /// `information` (the manager is told; the login goes through) or `approval` (the login
    /// waits for the manager's decision through a link).
    #[serde(rename = "type")]
    kind: String,
    /// Base URL of approval links; default `[server] public_url`.
    server: Option<String>,
    /// The text sent to the manager, with `{placeholder}`s.
    message: Option<String>,
    /// How long an approval link is valid: minutes as the seed counts them (`60`) or a
    /// duration (`"60m"`); default 60 minutes, at most 7 days.
    link_expiration: Option<toml::Value>,
    /// `email` or `sms`.
    delivery: String,
    mail_profile: Option<String>,
    sms_profile: Option<String>,
    /// Instead of a mail or SMS profile, for development and the demo: a
    /// `[[delivery_mechanism]]` of type `file`, whose courier writes the messages to its folder
    /// (and the terminal).
    delivery_mechanism: Option<String>,
    email_subject: Option<String>,
    /// Who is told when the user's manager cannot be found.
    default_recipient: Option<String>,
    /// The directories that authenticate the profile's users, in order.
    pub(super) fallback_directories: Vec<String>,
    /// Which authentication methods the profile governs; default all.
    methods: Option<Vec<String>>,
    /// Information profiles: logins of the same user and application from the same address
    /// this soon after the last message about them are not reported again (default "0s":
    /// every login is, as the seed says).
    inform_interval: Option<String>,
}

/// An `[[approval_profile]]`, checked; the wiring adds the courier.
#[derive(Debug, Clone)]
pub struct ApprovalProfileConfig {
    pub name: String,
    pub kind: ProfileKind,
    /// Base URL of approval links without a trailing slash: the profile's `server`, else
    /// `[server] public_url`; empty for an information profile with neither (it sends no link).
    pub server: String,
    pub message: MessageTemplate,
    /// The message as written (or the default), for `config show`.
    pub message_text: String,
    pub link_expiration: Duration,
    pub delivery: ApprovalDelivery,
    /// The `[[mail_profile]]` or `[[sms_profile]]` the messages go through (or a file
    /// `[[delivery_mechanism]]`).
    pub transport: String,
    /// The key `transport` was given as: `mail_profile`, `sms_profile` or `delivery_mechanism`.
    pub transport_key: &'static str,
    pub email_subject: String,
    pub default_recipient: Option<String>,
    /// The fallback directories, in order.
    pub directories: Vec<String>,
    pub methods: Vec<AuthMethod>,
    /// Information profiles: see `inform_interval`; zero for approval profiles.
    pub inform_interval: Duration,
}

/// Everything Approved OTP needs from the file.
#[derive(Debug, Clone, Default)]
pub struct ApprovalConfig {
    /// Every `[[approval_profile]]`, in the order of the file.
    pub profiles: Vec<ApprovalProfileConfig>,
    /// Every `[[policy]]`, in the order of the file (the order they are tried in).
    pub policies: Vec<Policy>,
    /// `[approval] default_profile`: every user's profile when there are no policies.
    pub default_profile: Option<String>,
    /// `[approval] grace_period`.
    pub grace_period: Duration,
    /// `[approval] rejection_cooldown`.
    pub rejection_cooldown: Duration,
    /// `[outbox]`.
    pub retry: RetrySchedule,
}

/// Subjects of e-mails to managers when a profile sets none.
pub const DEFAULT_APPROVAL_SUBJECT: &str = "Sign-in approval needed";
pub const DEFAULT_INFORMATION_SUBJECT: &str = "Sign-in notice";
/// The seed's suggested link lifetime ("a reasonable value (e.g., 60 minutes)").
const DEFAULT_LINK_EXPIRATION: Duration = Duration::from_secs(60 * 60);
const MAX_LINK_EXPIRATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Every login informs the manager, as the seed says; set an interval for clients that bind
/// per request.
pub const DEFAULT_INFORM_INTERVAL: Duration = Duration::ZERO;
const MAX_INFORM_INTERVAL: Duration = Duration::from_secs(24 * 3600);
pub(super) const DEFAULT_REJECTION_COOLDOWN: Duration = Duration::from_secs(300);
pub(super) const MAX_REJECTION_COOLDOWN: Duration = Duration::from_secs(24 * 3600);
pub(super) const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(120);
pub(super) const MAX_GRACE_PERIOD: Duration = Duration::from_secs(3600);

/// What profiles may refer to: the names of the directories, mail and SMS profiles.
pub(super) struct Referents<'c> {
    pub(super) public_url: Option<&'c str>,
    pub(super) directories: &'c [DirectoryConfig],
    pub(super) mail_profiles: &'c [MailProfile],
    pub(super) sms_profiles: &'c [SmsProfile],
    /// Names of the delivery mechanisms of type `file`.
    pub(super) file_mechanisms: Vec<&'c str>,
}

/// The settings of one profile that depend on its type.
struct KindParts {
    server: String,
    /// `None` when the message is wrong (reported).
    message: Option<MessageTemplate>,
    message_text: String,
    email_subject: String,
}

impl Validator<'_> {
    /// Every `[[approval_profile]]`, names unique; one with a part that cannot be built (its
    /// type, delivery, transport or message) is left out, and reported.
    pub(super) fn approval_profiles(
        &mut self,
        sections: &[(ApprovalProfileSection, Span)],
        refs: &Referents<'_>,
    ) -> Vec<ApprovalProfileConfig> {
        let mut seen = BTreeSet::new();
        let mut profiles = Vec::new();
        for (i, (p, span)) in sections.iter().enumerate() {
            let key = format!("approval_profile[{i}]");
            if !seen.insert(p.name.as_str()) {
                self.key_error(
                    span,
                    "name",
                    format!("{key}.name"),
                    format!("approval profile {:?} is defined twice", p.name),
                );
            }
            if p.name.trim().is_empty() {
                self.key_error(span, "name", format!("{key}.name"), "must not be empty");
            }
            profiles.extend(self.approval_profile(p, span, &key, refs));
        }
        profiles
    }

    fn approval_profile(
        &mut self,
        p: &ApprovalProfileSection,
        span: &Span,
        key: &str,
        refs: &Referents<'_>,
    ) -> Option<ApprovalProfileConfig> {
        let kind = match p.kind.as_str() {
            "information" => Some(ProfileKind::Information),
            "approval" => Some(ProfileKind::Approval),
            other => {
                self.key_error(
                    span,
                    "type",
                    format!("{key}.type"),
                    format!("{other:?}: expected \"information\" or \"approval\""),
                );
                None
            }
        };
        let delivery = match p.delivery.as_str() {
            "email" => Some(ApprovalDelivery::Email),
            "sms" => Some(ApprovalDelivery::Sms),
            other => {
                self.key_error(
                    span,
                    "delivery",
                    format!("{key}.delivery"),
                    format!("{other:?}: expected \"email\" or \"sms\""),
                );
                None
            }
        };
        let parts = kind.map(|k| self.kind_parts(p, k, span, key, refs.public_url));
        let transport = delivery.and_then(|d| self.approval_transport(p, d, span, key, refs));
        if let Some(d) = delivery {
            self.default_recipient(p, d, span, key);
        }
        let link_expiration = self.link_expiration(p.link_expiration.as_ref(), span, key);
        let directories = self.fallback_directories(p, span, key, refs.directories);
        let methods = self.auth_methods(span, key, "methods", p.methods.as_deref());
        let (kind, parts) = (kind?, parts?);
        Some(ApprovalProfileConfig {
            name: p.name.clone(),
            kind,
            server: parts.server,
            message: parts.message?,
            message_text: parts.message_text,
            link_expiration,
            delivery: delivery?,
            transport_key: match (&p.delivery_mechanism, delivery?) {
                (Some(_), _) => "delivery_mechanism",
                (None, ApprovalDelivery::Email) => "mail_profile",
                (None, ApprovalDelivery::Sms) => "sms_profile",
            },
            transport: transport?,
            email_subject: parts.email_subject,
            default_recipient: p.default_recipient.clone(),
            directories,
            methods,
            inform_interval: self.inform_interval(p, kind, span, key),
        })
    }

    /// `inform_interval`: only for information profiles; at most a day.
    fn inform_interval(
        &mut self,
        p: &ApprovalProfileSection,
        kind: ProfileKind,
        span: &Span,
        key: &str,
    ) -> Duration {
        let field = format!("{key}.inform_interval");
        if kind == ProfileKind::Approval {
            if p.inform_interval.is_some() {
                let message =
                    "only for type = \"information\" (an approval is never repeated while pending)";
                self.key_error(span, "inform_interval", field, message.to_owned());
            }
            return Duration::ZERO;
        }
        let interval = self.duration(
            span,
            &field,
            p.inform_interval.as_deref(),
            DEFAULT_INFORM_INTERVAL,
        );
        if interval > MAX_INFORM_INTERVAL {
            self.key_error(span, "inform_interval", field, "at most 1d".to_owned());
            return DEFAULT_INFORM_INTERVAL;
        }
        interval
    }

    /// The server, message and subject, whose defaults and rules follow the profile's type.
    fn kind_parts(
        &mut self,
        p: &ApprovalProfileSection,
        kind: ProfileKind,
        span: &Span,
        key: &str,
        public_url: Option<&str>,
    ) -> KindParts {
        if let Some(url) = &p.server
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.key_error(
                span,
                "server",
                format!("{key}.server"),
                format!("{url:?} is not an http(s) URL"),
            );
        }
        let server = p.server.as_deref().or(public_url).unwrap_or_default();
        if kind == ProfileKind::Approval && server.is_empty() {
            self.error(
                Some(span.clone()),
                format!("{key}.server"),
                "missing: an approval profile needs server (or [server] public_url) to build \
                 its links",
            );
        }
        let (default_message, default_subject) = match kind {
            ProfileKind::Information => (DEFAULT_INFORMATION_MESSAGE, DEFAULT_INFORMATION_SUBJECT),
            ProfileKind::Approval => (DEFAULT_APPROVAL_MESSAGE, DEFAULT_APPROVAL_SUBJECT),
        };
        let message_text = p.message.as_deref().unwrap_or(default_message);
        let message = self.message(message_text, kind, span, key);
        KindParts {
            server: server.trim_end_matches('/').to_owned(),
            message,
            message_text: message_text.to_owned(),
            email_subject: p
                .email_subject
                .clone()
                .unwrap_or_else(|| default_subject.to_owned()),
        }
    }

    /// The message template: its placeholders known, `{link}` in an approval message (the
    /// manager answers through it) and in no information message (there is no link to send).
    fn message(
        &mut self,
        text: &str,
        kind: ProfileKind,
        span: &Span,
        key: &str,
    ) -> Option<MessageTemplate> {
        let field = format!("{key}.message");
        let template = match MessageTemplate::parse(text) {
            Ok(t) => t,
            Err(e) => {
                self.key_error(span, "message", field, e);
                return None;
            }
        };
        let problem = match kind {
            ProfileKind::Approval if !template.uses(Placeholder::Link) => {
                Some("an approval message must contain {link}: the manager answers through it")
            }
            ProfileKind::Information
                if template.uses(Placeholder::Link) || template.uses(Placeholder::Expires) =>
            {
                Some("an information profile sends no link: {link} and {expires} would be empty")
            }
            _ => None,
        };
        match problem {
            Some(p) => {
                self.key_error(span, "message", field, p);
                None
            }
            None => Some(template),
        }
    }

    /// The mail or SMS profile the delivery needs (the other kind is refused), and the e-mail
    /// subject only where e-mail is sent.
    fn approval_transport(
        &mut self,
        p: &ApprovalProfileSection,
        delivery: ApprovalDelivery,
        span: &Span,
        key: &str,
        refs: &Referents<'_>,
    ) -> Option<String> {
        if let Some(m) = &p.delivery_mechanism {
            for (f, set) in [
                ("mail_profile", p.mail_profile.is_some()),
                ("sms_profile", p.sms_profile.is_some()),
            ] {
                if set {
                    let message = "give delivery_mechanism or a mail/SMS profile, not both";
                    self.key_error(span, f, format!("{key}.{f}"), message.to_owned());
                }
            }
            if !refs.file_mechanisms.contains(&m.as_str()) {
                let message = format!("{m:?} names no [[delivery_mechanism]] of type \"file\"");
                self.key_error(
                    span,
                    "delivery_mechanism",
                    format!("{key}.delivery_mechanism"),
                    message,
                );
                return None;
            }
            return Some(m.clone());
        }
        let (field, reference, known, misplaced): (_, _, Vec<&str>, _) = match delivery {
            ApprovalDelivery::Email => (
                "mail_profile",
                &p.mail_profile,
                refs.mail_profiles.iter().map(|m| m.name.as_str()).collect(),
                vec![("sms_profile", p.sms_profile.is_some())],
            ),
            ApprovalDelivery::Sms => (
                "sms_profile",
                &p.sms_profile,
                refs.sms_profiles.iter().map(|s| s.name.as_str()).collect(),
                vec![
                    ("mail_profile", p.mail_profile.is_some()),
                    ("email_subject", p.email_subject.is_some()),
                ],
            ),
        };
        for (f, _) in misplaced.into_iter().filter(|(_, set)| *set) {
            let message = format!("only for delivery = \"{}\"", other_delivery(delivery));
            self.key_error(span, f, format!("{key}.{f}"), message);
        }
        match reference {
            None => {
                self.error(
                    Some(span.clone()),
                    format!("{key}.{field}"),
                    format!(
                        "missing: delivery = \"{}\" needs {field}",
                        delivery.as_str()
                    ),
                );
                None
            }
            Some(r) if !known.contains(&r.as_str()) => {
                let message = format!("{r:?} names no [[{field}]]");
                self.key_error(span, field, format!("{key}.{field}"), message);
                None
            }
            Some(r) => Some(r.clone()),
        }
    }

    /// `default_recipient`: an address of the delivery's kind.
    fn default_recipient(
        &mut self,
        p: &ApprovalProfileSection,
        delivery: ApprovalDelivery,
        span: &Span,
        key: &str,
    ) {
        let Some(r) = &p.default_recipient else {
            return;
        };
        let (fits, expected) = match delivery {
            ApprovalDelivery::Email => (is_email_address(r), "an e-mail address such as x@y"),
            ApprovalDelivery::Sms => (
                is_phone_number(r),
                "a phone number such as +90 555 010 0000",
            ),
        };
        if !fits {
            self.key_error(
                span,
                "default_recipient",
                format!("{key}.default_recipient"),
                format!(
                    "{r:?} is not {expected} (delivery = \"{}\")",
                    delivery.as_str()
                ),
            );
        }
    }

    /// `link_expiration`: whole minutes (the seed's unit) or a duration.
    fn link_expiration(&mut self, value: Option<&toml::Value>, span: &Span, key: &str) -> Duration {
        let field = format!("{key}.link_expiration");
        let d = match value {
            None => return DEFAULT_LINK_EXPIRATION,
            Some(toml::Value::Integer(n)) => u64::try_from(*n)
                .ok()
                .and_then(|m| m.checked_mul(60))
                .map(Duration::from_secs)
                .unwrap_or(Duration::ZERO),
            Some(toml::Value::String(t)) => match super::parse_duration(t) {
                Some(d) => d,
                None => {
                    let message = format!("{t:?} is not a duration such as 30m or 2h");
                    self.key_error(span, "link_expiration", field, message);
                    return DEFAULT_LINK_EXPIRATION;
                }
            },
            Some(_) => {
                let message = "expected minutes (60) or a duration (\"60m\")";
                self.key_error(span, "link_expiration", field, message);
                return DEFAULT_LINK_EXPIRATION;
            }
        };
        if d.is_zero() || d > MAX_LINK_EXPIRATION {
            self.key_error(
                span,
                "link_expiration",
                field,
                "must be longer than zero and at most 7 days",
            );
            return DEFAULT_LINK_EXPIRATION;
        }
        d
    }

    /// `fallback_directories`: at least one, each a `[[directory]]`, none twice.
    fn fallback_directories(
        &mut self,
        p: &ApprovalProfileSection,
        span: &Span,
        key: &str,
        directories: &[DirectoryConfig],
    ) -> Vec<String> {
        let field = "fallback_directories";
        if p.fallback_directories.is_empty() {
            self.key_error(
                span,
                field,
                format!("{key}.{field}"),
                "must name at least one [[directory]]",
            );
        }
        let mut seen = BTreeSet::new();
        for d in &p.fallback_directories {
            if !directories.iter().any(|x| x.name() == d) {
                let message = format!("{d:?} names no [[directory]]");
                self.key_error(span, field, format!("{key}.{field}"), message);
            } else if !seen.insert(d.as_str()) {
                let message = format!("{d:?} is listed twice");
                self.key_error(span, field, format!("{key}.{field}"), message);
            }
        }
        p.fallback_directories.clone()
    }
}

fn other_delivery(d: ApprovalDelivery) -> &'static str {
    match d {
        ApprovalDelivery::Email => "sms",
        ApprovalDelivery::Sms => "email",
    }
}

/// Looks like a bare e-mail address: one `@` with something on each side, no spaces or
/// angle brackets (a default recipient is an address, not a `Name <address>` header).
fn is_email_address(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

/// Looks like an international phone number: `+`, then digits, spaces and dashes, with 3 to
/// 15 digits (ITU-T E.164 allows at most 15).
fn is_phone_number(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('+') else {
        return false;
    };
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    rest.chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        && (3..=15).contains(&digits)
}
