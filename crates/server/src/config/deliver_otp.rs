//! `[deliver_otp]` (PingDirectory's Deliver OTP extended operation handler: which directories
//! resolve users, which mechanisms are tried, how long a code lives) and
//! `[password_generator]`, which makes the codes.

use std::collections::BTreeMap;
use std::time::Duration;

use countersign_core::generator::PasswordGenerator;
use countersign_core::otp::OtpSettings;
use serde::Deserialize;

use super::delivery::{MechanismConfig, MechanismSection};
use super::directories::DirectoryConfig;
use super::validator::{ConfigError, Span, Validator};

/// `[password_generator]`: PingDirectory's Random Password Generator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GeneratorSection {
    /// Named character sets, e.g. `{ numeric = "0123456789" }`.
    character_sets: BTreeMap<String, String>,
    /// `set:count[,set:count...]`, e.g. `numeric:6`.
    format: String,
}

/// `[deliver_otp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliverOtpSection {
    /// Serve the Deliver OTP operation (default true). When false it is neither advertised in
    /// the LDAP root DSE nor served: the LDAP front answers it as any unsupported extended
    /// operation and `POST /api/v1/otp/deliver` answers 404. Codes delivered before stay
    /// usable until they expire; Get Supported and the DELIVERED-OTP SASL mechanism are other
    /// handlers and stay.
    enabled: Option<bool>,
    /// Free text describing this handler (shown by `countersign config show`).
    description: Option<String>,
    /// Directory (or ordered list of fallback directories) whose identity mapper resolves users.
    identity_mapper: OneOrMany,
    /// Mechanisms tried when neither the request nor the user names any.
    default_mechanisms: Vec<String>,
    /// Default `5m`.
    otp_validity: Option<String>,
    /// Wrong tries after which an OTP is voided; default 5.
    max_failed_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverOtpConfig {
    /// Whether the Deliver OTP operation is advertised and served.
    pub enabled: bool,
    pub description: Option<String>,
    pub directories: Vec<String>,
    pub default_mechanisms: Vec<String>,
    pub otp_validity: Duration,
    pub max_failed_attempts: u32,
}

/// The generator of OTPs, with the settings it was made from (for `config show`).
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub character_sets: BTreeMap<String, String>,
    pub format: String,
    pub generator: PasswordGenerator,
}

impl GeneratorConfig {
    /// Six digits, when `[password_generator]` is absent.
    fn default_numeric() -> Self {
        Self {
            character_sets: BTreeMap::from([("numeric".to_owned(), "0123456789".to_owned())]),
            format: "numeric:6".to_owned(),
            generator: PasswordGenerator::numeric(6),
        }
    }
}

impl Validator<'_> {
    pub(super) fn generator(
        &mut self,
        section: Option<(GeneratorSection, Span)>,
    ) -> Option<GeneratorConfig> {
        let Some((g, span)) = section else {
            return Some(GeneratorConfig::default_numeric());
        };
        match PasswordGenerator::new(&g.character_sets, &g.format) {
            Ok(generator) => Some(GeneratorConfig {
                character_sets: g.character_sets,
                format: g.format,
                generator,
            }),
            Err(e) => {
                let line = self
                    .find_key_line(span.clone(), "format")
                    .unwrap_or_else(|| self.line_of(span.start));
                self.errors.push(ConfigError {
                    line: Some(line),
                    key: "password_generator.format".into(),
                    message: e.to_string(),
                });
                None
            }
        }
    }

    /// `[deliver_otp]`, its references checked against the directories and mechanisms
    /// (`sections` are all mechanisms written, `mechanisms` those that validated).
    pub(super) fn deliver_otp(
        &mut self,
        (d, span): (DeliverOtpSection, Span),
        directories: &[DirectoryConfig],
        sections: &[(MechanismSection, Span)],
        mechanisms: &[MechanismConfig],
    ) -> DeliverOtpConfig {
        let mappers = match &d.identity_mapper {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        if mappers.is_empty() {
            self.error(
                Some(span.clone()),
                "deliver_otp.identity_mapper",
                "must name at least one [[directory]]",
            );
        }
        for m in &mappers {
            if !directories.iter().any(|d| d.name() == m) {
                self.key_error(
                    &span,
                    "identity_mapper",
                    "deliver_otp.identity_mapper",
                    format!("{m:?} names no [[directory]]"),
                );
            }
        }
        self.default_mechanisms(&d.default_mechanisms, &span, sections, mechanisms);
        let otp_validity = self.duration(
            &span,
            "deliver_otp.otp_validity",
            d.otp_validity.as_deref(),
            OtpSettings::default().validity,
        );
        if otp_validity.is_zero() {
            self.error(
                Some(span.clone()),
                "deliver_otp.otp_validity",
                "must be longer than zero",
            );
        }
        let max_failed_attempts = d
            .max_failed_attempts
            .unwrap_or(OtpSettings::default().max_failed_attempts);
        if max_failed_attempts == 0 {
            self.error(
                Some(span.clone()),
                "deliver_otp.max_failed_attempts",
                "must be at least 1",
            );
        }
        DeliverOtpConfig {
            enabled: d.enabled.unwrap_or(true),
            description: d.description,
            directories: mappers,
            default_mechanisms: d.default_mechanisms,
            otp_validity,
            max_failed_attempts,
        }
    }

    /// `default_mechanisms`: at least one, each naming an enabled mechanism.
    fn default_mechanisms(
        &mut self,
        names: &[String],
        span: &Span,
        sections: &[(MechanismSection, Span)],
        mechanisms: &[MechanismConfig],
    ) {
        let key = "deliver_otp.default_mechanisms";
        if names.is_empty() {
            self.error(
                Some(span.clone()),
                key,
                "must name at least one [[delivery_mechanism]]",
            );
        }
        for m in names {
            match mechanisms.iter().find(|x| x.name.eq_ignore_ascii_case(m)) {
                None if !sections.iter().any(|(x, _)| x.name.eq_ignore_ascii_case(m)) => {
                    self.key_error(
                        span,
                        "default_mechanisms",
                        key,
                        format!("{m:?} names no [[delivery_mechanism]]"),
                    );
                }
                Some(x) if !x.enabled => {
                    self.key_error(
                        span,
                        "default_mechanisms",
                        key,
                        format!("{m:?} is not enabled"),
                    );
                }
                _ => {}
            }
        }
    }
}
