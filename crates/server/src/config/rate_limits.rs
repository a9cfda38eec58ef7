//! `[rate_limits]`: how often deliver and verify may be tried, per user and per client.

use countersign_core::ratelimit::Rate;
use serde::Deserialize;

use super::validator::{Span, Validator};

/// `[rate_limits]`: `N/DURATION` (e.g. `5/15m`) or `off`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitSection {
    deliver_per_user: Option<String>,
    deliver_per_client: Option<String>,
    verify_per_user: Option<String>,
    verify_per_client: Option<String>,
    /// Failed attempts per user from all clients together (docs/rate-limits.md).
    failures_per_user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub deliver_per_user: Option<Rate>,
    pub deliver_per_client: Option<Rate>,
    pub verify_per_user: Option<Rate>,
    pub verify_per_client: Option<Rate>,
    pub failures_per_user: Option<Rate>,
}

impl Validator<'_> {
    pub(super) fn rate_limits(
        &mut self,
        limits: &RateLimitSection,
        span: &Span,
    ) -> RateLimitConfig {
        let mut rate = |key: &str, text: &Option<String>, default: &str| -> Option<Rate> {
            let t = text.as_deref().unwrap_or(default);
            if t == "off" {
                return None;
            }
            let r = Rate::parse(t, super::parse_duration);
            if r.is_none() {
                self.error(
                    Some(span.clone()),
                    format!("rate_limits.{key}"),
                    format!("{t:?}: expected N/DURATION such as 5/15m, or off"),
                );
            }
            r
        };
        RateLimitConfig {
            deliver_per_user: rate("deliver_per_user", &limits.deliver_per_user, "5/15m"),
            deliver_per_client: rate("deliver_per_client", &limits.deliver_per_client, "60/1m"),
            verify_per_user: rate("verify_per_user", &limits.verify_per_user, "10/5m"),
            verify_per_client: rate("verify_per_client", &limits.verify_per_client, "120/1m"),
            failures_per_user: rate("failures_per_user", &limits.failures_per_user, "30/15m"),
        }
    }
}
