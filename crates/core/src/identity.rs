//! Authentication and authorization identities in the authzId form of RFC 4513 §5.2.1.8 as the
//! Ping protocol uses them (spec §2): `dn:<DN>` or `u:<username>`. Prefixes are compared
//! case-insensitively, as the UnboundID SDK's own server does.

use crate::OtpError;
use crate::model::Dn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Dn(Dn),
    Username(String),
}

impl Identity {
    /// Parses an authentication identity; an empty DN or username is malformed here (the
    /// anonymous `dn:` is only meaningful as an authorization identity).
    pub fn parse(text: &str) -> Result<Identity, OtpError> {
        let malformed = || OtpError::MalformedIdentity(text.chars().take(80).collect());
        if let Some(rest) = strip_prefix_ci(text, "dn:") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(malformed());
            }
            Ok(Identity::Dn(Dn::new(rest)))
        } else if let Some(rest) = strip_prefix_ci(text, "u:") {
            if rest.is_empty() || rest.chars().any(char::is_control) {
                return Err(malformed());
            }
            Ok(Identity::Username(rest.to_owned()))
        } else {
            Err(malformed())
        }
    }
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
                matches!(Identity::parse(bad), Err(OtpError::MalformedIdentity(_))),
                "{bad:?}"
            );
        }
    }
}
