//! `[[policy]]`, `[approval]` and `[outbox]`: which profile applies to whom, the settings of
//! the approval flow, and the retry schedule of messages to managers.

use std::time::Duration;

use countersign_core::approval::{Policy, ValuePattern};
use countersign_core::outbox::RetrySchedule;

use super::approval::*;
use super::directories::DirectoryConfig;
use super::validator::{Span, Validator};
use serde::Deserialize;

/// `[[policy]]`: which users get which profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicySection {
    /// How the audit names it; default `policy N` (its place in the file, from 1).
    name: Option<String>,
    profile: String,
    /// One of the profile's fallback directories: the policy applies to its users.
    directory: String,
    attribute: String,
    /// Exact (any case), `*` wildcards, or `re:REGEX` (anchored, any case).
    values: Vec<String>,
}

/// `[approval]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalSection {
    /// The profile of every user when there are no policies.
    default_profile: Option<String>,
    /// After an approval, the same user and application get in without a new one for this
    /// long; default `2m`, at most `1h`.
    grace_period: Option<String>,
    /// After a rejection, the same user and application are refused (as rejected) without
    /// asking again for this long, so a rejected login cannot pester the manager; default
    /// `5m`, `0s` to ask again at once, at most `1d`.
    rejection_cooldown: Option<String>,
}

/// `[outbox]`: retries of messages to managers that could not be sent at once.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutboxSection {
    /// Wait after the first failure; doubled after each further one.
    first_retry: Option<String>,
    /// The longest wait between two tries.
    max_retry_delay: Option<String>,
    /// A message not sent by then is given up (and audited).
    give_up_after: Option<String>,
}

impl Validator<'_> {
    /// Every `[[policy]]`, in order, its profile and directory checked against the profiles as
    /// written (so a profile's own mistake is not told again through its policies).
    pub(super) fn policies(
        &mut self,
        policies: &[(PolicySection, Span)],
        sections: &[(ApprovalProfileSection, Span)],
        directories: &[DirectoryConfig],
    ) -> Vec<Policy> {
        let mut out: Vec<Policy> = Vec::new();
        for (i, (p, span)) in policies.iter().enumerate() {
            let key = format!("policy[{i}]");
            let name = p
                .name
                .clone()
                .unwrap_or_else(|| format!("policy {}", i + 1));
            if out.iter().any(|x| x.name == name) {
                let message = format!("policy {name:?} is defined twice");
                self.key_error(span, "name", format!("{key}.name"), message);
            }
            self.policy_references(p, span, &key, sections, directories);
            let attribute = p.attribute.trim().to_lowercase();
            if attribute.is_empty() {
                let message = "must name an attribute, e.g. memberOf";
                self.key_error(span, "attribute", format!("{key}.attribute"), message);
            }
            if p.values.is_empty() {
                let message = "must hold at least one value";
                self.key_error(span, "values", format!("{key}.values"), message);
            }
            let mut values = Vec::new();
            for (j, v) in p.values.iter().enumerate() {
                match ValuePattern::parse(v) {
                    Ok(pattern) => values.push(pattern),
                    Err(e) => self.key_error(span, "values", format!("{key}.values[{j}]"), e),
                }
            }
            out.push(Policy {
                name,
                profile: p.profile.clone(),
                directory: p.directory.clone(),
                attribute,
                values,
            });
        }
        out
    }

    /// A policy's profile exists, and its directory exists and is one of the profile's
    /// fallback directories (the seed: "must be one of the approved OTP profile's fallback
    /// authentication profiles").
    fn policy_references(
        &mut self,
        p: &PolicySection,
        span: &Span,
        key: &str,
        sections: &[(ApprovalProfileSection, Span)],
        directories: &[DirectoryConfig],
    ) {
        let profile = sections.iter().find(|(s, _)| s.name == p.profile);
        if profile.is_none() {
            let message = format!("{:?} names no [[approval_profile]]", p.profile);
            self.key_error(span, "profile", format!("{key}.profile"), message);
        }
        if !directories.iter().any(|d| d.name() == p.directory) {
            let message = format!("{:?} names no [[directory]]", p.directory);
            self.key_error(span, "directory", format!("{key}.directory"), message);
            return;
        }
        if let Some((profile, _)) = profile
            && !profile.fallback_directories.contains(&p.directory)
        {
            let message = format!(
                "directory {:?} is not one of approval profile {:?}'s fallback_directories",
                p.directory, p.profile
            );
            self.key_error(span, "directory", format!("{key}.directory"), message);
        }
    }

    /// `[approval]`: the default profile (needed when profiles exist and no policy picks one)
    /// and the grace period.
    pub(super) fn approval_settings(
        &mut self,
        a: &ApprovalSection,
        span: &Span,
        sections: &[(ApprovalProfileSection, Span)],
        any_policy: bool,
    ) -> (Option<String>, Duration) {
        let at = (!span.is_empty()).then(|| span.clone());
        match &a.default_profile {
            Some(d) if !sections.iter().any(|(s, _)| &s.name == d) => {
                let message = format!("{d:?} names no [[approval_profile]]");
                self.key_error(span, "default_profile", "approval.default_profile", message);
            }
            None if !sections.is_empty() && !any_policy => self.error(
                at,
                "approval.default_profile",
                "missing: with approval profiles and no [[policy]], every user gets the default \
                 profile",
            ),
            _ => {}
        }
        let grace = self.duration(
            span,
            "approval.grace_period",
            a.grace_period.as_deref(),
            DEFAULT_GRACE_PERIOD,
        );
        let grace = if grace > MAX_GRACE_PERIOD {
            let message = "at most 1h: an approval admits later logins only briefly";
            self.key_error(span, "grace_period", "approval.grace_period", message);
            DEFAULT_GRACE_PERIOD
        } else {
            grace
        };
        (a.default_profile.clone(), grace)
    }

    /// `[approval] rejection_cooldown`.
    pub(super) fn rejection_cooldown(&mut self, a: &ApprovalSection, span: &Span) -> Duration {
        let cooldown = self.duration(
            span,
            "approval.rejection_cooldown",
            a.rejection_cooldown.as_deref(),
            DEFAULT_REJECTION_COOLDOWN,
        );
        if cooldown > MAX_REJECTION_COOLDOWN {
            let message = "at most 1d";
            self.key_error(
                span,
                "rejection_cooldown",
                "approval.rejection_cooldown",
                message,
            );
            return DEFAULT_REJECTION_COOLDOWN;
        }
        cooldown
    }

    /// `[outbox]`: the retry schedule, defaults from core's [`RetrySchedule::default`].
    pub(super) fn retry_schedule(&mut self, o: &OutboxSection, span: &Span) -> RetrySchedule {
        let defaults = RetrySchedule::default();
        let read = |v: &mut Self, field: &str, text: Option<&str>, default: Duration| {
            let key = format!("outbox.{field}");
            let d = v.duration(span, &key, text, default);
            if d.is_zero() {
                v.key_error(span, field, key, "must be longer than zero");
                return default;
            }
            d
        };
        let first_delay = read(
            self,
            "first_retry",
            o.first_retry.as_deref(),
            defaults.first_delay,
        );
        let max_delay = read(
            self,
            "max_retry_delay",
            o.max_retry_delay.as_deref(),
            defaults.max_delay,
        );
        let give_up_after = read(
            self,
            "give_up_after",
            o.give_up_after.as_deref(),
            defaults.give_up_after,
        );
        if max_delay < first_delay {
            self.key_error(
                span,
                "max_retry_delay",
                "outbox.max_retry_delay",
                "must not be shorter than first_retry",
            );
        }
        RetrySchedule {
            first_delay,
            max_delay,
            give_up_after,
        }
    }
}
