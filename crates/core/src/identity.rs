//! Authentication and authorization identities in the authzId form of RFC 4513 §5.2.1.8 as the
//! Ping protocol uses them (spec §2): `dn:<DN>` or `u:<username>`. Prefixes are compared
//! case-insensitively, as the UnboundID SDK's own server does.
//!
//! This is the edge every identity crosses, on every front and in every operation: one that
//! holds a control character (which could forge lines in logs and audit output) or is longer
//! than [`MAX_IDENTITY_LEN`] is malformed here, so it gets the same answer as any other
//! malformed identity wherever it is sent.

use crate::AuthError;
use crate::model::Dn;

/// Longest identity accepted, in bytes (a DN of a deep tree with long RDNs fits easily).
pub const MAX_IDENTITY_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Dn(Dn),
    Username(String),
}

impl Identity {
    /// Parses an authentication identity; an empty DN or username is malformed here (the
    /// anonymous `dn:` is only meaningful as an authorization identity).
    pub fn parse(text: &str) -> Result<Identity, AuthError> {
        let malformed = || AuthError::MalformedIdentity(text.chars().take(80).collect());
        if text.len() > MAX_IDENTITY_LEN || text.chars().any(char::is_control) {
            return Err(malformed());
        }
        if let Some(rest) = strip_prefix_ci(text, "dn:") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(malformed());
            }
            Ok(Identity::Dn(Dn::new(rest)))
        } else if let Some(rest) = strip_prefix_ci(text, "u:") {
            if rest.is_empty() {
                return Err(malformed());
            }
            Ok(Identity::Username(rest.to_owned()))
        } else {
            Err(malformed())
        }
    }

    /// A bare DN as Get Supported OTP Delivery Mechanisms takes it (spec §7.2), under the same
    /// rules as `dn:<DN>`.
    pub fn parse_dn(dn: &str) -> Result<Identity, AuthError> {
        let malformed = || AuthError::MalformedIdentity(dn.chars().take(80).collect());
        // The same DN is as long here as in `dn:<DN>`, so both forms accept the same DNs.
        if dn.len() + "dn:".len() > MAX_IDENTITY_LEN || dn.chars().any(char::is_control) {
            return Err(malformed());
        }
        match dn.trim() {
            "" => Err(malformed()),
            dn => Ok(Identity::Dn(Dn::new(dn))),
        }
    }

    /// The identity as a client is trusted for it after a success: its exact meaning (prefix
    /// and name case, DN spacing and escapes normalized), not the looser [`limit_key`]
    /// skeleton, so that signing in as `u:a.lice` never makes a client trusted for `u:alice`.
    ///
    /// [`limit_key`]: Identity::limit_key
    pub fn trust_key(text: &str) -> String {
        match Identity::parse(text) {
            Ok(Identity::Dn(dn)) => format!("dn:{}", dn.normalized()),
            Ok(Identity::Username(name)) => format!("u:{}", name.trim().to_lowercase()),
            Err(_) => format!("malformed:{}", text.to_lowercase()),
        }
    }

    /// The identity as rate limits count it, from the text alone, so a known and an unknown
    /// user are counted the same way. Directories match names loosely (LDAP's caseIgnoreMatch
    /// ignores case and insignificant spaces, RFC 4518; attribute types have OID aliases), so
    /// an exact key would give an attacker a fresh budget for every spelling of one user
    /// (`u:alice`, `u:alice `, `u:ALICE`, `dn:0.9.2342.19200300.100.1.1=alice,…`). The key is a
    /// skeleton that folds all of those together: the name of `u:` or the value of a `dn:`'s
    /// first RDN, NFKC-normalized and lower-cased, and everything but letters and digits
    /// dropped. Distinct users whose skeletons collide share a budget, which errs on the
    /// side of limiting.
    pub fn limit_key(text: &str) -> String {
        let name = match Identity::parse(text) {
            Ok(Identity::Dn(dn)) => first_rdn_values(&dn),
            Ok(Identity::Username(name)) => name,
            Err(_) => {
                return format!(
                    "malformed:{}",
                    text.chars().take(256).collect::<String>().to_lowercase()
                );
            }
        };
        let folded = skeleton(&name);
        if folded.is_empty() {
            format!("raw:{}", name.to_lowercase())
        } else {
            format!("id:{folded}")
        }
    }
}

/// The values of a DN's first RDN, without their attribute types.
fn first_rdn_values(dn: &Dn) -> String {
    let normalized = dn.normalized();
    let first = normalized.split(',').next().unwrap_or_default();
    first
        .split('+')
        .map(|ava| ava.split_once('=').map_or(ava, |(_, v)| v))
        .collect::<Vec<_>>()
        .join("+")
}

/// Letters and digits only, after compatibility normalization (NFKC, as LDAP's string
/// preparation does, RFC 4518 §2.3: fullwidth, circled and mathematical letters become plain
/// ones) and lower-casing.
fn skeleton(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let lowered: String = name.nfkc().flat_map(char::to_lowercase).collect();
    lowered.nfkc().filter(|c| c.is_alphanumeric()).collect()
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_anything_else_is_malformed() {
        assert_eq!(
            Identity::parse("u:alice").ok(),
            Some(Identity::Username("alice".into()))
        );
        assert_eq!(
            Identity::parse("U:alice").ok(),
            Some(Identity::Username("alice".into()))
        );
        assert_eq!(
            Identity::parse("dn:uid=alice,dc=x").ok(),
            Some(Identity::Dn(Dn::new("uid=alice,dc=x")))
        );
        for bad in ["alice", "u:", "dn:", "dn:  ", "x:alice", "", "u:a\u{0}b"] {
            assert!(
                matches!(Identity::parse(bad), Err(AuthError::MalformedIdentity(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn control_characters_and_overlong_identities_are_malformed_in_both_forms() {
        let long = format!("u:{}", "a".repeat(MAX_IDENTITY_LEN));
        let long_dn = format!("dn:uid={}", "a".repeat(MAX_IDENTITY_LEN));
        for bad in [
            "u:alice\nforged line",
            "dn:uid=alice\r\n,dc=x",
            "dn:uid=\u{1b}[31malice,dc=x",
            "u:alice\u{7f}",
            long.as_str(),
            long_dn.as_str(),
        ] {
            assert!(
                matches!(Identity::parse(bad), Err(AuthError::MalformedIdentity(_))),
                "{bad:?}"
            );
        }
        assert!(Identity::parse_dn("uid=a\n,dc=x").is_err());
        assert!(Identity::parse_dn("uid=a,dc=x\r").is_err());
        assert!(Identity::parse_dn(&"a".repeat(MAX_IDENTITY_LEN + 1)).is_err());
        let just_fits = format!("u:{}", "a".repeat(MAX_IDENTITY_LEN - 2));
        assert!(Identity::parse(&just_fits).is_ok());
    }

    #[test]
    fn spellings_that_parse_alike_share_a_limit_key() {
        let alice = Identity::limit_key("u:alice");
        for spelling in [
            "U:Alice",
            "u:alice ",
            "u:  a l i c e",
            "u:ali\u{ad}ce",
            "u:ali\u{200b}ce",
            "u:\u{ff41}lice",
            "u:\u{1d41a}lice",
            "u:\u{24d0}lice",
            "u:ALICE.",
            "dn:uid=alice,ou=people,dc=x",
            "DN:UID=alice, dc=x",
            "dn:0.9.2342.19200300.100.1.1=alice,dc=x",
            "dn:uid=\\61lice,dc=x",
            "dn:uid=alice\\20,dc=x",
        ] {
            assert_eq!(Identity::limit_key(spelling), alice, "{spelling:?}");
        }
        assert_ne!(alice, Identity::limit_key("u:bob"));
        assert_ne!(alice, Identity::limit_key("u:alice2"));
    }

    #[test]
    fn a_dn_is_as_long_in_both_forms() {
        let longest = "x".repeat(MAX_IDENTITY_LEN - 3);
        assert!(Identity::parse(&format!("dn:{longest}")).is_ok());
        assert!(Identity::parse_dn(&longest).is_ok());
        let over = format!("{longest}x");
        assert!(Identity::parse(&format!("dn:{over}")).is_err());
        assert!(Identity::parse_dn(&over).is_err());
    }
}
