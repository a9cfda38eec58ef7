//! `[audit]`: how long audit records are kept.

use std::time::Duration;

use serde::Deserialize;

use super::validator::{Span, Validator};

/// `[audit]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditSection {
    /// Audit records older than this are deleted (checked at start and every hour), e.g.
    /// `400d`; `off` (the default) keeps them forever.
    retention: Option<String>,
}

impl Validator<'_> {
    /// `[audit] retention`; `None` keeps records forever.
    pub(super) fn audit_retention(
        &mut self,
        audit: &AuditSection,
        span: &Span,
    ) -> Option<Duration> {
        match audit.retention.as_deref() {
            None | Some("off") => None,
            Some(t) => match super::parse_duration(t).filter(|d| !d.is_zero()) {
                Some(d) => Some(d),
                None => {
                    self.key_error(
                        span,
                        "retention",
                        "audit.retention",
                        format!("{t:?}: expected a duration such as 400d, or off"),
                    );
                    None
                }
            },
        }
    }
}
