//! `[store]`: where countersign keeps OTPs, audit records and local users. (PostgreSQL gets its
//! own variant here.)

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::validator::{Span, Validator};

/// `[store]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreSection {
    /// `sqlite://PATH` (PostgreSQL comes later).
    url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Sqlite(PathBuf),
}

impl Validator<'_> {
    pub(super) fn store(&mut self, st: StoreSection, span: &Span) -> Option<StoreConfig> {
        match st
            .url
            .strip_prefix("sqlite://")
            .or_else(|| st.url.strip_prefix("sqlite:"))
        {
            Some(p) if !p.is_empty() => Some(StoreConfig::Sqlite(self.path(Path::new(p)))),
            _ => {
                self.error(
                    Some(span.clone()),
                    "store.url",
                    format!("{:?}: expected sqlite://PATH", st.url),
                );
                None
            }
        }
    }
}
