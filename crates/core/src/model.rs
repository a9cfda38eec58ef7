//! The people countersign authenticates and the few value types everything else speaks.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC. Injected through the `Clock` port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// As RFC 3339 in UTC, to the second (`2026-11-27T19:22:13Z`), for messages and pages.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    /// The comparison form (RFC 4514): RDNs split on unescaped commas, multi-valued RDNs on
    /// unescaped `+` (sorted), attribute types lower-cased, values unescaped (`\,` and `\2C`
    /// are the same), trimmed, lower-cased (the usual caseIgnoreMatch), then escaped again one
    /// canonical way. Malformed escapes are kept as written rather than guessed at.
    pub fn normalized(&self) -> String {
        split_unescaped(&self.0, ',')
            .iter()
            .filter(|rdn| !rdn.trim().is_empty())
            .map(|rdn| {
                let mut avas: Vec<String> = split_unescaped(rdn, '+')
                    .iter()
                    .map(|ava| normalize_ava(ava))
                    .collect();
                avas.sort();
                avas.join("+")
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// True when `self` is `base` or lies below it.
    pub fn is_within(&self, base: &Dn) -> bool {
        // Compare whole RDNs: `uid=a\\,dc=x` is not below `dc=x`.
        let me = split_unescaped(&self.normalized(), ',');
        let base = split_unescaped(&base.normalized(), ',');
        !base.is_empty() && me.len() >= base.len() && me[me.len() - base.len()..] == base[..]
    }
}

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    out.push(current);
    out
}

fn normalize_ava(ava: &str) -> String {
    let (ty, value) = match ava.split_once('=') {
        Some((t, v)) => (t.trim().to_lowercase(), v),
        None => return ava.trim().to_lowercase(),
    };
    let value = value.trim_start();
    if value.starts_with('#') {
        // A BER-encoded value: compare its hex as written.
        return format!("{ty}={}", value.trim().to_lowercase());
    }
    format!(
        "{ty}={}",
        escape_value(&unescape_value(value).to_lowercase())
    )
}

/// RFC 4514 §3 unescaping: `\XX` hex bytes (UTF-8) and `\c` for a special character; spaces
/// at the end that are not escaped are dropped.
fn unescape_value(v: &str) -> String {
    let chars: Vec<char> = v.chars().collect();
    // Trailing unescaped spaces do not belong to the value.
    let mut end = chars.len();
    while end > 0 && chars[end - 1] == ' ' && !(end >= 2 && chars[end - 2] == '\\') {
        end -= 1;
    }
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < end {
        let c = chars[i];
        if c == '\\' && i + 1 < end {
            let hex: String = chars[i + 1..(i + 3).min(end)].iter().collect();
            if hex.len() == 2 && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                if let Ok(b) = u8::from_str_radix(&hex, 16) {
                    bytes.push(b);
                }
                i += 3;
                continue;
            }
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(chars[i + 1].encode_utf8(&mut buf).as_bytes());
            i += 2;
            continue;
        }
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// RFC 4514 §2.4 escaping, one canonical way.
fn escape_value(v: &str) -> String {
    let count = v.chars().count();
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == count && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
            continue;
        }
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

/// Who approves or hears about a user's logins: the LDAP `manager` entry, or a local user's
/// sponsor. Any part may be missing; the approval profile's default recipient stands in when no
/// manager is found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manager {
    /// The manager's entry, for LDAP users.
    pub dn: Option<Dn>,
    pub name: Option<String>,
    pub mail: Option<String>,
    pub mobile: Option<String>,
}

/// Whether an account may authenticate at all, as far as its directory shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    pub disabled: bool,
    pub locked_until: Option<Timestamp>,
    pub password_expires_at: Option<Timestamp>,
    /// An administrator set (or reset) the password: the user must change it before anything
    /// else (ppolicy `pwdReset`, AD `pwdLastSet` 0).
    pub must_change_password: bool,
}

/// A user as a directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name of the `[[directory]]` the user lives in.
    pub directory: String,
    pub dn: Dn,
    /// The entry's immutable identifier, when its directory has one (LDAP `entryUUID`, Active
    /// Directory `objectGUID` as hex; a local user's id made when it was added): unlike the
    /// DN it survives a rename and is never given to another entry.
    pub id: Option<String>,
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
    /// A user with only a name, in `directory` at `dn`: no addresses, attributes, sponsor or
    /// preferences, and a usable account.
    pub fn new(directory: impl Into<String>, dn: Dn, username: impl Into<String>) -> Self {
        User {
            directory: directory.into(),
            dn,
            id: None,
            username: username.into(),
            display_name: None,
            mail: Vec::new(),
            mobile: Vec::new(),
            attributes: BTreeMap::new(),
            sponsor: None,
            preferred_mechanisms: Vec::new(),
            account: AccountState::default(),
        }
    }

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
    fn timestamps_print_as_rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_795_807_333_999).to_rfc3339(),
            "2026-11-27T19:22:13Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(Timestamp(-1000).to_rfc3339(), "1969-12-31T23:59:59Z");
    }

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

    #[test]
    fn rfc4514_escapes_compare_by_meaning() {
        let same = |a: &str, b: &str| Dn::new(a).normalized() == Dn::new(b).normalized();
        assert!(same(r"cn=Smith\, John,dc=x", r"CN=smith\2c john, DC=X"));
        assert!(same(r"uid=a\2ab,dc=x", r"uid=a*b,dc=x"));
        assert!(same(r"uid=\C3\BC,dc=x", "uid=ü,dc=x"));
        assert!(same("uid=o'brien,dc=x", r"uid=o\27brien,dc=x"));
        assert!(same("cn=a+sn=b,dc=x", "sn=B+cn=A,dc=x"));
        assert!(!same(r"uid=a\,b,dc=x", "uid=a,b=,dc=x"));
        assert!(same("uid=a ,dc=x", "uid=a,dc=x"));
        assert!(!same(r"uid=a\ ,dc=x", "uid=a,dc=x"));
        assert!(!Dn::new(r"uid=a\,dc=x").is_within(&Dn::new("dc=x")));
        assert!(Dn::new(r"uid=a\,b,dc=x").is_within(&Dn::new("DC=X")));
    }
}
