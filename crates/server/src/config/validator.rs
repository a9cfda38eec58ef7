//! What every area of the configuration shares: the error types, the [`Validator`] that collects
//! problems with their lines (spans of sections, `[[array]]` headers, `key = ` lines), and the
//! readers of values that recur across sections: durations, paths relative to the file, PEM
//! files and secrets given as `*_file` or `*_env`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use countersign_core::Secret;
use serde::de::DeserializeOwned;
use toml::Spanned;

/// Byte range of a section in the file (for a table, its header up to the next header).
pub(super) type Span = Range<usize>;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `delivery_mechanism[2].mail_profile`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// All problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a secret was read from, kept so `config show` can say so without showing the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A `*_file` key: the file's path.
    File(PathBuf),
    /// A `*_env` key: the variable's name.
    Env(String),
}

/// Which line a problem is reported on: the section's header, or the line of one of its keys
/// (falling back to the header when the key is not written on a line of its own).
#[derive(Debug, Clone, Copy)]
pub(super) enum At<'f> {
    Section,
    Field(&'f str),
}

/// Collects every problem of one file while the areas validate their sections.
pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
    base: &'a Path,
    pub(super) errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(text: &'a str, base: &'a Path) -> Self {
        Self {
            text,
            base,
            errors: Vec::new(),
        }
    }

    pub(super) fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    pub(super) fn error(
        &mut self,
        span: Option<Span>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line_of(s.start));
        self.errors.push(ConfigError {
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    /// An error on `field` inside the section at `span`, on that field's line when found.
    pub(super) fn key_error(
        &mut self,
        span: &Span,
        field: &str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = self
            .find_key_line(span.clone(), field)
            .unwrap_or_else(|| self.line_of(span.start));
        self.errors.push(ConfigError {
            line: Some(line),
            key: key.into(),
            message: message.into(),
        });
    }

    /// An error in the section at `span`, on the line `at` says.
    pub(super) fn report(
        &mut self,
        span: &Span,
        at: At<'_>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        match at {
            At::Section => self.error(Some(span.clone()), key, message),
            At::Field(field) => self.key_error(span, field, key, message),
        }
    }

    /// Deserializes one section or array item; on failure records the error, with the line of
    /// the offending key when the message names one.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: &Spanned<toml::Value>,
    ) -> Option<T> {
        match value.get_ref().clone().try_into::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                let message = e.message().trim().to_owned();
                let span = value.span();
                let line = field_named_in(&message)
                    .and_then(|field| self.find_key_line(span.clone(), &field))
                    .unwrap_or_else(|| self.line_of(span.start));
                self.errors.push(ConfigError {
                    line: Some(line),
                    key: key.to_owned(),
                    message,
                });
                None
            }
        }
    }

    /// An optional single section, defaulted when absent or unreadable, with its span (`0..0`
    /// when absent).
    pub(super) fn optional<T: DeserializeOwned + Default>(
        &mut self,
        key: &str,
        value: Option<&Spanned<toml::Value>>,
    ) -> (T, Span) {
        let span = value.map(|v| v.span()).unwrap_or(0..0);
        let section = value.and_then(|v| self.section(key, v)).unwrap_or_default();
        (section, span)
    }

    /// A section that must be present; `missing` says what to add.
    pub(super) fn required<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: Option<&Spanned<toml::Value>>,
        missing: &str,
    ) -> Option<(T, Span)> {
        match value {
            Some(v) => self.section(key, v).map(|s| (s, v.span())),
            None => {
                self.error(None, key, missing);
                None
            }
        }
    }

    /// Line of `field = ...` in the section starting at `span` (a table's span covers only its
    /// header, so the search runs on to the next header).
    pub(super) fn find_key_line(&self, span: Span, field: &str) -> Option<usize> {
        let start = span.start.min(self.text.len());
        let mut offset = start;
        for (i, line) in self.text[start..].split_inclusive('\n').enumerate() {
            let t = line.trim_start();
            if i > 0 && t.starts_with('[') {
                break;
            }
            if let Some(rest) = t.strip_prefix(field)
                && rest.trim_start().starts_with('=')
            {
                return Some(self.line_of(offset));
            }
            offset += line.len();
        }
        None
    }

    /// The items of an array of tables (`[[key]]`), each with the span of its header.
    pub(super) fn items<T: DeserializeOwned>(
        &mut self,
        key: &str,
        value: Option<&Spanned<toml::Value>>,
    ) -> Vec<(T, Span)> {
        let Some(value) = value else {
            return Vec::new();
        };
        let toml::Value::Array(items) = value.get_ref() else {
            self.error(
                Some(value.span()),
                key,
                format!("must be an array of tables: write [[{key}]]"),
            );
            return Vec::new();
        };
        // Array items carry no spans of their own; find each `[[key]]` header in order.
        let headers = self.headers_of(key);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let span = headers.get(i).cloned().unwrap_or_else(|| value.span());
            let spanned = Spanned::new(span.clone(), item.clone());
            if let Some(t) = self.section::<T>(&format!("{key}[{i}]"), &spanned) {
                out.push((t, span));
            }
        }
        out
    }

    /// Byte ranges from each `[[key]]` header to the next header.
    fn headers_of(&self, key: &str) -> Vec<Span> {
        let mut starts = Vec::new();
        let mut all_headers = Vec::new();
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if t.starts_with('[') {
                all_headers.push(offset);
                let inner = t.trim_start_matches('[').trim_end_matches(']').trim();
                if t.starts_with("[[") && inner == key {
                    starts.push(offset);
                }
            }
            offset += line.len();
        }
        starts
            .into_iter()
            .map(|s| {
                let end = all_headers
                    .iter()
                    .copied()
                    .find(|h| *h > s)
                    .unwrap_or(self.text.len());
                s..end
            })
            .collect()
    }

    /// Line of a top-level `key = ...`, `[key]` or `[[key]]`.
    pub(super) fn top_level_line(&self, key: &str) -> Option<usize> {
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            let header = t.trim_start_matches('[').trim_end_matches(']').trim();
            let assignment = t
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='));
            if (t.starts_with('[') && header == key) || assignment {
                return Some(self.line_of(offset));
            }
            offset += line.len();
        }
        None
    }

    /// A path from the file, relative ones taken from the file's folder.
    pub(super) fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn duration(
        &mut self,
        span: &Span,
        key: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Duration {
        match text {
            None => default,
            Some(t) => match super::parse_duration(t) {
                Some(d) => d,
                None => {
                    self.error(
                        Some(span.clone()),
                        key,
                        format!("{t:?} is not a duration such as 30s, 5m or 1h"),
                    );
                    default
                }
            },
        }
    }

    /// The bytes of a PEM file (certificates or a key), read once at start.
    pub(super) fn pem_file(
        &mut self,
        span: &Span,
        at: At<'_>,
        key: &str,
        p: &Path,
    ) -> Option<Vec<u8>> {
        let path = self.path(p);
        match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) => {
                self.report(
                    span,
                    at,
                    key,
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// A secret held in a file (its trailing line break dropped).
    pub(super) fn secret_file(&mut self, span: &Span, key: &str, path: &Path) -> Option<Secret> {
        let path = self.path(path);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(Secret::new(s.trim_end_matches(['\r', '\n']).to_owned())),
            Err(e) => {
                self.error(
                    Some(span.clone()),
                    key,
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// A secret held in an environment variable.
    pub(super) fn secret_env(&mut self, span: &Span, key: &str, var: &str) -> Option<Secret> {
        match std::env::var(var) {
            Ok(v) => Some(Secret::new(v)),
            Err(_) => {
                self.error(
                    Some(span.clone()),
                    key,
                    format!("environment variable {var} is not set"),
                );
                None
            }
        }
    }

    /// A secret given as `{name}_file` or `{name}_env` (at most one), with where it came from.
    /// `key` is the item's key (`directory[1]`); `both` is where "not both" is reported.
    pub(super) fn secret(
        &mut self,
        span: &Span,
        key: &str,
        name: &str,
        (file, env): (Option<&Path>, Option<&str>),
        both: At<'_>,
    ) -> Option<(Secret, SecretSource)> {
        match (file, env) {
            (Some(p), None) => self
                .secret_file(span, &format!("{key}.{name}_file"), p)
                .map(|s| (s, SecretSource::File(self.path(p)))),
            (None, Some(v)) => self
                .secret_env(span, &format!("{key}.{name}_env"), v)
                .map(|s| (s, SecretSource::Env(v.to_owned()))),
            (None, None) => None,
            (Some(_), Some(_)) => {
                self.report(
                    span,
                    both,
                    format!("{key}.{name}_file"),
                    format!("set {name}_file or {name}_env, not both"),
                );
                None
            }
        }
    }
}

/// The field a serde message complains about: "unknown field `x`" / "missing field `x`".
fn field_named_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}
