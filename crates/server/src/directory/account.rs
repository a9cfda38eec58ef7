//! Whether a directory account may log in, as each kind of directory says it
//! (docs/directories.md): the attributes to read, what their values mean, and what a refused
//! (or conditionally accepted) bind tells about why. Pure functions; the LDAP adapter fetches.
//!
//! - OpenLDAP ppolicy (draft-behera-ldap-password-policy-10 §5.3, slapo-ppolicy(5)):
//!   `pwdAccountLockedTime` (`000001010000Z` is locked until an administrator unlocks; any other
//!   time ends after the policy's `pwdLockoutDuration`, 0 meaning never), `pwdChangedTime` plus
//!   the policy's `pwdMaxAge`, `pwdReset`; and the password policy response control (§6.2).
//! - Active Directory (MS-ADTS 2.2.16 userAccountControl bits, 3.1.1.4.5.17
//!   msDS-User-Account-Control-Computed): ACCOUNTDISABLE, LOCKOUT, PASSWORD_EXPIRED,
//!   `lockoutTime`, `pwdLastSet` 0; and the `data NNN` code of a refused bind's diagnostic.
//! - 389 Directory Server / Red Hat DS: `nsAccountLock: TRUE`.

use std::collections::BTreeMap;
use std::time::Duration;

use countersign_core::error::Refusal;
use countersign_core::model::{AccountState, Timestamp};

use crate::ber::{self, BerError};
use crate::config::AccountPolicy;

/// The password policy request/response control (draft-behera §6).
pub const PPOLICY_CONTROL: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// ppolicy's value for "locked until an administrator unlocks it" (slapo-ppolicy(5)).
const PERMANENT_LOCK: &str = "000001010000Z";

const UF_ACCOUNTDISABLE: i64 = 0x2;
const UF_LOCKOUT: i64 = 0x10;
const UF_PASSWORD_EXPIRED: i64 = 0x80_0000;

/// AD's constructed attribute, returned only by base-scope reads (MS-ADTS 3.1.1.4.5).
pub const AD_COMPUTED: &str = "msDS-User-Account-Control-Computed";
/// ppolicy's pointer from a user to the policy that governs them.
pub const POLICY_SUBENTRY: &str = "pwdPolicySubentry";

const OPENLDAP: &[&str] = &[
    "pwdAccountLockedTime",
    "pwdChangedTime",
    "pwdReset",
    POLICY_SUBENTRY,
];
const ACTIVE_DIRECTORY: &[&str] = &[
    "userAccountControl",
    "lockoutTime",
    "pwdLastSet",
    AD_COMPUTED,
];
const DS389: &[&str] = &["nsAccountLock"];

/// The account attributes to read from user entries (several of them are operational, so they
/// must be asked for by name).
pub fn attributes(policy: AccountPolicy) -> Vec<&'static str> {
    match policy {
        AccountPolicy::OpenLdap => OPENLDAP.to_vec(),
        AccountPolicy::ActiveDirectory => ACTIVE_DIRECTORY.to_vec(),
        AccountPolicy::Ds389 => DS389.to_vec(),
        AccountPolicy::Auto => [OPENLDAP, ACTIVE_DIRECTORY, DS389].concat(),
    }
}

fn reads_openldap(p: AccountPolicy) -> bool {
    matches!(p, AccountPolicy::OpenLdap | AccountPolicy::Auto)
}

fn reads_ad(p: AccountPolicy) -> bool {
    matches!(p, AccountPolicy::ActiveDirectory | AccountPolicy::Auto)
}

fn reads_389(p: AccountPolicy) -> bool {
    matches!(p, AccountPolicy::Ds389 | AccountPolicy::Auto)
}

/// Lower-cased attribute names to their values, as the adapter keeps an entry.
pub type Attributes = BTreeMap<String, Vec<String>>;

fn first<'a>(attrs: &'a Attributes, name: &str) -> Option<&'a str> {
    attrs
        .get(&name.to_lowercase())
        .and_then(|v| v.first())
        .map(|v| v.trim())
}

/// The parts of an OpenLDAP password policy entry (`pwdPolicy`) that decide usability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// `pwdMaxAge`; `None` (absent or 0): passwords never expire.
    pub max_age: Option<Duration>,
    /// `pwdLockoutDuration`; 0: a lockout lasts until an administrator lifts it.
    pub lockout_duration: Duration,
}

impl PasswordPolicy {
    pub const ATTRIBUTES: [&'static str; 2] = ["pwdMaxAge", "pwdLockoutDuration"];

    pub fn from_attributes(attrs: &Attributes) -> Self {
        let seconds = |name| {
            first(attrs, name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let max_age = seconds("pwdMaxAge");
        Self {
            max_age: (max_age > 0).then(|| Duration::from_secs(max_age)),
            lockout_duration: Duration::from_secs(seconds("pwdLockoutDuration")),
        }
    }
}

/// Whether reading this entry's state needs its ppolicy entry: only a timed lock or a change
/// time depend on the policy.
pub fn needs_password_policy(policy: AccountPolicy, attrs: &Attributes) -> bool {
    reads_openldap(policy)
        && (first(attrs, "pwdChangedTime").is_some()
            || first(attrs, "pwdAccountLockedTime").is_some_and(|v| v != PERMANENT_LOCK))
}

/// Whether this entry looks like AD's but lacks the constructed attribute (a subtree search
/// never returns it), so a base-scope read of the entry should fetch it.
pub fn needs_ad_computed(policy: AccountPolicy, attrs: &Attributes) -> bool {
    reads_ad(policy)
        && first(attrs, "userAccountControl").is_some()
        && first(attrs, AD_COMPUTED).is_none()
}

/// What the entry says about the account. `ppolicy` is the policy that governs the user, when
/// known; without it a ppolicy lock counts until the server clears it, and expiry is left to
/// the server's bind (which is asked for the response control).
pub fn account_state(
    policy: AccountPolicy,
    attrs: &Attributes,
    ppolicy: Option<&PasswordPolicy>,
) -> AccountState {
    let mut state = AccountState::default();
    let mut lock = |until: Timestamp| {
        state.locked_until = Some(state.locked_until.map_or(until, |t| t.max(until)));
    };
    let mut expired_at: Option<Timestamp> = None;
    let mut disabled = false;
    let mut must_change = false;

    if reads_openldap(policy) {
        if let Some(v) = first(attrs, "pwdAccountLockedTime") {
            // slapo-ppolicy: the permanent value, an unreadable time, no known policy or a
            // zero duration all mean "locked until an administrator unlocks".
            let until = match (v != PERMANENT_LOCK, generalized_time(v), ppolicy) {
                (true, Some(at), Some(p)) if !p.lockout_duration.is_zero() => {
                    at.plus(p.lockout_duration)
                }
                _ => Timestamp(i64::MAX),
            };
            lock(until);
        }
        if let (Some(changed), Some(max_age)) = (
            first(attrs, "pwdChangedTime").and_then(generalized_time),
            ppolicy.and_then(|p| p.max_age),
        ) {
            expired_at = Some(changed.plus(max_age));
        }
        must_change |= first(attrs, "pwdReset").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
    }

    if reads_ad(policy) {
        let flags = |name| first(attrs, name).and_then(|v| v.parse::<i64>().ok());
        let uac = flags("userAccountControl").unwrap_or(0);
        let computed = flags(AD_COMPUTED);
        disabled |= uac & UF_ACCOUNTDISABLE != 0;
        let bits = uac | computed.unwrap_or(0);
        if bits & UF_LOCKOUT != 0 {
            lock(Timestamp(i64::MAX));
        }
        if bits & UF_PASSWORD_EXPIRED != 0 {
            expired_at = Some(Timestamp(0));
        }
        // lockoutTime stays set after the domain's lockout duration ends, until the next good
        // logon: the computed attribute is AD's own verdict, so lockoutTime counts only when
        // that is absent (then as locked until AD clears it).
        if computed.is_none() && flags("lockoutTime").is_some_and(|t| t != 0) {
            lock(Timestamp(i64::MAX));
        }
        // "User must change password at next logon".
        must_change |= flags("pwdLastSet") == Some(0);
    }

    if reads_389(policy) {
        disabled |= first(attrs, "nsAccountLock").is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
    }

    state.disabled = disabled;
    state.password_expires_at = expired_at;
    state.must_change_password = must_change;
    state
}

/// RFC 4517 §3.3.13 GeneralizedTime as directories write it: `YYYYMMDDHHMMSS[.fraction]Z`
/// (ppolicy writes UTC; minutes and seconds may be absent). `None` when it is not one.
pub fn generalized_time(v: &str) -> Option<Timestamp> {
    let v = v.strip_suffix('Z')?;
    let (whole, fraction) = match v.split_once(['.', ',']) {
        Some((w, f)) => (w, f),
        None => (v, ""),
    };
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !matches!(whole.len(), 10 | 12 | 14) {
        return None;
    }
    // Absent minutes and seconds are zero.
    let part = |from: usize, to: usize| whole.get(from..to).map_or(Some(0), |s| s.parse().ok());
    let (year, month, day) = (part(0, 4)?, part(4, 6)?, part(6, 8)?);
    let (hour, minute, second) = (part(8, 10)?, part(10, 12)?, part(12, 14)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let millis = fraction
        .get(..fraction.len().min(3))
        .map(|f| format!("{f:0<3}"))
        .and_then(|f| f.parse::<i64>().ok())
        .unwrap_or(0);
    let days = days_from_civil(year, month, day);
    Some(Timestamp(
        ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's civil-days algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What the password policy response control said (draft-behera §6.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PpolicyResponse {
    /// `timeBeforeExpiration`, seconds.
    pub expires_in: Option<i64>,
    /// `graceAuthNsRemaining`: sent only once the password has expired.
    pub grace_remaining: Option<i64>,
    /// The `error` enumeration's value.
    pub error: Option<i64>,
}

impl PpolicyResponse {
    /// ```text
    /// PasswordPolicyResponseValue ::= SEQUENCE {
    ///     warning [0] CHOICE {
    ///         timeBeforeExpiration [0] INTEGER (0 .. maxInt),
    ///         graceAuthNsRemaining [1] INTEGER (0 .. maxInt) } OPTIONAL,
    ///     error   [1] ENUMERATED { passwordExpired (0), accountLocked (1),
    ///         changeAfterReset (2), ... } OPTIONAL }
    /// ```
    /// The CHOICE is tagged explicitly (a CHOICE cannot be tagged implicitly), the rest
    /// implicitly, as OpenLDAP encodes it.
    pub fn decode(value: &[u8]) -> Result<Self, BerError> {
        let mut out = Self::default();
        for part in ber::sequence(value)? {
            if part.tag == ber::context_constructed(0) {
                let choice = ber::read_only(part.value)?;
                let n = integer(choice.value)?;
                if choice.tag == ber::context(0) {
                    out.expires_in = Some(n);
                } else if choice.tag == ber::context(1) {
                    out.grace_remaining = Some(n);
                }
            } else if part.tag == ber::context(1) {
                out.error = Some(integer(part.value)?);
            }
        }
        Ok(out)
    }

    /// Why the account may not log in, if the control says so. An expired password that the
    /// server still accepts on grace logins is expired all the same: those logins exist to
    /// change it, which countersign does not offer.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.error {
            Some(0) => Some(Refusal::PasswordExpired),
            Some(1) => Some(Refusal::AccountLocked),
            Some(2) => Some(Refusal::MustChangePassword),
            _ if self.grace_remaining.is_some() => Some(Refusal::PasswordExpired),
            _ => None,
        }
    }
}

/// A BER INTEGER's contents (two's complement, big-endian), up to 8 bytes.
fn integer(bytes: &[u8]) -> Result<i64, BerError> {
    if bytes.is_empty() {
        return Err(BerError::Truncated);
    }
    if bytes.len() > 8 {
        return Err(BerError::LengthTooLong);
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut n: i64 = if negative { -1 } else { 0 };
    for &b in bytes {
        n = (n << 8) | i64::from(b);
    }
    Ok(n)
}

/// Active Directory's reason for a refused bind, from the `data NNN` (hex) code in its
/// diagnostic, e.g. `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error,
/// data 775, v4563`.
pub fn ad_bind_refusal(diagnostic: &str) -> Option<Refusal> {
    let code = diagnostic
        .split(", ")
        .find_map(|part| part.trim().strip_prefix("data "))?;
    match code.trim().to_ascii_lowercase().as_str() {
        "52e" | "525" => Some(Refusal::WrongPassword),
        "530" | "531" | "533" | "701" => Some(Refusal::AccountDisabled),
        "532" => Some(Refusal::PasswordExpired),
        "773" => Some(Refusal::MustChangePassword),
        "775" => Some(Refusal::AccountLocked),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        let mut a = Attributes::new();
        for (k, v) in pairs {
            a.entry(k.to_lowercase()).or_default().push((*v).to_owned());
        }
        a
    }

    #[test]
    fn generalized_times_as_directories_write_them() {
        assert_eq!(generalized_time("19700101000000Z"), Some(Timestamp(0)));
        assert_eq!(
            generalized_time("20261127171838Z"),
            Some(Timestamp(1_795_799_918_000))
        );
        assert_eq!(
            generalized_time("20261127171838.127103Z"),
            Some(Timestamp(1_795_799_918_127))
        );
        assert_eq!(
            generalized_time("2026112717Z"),
            generalized_time("20261127170000Z")
        );
        for bad in [
            "",
            "20261127171838",
            "2026-11-27",
            "20261327000000Z",
            "x0261127171838Z",
        ] {
            assert_eq!(generalized_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn ppolicy_locks_are_permanent_or_timed() {
        let policy = PasswordPolicy {
            max_age: Some(Duration::from_secs(86_400)),
            lockout_duration: Duration::from_secs(300),
        };
        let permanent = attrs(&[("pwdAccountLockedTime", PERMANENT_LOCK)]);
        let timed = attrs(&[("pwdAccountLockedTime", "19700101000000Z")]);
        let s = |a: &Attributes, p| account_state(AccountPolicy::OpenLdap, a, p);
        assert_eq!(
            s(&permanent, Some(&policy)).locked_until,
            Some(Timestamp(i64::MAX))
        );
        assert_eq!(
            s(&timed, Some(&policy)).locked_until,
            Some(Timestamp(300_000))
        );
        // Unknown policy or a zero duration: locked until an administrator (or the server) lifts it.
        assert_eq!(s(&timed, None).locked_until, Some(Timestamp(i64::MAX)));
        let forever = PasswordPolicy::default();
        assert_eq!(
            s(&timed, Some(&forever)).locked_until,
            Some(Timestamp(i64::MAX))
        );
        assert!(!needs_password_policy(AccountPolicy::OpenLdap, &permanent));
        assert!(needs_password_policy(AccountPolicy::OpenLdap, &timed));
        assert!(!needs_password_policy(
            AccountPolicy::ActiveDirectory,
            &timed
        ));
    }

    #[test]
    fn ppolicy_expiry_and_reset() {
        let changed = attrs(&[("pwdChangedTime", "19700101000000Z"), ("pwdReset", "TRUE")]);
        let policy = PasswordPolicy {
            max_age: Some(Duration::from_secs(60)),
            lockout_duration: Duration::ZERO,
        };
        let s = account_state(AccountPolicy::Auto, &changed, Some(&policy));
        assert_eq!(s.password_expires_at, Some(Timestamp(60_000)));
        assert!(s.must_change_password);
        let no_max_age = PasswordPolicy::default();
        let s = account_state(AccountPolicy::OpenLdap, &changed, Some(&no_max_age));
        assert_eq!(s.password_expires_at, None);
        // Another kind's attributes are not read.
        assert_eq!(
            account_state(AccountPolicy::Ds389, &changed, Some(&policy)),
            AccountState::default()
        );
    }

    #[test]
    fn active_directory_flags() {
        let s = |pairs: &[(&str, &str)]| {
            account_state(AccountPolicy::ActiveDirectory, &attrs(pairs), None)
        };
        assert!(s(&[("userAccountControl", "514")]).disabled);
        assert_eq!(s(&[("userAccountControl", "512")]), AccountState::default());
        let locked = Some(Timestamp(i64::MAX));
        assert_eq!(
            s(&[("lockoutTime", "133000000000000000")]).locked_until,
            locked
        );
        assert_eq!(s(&[("lockoutTime", "0")]).locked_until, None);
        // The computed attribute is AD's verdict on an old lockoutTime.
        let lifted = s(&[(AD_COMPUTED, "0"), ("lockoutTime", "133000000000000000")]);
        assert_eq!(lifted.locked_until, None);
        assert_eq!(s(&[(AD_COMPUTED, "16")]).locked_until, locked);
        let expired = s(&[(AD_COMPUTED, "8388608")]);
        assert_eq!(expired.password_expires_at, Some(Timestamp(0)));
        assert!(s(&[("pwdLastSet", "0")]).must_change_password);
        assert!(!s(&[("pwdLastSet", "133000000000000000")]).must_change_password);
        assert!(needs_ad_computed(
            AccountPolicy::Auto,
            &attrs(&[("userAccountControl", "512")])
        ));
    }

    #[test]
    fn ds389_inactivation() {
        for v in ["TRUE", "true", "True"] {
            let a = attrs(&[("nsAccountLock", v)]);
            assert!(
                account_state(AccountPolicy::Ds389, &a, None).disabled,
                "{v}"
            );
        }
        let a = attrs(&[("nsAccountLock", "FALSE")]);
        assert!(!account_state(AccountPolicy::Auto, &a, None).disabled);
    }

    #[test]
    fn ppolicy_response_control_values() {
        let decode = |b: &[u8]| PpolicyResponse::decode(b).unwrap();
        // OpenLDAP's encodings: error only, warning only, both.
        let locked = decode(&[0x30, 0x03, 0x81, 0x01, 0x01]);
        assert_eq!(locked.refusal(), Some(Refusal::AccountLocked));
        assert_eq!(
            decode(&[0x30, 0x03, 0x81, 0x01, 0x00]).refusal(),
            Some(Refusal::PasswordExpired)
        );
        assert_eq!(
            decode(&[0x30, 0x03, 0x81, 0x01, 0x02]).refusal(),
            Some(Refusal::MustChangePassword)
        );
        let grace = decode(&[0x30, 0x05, 0xA0, 0x03, 0x81, 0x01, 0x02]);
        assert_eq!(grace.grace_remaining, Some(2));
        assert_eq!(grace.refusal(), Some(Refusal::PasswordExpired));
        let warning = decode(&[0x30, 0x06, 0xA0, 0x04, 0x80, 0x02, 0x0e, 0x10]);
        assert_eq!(warning.expires_in, Some(3600));
        assert_eq!(warning.refusal(), None);
        assert_eq!(decode(&[0x30, 0x00]).refusal(), None);
        for bad in [
            &[0x30, 0x05, 0x81, 0x01][..],
            &[0x04, 0x00],
            &[0x30, 0x02, 0x81, 0x00],
        ] {
            assert!(PpolicyResponse::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn active_directory_bind_diagnostics() {
        let text = |code| {
            format!(
                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563"
            )
        };
        assert_eq!(ad_bind_refusal(&text("775")), Some(Refusal::AccountLocked));
        assert_eq!(
            ad_bind_refusal(&text("533")),
            Some(Refusal::AccountDisabled)
        );
        assert_eq!(
            ad_bind_refusal(&text("532")),
            Some(Refusal::PasswordExpired)
        );
        assert_eq!(
            ad_bind_refusal(&text("773")),
            Some(Refusal::MustChangePassword)
        );
        assert_eq!(ad_bind_refusal(&text("52e")), Some(Refusal::WrongPassword));
        assert_eq!(ad_bind_refusal("Invalid credentials"), None);
    }
}
