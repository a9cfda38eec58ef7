//! The people countersign authenticates and the few value types everything else speaks.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC. Injected through [`crate::ports::Clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// A distinguished name as a directory gave it. Two DNs are the same user when their
/// [`Dn::normalized`] forms are equal (attribute types and values compared case-insensitively,
/// spaces around separators ignored), which is how LDAP servers compare `uid`/`cn`-style names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dn(String);

impl Dn {
    pub fn new(dn: impl Into<String>) -> Self {
        Self(dn.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparison form: RDNs split on unescaped commas, each `type=value` trimmed and
    /// lower-cased. Full RFC 4514 parsing arrives with LDAP directories; local DNs are simple.
    pub fn normalized(&self) -> String {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut escaped = false;
        for c in self.0.chars() {
            if escaped {
                current.push(c);
                escaped = false;
            } else if c == '\\' {
                current.push(c);
                escaped = true;
            } else if c == ',' {
                out.push(normalize_rdn(&current));
                current.clear();
            } else {
                current.push(c);
            }
        }
        if !current.trim().is_empty() || !out.is_empty() {
            out.push(normalize_rdn(&current));
        }
        out.join(",")
    }

    /// True when `self` is `base` or lies below it.
    pub fn is_within(&self, base: &Dn) -> bool {
        let me = self.normalized();
        let base = base.normalized();
        me == base || me.ends_with(&format!(",{base}"))
    }
}

fn normalize_rdn(rdn: &str) -> String {
    match rdn.split_once('=') {
        Some((t, v)) => format!("{}={}", t.trim().to_lowercase(), v.trim().to_lowercase()),
        None => rdn.trim().to_lowercase(),
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a user's OTP and audit records are filed: the directory they came from and their DN in
/// normalized form. Nothing is ever written into a customer's directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    pub directory: String,
    pub dn: String,
}

/// For local users, the sponsor stands in for an LDAP `manager`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sponsor {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Whether an account may authenticate at all, as far as its directory shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    pub disabled: bool,
    pub locked_until: Option<Timestamp>,
    pub password_expires_at: Option<Timestamp>,
}

/// A user as a directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name of the `[[directory]]` the user lives in.
    pub directory: String,
    pub dn: Dn,
    pub username: String,
    pub display_name: Option<String>,
    pub mail: Vec<String>,
    pub mobile: Vec<String>,
    /// Other attributes, names lower-cased; policies match on them.
    pub attributes: BTreeMap<String, Vec<String>>,
    pub sponsor: Option<Sponsor>,
    /// Our equivalent of `ds-auth-preferred-otp-delivery-mechanism`, in order.
    pub preferred_mechanisms: Vec<String>,
    pub account: AccountState,
}

impl User {
    pub fn key(&self) -> UserKey {
        UserKey {
            directory: self.directory.clone(),
            dn: self.dn.normalized(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_comparison_ignores_case_and_spaces() {
        let a = Dn::new("uid=Alice, ou=People,dc=Example,dc=com");
        let b = Dn::new("UID=alice,ou=people, dc=example ,dc=com");
        assert_eq!(a.normalized(), b.normalized());
        assert!(a.is_within(&Dn::new("dc=example,dc=com")));
        assert!(!a.is_within(&Dn::new("dc=ample,dc=com")));
        assert!(!Dn::new("uid=x,dc=evilexample,dc=com").is_within(&Dn::new("dc=example,dc=com")));
    }

    #[test]
    fn escaped_commas_stay_inside_their_rdn() {
        let dn = Dn::new(r"cn=Smith\, John,dc=example,dc=com");
        assert_eq!(dn.normalized(), r"cn=smith\, john,dc=example,dc=com");
    }
}
